// Package capture builds and installs the netfilter rules that redirect a
// workload's TCP traffic through its weft-proxy sidecar, as Istio's
// istio-iptables does in a pod's network namespace:
//
//   - ISTIO_INBOUND (from PREROUTING) sends inbound TCP to ISTIO_IN_REDIRECT,
//     which REDIRECTs it to the proxy's inbound capture port (15006);
//   - ISTIO_OUTPUT (from OUTPUT) sends outbound TCP to ISTIO_REDIRECT, which
//     REDIRECTs it to the proxy's outbound port (15001), except traffic of
//     the proxy's own UID/GID (no loop), traffic from the inbound passthrough
//     source 127.0.0.6 and local loopback traffic, with Istio's loopback
//     rules: the proxy calling its own workload through a non-127.0.0.1
//     address on lo goes to ISTIO_IN_REDIRECT;
//   - include and exclude lists for inbound ports, outbound ports and
//     outbound CIDRs, in Istio's order;
//   - with RedirectDNS (istio-iptables --redirect-dns, Istio's
//     ISTIO_META_DNS_CAPTURE), the workload's DNS queries, UDP and TCP
//     port 53, to the agent's DNS proxy (15053) through ISTIO_OUTPUT_DNS,
//     and raw-table conntrack zones that keep the application's and the
//     proxy's UDP DNS flows apart (dns.go).
//
// Plan computes the rules for a Config, independent of the tool; the
// iptables and nftables renderers turn them into one atomic input
// (iptables-restore --noflush, nft -f) that Install applies and Cleanup
// removes. The rule order follows istio-iptables' golden files
// (tools/istio-iptables/pkg/capture/testdata in istio/istio).
package capture

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// Istio's chain names.
const (
	ChainInbound    = "ISTIO_INBOUND"
	ChainRedirect   = "ISTIO_REDIRECT"
	ChainInRedirect = "ISTIO_IN_REDIRECT"
	ChainOutput     = "ISTIO_OUTPUT"
	// ChainOutputDNS holds the DNS capture rules, in the nat table and in
	// the raw table (conntrack zones); only with RedirectDNS.
	ChainOutputDNS = "ISTIO_OUTPUT_DNS"
)

// Tables of the rules (Rule.Table).
const (
	TableNAT = "" // the zero value: nat
	TableRaw = "raw"
)

// Family is an IP family.
type Family uint8

// The IP families.
const (
	IPv4 Family = 4
	IPv6 Family = 6
)

// String returns "ipv4" or "ipv6".
func (f Family) String() string {
	if f == IPv6 {
		return "ipv6"
	}
	return "ipv4"
}

// Config is what istio-iptables takes on its command line. The zero value
// of a list means "none"; Defaults fills Istio's defaults.
type Config struct {
	// ProxyPort is where outbound traffic goes (Istio's -p, 15001).
	ProxyPort uint16
	// InboundCapturePort is where inbound traffic goes (-z, 15006).
	InboundCapturePort uint16
	// ProxyUIDs and ProxyGIDs are the proxy's user and group IDs (-u, -g):
	// their traffic is never redirected (Istio's 1337).
	ProxyUIDs []uint32
	ProxyGIDs []uint32
	// InboundPorts are the inbound ports captured (-b): nil for none,
	// AllInbound for every port.
	InboundPorts []uint16
	AllInbound   bool
	// ExcludeInboundPorts are never captured inbound (-d).
	ExcludeInboundPorts []uint16
	// OutboundIPRanges are the outbound CIDRs captured (-i); AllOutbound
	// captures every destination ("*").
	OutboundIPRanges []netip.Prefix
	AllOutbound      bool
	// ExcludeOutboundIPRanges are never captured (-x).
	ExcludeOutboundIPRanges []netip.Prefix
	// ExcludeOutboundPorts are never captured outbound (-o);
	// IncludeOutboundPorts are captured whatever their destination (-q).
	ExcludeOutboundPorts []uint16
	IncludeOutboundPorts []uint16
	// Families are the IP families to capture (IPv4, IPv6 or both).
	Families []Family

	// RedirectDNS sends the workload's DNS queries (UDP and TCP port 53)
	// to the agent's DNS proxy on DNSPort (istio-iptables --redirect-dns,
	// set when the pod has ISTIO_META_DNS_CAPTURE "true"). The proxy's own
	// queries (ProxyUIDs, ProxyGIDs) go out unchanged.
	RedirectDNS bool
	// CaptureAllDNS captures port 53 whatever the destination
	// (--capture-all-dns); otherwise only queries to DNSServers, as Istio
	// does, so that a local resolver chain (app -> proxy -> dnsmasq ->
	// upstream) cannot loop.
	CaptureAllDNS bool
	// DNSServers are the nameservers whose queries are captured (Istio
	// takes resolv.conf's); addresses of a family not in Families are
	// ignored.
	DNSServers []netip.Addr
	// DNSPort is the DNS proxy's port (Istio's agent: 15053).
	DNSPort uint16
}

