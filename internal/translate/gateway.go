package translate

import (
	"slices"
	"sort"
	"strconv"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/proto"
	networking "istio.io/api/networking/v1alpha3"
	telemetry "istio.io/api/telemetry/v1alpha1"

	"github.com/weftmesh/weft/internal/model"
)

// gwServer is one server of one selected Gateway.
type gwServer struct {
	gw  *gwEntry
	srv *networking.Server
}

// serverKind is how a gateway port is served.
type serverKind int

const (
	serverHTTP        serverKind = iota // HCM with the "http.PORT" routes
	serverPassthrough                   // TLS routed on SNI, not terminated
	serverTCP                           // tcp_proxy
	serverTerminate                     // TLS termination: not applied yet
)

// kindOf classifies a server by its protocol and TLS mode.
func kindOf(srv *networking.Server) serverKind {
	p := model.ParseProtocol(srv.GetPort().GetProtocol(), srv.GetPort().GetName())
	switch {
	case p.IsHTTP():
		return serverHTTP
	case p == model.HTTPS || p == model.TLS:
		if srv.GetTls().GetMode() == networking.ServerTLSSettings_PASSTHROUGH {
			return serverPassthrough
		}
		return serverTerminate
	}
	return serverTCP
}

// buildGateways adds a router's listeners and routes: for each server port
// of its Gateways a listener "BIND_PORT" (bind 0.0.0.0 unless the server
// says), serving HTTP through the route configuration "http.PORT", TLS
// PASSTHROUGH through SNI filter chains to the VirtualServices' tls routes,
// TCP through their tcp routes. Servers that terminate TLS are skipped
// until the security issue (a static warning says so); on a port, servers
// of another kind than the first are skipped with a warning.
func (s *scope) buildGateways(o *outbound) {
	byPort := map[uint32][]gwServer{}
	for _, name := range strings.Split(s.key.gateways, ",") {
		g := s.idx.gateway(name)
		if g == nil {
			continue
		}
		for _, srv := range g.spec.Servers {
			if kindOf(srv) != serverTerminate {
				byPort[srv.GetPort().GetNumber()] = append(byPort[srv.GetPort().GetNumber()], gwServer{gw: g, srv: srv})
			}
		}
	}
	ports := make([]uint32, 0, len(byPort))
	for p := range byPort {
		ports = append(ports, p)
	}
	sort.Slice(ports, func(i, j int) bool { return ports[i] < ports[j] })
	for _, port := range ports {
		servers := s.sameKind(byPort[port])
		bind := servers[0].srv.Bind
		if bind == "" {
			bind = "0.0.0.0"
		}
		gp := gwPort{l: &listenerv3.Listener{
			Name:             listenerName(bind, port),
			Address:          socketAddress(bind, port),
			TrafficDirection: corev3.TrafficDirection_OUTBOUND,
		}}
		if kindOf(servers[0].srv) == serverHTTP {
			route := "http." + strconv.FormatUint(uint64(port), 10)
			o.routes.put(hash(route, s.gatewayRoutes(route, port, servers)))
			gp.http = &hcmOptions{statPrefix: "outbound_" + gp.l.Name, rds: route, useRemoteAddress: true, tracing: s.hcmTracing(traceServer)}
		} else {
			gp.chains = s.gatewayL4Chains(port, servers)
			if len(gp.chains) == 0 {
				continue
			}
			if needsTLSInspector(gp.chains) {
				gp.l.ListenerFilters = []*listenerv3.ListenerFilter{tlsInspector()}
			}
		}
		s.gwPorts = append(s.gwPorts, gp)
	}
}

// gwPort is one listener of a router: its name, address and listener
// filters, and either the HTTP connection manager's options or the L4
// filter chains. The policy filters of the proxy that gets it are added
// per proxy (gatewayListeners).
type gwPort struct {
	l      *listenerv3.Listener
	http   *hcmOptions
	chains []*listenerv3.FilterChain
}

// gatewayListeners builds a router proxy's listeners with its policy
// filters (AuthorizationPolicy, RequestAuthentication selecting the
// gateway workload): jwt_authn and RBAC before the router on HTTP ports,
// network RBAC before tcp_proxy on TCP and TLS passthrough ports, as
// Istio's gateways. Without policies the listeners are built once per
// scope and shared.
func (s *scope) gatewayListeners(f inboundFilters) []builtListener {
	if len(f.http) == 0 && len(f.tcp) == 0 {
		s.gwOnce.Do(func() { s.gwShared = s.buildGatewayListeners(f) })
		return s.gwShared
	}
	return s.buildGatewayListeners(f)
}

