// Package chainmatch implements Envoy's filter-chain matching: given the
// filter_chains of a listener and what is known about an accepted connection
// (addresses, and the server name, transport protocol and application
// protocols a listener filter such as tls_inspector detected), it selects
// the filter chain that handles the connection.
//
// Matching follows Envoy's FilterChainMatch documentation and its
// FilterChainManagerImpl: the criteria are applied in this order
//
//  1. destination_port
//  2. destination IP (prefix_ranges; the most specific range wins)
//  3. server_names (exact, then the longest "*.suffix" wildcard, then none)
//  4. transport_protocol
//  5. application_protocols (the first protocol the client offers that a
//     chain names)
//  6. direct source IP (direct_source_prefix_ranges)
//  7. source_type (ANY, SAME_IP_OR_LOOPBACK, EXTERNAL)
//  8. source IP (source_prefix_ranges)
//  9. source_ports
//
// At each step only the chains that match the connection most specifically
// go on to the next step; chains that leave the criterion empty are used only
// when no chain that sets it matches. There is no backtracking: once a step
// has picked its most specific value, a failure at a later step selects the
// default filter chain (or none, and the connection is closed), even if a
// less specific branch would have matched.
//
// Differences from Envoy, all on the side of rejecting configuration that
// cannot match what its author meant: empty server names or application
// protocols, "*." and server names with a second "*" are errors; a value
// repeated within one chain's list is reported on that field (Envoy reports
// it as overlapping rules); an explicit 0.0.0.0/0 or ::/0 counts as the same
// range as an empty list. IPv4-mapped IPv6 addresses are matched as IPv4.
// Listener.filter_chain_matcher (the generic matcher API) is not handled
// here: the caller must reject it.
//
// A Matcher is compiled once per listener configuration, is immutable, and
// is safe for concurrent use; Match allocates nothing.
package chainmatch

import (
	"net/netip"
	"strings"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
)

// Results of Match other than a chain index.
const (
	// DefaultChain means no filter chain matched and the listener's
	// default_filter_chain handles the connection.
	DefaultChain = -1
	// NoChain means no filter chain matched and there is no default filter
	// chain: the connection must be closed (Envoy counts it in the
	// listener's no_filter_chain_match statistic).
	NoChain = -2
)

// ConnInfo is what filter-chain matching looks at.
type ConnInfo struct {
	// Local is the connection's destination (local) address and port.
	// An invalid value (e.g. not an IP socket) skips destination_port and
	// matches only chains without prefix_ranges, as Envoy does.
	Local netip.AddrPort
	// Remote is the source address and port, invalid when unknown.
	Remote netip.AddrPort
	// DirectRemote is the directly connected peer when a listener filter
	// (proxy_protocol) replaced Remote; the zero value means Remote.
	DirectRemote netip.AddrPort
	// ServerName is the requested server name (SNI), lower-case, as
	// tlsinspect reports it; "" when none. Upper-case input is lowered at the
	// cost of an allocation.
	ServerName string
	// TransportProtocol is "tls" or "raw_buffer" (or what another listener
	// filter detected).
	TransportProtocol string
	// ApplicationProtocols lists the protocols the client offers (ALPN), in
	// its order of preference.
	ApplicationProtocols []string
}

// Matcher selects filter chains. It is immutable once compiled.
type Matcher struct {
	byPort     map[uint32]*cidrTable[serverNames] // destination_port; 0 = not set
	hasDefault bool
}

// Match returns the index in the compiled chains of the filter chain for c,
// or DefaultChain, or NoChain. It allocates nothing when c.ServerName is
// lower-case. c is only read.
func (m *Matcher) Match(c *ConnInfo) int {
	q := newQuery(c)
	// Envoy: if a chain names the connection's destination port, only the
	// chains naming that port are considered; chains without a port are
	// used only when no chain names it.
	if c.Local.IsValid() {
		if ips, ok := m.byPort[uint32(c.Local.Port())]; ok {
			return m.result(q.matchDestination(ips))
		}
	}
	if ips, ok := m.byPort[0]; ok {
		return m.result(q.matchDestination(ips))
	}
	return m.result(noMatch)
}

// noMatch is the internal "nothing matched" before default handling.
const noMatch = -1

func (m *Matcher) result(i int) int {
	switch {
	case i >= 0:
		return i
	case m.hasDefault:
		return DefaultChain
	default:
		return NoChain
	}
}

// The compiled tree, one level per criterion. In every map the zero key
// ("" or 0) holds the chains that leave the criterion empty.
type (
	// serverNames holds, as Envoy's ServerNamesMap, exact names and
	// wildcards in one map: "*.example.com" is stored as ".example.com"
	// (so a configured ".example.com" acts as that wildcard, as in Envoy).
	serverNames struct {
		byName map[string]*transports // lower-case; "" = no server_names
	}
	transports struct {
		byName map[string]*appProtocols
	}
	appProtocols struct {
		byName map[string]*cidrTable[sourceTypes] // next level: direct source IP
	}
	// sourceTypes is indexed by FilterChainMatch_ConnectionSourceType.
	sourceTypes [3]*cidrTable[sourcePorts] // next level: source IP
	sourcePorts struct {
		byPort map[uint32]int // source port → chain index
	}
)

