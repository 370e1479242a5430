package bootstrap

import (
	"fmt"
	"math"
	"math/big"
	"net/netip"
	"strings"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// crossCheck makes the checks Envoy makes when it loads a static
// configuration and that no single field's rules can express. Typed
// configs of unsupported types are skipped: CheckSupported reports them.
func crossCheck(b *bootstrapv3.Bootstrap) Errors {
	// With CDS, a static listener may name a cluster that arrives
	// dynamically: only static-only bootstraps check cluster references.
	x := xref{clusters: map[string]string{}, dynamicClusters: b.GetDynamicResources().GetCdsConfig() != nil}
	sr := b.GetStaticResources()
	for i, c := range sr.GetClusters() {
		x.cluster(c, joinIndex("static_resources.clusters", i))
	}
	listenerNames := map[string]string{}
	addresses := map[string]string{}
	for i, l := range sr.GetListeners() {
		p := joinIndex("static_resources.listeners", i)
		x.unique(listenerNames, l.GetName(), joinField(p, "name"), "listener name")
		x.listener(l, p, addresses)
	}
	if a := b.GetAdmin(); a != nil && a.GetAddress() != nil {
		x.ipAddress(a.GetAddress(), "admin.address")
	}
	return x.errs
}

// xref holds what the cross checks have seen so far.
type xref struct {
	errs     Errors
	clusters map[string]string // name -> path of its definition
	// dynamicClusters is set when clusters also come from CDS.
	dynamicClusters bool
}

// unique reports a repeated non-empty name; seen maps names to the path
// where each was first defined.
func (x *xref) unique(seen map[string]string, name, path, what string) {
	if name == "" {
		return
	}
	if first, dup := seen[name]; dup {
		x.errs.add(path, fmt.Sprintf("duplicate %s %q (also at %s); each must be unique", what, name, first))
		return
	}
	seen[name] = path
}

// cluster checks one static cluster and records its name.
func (x *xref) cluster(c *clusterv3.Cluster, path string) {
	x.unique(x.clusters, c.GetName(), joinField(path, "name"), "cluster name")
	la := c.GetLoadAssignment()
	p := joinField(path, "load_assignment.endpoints")
	x.endpoints(la, p, c.GetType() == clusterv3.Cluster_STATIC)
	if c.GetType() == clusterv3.Cluster_LOGICAL_DNS {
		// Envoy: "LOGICAL_DNS clusters must have a single locality_lb_endpoint
		// and a single lb_endpoint".
		if len(la.GetEndpoints()) != 1 || len(la.GetEndpoints()[0].GetLbEndpoints()) != 1 {
			x.errs.add(p, "a LOGICAL_DNS cluster needs exactly one locality with exactly one lb_endpoint")
		}
	}
	if rh := c.GetRingHashLbConfig(); rh != nil {
		lo, hi := rh.GetMinimumRingSize(), rh.GetMaximumRingSize()
		if lo != nil && hi != nil && lo.GetValue() > hi.GetValue() {
			x.errs.add(joinField(path, "ring_hash_lb_config"),
				fmt.Sprintf("minimum_ring_size (%d) > maximum_ring_size (%d)", lo.GetValue(), hi.GetValue()))
		}
	}
	// Envoy: "The table size of maglev must be prime number".
	if ts := c.GetMaglevLbConfig().GetTableSize(); ts != nil && !new(big.Int).SetUint64(ts.GetValue()).ProbablyPrime(0) {
		x.errs.add(joinField(path, "maglev_lb_config.table_size"), fmt.Sprintf("%d is not a prime number", ts.GetValue()))
	}
}

// endpoints checks that every lb_endpoint has a socket address and, for a
// STATIC cluster, that it is an IP address (Envoy resolves nothing for
// STATIC clusters).
func (x *xref) endpoints(la *endpointv3.ClusterLoadAssignment, path string, static bool) {
	for i, loc := range la.GetEndpoints() {
		lp := joinField(joinIndex(path, i), "lb_endpoints")
		for j, lbe := range loc.GetLbEndpoints() {
			p := joinField(joinIndex(lp, j), "endpoint")
			sa := lbe.GetEndpoint().GetAddress().GetSocketAddress()
			switch {
			case lbe.GetEndpoint() == nil:
				x.errs.add(p, "required")
			case lbe.GetEndpoint().GetAddress().GetPipe() != nil:
				if !static {
					x.errs.add(joinField(p, "address.pipe"), "a pipe (Unix socket) address is only supported in STATIC clusters")
				} else if lbe.GetEndpoint().GetAddress().GetPipe().GetPath() == "" {
					x.errs.add(joinField(p, "address.pipe.path"), "required")
				}
			case sa == nil:
				x.errs.add(joinField(p, "address.socket_address"), "required")
			case static:
				if _, err := netip.ParseAddr(sa.GetAddress()); err != nil {
					x.errs.add(joinField(p, "address.socket_address.address"), fmt.Sprintf(
						"%q is not an IP address; a STATIC cluster takes IP addresses (use STRICT_DNS or LOGICAL_DNS for host names)",
						sa.GetAddress()))
				}
			}
		}
	}
}

// listener checks one listener.
func (x *xref) listener(l *listenerv3.Listener, path string, addresses map[string]string) {
	if l.GetAddress() == nil {
		x.errs.add(joinField(path, "address"), "required: weft-proxy listeners bind a socket address")
	} else if x.ipAddress(l.GetAddress(), joinField(path, "address")) {
		sa := l.GetAddress().GetSocketAddress()
		if port := sa.GetPortValue(); port != 0 {
			key := netip.AddrPortFrom(netip.MustParseAddr(sa.GetAddress()), uint16(port)).String()
			x.unique(addresses, key, joinField(path, "address"), "listener address")
		}
	}
	if len(l.GetFilterChains()) == 0 && l.GetDefaultFilterChain() == nil {
		x.errs.add(joinField(path, "filter_chains"), "no filter chains specified (set filter_chains or default_filter_chain)")
	}
	for i, fc := range l.GetFilterChains() {
		p := joinIndex(joinField(path, "filter_chains"), i)
		x.filterChain(fc, p)
		for j := 0; j < i; j++ {
			if sameMatch(fc, l.GetFilterChains()[j]) {
				x.errs.add(joinField(p, "filter_chain_match"), fmt.Sprintf(
					"same as filter_chains[%d]'s; Envoy rejects multiple filter chains with the same matching rules", j))
				break
			}
		}
	}
	if dc := l.GetDefaultFilterChain(); dc != nil {
		x.filterChain(dc, joinField(path, "default_filter_chain"))
	}
	for i, lf := range l.GetListenerFilters() {
		if lf.GetTypedConfig() == nil {
			x.errs.add(joinField(joinIndex(joinField(path, "listener_filters"), i), "typed_config"), typedConfigRequired)
		}
	}
}

// typedConfigRequired explains a missing typed_config.
const typedConfigRequired = "required: weft-proxy, like current Envoy, selects a filter by the type of its typed_config, not by its name"

// sameMatch reports whether two filter chains have equal matching rules
// (an absent filter_chain_match equals an empty one).
func sameMatch(a, b *listenerv3.FilterChain) bool {
	ma, mb := a.GetFilterChainMatch(), b.GetFilterChainMatch()
	if ma == nil {
		ma = &listenerv3.FilterChainMatch{}
	}
	if mb == nil {
		mb = &listenerv3.FilterChainMatch{}
	}
	return proto.Equal(ma, mb)
}

// ipAddress reports a socket address that is missing or not an IP address
// (Envoy: "malformed IP address"); it returns whether the address is good.
func (x *xref) ipAddress(a *corev3.Address, path string) bool {
	sa := a.GetSocketAddress()
	if sa == nil {
		x.errs.add(joinField(path, "socket_address"), "required")
		return false
	}
	if _, err := netip.ParseAddr(sa.GetAddress()); err != nil {
		x.errs.add(joinField(path, "socket_address.address"),
			fmt.Sprintf("%q is not an IP address; listeners bind IP addresses (0.0.0.0 or :: for all)", sa.GetAddress()))
		return false
	}
	return true
}

// filterChain checks the network filters of one chain. weft-proxy's
// network filters (http_connection_manager, tcp_proxy) are both terminal,
// so a chain has exactly one; Envoy's message for a terminal filter that is
// not last is kept.
func (x *xref) filterChain(fc *listenerv3.FilterChain, path string) {
	fp := joinField(path, "filters")
	filters := fc.GetFilters()
	if len(filters) == 0 {
		x.errs.add(fp, "empty: a filter chain needs a terminal network filter (http_connection_manager or tcp_proxy)")
		return
	}
	for i, f := range filters {
		p := joinIndex(fp, i)
		tc := f.GetTypedConfig()
		if tc == nil {
			x.errs.add(joinField(p, "typed_config"), typedConfigRequired)
			continue
		}
		var hcm hcmv3.HttpConnectionManager
		var tcp tcpv3.TcpProxy
		switch {
		case unpack(tc, &hcm):
			x.hcm(&hcm, joinField(p, "typed_config"))
		case unpack(tc, &tcp):
			x.tcpProxy(&tcp, joinField(p, "typed_config"))
		default:
			continue
		}
		if i != len(filters)-1 {
			x.errs.add(p, fmt.Sprintf("terminal filter %s must be the last filter in a network filter chain", typeNameOf(tc.GetTypeUrl())))
		}
	}
}

// unpack decodes a into m when a holds m's type.
func unpack(a *anypb.Any, m proto.Message) bool {
	return a.MessageIs(m) && a.UnmarshalTo(m) == nil
}

// hcm checks an http_connection_manager.
func (x *xref) hcm(h *hcmv3.HttpConnectionManager, path string) {
	x.httpFilters(h.GetHttpFilters(), joinField(path, "http_filters"))
	seen := map[string]string{}
	for i, u := range h.GetUpgradeConfigs() {
		// Envoy rejects the same upgrade type twice, case-insensitively.
		x.unique(seen, strings.ToLower(u.GetUpgradeType()),
			joinField(joinIndex(joinField(path, "upgrade_configs"), i), "upgrade_type"), "upgrade type")
	}
	if rc := h.GetRouteConfig(); rc != nil {
		x.routeConfig(rc, joinField(path, "route_config"))
	}
}

// httpFilters checks that the list ends with the router and has no router
// before that (Envoy: "terminal filter named envoy.filters.http.router ...
// must be the last filter in a http filter chain").
func (x *xref) httpFilters(filters []*hcmv3.HttpFilter, path string) {
	if len(filters) == 0 {
		x.errs.add(path, "empty: the last HTTP filter must be the router ("+string(routerType)+")")
		return
	}
	last := len(filters) - 1
	for i, f := range filters {
		p := joinIndex(path, i)
		tc := f.GetTypedConfig()
		if tc == nil {
			x.errs.add(joinField(p, "typed_config"), typedConfigRequired)
			continue
		}
		isRouter := typeNameOf(tc.GetTypeUrl()) == routerType
		switch {
		case isRouter && i != last:
			x.errs.add(p, fmt.Sprintf("the router filter (%s) must be the last filter in the http filter chain", f.GetName()))
		case !isRouter && i == last:
			x.errs.add(p, fmt.Sprintf("the last HTTP filter must be the router (%s), not %s", routerType, typeNameOf(tc.GetTypeUrl())))
		}
	}
}

// tcpProxy checks the clusters a tcp_proxy names. Envoy looks the cluster up
// per connection; weft-proxy, whose clusters are all static, reports a
// missing one at load.
func (x *xref) tcpProxy(t *tcpv3.TcpProxy, path string) {
	if c := t.GetCluster(); c != "" {
		x.clusterRef(c, joinField(path, "cluster"))
	}
	for i, wc := range t.GetWeightedClusters().GetClusters() {
		x.clusterRef(wc.GetName(), joinField(joinIndex(joinField(path, "weighted_clusters.clusters"), i), "name"))
	}
}

// routeConfig checks an inline route configuration: unique domains and,
// unless validate_clusters is false, that every cluster named exists
// (validate_clusters defaults to true for a static route table).
func (x *xref) routeConfig(rc *routev3.RouteConfiguration, path string) {
	checkClusters := rc.GetValidateClusters() == nil || rc.GetValidateClusters().GetValue()
	domains := map[string]string{}
	for i, vh := range rc.GetVirtualHosts() {
		vp := joinIndex(joinField(path, "virtual_hosts"), i)
		for j, d := range vh.GetDomains() {
			// Envoy: "Only unique values for domains are permitted".
			x.unique(domains, strings.ToLower(d), joinIndex(joinField(vp, "domains"), j), "domain")
		}
		for j, r := range vh.GetRoutes() {
			x.route(r.GetRoute(), joinField(joinIndex(joinField(vp, "routes"), j), "route"), checkClusters)
		}
	}
}

// route checks a route action's clusters and weights.
func (x *xref) route(ra *routev3.RouteAction, path string, checkClusters bool) {
	if ra == nil {
		return
	}
	if c := ra.GetCluster(); c != "" && checkClusters {
		x.clusterRef(c, joinField(path, "cluster"))
	}
	wc := ra.GetWeightedClusters()
	if wc == nil {
		return
	}
	var sum uint64
	for i, cw := range wc.GetClusters() {
		sum += uint64(cw.GetWeight().GetValue())
		if checkClusters && cw.GetName() != "" {
			x.clusterRef(cw.GetName(), joinField(joinIndex(joinField(path, "weighted_clusters.clusters"), i), "name"))
		}
	}
	// As Envoy: the weights must not all be zero, nor sum past uint32.
	switch {
	case sum == 0:
		x.errs.add(joinField(path, "weighted_clusters"), "the sum of the weights must be greater than 0")
	case sum > math.MaxUint32:
		x.errs.add(joinField(path, "weighted_clusters"), fmt.Sprintf("the sum of the weights exceeds %d", uint32(math.MaxUint32)))
	}
}

// clusterRef reports a reference to a cluster that is not defined.
func (x *xref) clusterRef(name, path string) {
	if _, ok := x.clusters[name]; !ok && !x.dynamicClusters {
		x.errs.add(path, fmt.Sprintf("unknown cluster %q: it is not in static_resources.clusters", name))
	}
}
