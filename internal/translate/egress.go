package translate

import (
	"fmt"
	"strconv"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	networking "istio.io/api/networking/v1alpha3"
	telemetry "istio.io/api/telemetry/v1alpha1"

	"github.com/weftmesh/weft/internal/model"
)

// Sidecar egress listeners with a port: Istio's way to reach services
// without traffic capture (captureMode NONE, the only mode of weft's local
// mode). Each binds bind:port — bind defaults to 127.0.0.1, as Istio's for
// a proxy without interception — and serves the services its hosts import:
//
//   - HTTP ports: an HCM whose route configuration is named after the port
//     ("9080", Istio's per-port route), with a virtual host per imported
//     service (its names with and without the port), routed by the
//     VirtualService that owns it or to outbound|PORT||HOST;
//   - TCP and TLS ports: tcp_proxy to the service (or its VirtualService's
//     tcp/tls route). The connection's destination is the listener itself,
//     so one service per listener: the first imported service by host name
//     wins and a warning names the others (TLS ports still choose on SNI).
//
// A service is served on the listener's port when it has that port, or
// when it has a single port (Istio's default service port).

// egressListener is one Sidecar egress listener with a port.
type egressListener struct {
	index    int
	bind     string
	port     uint32
	protocol model.Protocol
	hosts    []egressHost
}

// egressListeners returns the Sidecar's egress listeners that have a port,
// Unix-socket binds left out (a static warning says so).
func (s *scope) egressListeners() []egressListener {
	if s.sidecar == nil {
		return nil
	}
	var out []egressListener
	for i, e := range s.sidecar.spec.Egress {
		if e.GetPort().GetNumber() == 0 || strings.HasPrefix(e.Bind, "unix://") {
			continue
		}
		bind := e.Bind
		if bind == "" {
			bind = "127.0.0.1"
		}
		out = append(out, egressListener{
			index:    i,
			bind:     bind,
			port:     e.Port.Number,
			protocol: model.ParseProtocol(e.Port.Protocol, e.Port.Name),
			hosts:    parseEgressHosts(e, s.ns),
		})
	}
	return out
}

// parseEgressHosts resolves one egress listener's "ns/host" entries.
func parseEgressHosts(e *networking.IstioEgressListener, proxyNs string) []egressHost {
	var out []egressHost
	for _, h := range e.Hosts {
		ns, host, ok := strings.Cut(h, "/")
		if !ok {
			ns, host = "*", h
		}
		if ns == "." {
			ns = proxyNs
		}
		out = append(out, egressHost{ns: ns, host: host})
	}
	return out
}

// admits reports whether the listener's hosts import svc.
func (e egressListener) admits(svc *model.Service) bool {
	for _, h := range e.hosts {
		if h.ns == "~" || (h.ns != "*" && h.ns != svc.Namespace) {
			continue
		}
		if model.HostMatches(h.host, svc.Hostname) {
			return true
		}
	}
	return false
}

// servicePort returns the port of svc the listener serves it on.
func (e egressListener) servicePort(svc *model.Service) (model.Port, bool) {
	if p, ok := svc.PortByNumber(e.port); ok {
		return p, true
	}
	if len(svc.Ports) == 1 {
		return svc.Ports[0], true
	}
	return model.Port{}, false
}

// egressRouteName is Istio's per-port route configuration name.
func egressRouteName(port uint32) string { return strconv.FormatUint(uint64(port), 10) }

// buildEgressListeners adds the egress listeners and the route
// configurations of their HTTP ports to o.
func (s *scope) buildEgressListeners(o *outbound) {
	for _, e := range s.egressListeners() {
		name := listenerName(e.bind, e.port)
		l := &listenerv3.Listener{
			Name:             name,
			Address:          socketAddress(e.bind, e.port),
			TrafficDirection: corev3.TrafficDirection_OUTBOUND,
		}
		if e.protocol.IsHTTP() {
			route := egressRouteName(e.port)
			l.FilterChains = []*listenerv3.FilterChain{{Filters: []*listenerv3.Filter{
				hcmFilter(httpConnectionManager(hcmOptions{statPrefix: "outbound_" + name, rds: route, tracing: s.hcmTracing(traceClient)})),
			}}}
			o.routes.put(hash(route, s.egressRoutes(e)))
		} else {
			l.FilterChains = s.egressL4Chains(e)
			if len(l.FilterChains) == 0 {
				continue // nothing imported on this port
			}
			if needsTLSInspector(l.FilterChains) {
				l.ListenerFilters = []*listenerv3.ListenerFilter{tlsInspector()}
			}
		}
		o.listeners.put(hash(name, s.withAccessLogs(l, telemetry.WorkloadMode_CLIENT))) // accesslog.go
	}
}

// egressRoutes builds the route configuration of an HTTP egress listener.
func (s *scope) egressRoutes(e egressListener) *routev3.RouteConfiguration {
	b := s.newVhostBuilder(false)
	for _, svc := range s.routable() {
		p, ok := e.servicePort(svc)
		if !ok || !e.admits(svc) || !p.Protocol.IsHTTP() {
			continue
		}
		domains, alt := serviceDomains(svc, e.port, s.key.dnsDomain)
		var routes []*routev3.Route
		if vs := s.vsHost[svc.Hostname]; vs != nil {
			routes = s.httpRoutes(vs, routeOpts{port: p.Number})
		}
		if len(routes) == 0 {
			cluster := outboundCluster(p.Number, "", svc.Hostname)
			routes = []*routev3.Route{defaultRoute(cluster, s.hashPolicy(svc.Hostname, p.Number, ""), routeOpts{port: p.Number})}
		}
		b.add(hostPort(svc.Hostname, e.port), e.port, domains, alt, routes)
	}
	return routeConfig(egressRouteName(e.port), b.sorted())
}

// egressL4Chains builds the filter chains of a TCP or TLS egress listener:
// the imported services' chains without their destination-address match
// (the listener is the destination). When two services would get the same
// match, the first by host name keeps it and a warning on the Sidecar
// names the other.
func (s *scope) egressL4Chains(e egressListener) []*listenerv3.FilterChain {
	var chains []*listenerv3.FilterChain
	owner := map[string]*model.Service{}
	for _, svc := range s.routable() {
		p, ok := e.servicePort(svc)
		if !ok || !e.admits(svc) || p.Protocol.IsHTTP() {
			continue
		}
		var add []*listenerv3.FilterChain
		if isTLSPort(p) {
			add = s.tlsChains(svc, p)
		} else {
			// The service's first chain: its tcp route without
			// destination subnets, else its default.
			add = s.tcpChains(svc, p)[:1]
		}
		for _, c := range add {
			if m := c.FilterChainMatch; m != nil {
				m.PrefixRanges = nil
				if len(m.ServerNames) == 0 {
					c.FilterChainMatch = nil
				}
			}
			b, _ := deterministic.Marshal(c.GetFilterChainMatch())
			if first, taken := owner[string(b)]; taken {
				if first != svc {
					s.st.warns.warnObject(s.sidecar.obj, fmt.Sprintf("spec.egress[%d]", e.index), fmt.Sprintf(
						"%s and %s are both served on %s: %s gets the connections; give each service its own egress listener (port or bind)",
						first.Hostname, svc.Hostname, hostPort(e.bind, e.port), first.Hostname))
				}
				continue
			}
			owner[string(b)] = svc
			chains = append(chains, c)
		}
	}
	return chains
}
