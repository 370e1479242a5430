package admin

import (
	"time"

	adminv3 "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/weftmesh/weft/internal/proxy/stats"
)

// The fixtures are real protos and a real store, built the way the server
// will build them, small enough to read in the golden files.

// secretKey is the private key the fixtures embed; no admin output may
// contain it.
const secretKey = "-----BEGIN PRIVATE KEY-----SECRET"

var fixedTime = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func mustAny(m proto.Message) *anypb.Any {
	a, err := anypb.New(m)
	if err != nil {
		panic(err)
	}
	return a
}

func socketAddress(ip string, port uint32) *corev3.Address {
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address: ip, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port},
	}}}
}

func inline(s string) *corev3.DataSource {
	return &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: s}}
}

func fixtureCluster() *clusterv3.Cluster {
	tls := &tlsv3.UpstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{
		TlsCertificates: []*tlsv3.TlsCertificate{{
			CertificateChain: inline("-----BEGIN CERTIFICATE-----PUBLIC"),
			PrivateKey:       inline(secretKey),
		}},
	}}
	return &clusterv3.Cluster{
		Name:                 "backend",
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC},
		ConnectTimeout:       durationpb.New(250 * time.Millisecond),
		LoadAssignment: &endpointv3.ClusterLoadAssignment{
			ClusterName: "backend",
			Endpoints: []*endpointv3.LocalityLbEndpoints{{
				LbEndpoints: []*endpointv3.LbEndpoint{{
					HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{Address: socketAddress("10.0.0.1", 80)}},
				}},
			}},
		},
		TransportSocket: &corev3.TransportSocket{
			Name:       "envoy.transport_sockets.tls",
			ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: mustAny(tls)},
		},
	}
}

func fixtureRoute() *routev3.RouteConfiguration {
	return &routev3.RouteConfiguration{
		Name: "local",
		VirtualHosts: []*routev3.VirtualHost{{
			Name:    "all",
			Domains: []string{"*"},
			Routes: []*routev3.Route{{
				Match:  &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
				Action: &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: "backend"}}},
			}},
		}},
	}
}

func fixtureListener() *listenerv3.Listener {
	hcm := &hcmv3.HttpConnectionManager{
		StatPrefix:     "ingress",
		RouteSpecifier: &hcmv3.HttpConnectionManager_RouteConfig{RouteConfig: fixtureRoute()},
		HttpFilters: []*hcmv3.HttpFilter{{
			Name:       "envoy.filters.http.router",
			ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(&routerv3.Router{})},
		}},
	}
	return &listenerv3.Listener{
		Name:    "ingress",
		Address: socketAddress("0.0.0.0", 10000),
		FilterChains: []*listenerv3.FilterChain{{
			Filters: []*listenerv3.Filter{{
				Name:       "envoy.filters.network.http_connection_manager",
				ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(hcm)},
			}},
		}},
	}
}

func fixtureNode() *corev3.Node {
	return &corev3.Node{Id: "sidecar~10.0.0.9~app.default~default.svc.cluster.local", Cluster: "app"}
}

// fixtureConfigDump is what the server's ConfigDump returns: bootstrap,
// clusters, listeners, routes, in Envoy's order.
func fixtureConfigDump() *adminv3.ConfigDump {
	at := timestamppb.New(fixedTime)
	boot := &bootstrapv3.Bootstrap{
		Node:  fixtureNode(),
		Admin: &bootstrapv3.Admin{Address: socketAddress("127.0.0.1", 15000)},
		StaticResources: &bootstrapv3.Bootstrap_StaticResources{
			Listeners: []*listenerv3.Listener{fixtureListener()},
			Clusters:  []*clusterv3.Cluster{fixtureCluster()},
		},
	}
	return &adminv3.ConfigDump{Configs: []*anypb.Any{
		mustAny(&adminv3.BootstrapConfigDump{Bootstrap: boot, LastUpdated: at}),
		mustAny(&adminv3.ClustersConfigDump{StaticClusters: []*adminv3.ClustersConfigDump_StaticCluster{
			{Cluster: mustAny(fixtureCluster()), LastUpdated: at},
		}}),
		mustAny(&adminv3.ListenersConfigDump{StaticListeners: []*adminv3.ListenersConfigDump_StaticListener{
			{Listener: mustAny(fixtureListener()), LastUpdated: at},
		}}),
		mustAny(&adminv3.RoutesConfigDump{StaticRouteConfigs: []*adminv3.RoutesConfigDump_StaticRouteConfig{
			{RouteConfig: mustAny(fixtureRoute()), LastUpdated: at},
		}}),
	}}
}

