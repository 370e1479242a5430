package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/weftmesh/weft/internal/controlplane"
)

// proxyConfigOptions are the flags of `weft proxy-config`.
type proxyConfigOptions struct {
	controlPlane string
	adminAddress string
	output       string
	clusterFilter
}

// proxyConfigKinds are the subcommands: what they print and istioctl's
// aliases.
var proxyConfigKinds = []struct {
	name    string
	aliases []string
	short   string
}{
	{"clusters", []string{"cluster", "c"}, "the proxy's clusters: SERVICE FQDN, PORT, SUBSET, DIRECTION, TYPE, DESTINATION RULE"},
	{"listeners", []string{"listener", "l"}, "the proxy's listeners, one row per filter chain: ADDRESSES, PORT, MATCH, DESTINATION"},
	{"routes", []string{"route", "r"}, "the proxy's routes: NAME, VHOST NAME, DOMAINS, MATCH, VIRTUAL SERVICE"},
	{"endpoints", []string{"endpoint", "ep"}, "the proxy's endpoints (its /clusters): ENDPOINT, STATUS, OUTLIER CHECK, CLUSTER"},
	{"secrets", []string{"secret", "s"}, "the proxy's certificates: RESOURCE NAME, TYPE, STATUS, VALID CERT, SERIAL NUMBER, NOT AFTER, NOT BEFORE (never key material)"},
	{"all", []string{"a"}, "clusters, listeners, routes, endpoints and secrets"},
}

// newProxyConfigCommand builds `weft proxy-config` and its subcommands.
func newProxyConfigCommand(s streams) *cobra.Command {
	var o proxyConfigOptions
	cmd := &cobra.Command{
		Use:     "proxy-config (clusters|listeners|routes|endpoints|secrets|all) [PROXY]",
		Aliases: []string{"pc"},
		Short:   "Show a proxy's configuration, as istioctl proxy-config does",
		Long: `Proxy-config prints what one proxy runs, read from its admin interface
(/config_dump, and /clusters for endpoints), as tables like istioctl's, or the
raw configuration with -o json or -o yaml.

PROXY is a node id, NAME.NAMESPACE, or a NAME only one proxy has: weft-control
(--control-plane-address) says where its admin interface is (the node metadata
WEFT_ADMIN_ADDRESS that weft-proxy sidecar reports). --admin-address IP:PORT
reads a proxy's admin interface directly, without weft-control.`,
		Example: `  weft proxy-config clusters hello-v1.default
  weft proxy-config clusters sleep --fqdn hello.default.svc.cluster.local --direction outbound
  weft proxy-config routes sleep -o json
  weft proxy-config all --admin-address 127.0.0.3:15000`,
	}
	pf := cmd.PersistentFlags()
	pf.StringVar(&o.controlPlane, "control-plane-address", controlplane.DefaultHTTPAddress, "weft-control's monitoring address (its --http-address), to find PROXY's admin address")
	pf.StringVar(&o.adminAddress, "admin-address", "", "the proxy's admin IP:PORT (skips weft-control)")
	pf.StringVarP(&o.output, "output", "o", "table", "output format: table, json or yaml")
	for _, k := range proxyConfigKinds {
		sub := &cobra.Command{
			Use:     k.name + " [PROXY]",
			Aliases: k.aliases,
			Short:   "Print " + k.short,
			Args:    cobra.MaximumNArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				return o.run(cmd.Context(), s, k.name, args)
			},
		}
		if k.name == "clusters" {
			f := sub.Flags()
			f.StringVar(&o.fqdn, "fqdn", "", "only clusters of this service FQDN")
			f.IntVar(&o.port, "port", 0, "only clusters of this port")
			f.StringVar(&o.subset, "subset", "", "only clusters of this subset")
			f.StringVar(&o.direction, "direction", "", "only clusters of this direction (inbound or outbound)")
		}
		cmd.AddCommand(sub)
	}
	return cmd
}

