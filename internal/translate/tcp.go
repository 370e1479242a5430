package translate

import (
	"sort"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/weftmesh/weft/internal/model"
)

// isTLSPort reports whether a port carries TLS the proxy does not
// terminate (routed on SNI).
func isTLSPort(p model.Port) bool { return p.Protocol == model.TLS || p.Protocol == model.HTTPS }

// tcpListeners builds Istio-shaped outbound listeners for the non-HTTP
// ports of the visible services: one "0.0.0.0_PORT" listener per port
// number, with a filter chain per service (matched on its addresses, and
// for TLS ports on SNI) running tcp_proxy to the VirtualService's tcp/tls
// route or to outbound|PORT||HOST.
//
// These listeners do not bind their port (bind_to_port false): like
// Istio's, they only receive connections redirected to them by transparent
// traffic capture, which weft's local mode does not have yet (a later
// issue adds it). Until then applications reach HTTP services through the
// HTTP proxy listener, and TCP services through Sidecar egress listeners
// with a port, which bind (egress.go).
func (s *scope) tcpListeners() []*listenerv3.Listener {
	byPort := map[uint32][]*model.Service{}
	for _, svc := range s.routable() {
		for _, p := range svc.Ports {
			if !p.Protocol.IsHTTP() {
				byPort[p.Number] = append(byPort[p.Number], svc)
			}
		}
	}
	ports := make([]uint32, 0, len(byPort))
	for p := range byPort {
		ports = append(ports, p)
	}
	sort.Slice(ports, func(i, j int) bool { return ports[i] < ports[j] })
	var out []*listenerv3.Listener
	for _, port := range ports {
		var chains []*listenerv3.FilterChain
		seen := map[string]bool{}
		for _, svc := range byPort[port] {
			p, _ := svc.PortByNumber(port)
			if isTLSPort(p) {
				chains = s.appendChains(chains, seen, svc, s.tlsChains(svc, p))
			} else {
				chains = s.appendChains(chains, seen, svc, s.tcpChains(svc, p))
			}
		}
		l := &listenerv3.Listener{
			Name:             listenerName("0.0.0.0", port),
			Address:          socketAddress("0.0.0.0", port),
			BindToPort:       wrapperspb.Bool(false),
			TrafficDirection: corev3.TrafficDirection_OUTBOUND,
			FilterChains:     chains,
		}
		if needsTLSInspector(chains) {
			l.ListenerFilters = []*listenerv3.ListenerFilter{tlsInspector()}
		}
		out = append(out, l)
	}
	return out
}

// serviceCIDRs returns the service's addresses as /32 (/128) ranges (or
// their own prefix for CIDR addresses).
func serviceCIDRs(svc *model.Service) []*corev3.CidrRange {
	var out []*corev3.CidrRange
	for _, a := range svc.Addresses {
		if a == "0.0.0.0" || a == "::" {
			continue
		}
		if c, ok := cidr(a); ok {
			out = append(out, c)
		}
	}
	return out
}

// subnetCIDRs parses a match's destinationSubnets.
func subnetCIDRs(subnets []string) []*corev3.CidrRange {
	var out []*corev3.CidrRange
	for _, s := range subnets {
		if c, ok := cidr(s); ok {
			out = append(out, c)
		}
	}
	return out
}

// chain builds a filter chain; an empty match is left out (catch-all).
func chain(sni []string, cidrs []*corev3.CidrRange, filter *listenerv3.Filter) *listenerv3.FilterChain {
	fc := &listenerv3.FilterChain{Filters: withStats(filter)}
	if len(sni) > 0 || len(cidrs) > 0 {
		fc.FilterChainMatch = &listenerv3.FilterChainMatch{ServerNames: sni, PrefixRanges: cidrs}
	}
	return fc
}

// defaultL4Chain proxies to the service's own cluster (a single-port
// service's port, else this port).
func defaultL4Chain(svc *model.Service, p model.Port, sni []string, cidrs []*corev3.CidrRange) *listenerv3.FilterChain {
	port := p.Number
	if len(svc.Ports) == 1 {
		port = svc.Ports[0].Number
	}
	name := outboundCluster(port, "", svc.Hostname)
	return chain(sni, cidrs, tcpProxyFilter(name, []weightedName{{name: name, weight: 1}}))
}

