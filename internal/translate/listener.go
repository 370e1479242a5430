package translate

import (
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	tlsinspectorv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/tls_inspector/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"
	networking "istio.io/api/networking/v1alpha3"
)

// hcmOptions describe an http_connection_manager.
type hcmOptions struct {
	statPrefix string
	// rds names the route configuration to fetch over ADS; inline is used
	// instead when set.
	rds    string
	inline *routev3.RouteConfiguration
	// useRemoteAddress: the connection's peer is the client (gateways, the
	// edge of the mesh), as Istio sets for gateways.
	useRemoteAddress bool
	// proxyless: for grpc-go's api_listener, which accepts no codec or
	// upgrade settings.
	proxyless bool
	// filters run before the router (inbound: jwt_authn, then RBAC, then
	// local_ratelimit).
	filters []*hcmv3.HttpFilter
	// inbound: an inbound listener's HCM, which gets no fault filter.
	inbound bool
	// clientCert passes the caller's certificate on to the application as
	// Istio's inbound sidecars do: x-forwarded-client-cert APPEND_FORWARD
	// with the subject, URI and DNS SANs. On a connection without mutual
	// TLS the header is sanitized (Envoy's semantics).
	clientCert bool
	// tracing is the HCM's tracing (tracing.go); nil: none.
	tracing *hcmv3.HttpConnectionManager_Tracing
}

// routerFilter is the terminal HTTP filter.
func routerFilter() *hcmv3.HttpFilter {
	return &hcmv3.HttpFilter{
		Name:       routerFilterName,
		ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(&routerv3.Router{})},
	}
}

// httpConnectionManager builds an HCM with Envoy's codec auto-detection
// (HTTP/1.1, or HTTP/2 with prior knowledge), o's filters, the fault
// filter (outbound, gateway and proxyless HCMs, as Istio), istio.stats
// (all but proxyless, stats.go), the router
// filter and, like Istio's outbound listeners, websocket upgrades allowed.
func httpConnectionManager(o hcmOptions) *hcmv3.HttpConnectionManager {
	filters := append([]*hcmv3.HttpFilter{}, o.filters...)
	if !o.inbound {
		filters = append(filters, faultFilter())
	}
	if !o.proxyless {
		filters = append(filters, statsHTTPFilter()) // stats.go
	}
	m := &hcmv3.HttpConnectionManager{
		StatPrefix:  o.statPrefix,
		HttpFilters: append(filters, routerFilter()),
	}
	if o.clientCert {
		m.ForwardClientCertDetails = hcmv3.HttpConnectionManager_APPEND_FORWARD
		m.SetCurrentClientCertDetails = &hcmv3.HttpConnectionManager_SetCurrentClientCertDetails{
			Subject: wrapperspb.Bool(true), Dns: true, Uri: true,
		}
	}
	if o.inline != nil {
		m.RouteSpecifier = &hcmv3.HttpConnectionManager_RouteConfig{RouteConfig: o.inline}
	} else {
		m.RouteSpecifier = &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{
			ConfigSource:    adsSource(),
			RouteConfigName: o.rds,
		}}
	}
	if o.proxyless {
		return m
	}
	m.Tracing = o.tracing
	m.CodecType = hcmv3.HttpConnectionManager_AUTO
	m.UpgradeConfigs = []*hcmv3.HttpConnectionManager_UpgradeConfig{{UpgradeType: "websocket"}}
	if o.useRemoteAddress {
		m.UseRemoteAddress = wrapperspb.Bool(true)
	}
	return m
}

// hcmFilter wraps an HCM into a network filter.
func hcmFilter(m *hcmv3.HttpConnectionManager) *listenerv3.Filter {
	return &listenerv3.Filter{
		Name:       hcmFilterName,
		ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(m)},
	}
}

// tcpProxyFilter proxies to one cluster, or to weighted clusters when
// there are several destinations.
func tcpProxyFilter(statPrefix string, clusters []weightedName) *listenerv3.Filter {
	tp := &tcpproxyv3.TcpProxy{StatPrefix: statPrefix}
	if len(clusters) == 1 {
		tp.ClusterSpecifier = &tcpproxyv3.TcpProxy_Cluster{Cluster: clusters[0].name}
	} else {
		wc := &tcpproxyv3.TcpProxy_WeightedCluster{}
		for _, c := range clusters {
			wc.Clusters = append(wc.Clusters, &tcpproxyv3.TcpProxy_WeightedCluster_ClusterWeight{Name: c.name, Weight: c.weight})
		}
		tp.ClusterSpecifier = &tcpproxyv3.TcpProxy_WeightedClusters{WeightedClusters: wc}
	}
	return &listenerv3.Filter{
		Name:       tcpProxyName,
		ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(tp)},
	}
}

// weightedName is a cluster and its weight.
type weightedName struct {
	name   string
	weight uint32
}

// l4Destinations resolves the destinations of a tcp or tls route (weight 0
// destinations dropped when there are several, as for HTTP).
func (s *scope) l4Destinations(route []*networking.RouteDestination, ns string, port uint32) []weightedName {
	var out []weightedName
	for _, d := range route {
		if len(route) > 1 && d.Weight == 0 {
			continue
		}
		name, _, _ := s.destination(d.Destination, ns, port)
		w := uint32(d.Weight)
		if w == 0 {
			w = 1
		}
		out = append(out, weightedName{name: name, weight: w})
	}
	return out
}

// tlsInspector is the listener filter that reads the SNI of TLS
// connections for server_names matches.
func tlsInspector() *listenerv3.ListenerFilter {
	return &listenerv3.ListenerFilter{
		Name:       tlsInspectorName,
		ConfigType: &listenerv3.ListenerFilter_TypedConfig{TypedConfig: mustAny(&tlsinspectorv3.TlsInspector{})},
	}
}

// httpProxyListener is the sidecar's outbound HTTP proxy listener: it
// binds addr:port (default 127.0.0.1:15001, so that applications reach it
// as http_proxy without any traffic capture) and routes on Host /
// :authority through the "http_proxy" route configuration.
func httpProxyListener(addr string, port uint32, tracing *hcmv3.HttpConnectionManager_Tracing) *listenerv3.Listener {
	name := listenerName(addr, port)
	return &listenerv3.Listener{
		Name:             name,
		Address:          socketAddress(addr, port),
		TrafficDirection: corev3.TrafficDirection_OUTBOUND,
		FilterChains: []*listenerv3.FilterChain{{
			Filters: []*listenerv3.Filter{hcmFilter(httpConnectionManager(hcmOptions{
				statPrefix: "outbound_" + name,
				rds:        httpProxyRoute,
				tracing:    tracing,
			}))},
		}},
	}
}

// needsTLSInspector reports whether a chain matches on SNI.
func needsTLSInspector(chains []*listenerv3.FilterChain) bool {
	for _, c := range chains {
		if len(c.GetFilterChainMatch().GetServerNames()) > 0 {
			return true
		}
	}
	return false
}