// fakeAddr stands in for a non-IP address; like Envoy's fakeAddress it can
// only match catch-all ranges (or a range naming 255.255.255.255 itself).
var fakeAddr = netip.AddrFrom4([4]byte{255, 255, 255, 255})

// query is a ConnInfo with addresses normalised for lookups.
type query struct {
	c                     *ConnInfo
	local, remote, direct netip.Addr
	remotePort            uint16
	serverName            string
}

func newQuery(c *ConnInfo) query {
	q := query{c: c, local: ipOf(c.Local), remote: ipOf(c.Remote), serverName: c.ServerName}
	if c.Remote.IsValid() {
		q.remotePort = c.Remote.Port()
	}
	q.direct = q.remote
	if c.DirectRemote.IsValid() {
		q.direct = ipOf(c.DirectRemote)
	}
	if strings.ContainsFunc(q.serverName, func(r rune) bool { return 'A' <= r && r <= 'Z' }) {
		q.serverName = strings.ToLower(q.serverName)
	}
	return q
}

// ipOf returns the address unmapped (an IPv4 peer on a dual-stack socket
// matches IPv4 ranges) and without zone, or fakeAddr when invalid.
func ipOf(ap netip.AddrPort) netip.Addr {
	if !ap.IsValid() {
		return fakeAddr
	}
	return ap.Addr().Unmap().WithZone("")
}

func (q *query) matchDestination(ips *cidrTable[serverNames]) int {
	sn := ips.lookup(q.local)
	if sn == nil {
		return noMatch
	}
	return q.matchServerName(sn)
}

// matchServerName tries the exact name, then every wildcard suffix from the
// longest (".example.com", then ".com" for "www.example.com"), then the
// chains without server_names, as Envoy's findFilterChainForServerName.
func (q *query) matchServerName(sn *serverNames) int {
	name := q.serverName
	if t, ok := sn.byName[name]; ok {
		return q.matchTransport(t)
	}
	for pos := indexByteFrom(name, '.', 1); pos >= 0 && pos < len(name)-1; pos = indexByteFrom(name, '.', pos+1) {
		if t, ok := sn.byName[name[pos:]]; ok {
			return q.matchTransport(t)
		}
	}
	if t, ok := sn.byName[""]; ok {
		return q.matchTransport(t)
	}
	return noMatch
}

func indexByteFrom(s string, c byte, from int) int {
	if from >= len(s) {
		return -1
	}
	if i := strings.IndexByte(s[from:], c); i >= 0 {
		return from + i
	}
	return -1
}

func (q *query) matchTransport(t *transports) int {
	if a, ok := t.byName[q.c.TransportProtocol]; ok {
		return q.matchApplication(a)
	}
	if a, ok := t.byName[""]; ok {
		return q.matchApplication(a)
	}
	return noMatch
}

func (q *query) matchApplication(a *appProtocols) int {
	for _, p := range q.c.ApplicationProtocols {
		if d, ok := a.byName[p]; ok {
			return q.matchDirectSource(d)
		}
	}
	if d, ok := a.byName[""]; ok {
		return q.matchDirectSource(d)
	}
	return noMatch
}

func (q *query) matchDirectSource(d *cidrTable[sourceTypes]) int {
	st := d.lookup(q.direct)
	if st == nil {
		return noMatch
	}
	return q.matchSourceType(st)
}

// matchSourceType follows Envoy's findFilterChainForSourceTypes: a local
// connection (peer on loopback, or peer IP equal to the local IP) uses the
// SAME_IP_OR_LOOPBACK chains when there are any, an external one the
// EXTERNAL chains when there are any; otherwise the ANY chains.
func (q *query) matchSourceType(st *sourceTypes) int {
	local := st[listenerv3.FilterChainMatch_SAME_IP_OR_LOOPBACK]
	external := st[listenerv3.FilterChainMatch_EXTERNAL]
	if local != nil || external != nil {
		if q.isSameIPOrLoopback() {
			if local != nil {
				return q.matchSource(local)
			}
		} else if external != nil {
			return q.matchSource(external)
		}
	}
	if anyType := st[listenerv3.FilterChainMatch_ANY]; anyType != nil {
		return q.matchSource(anyType)
	}
	return noMatch
}

// isSameIPOrLoopback is Envoy's Utility::isSameIpOrLoopback; a peer that is
// not an IP socket (a pipe in Envoy) counts as local.
func (q *query) isSameIPOrLoopback() bool {
	if !q.c.Remote.IsValid() {
		return true
	}
	return q.remote.IsLoopback() || (q.c.Local.IsValid() && q.remote == q.local)
}

func (q *query) matchSource(src *cidrTable[sourcePorts]) int {
	ports := src.lookup(q.remote)
	if ports == nil {
		return noMatch
	}
	if i, ok := ports.byPort[uint32(q.remotePort)]; ok {
		return i
	}
	if i, ok := ports.byPort[0]; ok {
		return i
	}
	return noMatch
}