// l4Filter is the tcp_proxy for a tcp/tls route's destinations (the
// service itself if the route has none, which validation rejects).
func (s *scope) l4Filter(vs *vsEntry, route []*networking.RouteDestination, svc *model.Service, port uint32) *listenerv3.Filter {
	dests := s.l4Destinations(route, vs.obj.Namespace, port)
	stat := outboundCluster(port, "", svc.Hostname)
	if len(dests) == 0 {
		dests = []weightedName{{name: stat, weight: 1}}
	}
	if len(dests) == 1 {
		stat = dests[0].name
	}
	return tcpProxyFilter(stat, dests)
}

// tlsChains builds the chains of a TLS port (Istio's
// buildSidecarOutboundTLSFilterChainOpts): one per tls route match of the
// owning VirtualService (SNI hosts, destination subnets), else one to the
// service, matched on its hostname as SNI when it has no address.
func (s *scope) tlsChains(svc *model.Service, p model.Port) []*listenerv3.FilterChain {
	cidrs := serviceCIDRs(svc)
	var out []*listenerv3.FilterChain
	if vs := s.vsHost[svc.Hostname]; vs != nil {
		for _, t := range vs.spec.Tls {
			for _, m := range t.Match {
				if !s.l4MatchApplies(vs, m, m.Gateways, m.SourceLabels, m.SourceNamespace, m.Port, p.Number) {
					continue
				}
				mc := cidrs
				if len(m.DestinationSubnets) > 0 {
					mc = subnetCIDRs(m.DestinationSubnets)
				}
				out = append(out, chain(m.SniHosts, mc, s.l4Filter(vs, t.Route, svc, p.Number)))
			}
		}
	}
	if len(out) > 0 {
		return out
	}
	var sni []string
	if len(cidrs) == 0 {
		sni = []string{svc.Hostname}
	}
	return []*listenerv3.FilterChain{defaultL4Chain(svc, p, sni, cidrs)}
}

// tcpChains builds the chains of a TCP port (Istio's
// buildSidecarOutboundTCPFilterChainOpts): the first tcp route whose match
// applies without destination subnets is the service's chain; routes
// matching destination subnets get chains of their own; without either,
// the chain goes to the service.
func (s *scope) tcpChains(svc *model.Service, p model.Port) []*listenerv3.FilterChain {
	cidrs := serviceCIDRs(svc)
	var out []*listenerv3.FilterChain
	vs := s.vsHost[svc.Hostname]
	if vs != nil {
		for _, t := range vs.spec.Tcp {
			if len(t.Match) == 0 {
				return append(out, chain(nil, cidrs, s.l4Filter(vs, t.Route, svc, p.Number)))
			}
			var subnets []string
			for _, m := range t.Match {
				if !s.l4MatchApplies(vs, m, m.Gateways, m.SourceLabels, m.SourceNamespace, m.Port, p.Number) {
					continue
				}
				if len(m.DestinationSubnets) == 0 {
					return append(out, chain(nil, cidrs, s.l4Filter(vs, t.Route, svc, p.Number)))
				}
				subnets = append(subnets, m.DestinationSubnets...)
			}
			if len(subnets) > 0 {
				out = append(out, chain(nil, subnetCIDRs(subnets), s.l4Filter(vs, t.Route, svc, p.Number)))
			}
		}
	}
	return append(out, defaultL4Chain(svc, p, nil, cidrs))
}

// l4MatchApplies evaluates the static parts of a tcp/tls match (Istio's
// matchTCP and matchTLS): gateways, source labels, port and namespace.
func (s *scope) l4MatchApplies(vs *vsEntry, msg any, gateways []string, labels map[string]string,
	sourceNs string, matchPort, port uint32,
) bool {
	return s.gatewayMatches(gateways, vs.obj.Namespace) && s.sourceMatches(msg, labels) &&
		(matchPort == 0 || matchPort == port) && (sourceNs == "" || sourceNs == s.ns)
}

// appendChains appends svc's chains whose match no earlier chain has
// (Envoy rejects a listener with two identical matches); the first wins,
// as in Istio, and a warning names the service that lost.
func (s *scope) appendChains(chains []*listenerv3.FilterChain, seen map[string]bool, svc *model.Service,
	add []*listenerv3.FilterChain,
) []*listenerv3.FilterChain {
	for _, c := range add {
		b, _ := deterministic.Marshal(c.GetFilterChainMatch())
		if seen[string(b)] {
			s.st.warns.add(s.idx.serviceWarning(svc, "spec.ports",
				"another service on this port has the same addresses (and SNI); its outbound TCP/TLS listener chain wins"))
			continue
		}
		seen[string(b)] = true
		chains = append(chains, c)
	}
	return chains
}