// HBONEPort is Istio's tunnel port: never captured, as istio-iptables.
const HBONEPort = 15008

// Defaults returns Istio's sidecar defaults: 15001/15006, every inbound
// port and every outbound destination, IPv4 (Istio captures IPv6 only for
// dual-stack pods), proxy UID and GID 1337, and the sidecar's own ports
// 15090, 15021 and 15020 excluded inbound (the injector passes them as -d).
func Defaults() Config {
	return Config{
		ProxyPort:           15001,
		InboundCapturePort:  15006,
		ProxyUIDs:           []uint32{1337},
		ProxyGIDs:           []uint32{1337},
		AllInbound:          true,
		AllOutbound:         true,
		ExcludeInboundPorts: []uint16{15090, 15021, 15020},
		Families:            []Family{IPv4},
		DNSPort:             DNSProxyPort,
	}
}

// Validate checks the configuration; errors name the option.
func (c *Config) Validate() error {
	if c.ProxyPort == 0 {
		return fmt.Errorf("proxy port: must be set (Istio's 15001)")
	}
	if c.InboundCapturePort == 0 {
		return fmt.Errorf("inbound capture port: must be set (Istio's 15006)")
	}
	if len(c.ProxyUIDs) == 0 && len(c.ProxyGIDs) == 0 {
		return fmt.Errorf("proxy uid/gid: give at least one, or the proxy's own traffic loops back into it")
	}
	if len(c.Families) == 0 {
		return fmt.Errorf("families: capture IPv4, IPv6 or both")
	}
	for _, p := range append(slices.Clone(c.OutboundIPRanges), c.ExcludeOutboundIPRanges...) {
		if !p.IsValid() {
			return fmt.Errorf("outbound ip ranges: invalid CIDR %v", p)
		}
	}
	return c.validateDNS()
}

// Rule is one netfilter rule of the nat table, tool-independent. Zero
// fields match anything.
type Rule struct {
	// Table is TableNAT (the zero value) or TableRaw.
	Table string
	Chain string // ISTIO_* or the built-in PREROUTING / OUTPUT
	// Family restricts the rule to one family (set when it matches
	// addresses, or for a jump only one family needs); 0 matches both.
	Family   Family
	TCP, UDP bool
	OutIface string // "lo"
	Src      netip.Prefix
	Dst      netip.Prefix
	NotDst   bool
	DPorts   []uint16
	NotPorts bool
	SPort    uint16
	// UID and GID match the socket owner (-m owner).
	UID, GID       *uint32
	NotUID, NotGID bool
	// Jump is a chain or RETURN; Redirect > 0 means REDIRECT --to-ports;
	// CTZone > 0 means CT --zone (raw table: the conntrack zone of the
	// connection the packet starts).
	Jump     string
	Redirect uint16
	CTZone   uint16
}

// Plan returns the rules for cfg, in order, for the families in fams (a
// subset of cfg.Families): one family for iptables/ip6tables, both for an
// nftables inet table. A rule that matches addresses is emitted once per
// family; the others once.
func Plan(cfg *Config, fams []Family) []Rule {
	p := planner{cfg: cfg, fams: fams}
	p.redirectChains()
	p.inbound()
	p.output()
	return p.rules
}

type planner struct {
	cfg   *Config
	fams  []Family
	rules []Rule
}

