package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/weftmesh/weft/internal/capture"
)

// iptablesOptions are the flags of `weft iptables`, named after
// istio-iptables' long options.
type iptablesOptions struct {
	proxyPort, inboundPort               uint16
	uids, gids                           string
	inboundPorts, excludeInboundPorts    string
	outboundRanges, excludeOutboundRange string
	excludeOutboundPorts, includeOutPort string
	families                             string
	backend                              string
	dryRun                               bool
}

// newIPTablesCommand builds `weft iptables` and `weft iptables cleanup`.
func newIPTablesCommand(s streams) *cobra.Command {
	var o iptablesOptions
	cmd := &cobra.Command{
		Use:   "iptables [flags]",
		Short: "Install transparent traffic capture for a workload's network namespace, as istio-iptables",
		Long: `iptables installs, in the current network namespace, the netfilter rules that send
a workload's TCP traffic through its weft-proxy sidecar, as istio-iptables does in an
Istio pod: outbound traffic to the proxy's port 15001 (chains ISTIO_OUTPUT and
ISTIO_REDIRECT), inbound traffic to 15006 (ISTIO_INBOUND, ISTIO_IN_REDIRECT). The
proxy's own traffic (--proxy-uid, --proxy-gid) is never captured, nor is the inbound
passthrough source 127.0.0.6. Run the proxy as that user (weft-proxy sidecar --capture
--uid 1337 --gid 1337).

It uses iptables (iptables-restore, ip6tables-restore) or nftables (nft, one inet
table named weft), whichever the host has (--backend forces one). Run it as root
inside the workload's namespace (ip netns exec NAME weft iptables). Previous rules
are removed first; "weft iptables cleanup" removes them.`,
		Example: `  ip netns exec app weft iptables --proxy-uid 1337 --proxy-gid 1337
  weft iptables --dry-run --exclude-inbound-ports 22 --exclude-outbound-ip-ranges 10.96.0.0/12
  weft iptables --backend nftables --inbound-ports 8080,9090 --families ipv4,ipv6
  ip netns exec app weft iptables cleanup`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error { return o.install(s) },
	}
	f := cmd.Flags()
	f.Uint16VarP(&o.proxyPort, "proxy-port", "p", 15001, "port outbound traffic is redirected to")
	f.Uint16VarP(&o.inboundPort, "inbound-capture-port", "z", 15006, "port inbound traffic is redirected to")
	f.StringVarP(&o.uids, "proxy-uid", "u", "1337", "user IDs of the proxy, comma-separated: their traffic is not captured")
	f.StringVarP(&o.gids, "proxy-gid", "g", "1337", "group IDs of the proxy, comma-separated: their traffic is not captured")
	f.StringVarP(&o.inboundPorts, "inbound-ports", "b", "*", `inbound ports to capture, comma-separated; "*" for all, "" for none`)
	f.StringVarP(&o.excludeInboundPorts, "exclude-inbound-ports", "d", "15090,15021,15020", "inbound ports never captured (with --inbound-ports *)")
	f.StringVarP(&o.outboundRanges, "outbound-ip-ranges", "i", "*", `outbound CIDRs to capture, comma-separated; "*" for all`)
	f.StringVarP(&o.excludeOutboundRange, "exclude-outbound-ip-ranges", "x", "", "outbound CIDRs never captured")
	f.StringVarP(&o.excludeOutboundPorts, "exclude-outbound-ports", "o", "", "outbound ports never captured")
	f.StringVarP(&o.includeOutPort, "include-outbound-ports", "q", "", "outbound ports always captured, whatever the destination")
	f.StringVar(&o.families, "families", "ipv4", "IP families to capture: ipv4, ipv6 or ipv4,ipv6 (IPv6 needs IPv6 capture listeners, which weft-control does not generate yet)")
	// Shared with the cleanup subcommand.
	pf := cmd.PersistentFlags()
	pf.StringVar(&o.backend, "backend", "auto", "netfilter userland: auto, iptables or nftables")
	pf.BoolVar(&o.dryRun, "dry-run", false, "print the rules (or the cleanup commands) instead of applying them")
	cmd.AddCommand(newIPTablesCleanupCommand(s, &o))
	return cmd
}

func newIPTablesCleanupCommand(s streams, o *iptablesOptions) *cobra.Command {
	return &cobra.Command{
		Use:     "cleanup",
		Short:   "Remove the capture rules installed by weft iptables (or istio-iptables), IPv4 and IPv6",
		Example: "  ip netns exec app weft iptables cleanup --backend nftables",
		Args:    cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			return capture.Cleanup([]capture.Family{capture.IPv4, capture.IPv6}, o.options(s))
		},
	}
}

func (o *iptablesOptions) options(s streams) capture.Options {
	return capture.Options{Backend: capture.Backend(o.backend), DryRun: o.dryRun, Out: s.out}
}

// install parses the flags into a capture.Config and installs it.
func (o *iptablesOptions) install(s streams) error {
	cfg, err := o.config()
	if err != nil {
		return err
	}
	if err := capture.Install(&cfg, o.options(s)); err != nil {
		return fmt.Errorf("%w (run as root inside the workload's network namespace; --dry-run shows the rules)", err)
	}
	return nil
}

func (o *iptablesOptions) config() (capture.Config, error) {
	c := capture.Config{ProxyPort: o.proxyPort, InboundCapturePort: o.inboundPort}
	var err error
	fail := func(flag string, err error) (capture.Config, error) {
		return capture.Config{}, fmt.Errorf("--%s: %w", flag, err)
	}
	if c.ProxyUIDs, err = capture.ParseIDs(o.uids); err != nil {
		return fail("proxy-uid", err)
	}
	if c.ProxyGIDs, err = capture.ParseIDs(o.gids); err != nil {
		return fail("proxy-gid", err)
	}
	if c.InboundPorts, c.AllInbound, err = capture.ParsePorts(o.inboundPorts); err != nil {
		return fail("inbound-ports", err)
	}
	if c.ExcludeInboundPorts, _, err = capture.ParsePorts(o.excludeInboundPorts); err != nil {
		return fail("exclude-inbound-ports", err)
	}
	if c.OutboundIPRanges, c.AllOutbound, err = capture.ParseCIDRs(o.outboundRanges); err != nil {
		return fail("outbound-ip-ranges", err)
	}
	if c.ExcludeOutboundIPRanges, _, err = capture.ParseCIDRs(o.excludeOutboundRange); err != nil {
		return fail("exclude-outbound-ip-ranges", err)
	}
	if c.ExcludeOutboundPorts, _, err = capture.ParsePorts(o.excludeOutboundPorts); err != nil {
		return fail("exclude-outbound-ports", err)
	}
	if c.IncludeOutboundPorts, _, err = capture.ParsePorts(o.includeOutPort); err != nil {
		return fail("include-outbound-ports", err)
	}
	if c.Families, err = parseFamilies(o.families); err != nil {
		return fail("families", err)
	}
	if err := c.Validate(); err != nil {
		return capture.Config{}, err
	}
	return c, nil
}

func parseFamilies(s string) ([]capture.Family, error) {
	var out []capture.Family
	for _, f := range strings.Split(s, ",") {
		switch strings.TrimSpace(f) {
		case "ipv4":
			out = append(out, capture.IPv4)
		case "ipv6":
			out = append(out, capture.IPv6)
		case "":
		default:
			return nil, fmt.Errorf("family %q: want ipv4 or ipv6", f)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no family: want ipv4, ipv6 or ipv4,ipv6")
	}
	return out, nil
}
