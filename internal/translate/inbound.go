package translate

import (
	"net"
	"strconv"
	"strings"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	networking "istio.io/api/networking/v1alpha3"
	telemetry "istio.io/api/telemetry/v1alpha1"

	"github.com/weftmesh/weft/internal/model"
)

// Inbound traffic in weft's local mode (no iptables): each port the
// workload serves gets a listener on the proxy's own address
// (proxy.IP():PORT, named "IP_PORT" like Istio's listeners before
// virtualInbound) that forwards to the application on 127.0.0.1:PORT.
// This assumes the application listens on loopback (or another address
// than the sidecar's inbound address), so that both can bind the same
// port; other proxies reach the workload at the endpoint address the
// registry lists, which is the sidecar's.

// instance is one endpoint of one service.
type instance struct {
	svc *model.Service
	ep  *model.Endpoint
}

// instances indexes the services' endpoints by address and by workload
// ("ns/name"), to find the services a proxy serves.
type instances struct {
	byAddr     map[string][]instance
	byWorkload map[string][]instance
}

func newInstances(services []*model.Service) instances {
	in := instances{byAddr: map[string][]instance{}, byWorkload: map[string][]instance{}}
	for _, svc := range services {
		for _, ep := range svc.Endpoints {
			in.byAddr[ep.Address] = append(in.byAddr[ep.Address], instance{svc, ep})
			if ep.WorkloadName != "" {
				k := ep.Namespace + "/" + ep.WorkloadName
				in.byWorkload[k] = append(in.byWorkload[k], instance{svc, ep})
			}
		}
	}
	return in
}

// inboundPort is one port a proxy receives traffic on.
type inboundPort struct {
	port     uint32
	protocol model.Protocol
	bind     string // listener address
	target   string // the application's address ("host:port")
	pool     *networking.ConnectionPoolSettings
}

// inbound builds proxy p's inbound listeners and clusters: from its
// Sidecar's ingress listeners when it has some, else from the ports of the
// services whose endpoints are p (endpoint address = one of p's IPs, or the
// endpoint's WorkloadEntry is p's workload).
func (s *scope) inbound(p *model.Proxy) perProxy {
	var out perProxy
	f := s.st.policyFilters(p)
	f.tracing = s.hcmTracing(traceServer)
	limits := s.st.rateLimitsFor(p) // LocalRateLimit (ratelimit.go)
	instances := s.st.instancesOf(p)
	for _, ip := range s.inboundPorts(p) {
		cluster := inboundCluster(ip.port)
		pf := f
		if ip.protocol.IsHTTP() { // local_ratelimit is an HTTP filter: TCP ports are not limited
			if rl := s.st.localRateLimitFilter(limits, ip.port); rl != nil {
				pf.http = append(append([]*hcmv3.HttpFilter{}, f.http...), rl) // after jwt_authn and RBAC
			}
		}
		l, ok := s.secureInbound(p, ip.port, inboundListener(ip, cluster, pf)) // PeerAuthentication (mtls_inbound.go)
		if !ok {
			continue
		}
		out.listeners = append(out.listeners, hash(listenerName(ip.bind, ip.port), s.withAccessLogs(l, telemetry.WorkloadMode_SERVER))) // accesslog.go
		c := inboundClusterFor(ip, cluster)
		c.Metadata = clusterServiceMetadata(inboundServices(instances, ip.port)...) // stats.go
		out.clusters = append(out.clusters, hash(cluster, c))
	}
	return out
}

// inboundPorts lists p's inbound ports, first declaration of a port
// winning.
func (s *scope) inboundPorts(p *model.Proxy) []inboundPort {
	var out []inboundPort
	seen := map[uint32]bool{}
	add := func(ip inboundPort) {
		if ip.port != 0 && !seen[ip.port] {
			seen[ip.port] = true
			out = append(out, ip)
		}
	}
	if sc := s.sidecar; sc != nil && len(sc.spec.Ingress) > 0 {
		for _, ing := range sc.spec.Ingress {
			if ip, ok := sidecarIngress(ing, sc.spec, p); ok {
				add(ip)
			}
		}
		return out
	}
	for _, in := range s.st.instancesOf(p) {
		for _, sp := range in.svc.Ports {
			port := in.ep.PortFor(sp)
			add(inboundPort{
				port: port, protocol: sp.Protocol, bind: p.IP(),
				target: net.JoinHostPort("127.0.0.1", strconv.FormatUint(uint64(port), 10)),
			})
		}
	}
	return out
}

// sidecarIngress reads one Sidecar ingress listener: its port, bind
// address (default the proxy's IP) and defaultEndpoint ("127.0.0.1:PORT",
// or "0.0.0.0:PORT" for the instance IP, as Istio). Unix socket endpoints
// are not supported (a static warning says so).
func sidecarIngress(ing *networking.IstioIngressListener, sc *networking.Sidecar, p *model.Proxy) (inboundPort, bool) {
	port := ing.GetPort().GetNumber()
	ip := inboundPort{
		port:     port,
		protocol: model.ParseProtocol(ing.GetPort().GetProtocol(), ing.GetPort().GetName()),
		bind:     ing.Bind,
		pool:     ing.ConnectionPool,
	}
	if ip.pool == nil {
		ip.pool = sc.InboundConnectionPool
	}
	if ip.bind == "" {
		ip.bind = p.IP()
	}
	target := ing.DefaultEndpoint
	if target == "" || strings.HasPrefix(target, "unix://") {
		return ip, false
	}
	host, tport, err := net.SplitHostPort(target)
	if err != nil {
		return ip, false
	}
	if host == "0.0.0.0" {
		host = p.IP()
	}
	ip.target = net.JoinHostPort(host, tport)
	return ip, true
}