func (p *planner) add(r Rule) { p.rules = append(p.rules, r) }

// perFamily adds r once per family, with mk setting its addresses.
func (p *planner) perFamily(r Rule, mk func(r *Rule, f Family)) {
	for _, f := range p.fams {
		rr := r
		rr.Family = f
		mk(&rr, f)
		p.add(rr)
	}
}

func (p *planner) redirectChains() {
	p.add(Rule{Chain: ChainInbound, TCP: true, DPorts: []uint16{HBONEPort}, Jump: "RETURN"})
	p.add(Rule{Chain: ChainRedirect, TCP: true, Redirect: p.cfg.ProxyPort})
	p.add(Rule{Chain: ChainInRedirect, TCP: true, Redirect: p.cfg.InboundCapturePort})
}

// inbound captures the inbound ports: every port but the excluded ones,
// or only the listed ones (Istio ignores -d then).
func (p *planner) inbound() {
	c := p.cfg
	if !c.AllInbound && len(c.InboundPorts) == 0 {
		return
	}
	p.add(Rule{Chain: "PREROUTING", TCP: true, Jump: ChainInbound})
	if c.AllInbound {
		if len(c.ExcludeInboundPorts) > 0 {
			p.add(Rule{Chain: ChainInbound, TCP: true, DPorts: c.ExcludeInboundPorts, Jump: "RETURN"})
		}
		p.add(Rule{Chain: ChainInbound, TCP: true, Jump: ChainInRedirect})
		return
	}
	for _, port := range c.InboundPorts {
		p.add(Rule{Chain: ChainInbound, TCP: true, DPorts: []uint16{port}, Jump: ChainInRedirect})
	}
}

// output is ISTIO_OUTPUT in istio-iptables' order.
func (p *planner) output() {
	c := p.cfg
	// With DNS capture UDP must reach ISTIO_OUTPUT too (Istio jumps
	// OUTPUT for every protocol then).
	p.add(Rule{Chain: "OUTPUT", TCP: !p.dns(), Jump: ChainOutput})
	if len(c.ExcludeOutboundPorts) > 0 {
		p.add(Rule{Chain: ChainOutput, TCP: true, DPorts: c.ExcludeOutboundPorts, Jump: "RETURN"})
	}
	// Inbound passthrough connections come from 127.0.0.6 (the
	// InboundPassthroughCluster's upstream_bind_config): never captured.
	p.perFamily(Rule{Chain: ChainOutput, OutIface: "lo", Jump: "RETURN"}, func(r *Rule, f Family) { r.Src = passthroughSource(f) })
	for i := range c.ProxyUIDs {
		uid := &c.ProxyUIDs[i]
		p.ownerRules(func(r *Rule, not bool) { r.UID, r.NotUID = uid, not })
	}
	for i := range c.ProxyGIDs {
		gid := &c.ProxyGIDs[i]
		p.ownerRules(func(r *Rule, not bool) { r.GID, r.NotGID = gid, not })
	}
	// DNS capture comes after the proxy's own traffic returned and before
	// loopback destinations return: a resolver on 127.0.0.x is captured.
	p.dnsRules()
	p.perFamily(Rule{Chain: ChainOutput, Jump: "RETURN"}, func(r *Rule, f Family) { r.Dst = loopback(f) })
	for _, port := range c.IncludeOutboundPorts {
		p.add(Rule{Chain: ChainOutput, TCP: true, DPorts: []uint16{port}, Jump: ChainRedirect})
	}
	p.outboundRanges()
}

