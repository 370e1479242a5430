package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/weftmesh/weft/internal/ca"
	"github.com/weftmesh/weft/internal/controlplane"
	"github.com/weftmesh/weft/internal/localmesh"
)

// upOptions are the flags of `weft up`.
type upOptions struct {
	dir, stateDir, output, logLevel string
	xds, secure, http, caDir        string
	firstIP                         string
	grace                           time.Duration
}

// newUpCommand builds `weft up`.
func newUpCommand(s streams) *cobra.Command {
	var o upOptions
	caDir, _ := ca.DefaultDir()
	cmd := &cobra.Command{
		Use:   "up [-f DIR]",
		Short: "Run the whole mesh on this machine: weft-control, a gateway, and every workload with its sidecar",
		Long: `Up runs a service mesh on this machine, in one process and without root:
weft-control with DIR's Istio configuration (and DIR/mesh.yaml, Istio's mesh
configuration, if present), the mesh CA, an ingress gateway (labels
istio=ingressgateway, so DIR's Gateways select it), and for every replica of
every Workload in DIR (apiVersion local.weft.dev/v1alpha1) a sidecar on its
own loopback address 127.0.0.N and the Workload's command as a child process.
Traffic between sidecars is mutual TLS with SPIFFE identities.

A Workload:

  apiVersion: local.weft.dev/v1alpha1
  kind: Workload
  metadata: {name: reviews-v2, namespace: default}
  spec:
    service: reviews                 # serves reviews.default.svc.cluster.local
    command: ["weft", "demo-app", "reviews"]   # "weft" is this binary
    env: {VERSION: v2}
    ports: [{name: grpc, number: 9080, protocol: GRPC}]
    labels: {app: reviews, version: v2}
    serviceAccount: bookinfo-reviews
    replicas: 1

Each command gets PORT (its first port) and PORT_<NAME> per port to listen on
127.0.0.1, WEFT_PROXY and HTTP_PROXY (its sidecar's outbound HTTP proxy: call
other services through it, by name, e.g. http://ratings:9080/), POD_NAME,
POD_NAMESPACE, SERVICE_NAME, and the Workload's env. Its output is printed
with its name in front.

Editing DIR's Istio YAML applies live. Editing a Workload restarts its
replicas; adding or removing one starts or stops it. Ctrl-C stops everything:
commands get SIGTERM, then SIGKILL after --grace-period.`,
		Example: `  weft up -f examples/bookinfo
  weft up -f . --first-ip 127.0.0.10 -o json
  weft up -f mesh/ --http-address 127.0.0.1:25014   # another dashboard port`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return o.run(cmd.Context(), s) },
	}
	f := cmd.Flags()
	f.StringVarP(&o.dir, "filename", "f", ".", "the mesh's directory: Istio YAML and Workloads")
	f.StringVar(&o.stateDir, "state-dir", localmesh.DefaultStateDir(), "where weft up records itself for `weft apply`")
	f.StringVarP(&o.output, "output", "o", "table", "how to print what runs where: table, json or yaml")
	f.StringVar(&o.logLevel, "log-level", "warn", "the components' log level: debug, info, warn or error")
	f.StringVar(&o.xds, "xds-address", controlplane.DefaultXDSAddress, "weft-control's xDS address")
	f.StringVar(&o.secure, "secure-address", controlplane.DefaultSecureAddress, "weft-control's CA and xDS over TLS")
	f.StringVar(&o.http, "http-address", controlplane.DefaultHTTPAddress, "weft-control's dashboard, debug and metrics address")
	f.StringVar(&o.caDir, "ca-dir", caDir, "the mesh CA's directory (the root is created there on first use)")
	f.StringVar(&o.firstIP, "first-ip", localmesh.DefaultFirstIP.String(), "the first loopback address to use: the gateway's; replicas get the next ones")
	f.DurationVar(&o.grace, "grace-period", localmesh.DefaultGrace, "how long commands have to exit after SIGTERM before SIGKILL")
	_ = cmd.MarkFlagDirname("filename")
	return cmd
}

// run starts the mesh and serves until SIGINT or SIGTERM.
func (o *upOptions) run(ctx context.Context, s streams) error {
	if err := checkOutput(o.output, "table", "json", "yaml"); err != nil {
		return err
	}
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(o.logLevel)); err != nil {
		return fmt.Errorf("--log-level %q: use debug, info, warn or error", o.logLevel)
	}
	first, err := netip.ParseAddr(o.firstIP)
	if err != nil {
		return fmt.Errorf("--first-ip %q: want an address such as 127.0.0.2", o.firstIP)
	}
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	lo := localmesh.Options{
		Dir: o.dir, StateDir: o.stateDir, XDSAddress: o.xds, SecureAddress: o.secure, HTTPAddress: o.http,
		CADir: o.caDir, FirstIP: first, Grace: o.grace, Out: s.out,
		Logger: slog.New(slog.NewTextHandler(s.err, &slog.HandlerOptions{Level: lv})),
	}
	if o.output != "table" {
		lo.OnReady = func(st *localmesh.Status) {
			if err := writeStructured(s.out, o.output, st); err != nil {
				fmt.Fprintln(s.err, "weft up:", err)
			}
		}
	}
	if err := localmesh.Run(ctx, lo); err != nil {
		return err
	}
	fmt.Fprintln(s.err, "weft up: stopped")
	return nil
}
