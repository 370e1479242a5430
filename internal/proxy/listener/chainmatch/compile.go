package chainmatch

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	"google.golang.org/protobuf/proto"
)

// Compile validates the filter_chain_match of every chain and builds a
// Matcher whose Match returns indices into chains. defaultChain only tells
// whether the listener has a default_filter_chain; its filter_chain_match is
// ignored, as Envoy documents for that field.
//
// Errors name the field path (filter_chains[i].filter_chain_match.<field>)
// and are joined so that every problem is reported at once. Like Envoy,
// Compile rejects: partial wildcards in server_names, the unimplemented
// address_suffix and suffix_len, and chains whose matching rules are the same
// or overlap (some connection would match both equally specifically).
func Compile(chains []*listenerv3.FilterChain, defaultChain *listenerv3.FilterChain) (*Matcher, error) {
	specs := make([]*spec, len(chains))
	var errs []error
	for i, fc := range chains {
		s, err := parseChain(i, fc)
		if err != nil {
			errs = append(errs, err)
		}
		specs[i] = s
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	m := &Matcher{byPort: map[uint32]*cidrTable[serverNames]{}, hasDefault: defaultChain != nil}
	owner := map[combo]int{}
	reported := map[[2]int]bool{}
	for i, s := range specs {
		for _, c := range s.combos() {
			if j, taken := owner[c]; taken {
				if !reported[[2]int{j, i}] {
					reported[[2]int{j, i}] = true
					errs = append(errs, overlapError(chains, j, i, c))
				}
				continue
			}
			owner[c] = i
			m.insert(c, i)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return m, nil
}

// spec is a validated, normalised FilterChainMatch. Empty lists mean "not
// set"; addresses are masked, IPv4-mapped ranges are IPv4, names lower-case.
type spec struct {
	dstPort     uint32
	dst         []netip.Prefix
	serverNames []string
	transport   string
	alpn        []string
	directSrc   []netip.Prefix
	srcType     listenerv3.FilterChainMatch_ConnectionSourceType
	src         []netip.Prefix
	srcPorts    []uint32
}

// errList collects errors that each name a field path.
type errList []error

func (e *errList) add(path, format string, args ...any) {
	*e = append(*e, fmt.Errorf("%s: %s", path, fmt.Sprintf(format, args...)))
}

func parseChain(i int, fc *listenerv3.FilterChain) (*spec, error) {
	if fc == nil {
		return nil, fmt.Errorf("filter_chains[%d]: is null; remove the entry", i)
	}
	path := fmt.Sprintf("filter_chains[%d].filter_chain_match", i)
	m := fc.GetFilterChainMatch() // nil-safe getters: a missing match matches anything
	var errs errList
	if m.GetAddressSuffix() != "" {
		errs.add(path+".address_suffix", "is not implemented (Envoy rejects it too); remove it")
	}
	if m.GetSuffixLen() != nil {
		errs.add(path+".suffix_len", "is not implemented (Envoy rejects it too); remove it")
	}
	s := &spec{transport: m.GetTransportProtocol(), srcType: m.GetSourceType()}
	if p := m.GetDestinationPort(); p != nil {
		if p.GetValue() < 1 || p.GetValue() > 65535 {
			errs.add(path+".destination_port", "%d is not a port in [1, 65535]; omit it to match any port", p.GetValue())
		}
		s.dstPort = p.GetValue()
	}
	s.dst = parsePrefixes(path+".prefix_ranges", m.GetPrefixRanges(), &errs)
	s.serverNames = parseServerNames(path+".server_names", m.GetServerNames(), &errs)
	s.alpn = parseNames(path+".application_protocols", m.GetApplicationProtocols(), &errs)
	s.directSrc = parsePrefixes(path+".direct_source_prefix_ranges", m.GetDirectSourcePrefixRanges(), &errs)
	if _, ok := listenerv3.FilterChainMatch_ConnectionSourceType_name[int32(s.srcType)]; !ok {
		errs.add(path+".source_type", "unknown value %d; use ANY, SAME_IP_OR_LOOPBACK or EXTERNAL", s.srcType)
	}
	s.src = parsePrefixes(path+".source_prefix_ranges", m.GetSourcePrefixRanges(), &errs)
	s.srcPorts = parsePorts(path+".source_ports", m.GetSourcePorts(), &errs)
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return s, nil
}

// parsePrefixes follows Envoy's CidrRange::create: the address is masked to
// prefix_len, and a prefix_len beyond the address length is clamped to it
// (prefix_len itself is limited to 128 by the API's validation rules).
// An unset prefix_len is 0. Repeated ranges are rejected: Envoy reports
// them as overlapping rules.
func parsePrefixes(path string, ranges []*corev3.CidrRange, errs *errList) []netip.Prefix {
	out := make([]netip.Prefix, 0, len(ranges))
	seen := map[netip.Prefix]int{}
	for j, r := range ranges {
		p, err := parsePrefix(r)
		if err != nil {
			errs.add(fmt.Sprintf("%s[%d]", path, j), "%v", err)
			continue
		}
		if k, dup := seen[p]; dup {
			errs.add(fmt.Sprintf("%s[%d]", path, j), "%s repeats %s[%d]; remove one", p, path, k)
			continue
		}
		seen[p] = j
		out = append(out, p)
	}
	return out
}

func parsePrefix(r *corev3.CidrRange) (netip.Prefix, error) {
	addr, err := netip.ParseAddr(r.GetAddressPrefix())
	if err != nil || addr.Zone() != "" {
		return netip.Prefix{}, fmt.Errorf("address_prefix %q is not an IP address", r.GetAddressPrefix())
	}
	bits := int(r.GetPrefixLen().GetValue())
	if bits > 128 {
		return netip.Prefix{}, fmt.Errorf("prefix_len %d is above 128", bits)
	}
	// An IPv4-mapped range covers IPv4 peers, which Match sees unmapped.
	if addr.Is4In6() && bits >= 96 {
		addr, bits = addr.Unmap(), bits-96
	}
	return netip.PrefixFrom(addr, min(bits, addr.BitLen())).Masked(), nil
}

// parseServerNames returns Envoy's server-name keys: lower-cased names, and
// ".example.com" for "*.example.com". It rejects what Envoy cannot match: partial wildcards ("*w.example.com", "*"), and empty names
// or bare "*." (Envoy accepts those two but they match nothing useful).
func parseServerNames(path string, names []string, errs *errList) []string {
	out := make([]string, 0, len(names))
	seen := map[string]int{}
	for j, name := range names {
		p := fmt.Sprintf("%s[%d]", path, j)
		name = strings.ToLower(name)
		switch {
		case name == "":
			errs.add(p, "is empty; omit server_names to match any server name")
			continue
		case strings.Contains(name, "*") && (!strings.HasPrefix(name, "*.") || strings.Contains(name[1:], "*")):
			errs.add(p, "%q: partial wildcards are not supported; use \"*.example.com\" or omit server_names", name)
			continue
		case name == "*.":
			errs.add(p, "%q has no domain after the wildcard", name)
			continue
		}
		key := strings.TrimPrefix(name, "*") // Envoy's map key: ".example.com" for "*.example.com"
		if k, dup := seen[key]; dup {
			errs.add(p, "%q repeats %s[%d] (names are compared lower-case); remove one", name, path, k)
			continue
		}
		seen[key] = j
		out = append(out, key)
	}
	return out
}

func parseNames(path string, names []string, errs *errList) []string {
	out := make([]string, 0, len(names))
	seen := map[string]int{}
	for j, name := range names {
		p := fmt.Sprintf("%s[%d]", path, j)
		if name == "" {
			errs.add(p, "is empty; omit application_protocols to match any")
			continue
		}
		if k, dup := seen[name]; dup {
			errs.add(p, "%q repeats %s[%d]; remove one", name, path, k)
			continue
		}
		seen[name] = j
		out = append(out, name)
	}
	return out
}

func parsePorts(path string, ports []uint32, errs *errList) []uint32 {
	out := make([]uint32, 0, len(ports))
	seen := map[uint32]int{}
	for j, port := range ports {
		p := fmt.Sprintf("%s[%d]", path, j)
		if port < 1 || port > 65535 {
			errs.add(p, "%d is not a port in [1, 65535]", port)
			continue
		}
		if k, dup := seen[port]; dup {
			errs.add(p, "%d repeats %s[%d]; remove one", port, path, k)
			continue
		}
		seen[port] = j
		out = append(out, port)
	}
	return out
}

// combo is one point of a chain's match space: one value per criterion,
// the zero value meaning "not set". Envoy's tree has one leaf per combo, and
// two chains sharing a combo are the overlap it rejects.
type combo struct {
	dstPort    uint32
	dst        netip.Prefix
	serverName string // key: "www.example.com", or ".example.com" for "*.example.com"
	transport  string
	alpn       string
	directSrc  netip.Prefix
	srcType    listenerv3.FilterChainMatch_ConnectionSourceType
	src        netip.Prefix
	srcPort    uint32
}

// anyIP is what an empty list of ranges means: every IPv4 and IPv6 address.
var anyIP = []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")}

// combos expands the spec into the cross product of its lists.
func (s *spec) combos() []combo {
	out := []combo{{dstPort: s.dstPort, transport: s.transport, srcType: s.srcType}}
	out = expand(out, orDefault(s.dst, anyIP), func(c *combo, v netip.Prefix) { c.dst = v })
	out = expand(out, orDefault(s.serverNames, []string{""}), func(c *combo, v string) { c.serverName = v })
	out = expand(out, orDefault(s.alpn, []string{""}), func(c *combo, v string) { c.alpn = v })
	out = expand(out, orDefault(s.directSrc, anyIP), func(c *combo, v netip.Prefix) { c.directSrc = v })
	out = expand(out, orDefault(s.src, anyIP), func(c *combo, v netip.Prefix) { c.src = v })
	return expand(out, orDefault(s.srcPorts, []uint32{0}), func(c *combo, v uint32) { c.srcPort = v })
}

func orDefault[T any](s, def []T) []T {
	if len(s) == 0 {
		return def
	}
	return s
}

func expand[T any](in []combo, values []T, set func(*combo, T)) []combo {
	out := make([]combo, 0, len(in)*len(values))
	for _, c := range in {
		for _, v := range values {
			set(&c, v)
			out = append(out, c)
		}
	}
	return out
}

// insert adds the leaf for c, creating the levels above it.
func (m *Matcher) insert(c combo, idx int) {
	ips, ok := m.byPort[c.dstPort]
	if !ok {
		ips = &cidrTable[serverNames]{}
		m.byPort[c.dstPort] = ips
	}
	sn := ips.node(c.dst)
	a := child(&child(&sn.byName, c.serverName).byName, c.transport)
	st := child(&a.byName, c.alpn).node(c.directSrc)
	if st[c.srcType] == nil {
		st[c.srcType] = &cidrTable[sourcePorts]{}
	}
	ports := st[c.srcType].node(c.src)
	if ports.byPort == nil {
		ports.byPort = map[uint32]int{}
	}
	ports.byPort[c.srcPort] = idx
}

// child returns (*m)[k], creating the map and the value as needed.
func child[K comparable, V any](m *map[K]*V, k K) *V {
	if *m == nil {
		*m = map[K]*V{}
	}
	v, ok := (*m)[k]
	if !ok {
		v = new(V)
		(*m)[k] = v
	}
	return v
}

func overlapError(chains []*listenerv3.FilterChain, first, second int, c combo) error {
	path := fmt.Sprintf("filter_chains[%d].filter_chain_match", second)
	a, b := matchOf(chains[first]), matchOf(chains[second])
	if proto.Equal(a, b) {
		return fmt.Errorf("%s: filter chain%s has the same matching rules as filter_chains[%d]%s; "+
			"Envoy rejects multiple filter chains with the same matching rules: remove one or make it more specific",
			path, chainName(chains[second]), first, chainName(chains[first]))
	}
	return fmt.Errorf("%s: filter chain%s overlaps filter_chains[%d]%s: both match %s; "+
		"Envoy rejects multiple filter chains with overlapping matching rules: make one of them more specific",
		path, chainName(chains[second]), first, chainName(chains[first]), c)
}

func matchOf(fc *listenerv3.FilterChain) *listenerv3.FilterChainMatch {
	if m := fc.GetFilterChainMatch(); m != nil {
		return m
	}
	return &listenerv3.FilterChainMatch{}
}

func chainName(fc *listenerv3.FilterChain) string {
	if fc.GetName() == "" {
		return ""
	}
	return fmt.Sprintf(" %q", fc.GetName())
}

// String describes the criteria set in c, for error messages.
func (c combo) String() string {
	var parts []string
	addIf := func(cond bool, format string, v any) {
		if cond {
			parts = append(parts, fmt.Sprintf(format, v))
		}
	}
	addIf(c.dstPort != 0, "destination_port %d", c.dstPort)
	addIf(c.dst.Bits() != 0, "destination %s", c.dst)
	addIf(strings.HasPrefix(c.serverName, "."), "server name \"*%s\"", c.serverName)
	addIf(c.serverName != "" && !strings.HasPrefix(c.serverName, "."), "server name %q", c.serverName)
	addIf(c.transport != "", "transport_protocol %q", c.transport)
	addIf(c.alpn != "", "application protocol %q", c.alpn)
	addIf(c.directSrc.Bits() != 0, "direct source %s", c.directSrc)
	addIf(c.srcType != listenerv3.FilterChainMatch_ANY, "source_type %s", c.srcType)
	addIf(c.src.Bits() != 0, "source %s", c.src)
	addIf(c.srcPort != 0, "source port %d", c.srcPort)
	if len(parts) == 0 {
		return "every connection"
	}
	return strings.Join(parts, ", ")
}
