package main

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/weftmesh/weft/internal/controlplane"
	"github.com/weftmesh/weft/internal/xds"
)

// proxyStatusOptions are the flags of `weft proxy-status`.
type proxyStatusOptions struct {
	controlPlane string
	output       string
}

// newProxyStatusCommand builds `weft proxy-status`.
func newProxyStatusCommand(s streams) *cobra.Command {
	var o proxyStatusOptions
	cmd := &cobra.Command{
		Use:     "proxy-status [PROXY]",
		Aliases: []string{"ps"},
		Short:   "Show the xDS sync state of every proxy connected to weft-control",
		Long: `Proxy-status lists the proxies connected to weft-control, as istioctl proxy-status
does: per proxy (NAME.NAMESPACE of its node id) and xDS type, whether the latest
configuration was acknowledged:

  SYNCED    the proxy ACKed the latest response
  NOT SENT  nothing of that type was sent (not requested yet, or nothing to send)
  STALE     sent, no answer yet ("Never Acknowledged": none of the type ever was)
  NACKED    the proxy rejected the latest response; it keeps its last good
            configuration, and the reason is printed below the table

PROXY (a node id, NAME.NAMESPACE, or a NAME only one proxy has) narrows the
list to one proxy. The data is weft-control's /debug/syncz on its monitoring
address (weft-control --http-address).`,
		Example: `  weft proxy-status
  weft proxy-status hello-v1.default
  weft proxy-status --control-plane-address 10.0.0.5:15014 -o json`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.run(cmd.Context(), s, args)
		},
	}
	cmd.Flags().StringVar(&o.controlPlane, "control-plane-address", controlplane.DefaultHTTPAddress, "weft-control's monitoring address (its --http-address)")
	cmd.Flags().StringVarP(&o.output, "output", "o", "table", "output format: table, json or yaml")
	return cmd
}

func (o *proxyStatusOptions) run(ctx context.Context, s streams, args []string) error {
	if err := checkOutput(o.output, "table", "json", "yaml"); err != nil {
		return err
	}
	if ctx == nil {
		ctx = context.Background()
	}
	st, err := syncStatus(ctx, o.controlPlane)
	if err != nil {
		return err
	}
	if len(args) == 1 {
		id, err := findProxy(st, args[0], o.controlPlane)
		if err != nil {
			return err
		}
		st = map[string]xds.ProxyStatus{id: st[id]}
	}
	if o.output != "table" {
		return writeStructured(s.out, o.output, st)
	}
	return writeProxyStatus(s.out, st)
}

// statusTypes are the columns of the xDS types, in istioctl's order.
var statusTypes = []struct{ column, url string }{
	{"CDS", "type.googleapis.com/envoy.config.cluster.v3.Cluster"},
	{"LDS", "type.googleapis.com/envoy.config.listener.v3.Listener"},
	{"EDS", "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"},
	{"RDS", "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"},
}

// writeProxyStatus prints the table, sorted by name, then the reason of
// every NACK in it.
func writeProxyStatus(w io.Writer, st map[string]xds.ProxyStatus) error {
	ids := make([]string, 0, len(st))
	for id := range st {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool {
		a, b := proxyName(st[ids[i]]), proxyName(st[ids[j]])
		return a < b || a == b && ids[i] < ids[j]
	})
	header := []string{"NAME", "CLUSTER"}
	for _, t := range statusTypes {
		header = append(header, t.column)
	}
	header = append(header, "ISTIOD", "VERSION")
	var rows [][]string
	var nacks []string
	for _, id := range ids {
		ps := st[id]
		row := []string{proxyName(ps), orDash(ps.ClusterID)}
		for _, t := range statusTypes {
			ts, ok := ps.Types[t.url]
			row = append(row, syncState(ts, ok))
			if ok && ts.State == xds.StateNACKed && ts.LastNACK != nil {
				nacks = append(nacks, fmt.Sprintf("  %s %s (version %s): %s", proxyName(ps), t.column, ts.LastNACK.Version, oneLine(ts.LastNACK.Message)))
			}
		}
		rows = append(rows, append(row, orDash(ps.ControlPlane), orDash(ps.Version)))
	}
	if err := table(w, header, rows); err != nil {
		return err
	}
	if len(nacks) > 0 {
		_, err := fmt.Fprintf(w, "\nRejected configuration (the proxy keeps its last good one):\n%s\n", strings.Join(nacks, "\n"))
		return err
	}
	return nil
}

// syncState is a type's cell: istioctl's words.
func syncState(ts xds.TypeStatus, ok bool) string {
	switch {
	case !ok || ts.State == xds.StateNotSent:
		return "NOT SENT"
	case ts.State == xds.StateStale && ts.AckedVersion == "":
		return "STALE (Never Acknowledged)"
	default:
		return ts.State
	}
}

// oneLine folds a multi-line message onto one line.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