// ownerRules are Istio's three rules per proxy UID or GID: the proxy
// calling an address of this host other than 127.0.0.1 over lo goes to
// the inbound side (it is calling its own workload); an app's own
// loopback traffic is left alone; the proxy's other traffic is not
// captured.
//
// With DNS capture, port 53 is carved out of the first two (Istio's
// redirectDNS branches): the proxy's TCP queries to a resolver on an
// address of lo go out rather than to the inbound side, and an app's TCP
// query to a resolver on lo goes on to ISTIO_OUTPUT_DNS. Istio carves it
// out of the first rule for --proxy-uid only; weft does it for the GIDs
// too, so that a proxy excluded by group alone behaves the same.
func (p *planner) ownerRules(owner func(r *Rule, not bool)) {
	notPorts := []uint16{HBONEPort}
	if p.dns() {
		notPorts = []uint16{dnsPort, HBONEPort}
	}
	p.perFamily(Rule{Chain: ChainOutput, OutIface: "lo", NotDst: true, TCP: true,
		DPorts: notPorts, NotPorts: true, Jump: ChainInRedirect},
		func(r *Rule, f Family) { r.Dst = loopback(f); owner(r, false) })
	r := Rule{Chain: ChainOutput, OutIface: "lo", Jump: "RETURN"}
	if p.dns() {
		r.TCP, r.DPorts, r.NotPorts = true, []uint16{dnsPort}, true
	}
	owner(&r, true)
	p.add(r)
	r = Rule{Chain: ChainOutput, Jump: "RETURN"}
	owner(&r, false)
	p.add(r)
}

// outboundRanges: excluded CIDRs return, then either everything is
// redirected or only the included CIDRs (then the rest returns).
func (p *planner) outboundRanges() {
	c := p.cfg
	for _, pf := range c.ExcludeOutboundIPRanges {
		if p.has(family(pf)) {
			p.add(Rule{Chain: ChainOutput, Family: family(pf), Dst: pf, Jump: "RETURN"})
		}
	}
	if c.AllOutbound {
		p.add(Rule{Chain: ChainOutput, Jump: ChainRedirect})
		return
	}
	for _, pf := range c.OutboundIPRanges {
		if p.has(family(pf)) {
			p.add(Rule{Chain: ChainOutput, Family: family(pf), Dst: pf, Jump: ChainRedirect})
		}
	}
}

func (p *planner) has(f Family) bool { return slices.Contains(p.fams, f) }

func family(pf netip.Prefix) Family {
	if pf.Addr().Is4() {
		return IPv4
	}
	return IPv6
}

// passthroughSource is Istio's InboundPassthroughBindIpv4/6: 127.0.0.6
// and ::6.
func passthroughSource(f Family) netip.Prefix {
	if f == IPv6 {
		return netip.MustParsePrefix("::6/128")
	}
	return netip.MustParsePrefix("127.0.0.6/32")
}

func loopback(f Family) netip.Prefix {
	if f == IPv6 {
		return netip.MustParsePrefix("::1/128")
	}
	return netip.MustParsePrefix("127.0.0.1/32")
}

// ParsePorts parses a comma-separated port list ("80,443"); "*" sets all.
func ParsePorts(s string) (ports []uint16, all bool, err error) {
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		switch f {
		case "":
			continue
		case "*":
			all = true
			continue
		}
		n, err := strconv.ParseUint(f, 10, 16)
		if err != nil || n == 0 {
			return nil, false, fmt.Errorf("port %q: want a number from 1 to 65535, or *", f)
		}
		ports = append(ports, uint16(n))
	}
	return ports, all, nil
}

// ParseCIDRs parses a comma-separated CIDR list; "*" sets all. A bare
// address is a /32 or /128.
func ParseCIDRs(s string) (out []netip.Prefix, all bool, err error) {
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		switch f {
		case "":
			continue
		case "*":
			all = true
			continue
		}
		if !strings.Contains(f, "/") {
			a, err := netip.ParseAddr(f)
			if err != nil {
				return nil, false, fmt.Errorf("CIDR %q: want an address or ADDRESS/BITS, such as 10.0.0.0/8", f)
			}
			out = append(out, netip.PrefixFrom(a, a.BitLen()))
			continue
		}
		pf, err := netip.ParsePrefix(f)
		if err != nil {
			return nil, false, fmt.Errorf("CIDR %q: want ADDRESS/BITS, such as 10.0.0.0/8", f)
		}
		out = append(out, pf.Masked())
	}
	return out, all, nil
}

// ParseIDs parses a comma-separated list of numeric user or group IDs.
func ParseIDs(s string) ([]uint32, error) {
	var out []uint32
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		n, err := strconv.ParseUint(f, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("id %q: want a numeric user or group ID", f)
		}
		out = append(out, uint32(n))
	}
	return out, nil
}
