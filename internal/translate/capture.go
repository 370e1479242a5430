package translate

import (
	"fmt"
	"sort"
	"strconv"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	origdstv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/original_dst/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
	telemetry "istio.io/api/telemetry/v1alpha1"

	"github.com/weftmesh/weft/internal/model"
)

// Transparent capture (Istio's INTERCEPTION_MODE REDIRECT): a sidecar whose
// workload's traffic is redirected by `weft iptables` gets Istio's
// capture-mode listeners instead of the HTTP proxy listener and the
// per-IP inbound listeners:
//
//   - virtualOutbound, 0.0.0.0:15001, use_original_dst: every outbound
//     connection arrives here and is handed over to the listener of its
//     original destination port, "0.0.0.0_PORT" (bind_to_port false);
//     with no such listener it goes to PassthroughCluster (Istio's
//     outboundTrafficPolicy ALLOW_ANY);
//   - 0.0.0.0_PORT for each HTTP port: an HCM on the route configuration
//     "PORT", whose virtual hosts are the services on that port (by host
//     name and by address) plus "allow_any" to PassthroughCluster; TCP
//     ports keep their chains by destination service address, with the
//     passthrough as default chain; TCP services on an HTTP port come
//     first, by address;
//   - virtualInbound, 0.0.0.0:15006: original_dst and tls_inspector, a
//     filter chain per destination port the workload serves (the same
//     chains, mTLS, RBAC and filters as the inbound listeners of local
//     mode) and the passthrough to InboundPassthroughCluster, which
//     connects from 127.0.0.6 so that capture never sees it again.

// Istio's names and ports.
const (
	metaInterceptionMode  = "INTERCEPTION_MODE"
	interceptionRedirect  = "REDIRECT"
	virtualOutboundName   = "virtualOutbound"
	virtualInboundName    = "virtualInbound"
	passthroughCluster    = "PassthroughCluster"
	inboundPassthrough    = "InboundPassthroughCluster"
	blackHoleCluster      = "BlackHoleCluster"
	allowAnyVirtualHost   = "allow_any"
	virtualOutboundPort   = 15001
	virtualInboundPort    = 15006
	inboundPassthroughSrc = "127.0.0.6"
	originalDstFilterName = "envoy.filters.listener.original_dst"
)

// captures reports whether proxy p's traffic is captured (node metadata
// INTERCEPTION_MODE REDIRECT, Istio's key, on a sidecar).
func captures(p *model.Proxy) bool {
	return p.Type == model.SidecarProxy && !p.Proxyless && p.Metadata[metaInterceptionMode] == interceptionRedirect
}

// buildCaptureOutbound builds a capture-mode scope's shared resources.
func (s *scope) buildCaptureOutbound(o *outbound) {
	o.listeners.put(hash(virtualOutboundName, s.withAccessLogs(virtualOutbound(), telemetry.WorkloadMode_CLIENT)))
	tcp := map[uint32]*listenerv3.Listener{}
	for _, l := range s.tcpListeners() {
		tcp[l.GetAddress().GetSocketAddress().GetPortValue()] = l
	}
	for _, port := range httpPorts(s.routable()) {
		name := strconv.FormatUint(uint64(port), 10)
		o.routes.put(hash(name, s.portRoutes(port)))
		l := s.httpPortListener(port, tcp[port])
		delete(tcp, port)
		o.listeners.put(hash(l.Name, s.withAccessLogs(l, telemetry.WorkloadMode_CLIENT)))
	}
	for _, port := range sortedPorts(tcp) {
		l := tcp[port]
		l.DefaultFilterChain = passthroughChain("PassthroughFilterChain", passthroughCluster)
		o.listeners.put(hash(l.Name, s.withAccessLogs(l, telemetry.WorkloadMode_CLIENT)))
	}
	s.warnEgressListeners()
	s.addServiceClusters(o)
	for _, c := range []*clusterv3.Cluster{originalDstCluster(passthroughCluster, ""), originalDstCluster(inboundPassthrough, inboundPassthroughSrc), blackHole()} {
		o.clusters.put(hash(c.Name, c))
	}
}

// warnEgressListeners says that the Sidecar's egress listeners with a port
// are not generated for captured proxies: their services are reached
// through capture (virtualOutbound and the per-port listeners).
func (s *scope) warnEgressListeners() {
	for _, e := range s.egressListeners() {
		s.st.warns.warnObject(s.sidecar.obj, fmt.Sprintf("spec.egress[%d].port", e.index),
			"ignored for proxies with traffic capture (INTERCEPTION_MODE REDIRECT): they reach these services through virtualOutbound")
	}
}

// virtualOutbound is Istio's outbound capture listener: connections go to
// the listener of their original destination; the ones to 15001 itself
// (a loop) to BlackHoleCluster; the rest pass through.
func virtualOutbound() *listenerv3.Listener {
	bh := passthroughChain("virtualOutbound-blackhole", blackHoleCluster)
	bh.FilterChainMatch = &listenerv3.FilterChainMatch{DestinationPort: wrapperspb.UInt32(virtualOutboundPort)}
	return &listenerv3.Listener{
		Name:             virtualOutboundName,
		Address:          socketAddress("0.0.0.0", virtualOutboundPort),
		UseOriginalDst:   wrapperspb.Bool(true),
		TrafficDirection: corev3.TrafficDirection_OUTBOUND,
		FilterChains:     []*listenerv3.FilterChain{bh, passthroughChain("virtualOutbound-catchall-tcp", passthroughCluster)},
	}
}