func (s *scope) buildGatewayListeners(f inboundFilters) []builtListener {
	out := make([]builtListener, 0, len(s.gwPorts))
	for _, gp := range s.gwPorts {
		l := proto.Clone(gp.l).(*listenerv3.Listener)
		if gp.http != nil {
			o := *gp.http
			o.filters = f.http
			l.FilterChains = []*listenerv3.FilterChain{{Filters: []*listenerv3.Filter{hcmFilter(httpConnectionManager(o))}}}
		} else {
			for _, c := range gp.chains {
				c = proto.Clone(c).(*listenerv3.FilterChain)
				c.Filters = append(append([]*listenerv3.Filter{}, f.tcp...), c.Filters...)
				l.FilterChains = append(l.FilterChains, c)
			}
		}
		out = append(out, hash(l.Name, s.withAccessLogs(l, telemetry.WorkloadMode_CLIENT))) // accesslog.go
	}
	return out
}

// sameKind keeps the servers of the first server's kind (Istio rejects
// HTTP and TLS servers on one port).
func (s *scope) sameKind(servers []gwServer) []gwServer {
	k := kindOf(servers[0].srv)
	out := servers[:0:0]
	for _, gs := range servers {
		if kindOf(gs.srv) != k {
			s.st.warns.warnObject(gs.gw.obj, "spec.servers", "server port "+
				strconv.FormatUint(uint64(gs.srv.GetPort().GetNumber()), 10)+
				" mixes protocols with another server on the same port; this server is ignored")
			continue
		}
		out = append(out, gs)
	}
	return out
}

// gatewayRoutes builds route configuration name for the HTTP servers of a
// port (Istio's buildGatewayHTTPRouteConfig): a virtual host per host
// shared by a server and a VirtualService bound to the server's Gateway
// ("ns/host" server hosts admit only VirtualServices of that namespace),
// named "HOST:PORT", with the routes of every such VirtualService,
// catch-all routes last. Without any, a "blackhole" virtual host answers
// 404. Ports in Host headers are ignored (ignore_port_in_host_matching, as
// Istio's gateways).
func (s *scope) gatewayRoutes(name string, port uint32, servers []gwServer) *routev3.RouteConfiguration {
	vhosts := map[string]*routev3.VirtualHost{}
	built := map[[2]string][]*routev3.Route{}
	for _, gs := range servers {
		for _, vs := range s.vss {
			if !vs.gateways[gs.gw.name] {
				continue
			}
			hosts := intersectHosts(serverHosts(gs.srv.Hosts, vs.obj.Namespace, gs.gw.obj.Namespace), vs.hosts)
			if len(hosts) == 0 {
				continue
			}
			k := [2]string{gs.gw.name, vs.obj.Namespace + "/" + vs.obj.Name}
			routes, ok := built[k]
			if !ok {
				routes = s.httpRoutes(vs, routeOpts{port: port, gateway: gs.gw.name})
				built[k] = routes
			}
			if len(routes) == 0 {
				continue
			}
			for _, h := range hosts {
				h = strings.ToLower(h)
				if vh := vhosts[h]; vh != nil {
					vh.Routes = append(vh.Routes, routes...)
					continue
				}
				vhosts[h] = &routev3.VirtualHost{Name: hostPort(h, port), Domains: []string{h}, Routes: slices.Clone(routes)}
			}
		}
	}
	var list []*routev3.VirtualHost
	for _, vh := range vhosts {
		vh.Routes = sortRoutesCatchAllLast(vh.Routes)
		list = append(list, vh)
	}
	if len(list) == 0 {
		list = []*routev3.VirtualHost{{Name: hostPort("blackhole", port), Domains: []string{"*"}}}
	}
	sort.Slice(list, func(i, j int) bool { return list[i].Name < list[j].Name })
	rc := routeConfig(name, list)
	rc.IgnorePortInHostMatching = true
	return rc
}

// serverHosts returns a server's hosts that admit VirtualServices of
// namespace vsNs, without their namespace part (Istio's NamesForNamespace;
// "." is the Gateway's namespace, no namespace means any).
func serverHosts(hosts []string, vsNs, gwNs string) []string {
	var out []string
	for _, h := range hosts {
		ns, name, ok := strings.Cut(h, "/")
		if !ok {
			out = append(out, h)
			continue
		}
		if ns == "." {
			ns = gwNs
		}
		if ns == "*" || ns == vsNs {
			out = append(out, name)
		}
	}
	return out
}