// instancesOf returns the service endpoints that are proxy p.
func (st *snapState) instancesOf(p *model.Proxy) []instance {
	st.instOnce.Do(func() { st.inst = newInstances(st.snap.Services) })
	var out []instance
	for _, ip := range p.IPs {
		out = append(out, st.inst.byAddr[ip]...)
	}
	if p.WorkloadName != "" {
		for _, in := range st.inst.byWorkload[p.Namespace+"/"+p.WorkloadName] {
			if !containsString(p.IPs, in.ep.Address) {
				out = append(out, in)
			}
		}
	}
	return out
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// policyFilters are the security policy filters of proxy p's inbound
// listeners (sidecars) or gateway listeners (routers): jwt_authn from its
// RequestAuthentications, then the RBAC filters of its
// AuthorizationPolicies, before the router; network RBAC before tcp_proxy.
func (st *snapState) policyFilters(p *model.Proxy) inboundFilters {
	authz := st.authzFor(p)      // AuthorizationPolicy (authz.go)
	jwt := st.requestAuthnFor(p) // RequestAuthentication (requestauthn.go)
	f := inboundFilters{tcp: authz.tcp}
	if jwt != nil {
		f.http = append(f.http, jwt)
	}
	f.http = append(f.http, authz.http...)
	return f
}

// inboundFilters are the policy filters of a proxy's inbound listeners:
// HTTP filters that run before the router (jwt_authn, then RBAC, then the
// port's local_ratelimit), network filters that run before tcp_proxy
// (RBAC).
type inboundFilters struct {
	http []*hcmv3.HttpFilter
	tcp  []*listenerv3.Filter
	// tracing is the HCM's tracing (tracing.go).
	tracing *hcmv3.HttpConnectionManager_Tracing
}

// inboundListener forwards one inbound port: HTTP ports through an HCM
// with an inline route to the inbound cluster (as Istio inlines inbound
// routes) that passes the caller's certificate on, other ports through
// tcp_proxy; f's filters come first.
func inboundListener(ip inboundPort, cluster string, f inboundFilters) *listenerv3.Listener {
	name := listenerName(ip.bind, ip.port)
	var filters []*listenerv3.Filter
	if ip.protocol.IsHTTP() {
		filters = []*listenerv3.Filter{hcmFilter(httpConnectionManager(hcmOptions{
			statPrefix: "inbound_" + name,
			inline:     inboundRoute(cluster, ip.port),
			filters:    f.http,
			clientCert: true,
			inbound:    true,
			tracing:    f.tracing,
		}))}
	} else {
		filters = withStats(append(append([]*listenerv3.Filter{}, f.tcp...), tcpProxyFilter(cluster, []weightedName{{name: cluster, weight: 1}}))...)
	}
	return &listenerv3.Listener{
		Name:             name,
		Address:          socketAddress(ip.bind, ip.port),
		TrafficDirection: corev3.TrafficDirection_INBOUND,
		FilterChains:     []*listenerv3.FilterChain{{Filters: filters}},
	}
}

// inboundRoute is Istio's inbound route configuration: one virtual host
// "inbound|http|PORT" for every domain, routing everything to the inbound
// cluster with no timeout.
func inboundRoute(cluster string, port uint32) *routev3.RouteConfiguration {
	rc := routeConfig(cluster, []*routev3.VirtualHost{{
		Name:    "inbound|http|" + strconv.FormatUint(uint64(port), 10),
		Domains: []string{"*"},
		Routes:  []*routev3.Route{defaultRoute(cluster, nil, routeOpts{port: port, inbound: true})},
	}})
	rc.MaxDirectResponseBodySizeBytes = nil
	return rc
}

// inboundClusterFor is the STATIC cluster to the application, with the
// Sidecar's inbound connection pool (HTTP/2 to the application for HTTP2
// and GRPC ports).
func inboundClusterFor(ip inboundPort, name string) *clusterv3.Cluster {
	host, port := splitTarget(ip.target)
	c := &clusterv3.Cluster{
		Name:                 name,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC},
		LoadAssignment: &endpointv3.ClusterLoadAssignment{
			ClusterName: name,
			Endpoints: []*endpointv3.LocalityLbEndpoints{{LbEndpoints: []*endpointv3.LbEndpoint{{
				HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{Address: socketAddress(host, port)}},
			}}}},
		},
	}
	applyConnectionPool(c, ip.pool, model.Port{Number: ip.port, Protocol: ip.protocol})
	return c
}

// splitTarget splits a validated "host:port".
func splitTarget(t string) (string, uint32) {
	host, p, _ := net.SplitHostPort(t)
	n, _ := strconv.ParseUint(p, 10, 32)
	return host, uint32(n)
}
