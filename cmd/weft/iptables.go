package main

import (
	"fmt"
	"os"
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
	// DNS capture (dns: Istio's --redirect-dns, --capture-all-dns and the
	// servers, resolv.conf's when dnsServers is empty).
	redirectDNS, captureAllDNS bool
	dnsServers                 string
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

With --redirect-dns (Istio's DNS capture) the workload's DNS queries to the nameservers
of /etc/resolv.conf (--dns-servers; any address with --capture-all-dns), UDP and TCP,
go to the sidecar's DNS proxy on 127.0.0.1:15053 (chain ISTIO_OUTPUT_DNS; the raw table
keeps the application's and the proxy's UDP flows in separate conntrack zones). Run the
sidecar with --dns-address 127.0.0.1:15053 then.

It uses iptables (iptables-restore, ip6tables-restore) or nftables (nft, one inet
table named weft), whichever the host has (--backend forces one). Run it as root
inside the workload's namespace (ip netns exec NAME weft iptables). Previous rules
are removed first; "weft iptables cleanup" removes them.`,
		Example: `  ip netns exec app weft iptables --proxy-uid 1337 --proxy-gid 1337
  weft iptables --dry-run --exclude-inbound-ports 22 --exclude-outbound-ip-ranges 10.96.0.0/12
  weft iptables --backend nftables --inbound-ports 8080,9090 --families ipv4,ipv6
  weft iptables --redirect-dns --dry-run
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
	f.BoolVar(&o.redirectDNS, "redirect-dns", false, "capture the workload's DNS queries (UDP and TCP port 53) into the agent's DNS proxy on 15053 (Istio's ISTIO_META_DNS_CAPTURE); the proxy's own queries go out unchanged")
	f.BoolVar(&o.captureAllDNS, "capture-all-dns", false, "with --redirect-dns, capture port 53 to any address, not only --dns-servers")
	f.StringVar(&o.dnsServers, "dns-servers", "", "with --redirect-dns, the nameservers whose queries are captured, comma-separated (default: the nameservers of /etc/resolv.conf)")
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
	cfg, err := o.config(s)
	if err != nil {
		return err
	}
	if err := capture.Install(&cfg, o.options(s)); err != nil {
		return fmt.Errorf("%w (run as root inside the workload's network namespace; --dry-run shows the rules)", err)
	}
	return nil
}

func (o *iptablesOptions) config(s streams) (capture.Config, error) {
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
	if err := o.dnsConfig(&c, s); err != nil {
		return capture.Config{}, err
	}
	if err := c.Validate(); err != nil {
		return capture.Config{}, err
	}
	return c, nil
}

// dnsConfig sets the DNS capture of c. With neither servers nor
// --capture-all-dns, DNS capture is turned off with a warning, as
// istio-iptables does ("REDIRECT_DNS is set, but CAPTURE_ALL_DNS is
// false, and no DNS servers provided"): the pod starts, resolving as it
// would without the mesh.
func (o *iptablesOptions) dnsConfig(c *capture.Config, s streams) error {
	c.DNSPort = capture.DNSProxyPort
	if !o.redirectDNS {
		return nil
	}
	c.RedirectDNS, c.CaptureAllDNS = true, o.captureAllDNS
	var err error
	if c.DNSServers, err = capture.ParseAddrs(o.dnsServers); err != nil {
		return fmt.Errorf("--dns-servers: %w", err)
	}
	if len(c.DNSServers) == 0 && !c.CaptureAllDNS {
		data, err := os.ReadFile("/etc/resolv.conf")
		if err != nil {
			return fmt.Errorf("--redirect-dns: reading the nameservers to capture: %w (give --dns-servers, or --capture-all-dns)", err)
		}
		c.DNSServers = capture.ResolvConfServers(data)
	}
	if len(c.DNSServers) == 0 && !c.CaptureAllDNS {
		fmt.Fprintln(s.err, "weft iptables: warning: --redirect-dns without nameservers (none in --dns-servers or resolv.conf) nor --capture-all-dns: DNS capture disabled")
		c.RedirectDNS = false
	}
	return nil
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