// passthroughChain is a filter chain that proxies TCP to cluster.
func passthroughChain(name, cluster string) *listenerv3.FilterChain {
	return &listenerv3.FilterChain{
		Name:    name,
		Filters: withStats(tcpProxyFilter(cluster, []weightedName{{name: cluster, weight: 1}})),
	}
}

// httpPortListener is Istio's per-port outbound listener of an HTTP port:
// no socket; the TCP services on the port (tcp, its chains by address)
// first, then the HCM on route configuration "PORT" for everything else.
func (s *scope) httpPortListener(port uint32, tcp *listenerv3.Listener) *listenerv3.Listener {
	name := listenerName("0.0.0.0", port)
	hcm := &listenerv3.FilterChain{Filters: []*listenerv3.Filter{hcmFilter(httpConnectionManager(hcmOptions{
		statPrefix: "outbound_" + name,
		rds:        strconv.FormatUint(uint64(port), 10),
		tracing:    s.hcmTracing(traceClient),
	}))}}
	l := &listenerv3.Listener{
		Name:             name,
		Address:          socketAddress("0.0.0.0", port),
		BindToPort:       wrapperspb.Bool(false),
		TrafficDirection: corev3.TrafficDirection_OUTBOUND,
	}
	if tcp != nil {
		for _, c := range tcp.FilterChains {
			if c.GetFilterChainMatch() != nil { // a catch-all TCP chain would shadow HTTP
				l.FilterChains = append(l.FilterChains, c)
			}
		}
		l.ListenerFilters = tcp.ListenerFilters
	}
	l.FilterChains = append(l.FilterChains, hcm)
	return l
}

// portRoutes builds the route configuration "PORT" of a per-port outbound
// listener, as Istio: a virtual host per service with an HTTP port PORT
// (routes from the mesh VirtualService that owns its host, else the
// default route), the VirtualService hosts that are no service, and
// allow_any, which passes unknown destinations through.
func (s *scope) portRoutes(port uint32) *routev3.RouteConfiguration {
	b := s.newVhostBuilder(false)
	handled := map[string]bool{}
	for _, vs := range s.vss {
		if !vs.gateways[meshGateway] {
			continue
		}
		owned := s.ownedServices(vs)
		if !hasHTTPPort(owned, port) {
			continue
		}
		routes := s.httpRoutes(vs, routeOpts{port: port})
		if len(routes) == 0 {
			continue
		}
		for _, h := range s.nonServiceHosts(vs) {
			b.add(hostPort(h, port), port, appendDomainPort(nil, h, port), nil, routes)
		}
		for _, svc := range owned {
			if p, ok := svc.PortByNumber(port); ok && p.Protocol.IsHTTP() {
				domains, alt := serviceDomains(svc, port, s.key.dnsDomain)
				b.add(hostPort(svc.Hostname, port), port, domains, alt, routes)
				handled[svc.Hostname] = true
			}
		}
	}
	for _, svc := range s.routable() {
		if p, ok := svc.PortByNumber(port); !ok || !p.Protocol.IsHTTP() || handled[svc.Hostname] {
			continue
		}
		domains, alt := serviceDomains(svc, port, s.key.dnsDomain)
		cluster := outboundCluster(port, "", svc.Hostname)
		route := s.st.defaultRoute(cluster, port)
		if hp := s.hashPolicy(svc.Hostname, port, ""); hp != nil {
			route = defaultRoute(cluster, hp, routeOpts{port: port})
		}
		b.add(hostPort(svc.Hostname, port), port, domains, alt, []*routev3.Route{route})
	}
	vhosts := b.sorted()
	vhosts = append(vhosts, &routev3.VirtualHost{
		Name:    allowAnyVirtualHost,
		Domains: []string{"*"},
		Routes:  []*routev3.Route{defaultRoute(passthroughCluster, nil, routeOpts{port: port})},
	})
	return routeConfig(strconv.FormatUint(uint64(port), 10), vhosts)
}

func hasHTTPPort(services []*model.Service, port uint32) bool {
	for _, svc := range services {
		if p, ok := svc.PortByNumber(port); ok && p.Protocol.IsHTTP() {
			return true
		}
	}
	return false
}

// originalDstCluster is Istio's PassthroughCluster (bind "") or
// InboundPassthroughCluster (bind 127.0.0.6): ORIGINAL_DST with
// CLUSTER_PROVIDED load balancing and Istio's 10 s connect timeout.
func originalDstCluster(name, bind string) *clusterv3.Cluster {
	c := &clusterv3.Cluster{
		Name:                 name,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_ORIGINAL_DST},
		LbPolicy:             clusterv3.Cluster_CLUSTER_PROVIDED,
		ConnectTimeout:       durationpb.New(10 * time.Second),
	}
	if bind != "" {
		c.UpstreamBindConfig = &corev3.BindConfig{SourceAddress: &corev3.SocketAddress{
			Address: bind, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 0},
		}}
	}
	return c
}

// blackHole is Istio's BlackHoleCluster: STATIC without endpoints, every
// connection fails.
func blackHole() *clusterv3.Cluster {
	return &clusterv3.Cluster{
		Name:                 blackHoleCluster,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC},
		ConnectTimeout:       durationpb.New(10 * time.Second),
	}
}

// originalDstListenerFilter is envoy.filters.listener.original_dst.
func originalDstListenerFilter() *listenerv3.ListenerFilter {
	return &listenerv3.ListenerFilter{
		Name:       originalDstFilterName,
		ConfigType: &listenerv3.ListenerFilter_TypedConfig{TypedConfig: mustAny(&origdstv3.OriginalDst{})},
	}
}

// sortedPorts returns the keys of m, sorted.
func sortedPorts[T any](m map[uint32]T) []uint32 {
	out := make([]uint32, 0, len(m))
	for p := range m {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}