// intersectHosts returns, for each pair of overlapping hosts, the more
// specific one, once (Istio's host.Names.Intersection).
func intersectHosts(a, b []string) []string {
	var out []string
	for _, x := range a {
		for _, y := range b {
			var pick string
			switch {
			case model.HostSubsetOf(x, y):
				pick = x
			case model.HostSubsetOf(y, x):
				pick = y
			default:
				continue
			}
			if !slices.Contains(out, pick) {
				out = append(out, pick)
			}
		}
	}
	return out
}

// namesGateway reports whether a match's gateways (written in namespace
// ns) name gateway.
func namesGateway(gateways []string, ns, gateway string) bool {
	for _, g := range gateways {
		if resolveGateway(g, ns) == gateway {
			return true
		}
	}
	return false
}

// gatewayL4Chains builds the filter chains of a TLS passthrough or TCP
// port: for passthrough servers, one chain per tls route match of a bound
// VirtualService, on the SNI hosts it shares with the server (a host
// already routed is not routed again); for TCP servers, the first tcp
// route that applies.
func (s *scope) gatewayL4Chains(port uint32, servers []gwServer) []*listenerv3.FilterChain {
	var out []*listenerv3.FilterChain
	usedSNI := map[string]bool{}
	for _, gs := range servers {
		for _, vs := range s.vss {
			if !vs.gateways[gs.gw.name] {
				continue
			}
			if kindOf(gs.srv) == serverTCP {
				if c := s.gatewayTCPChain(vs, gs, port); c != nil {
					return append(out, c)
				}
				continue
			}
			out = append(out, s.gatewayTLSChains(vs, gs, port, usedSNI)...)
		}
	}
	return out
}

// gatewayTLSChains builds the SNI chains of vs's tls routes for one
// passthrough server.
func (s *scope) gatewayTLSChains(vs *vsEntry, gs gwServer, port uint32, used map[string]bool) []*listenerv3.FilterChain {
	var out []*listenerv3.FilterChain
	hosts := serverHosts(gs.srv.Hosts, vs.obj.Namespace, gs.gw.obj.Namespace)
	for _, t := range vs.spec.Tls {
		for _, m := range t.Match {
			if !s.gatewayL4Match(vs, m, m.Gateways, m.SourceLabels, m.Port, port, gs.gw.name) {
				continue
			}
			var sni []string
			for _, h := range intersectHosts(m.SniHosts, hosts) {
				if !used[h] {
					used[h] = true
					sni = append(sni, h)
				}
			}
			if len(sni) == 0 {
				continue
			}
			if dests := s.l4Destinations(t.Route, vs.obj.Namespace, port); len(dests) > 0 {
				out = append(out, chain(sni, nil, tcpProxyFilter(dests[0].name, dests)))
			}
		}
	}
	return out
}

// gatewayTCPChain returns the chain of vs's first applicable tcp route for
// a TCP server, or nil.
func (s *scope) gatewayTCPChain(vs *vsEntry, gs gwServer, port uint32) *listenerv3.FilterChain {
	if len(intersectHosts(serverHosts(gs.srv.Hosts, vs.obj.Namespace, gs.gw.obj.Namespace), vs.hosts)) == 0 {
		return nil
	}
	for _, t := range vs.spec.Tcp {
		applies := len(t.Match) == 0
		for _, m := range t.Match {
			if s.gatewayL4Match(vs, m, m.Gateways, m.SourceLabels, m.Port, port, gs.gw.name) {
				applies = true
				break
			}
		}
		if dests := s.l4Destinations(t.Route, vs.obj.Namespace, port); applies && len(dests) > 0 {
			return chain(nil, nil, tcpProxyFilter(dests[0].name, dests))
		}
	}
	return nil
}

// gatewayL4Match evaluates a tcp/tls match for one Gateway.
func (s *scope) gatewayL4Match(vs *vsEntry, msg any, gateways []string, labels map[string]string, matchPort, port uint32, gw string) bool {
	if len(gateways) > 0 && !namesGateway(gateways, vs.obj.Namespace, gw) {
		return false
	}
	return s.sourceMatches(msg, labels) && (matchPort == 0 || matchPort == port)
}