func fixtureServerInfo() *adminv3.ServerInfo {
	return &adminv3.ServerInfo{
		Version:            "weft-proxy/0.1.0",
		HotRestartVersion:  "disabled",
		UptimeCurrentEpoch: durationpb.New(90 * time.Second),
		UptimeAllEpochs:    durationpb.New(90 * time.Second),
		CommandLineOptions: &adminv3.CommandLineOptions{ConfigPath: "examples/front-proxy.yaml", Concurrency: 2},
		Node:               fixtureNode(),
	}
}

func metric(name string, v uint64, typ adminv3.SimpleMetric_Type) *adminv3.SimpleMetric {
	return &adminv3.SimpleMetric{Name: name, Value: v, Type: typ}
}

// fixtureClusters has a cluster with explicit thresholds and two hosts
// (one unhealthy, IPv6, with outlier success rates), and a cluster with no
// thresholds, which prints Envoy's defaults.
func fixtureClusters() *adminv3.Clusters {
	const counter, gauge = adminv3.SimpleMetric_COUNTER, adminv3.SimpleMetric_GAUGE
	return &adminv3.Clusters{ClusterStatuses: []*adminv3.ClusterStatus{
		{
			Name: "backend",
			CircuitBreakers: &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{
				{Priority: corev3.RoutingPriority_DEFAULT, MaxConnections: wrapperspb.UInt32(100), MaxPendingRequests: wrapperspb.UInt32(50),
					MaxRequests: wrapperspb.UInt32(200), MaxRetries: wrapperspb.UInt32(2)},
				{Priority: corev3.RoutingPriority_HIGH, MaxConnections: wrapperspb.UInt32(1024), MaxPendingRequests: wrapperspb.UInt32(1024),
					MaxRequests: wrapperspb.UInt32(1024), MaxRetries: wrapperspb.UInt32(3)},
			}},
			HostStatuses: []*adminv3.HostStatus{
				{
					Address: socketAddress("10.0.0.1", 80),
					// Unsorted on purpose: the text output sorts by name.
					Stats: []*adminv3.SimpleMetric{
						metric("rq_total", 12, counter), metric("cx_active", 1, gauge), metric("cx_total", 3, counter),
						metric("rq_active", 0, gauge), metric("rq_error", 1, counter),
					},
					HealthStatus: &adminv3.HostHealthStatus{EdsHealthStatus: corev3.HealthStatus_HEALTHY},
					Weight:       1,
					Locality:     &corev3.Locality{Region: "eu-west", Zone: "eu-west-1a"},
				},
				{
					Address:                socketAddress("fd00::2", 8080),
					Hostname:               "b2.internal",
					Stats:                  []*adminv3.SimpleMetric{metric("cx_active", 0, gauge)},
					HealthStatus:           &adminv3.HostHealthStatus{FailedActiveHealthCheck: true, EdsHealthStatus: corev3.HealthStatus_DEGRADED},
					Weight:                 3,
					Priority:               1,
					SuccessRate:            &typev3.Percent{Value: 87.5},
					LocalOriginSuccessRate: &typev3.Percent{Value: 100},
				},
			},
		},
		{Name: "other", ObservabilityName: "other_stats", AddedViaApi: true, EdsServiceName: "other-eds"},
	}}
}

// fixtureStore is a real store with the stats the admin tests render.
func fixtureStore() *stats.Store {
	s := stats.NewStore()
	root := s.Root()
	root.Scope("server").Gauge("live").Set(1)
	root.Scope("server").Counter("debug_assertion_failures")
	c := root.Tagged("cluster", "envoy_cluster_name", "backend")
	c.Counter("upstream_rq_total").Add(12)
	c.Gauge("upstream_cx_active").Set(1)
	h := c.Histogram("upstream_rq_time")
	for _, v := range []float64{0.4, 3, 3, 12} {
		h.Record(v)
	}
	return s
}

func mustMarshal(t interface{ Fatal(...any) }, m proto.Message) []byte {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
