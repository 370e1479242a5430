package capture

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// DNSProxyPort is the agent's DNS proxy port (Istio's
// IstioAgentDNSListenerPort).
const DNSProxyPort = 15053

// dnsPort is the port of DNS.
const dnsPort = 53

// Conntrack zones of the DNS flows (Istio's addDNSConntrackZones): the
// proxy's queries to the upstream resolvers and their answers are in zone
// 1, the application's queries (redirected to the proxy) and the proxy's
// answers to them in zone 2. Both flows can have the same UDP 5-tuple
// before NAT (app port P to the resolver, proxy port P to the resolver);
// in one zone the second would clash with the first's conntrack entry.
const (
	zoneUpstream = 1
	zoneApp      = 2
)

func (c *Config) validateDNS() error {
	if !c.RedirectDNS {
		return nil
	}
	if c.DNSPort == 0 {
		return fmt.Errorf("dns port: must be set with DNS capture (Istio's 15053)")
	}
	for _, a := range c.DNSServers {
		if !a.IsValid() {
			return fmt.Errorf("dns servers: invalid address %v", a)
		}
	}
	if !c.CaptureAllDNS && len(c.DNSServers) == 0 {
		return fmt.Errorf("dns servers: none to capture: give the nameservers (--dns-servers), or capture all port-53 traffic (--capture-all-dns)")
	}
	return nil
}

// dns reports whether the plan captures DNS.
func (p *planner) dns() bool { return p.cfg.RedirectDNS }

// dnsServers returns the configured DNS servers of family f.
func (p *planner) dnsServers(f Family) []netip.Prefix {
	var out []netip.Prefix
	for _, a := range p.cfg.DNSServers {
		a = a.Unmap()
		if family(netip.PrefixFrom(a, a.BitLen())) == f {
			out = append(out, netip.PrefixFrom(a, a.BitLen()))
		}
	}
	return out
}

// dnsFamilies are the planned families that have DNS rules: all of them
// with CaptureAllDNS, else those with a server (Istio jumps only where
// the jumped-to chain has rules).
func (p *planner) dnsFamilies() []Family {
	var out []Family
	for _, f := range p.fams {
		if p.cfg.CaptureAllDNS || len(p.dnsServers(f)) > 0 {
			out = append(out, f)
		}
	}
	return out
}

// dnsJump adds a jump from chain to target in table: one rule when every
// planned family needs it, else one per family that does.
func (p *planner) dnsJump(table, chain, target string) {
	fams := p.dnsFamilies()
	if len(fams) == len(p.fams) {
		p.add(Rule{Table: table, Chain: chain, Jump: target})
		return
	}
	for _, f := range fams {
		p.add(Rule{Table: table, Chain: chain, Family: f, Jump: target})
	}
}

// dnsTargets calls add once with no destination (CaptureAllDNS) or once
// per DNS server of a planned family.
func (p *planner) dnsTargets(add func(dst netip.Prefix, f Family)) {
	if p.cfg.CaptureAllDNS {
		add(netip.Prefix{}, 0)
		return
	}
	for _, f := range p.fams {
		for _, s := range p.dnsServers(f) {
			add(s, f)
		}
	}
}

// dnsRules are istio-iptables' SetupDNSRedir, in the order of its golden
// file dns-uid-gid: the nat chain ISTIO_OUTPUT_DNS redirects TCP, then
// UDP, port 53 to the DNS proxy (the proxy's own UDP queries return
// first), and the raw table puts the DNS flows in their conntrack zones.
func (p *planner) dnsRules() {
	if !p.dns() || len(p.dnsFamilies()) == 0 {
		return
	}
	c := p.cfg
	p.dnsJump(TableNAT, ChainOutput, ChainOutputDNS)
	p.dnsTargets(func(dst netip.Prefix, f Family) {
		p.add(Rule{Chain: ChainOutputDNS, Family: f, Dst: dst, TCP: true, DPorts: []uint16{dnsPort}, Redirect: c.DNSPort})
	})
	p.eachOwner(func(owner func(r *Rule)) {
		r := Rule{Chain: ChainOutputDNS, UDP: true, DPorts: []uint16{dnsPort}, Jump: "RETURN"}
		owner(&r)
		p.add(r)
	})
	p.dnsTargets(func(dst netip.Prefix, f Family) {
		p.add(Rule{Chain: ChainOutputDNS, Family: f, Dst: dst, UDP: true, DPorts: []uint16{dnsPort}, Redirect: c.DNSPort})
	})
	p.conntrackZones()
}