// run resolves the proxy's admin address, reads it and prints kind.
func (o *proxyConfigOptions) run(ctx context.Context, s streams, kind string, args []string) error {
	if err := checkOutput(o.output, "table", "json", "yaml"); err != nil {
		return err
	}
	if ctx == nil {
		ctx = context.Background()
	}
	admin, name, err := o.resolveAdmin(ctx, args)
	if err != nil {
		return err
	}
	src := &proxySource{ctx: ctx, admin: admin, name: name}
	return printProxyConfig(s.out, src, kind, o.output, o.clusterFilter)
}

// resolveAdmin returns the admin address (from the flag, or weft-control's
// view of PROXY) and a name for messages.
func (o *proxyConfigOptions) resolveAdmin(ctx context.Context, args []string) (addr, name string, err error) {
	if o.adminAddress != "" {
		name = o.adminAddress
		if len(args) == 1 {
			name = args[0]
		}
		return o.adminAddress, name, nil
	}
	if len(args) == 0 {
		return "", "", fmt.Errorf("name the proxy (weft proxy-status lists them), or pass --admin-address IP:PORT")
	}
	st, err := syncStatus(ctx, o.controlPlane)
	if err != nil {
		return "", "", err
	}
	id, err := findProxy(st, args[0], o.controlPlane)
	if err != nil {
		return "", "", err
	}
	ps := st[id]
	if ps.AdminAddress == "" {
		return "", "", fmt.Errorf("proxy %s does not report its admin address (node metadata WEFT_ADMIN_ADDRESS, which weft-proxy sidecar sets when --admin-address has a fixed port): pass --admin-address IP:PORT", proxyName(ps))
	}
	return ps.AdminAddress, proxyName(ps), nil
}

// proxySource reads one proxy's admin interface, each document once.
type proxySource struct {
	ctx         context.Context
	admin, name string
	dump        *configDump
	dumpRaw     []byte
}

func (p *proxySource) adminHint() string {
	return fmt.Sprintf("Is proxy %s running with its admin interface on %s? Pass its admin address with --admin-address IP:PORT.", p.name, p.admin)
}

// configDump returns /config_dump, raw and decoded.
func (p *proxySource) configDump() (*configDump, []byte, error) {
	if p.dump != nil {
		return p.dump, p.dumpRaw, nil
	}
	b, err := fetch(p.ctx, "http://"+p.admin+"/config_dump?include_eds", "the admin interface of proxy "+p.name, p.adminHint())
	if err != nil {
		return nil, nil, err
	}
	var d configDump
	if err := json.Unmarshal(b, &d); err != nil {
		return nil, nil, fmt.Errorf("proxy %s: /config_dump is not a config dump: %w", p.name, err)
	}
	p.dump, p.dumpRaw = &d, b
	return p.dump, b, nil
}

// clusters returns /clusters?format=json, raw.
func (p *proxySource) clusters() ([]byte, error) {
	return fetch(p.ctx, "http://"+p.admin+"/clusters?format=json", "the admin interface of proxy "+p.name, p.adminHint())
}

// printProxyConfig prints one kind (or all) as a table or raw.
func printProxyConfig(w io.Writer, src *proxySource, kind, format string, f clusterFilter) error {
	if kind == "all" {
		if format != "table" {
			_, raw, err := src.configDump()
			if err != nil {
				return err
			}
			return writeRaw(w, format, redactJSON(raw))
		}
		for i, k := range []string{"clusters", "listeners", "routes", "endpoints", "secrets"} {
			if i > 0 {
				fmt.Fprintln(w)
			}
			if err := printProxyConfig(w, src, k, format, clusterFilter{}); err != nil {
				return err
			}
		}
		return nil
	}
	v, err := buildView(src, kind, f)
	if err != nil {
		return err
	}
	if format != "table" {
		b, err := json.Marshal(v.raw)
		if err != nil {
			return err
		}
		return writeRaw(w, format, redactJSON(b))
	}
	if len(v.rows) == 0 && v.empty != "" {
		_, err := fmt.Fprintln(w, v.empty)
		return err
	}
	return table(w, v.header, v.rows)
}