// conntrackZones: the proxy's packets to port 53 are in the upstream
// zone and its answers (from DNSPort) in the application's; then the
// application's queries to the servers, and the servers' answers coming
// in (PREROUTING), in theirs. The first CT rule a packet matches sets its
// zone (iptables' CT and nftables' "ct zone set" leave a packet that has
// a conntrack template alone).
func (p *planner) conntrackZones() {
	c := p.cfg
	p.add(Rule{Table: TableRaw, Chain: "OUTPUT", Jump: ChainOutputDNS})
	p.eachOwner(func(owner func(r *Rule)) {
		r := Rule{Table: TableRaw, Chain: ChainOutputDNS, UDP: true, DPorts: []uint16{dnsPort}, CTZone: zoneUpstream}
		owner(&r)
		p.add(r)
		r = Rule{Table: TableRaw, Chain: ChainOutputDNS, UDP: true, SPort: c.DNSPort, CTZone: zoneApp}
		owner(&r)
		p.add(r)
	})
	p.dnsJump(TableRaw, "PREROUTING", ChainInbound)
	p.dnsTargets(func(s netip.Prefix, f Family) {
		p.add(Rule{Table: TableRaw, Chain: ChainOutputDNS, Family: f, Dst: s, UDP: true, DPorts: []uint16{dnsPort}, CTZone: zoneApp})
	})
	p.dnsTargets(func(s netip.Prefix, f Family) {
		p.add(Rule{Table: TableRaw, Chain: ChainInbound, Family: f, Src: s, UDP: true, SPort: dnsPort, CTZone: zoneUpstream})
	})
}

// eachOwner calls fn with a matcher of each proxy UID, then each GID.
func (p *planner) eachOwner(fn func(owner func(r *Rule))) {
	for i := range p.cfg.ProxyUIDs {
		uid := &p.cfg.ProxyUIDs[i]
		fn(func(r *Rule) { r.UID = uid })
	}
	for i := range p.cfg.ProxyGIDs {
		gid := &p.cfg.ProxyGIDs[i]
		fn(func(r *Rule) { r.GID = gid })
	}
}

// hasTable reports whether rules has a rule of table, or of chain in
// table when chain is set.
func hasTable(rules []Rule, table, chain string) bool {
	return slices.ContainsFunc(rules, func(r Rule) bool {
		return r.Table == table && (chain == "" || r.Chain == chain)
	})
}

// ParseAddrs parses a comma-separated list of IP addresses (the
// --dns-servers flag).
func ParseAddrs(s string) ([]netip.Addr, error) {
	var out []netip.Addr
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		a, err := netip.ParseAddr(f)
		if err != nil {
			return nil, fmt.Errorf("address %q: want an IPv4 or IPv6 address, such as 10.96.0.10", f)
		}
		out = append(out, a.Unmap())
	}
	return out, nil
}

// ResolvConfServers returns the nameserver addresses of a resolv.conf
// (the servers istio-iptables captures by default); lines it does not
// understand are ignored, as the resolver does. A zone (fe80::1%eth0) is
// dropped: the rules match addresses only.
func ResolvConfServers(data []byte) []netip.Addr {
	var out []netip.Addr
	for _, line := range strings.Split(string(data), "\n") {
		if i := strings.IndexAny(line, "#;"); i >= 0 {
			line = line[:i]
		}
		f := strings.Fields(line)
		if len(f) < 2 || f[0] != "nameserver" {
			continue
		}
		if a, err := netip.ParseAddr(f[1]); err == nil {
			out = append(out, a.WithZone("").Unmap())
		}
	}
	return out
}
