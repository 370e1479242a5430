package xdstest

import (
	"slices"
	"strconv"
	"time"

	"github.com/cespare/xxhash/v2"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/weftmesh/weft/internal/translate"
)

// adsSource is a ConfigSource pointing at the ADS stream.
func adsSource() *corev3.ConfigSource {
	return &corev3.ConfigSource{
		ResourceApiVersion:    corev3.ApiVersion_V3,
		ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}},
	}
}

// EDSCluster returns an EDS cluster fed over ADS.
func EDSCluster(name string) *clusterv3.Cluster {
	return &clusterv3.Cluster{
		Name:                 name,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
		EdsClusterConfig:     &clusterv3.Cluster_EdsClusterConfig{EdsConfig: adsSource(), ServiceName: name},
		ConnectTimeout:       durationpb.New(10 * time.Second),
	}
}

// Endpoints returns the assignment of cluster with one endpoint per
// address, all on port.
func Endpoints(cluster string, port uint32, addrs ...string) *endpointv3.ClusterLoadAssignment {
	lbs := make([]*endpointv3.LbEndpoint, len(addrs))
	for i, a := range addrs {
		lbs[i] = &endpointv3.LbEndpoint{
			HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
				Address: socketAddress(a, port),
			}},
		}
	}
	return &endpointv3.ClusterLoadAssignment{
		ClusterName: cluster,
		Endpoints:   []*endpointv3.LocalityLbEndpoints{{LbEndpoints: lbs}},
	}
}

func socketAddress(ip string, port uint32) *corev3.Address {
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address: ip, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port},
	}}}
}

// HTTPListener returns a listener on ip:port whose HTTP connection manager
// takes its routes from RDS route configuration routeName.
func HTTPListener(name, ip string, port uint32, routeName string) *listenerv3.Listener {
	hcm := &hcmv3.HttpConnectionManager{
		StatPrefix: name,
		RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{
			ConfigSource: adsSource(), RouteConfigName: routeName,
		}},
		HttpFilters: []*hcmv3.HttpFilter{{
			Name:       "envoy.filters.http.router",
			ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(&routerv3.Router{})},
		}},
	}
	return &listenerv3.Listener{
		Name:    name,
		Address: socketAddress(ip, port),
		FilterChains: []*listenerv3.FilterChain{{Filters: []*listenerv3.Filter{{
			Name:       "envoy.filters.network.http_connection_manager",
			ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(hcm)},
		}}}},
	}
}

// WeightedCluster is one destination of a route.
type WeightedCluster struct {
	Cluster string
	Weight  uint32
}

// VirtualHost returns a virtual host for domains that routes "/" to
// clusters, split by weight when there are several.
func VirtualHost(name string, domains []string, clusters ...WeightedCluster) *routev3.VirtualHost {
	action := &routev3.RouteAction{}
	if len(clusters) == 1 {
		action.ClusterSpecifier = &routev3.RouteAction_Cluster{Cluster: clusters[0].Cluster}
	} else {
		wc := &routev3.WeightedCluster{}
		for _, c := range clusters {
			wc.Clusters = append(wc.Clusters, &routev3.WeightedCluster_ClusterWeight{
				Name: c.Cluster, Weight: wrapperspb.UInt32(c.Weight),
			})
		}
		action.ClusterSpecifier = &routev3.RouteAction_WeightedClusters{WeightedClusters: wc}
	}
	return &routev3.VirtualHost{
		Name:    name,
		Domains: domains,
		Routes: []*routev3.Route{{
			Match:  &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
			Action: &routev3.Route_Route{Route: action},
		}},
	}
}

// RouteConfig returns a route configuration.
func RouteConfig(name string, vhosts ...*routev3.VirtualHost) *routev3.RouteConfiguration {
	return &routev3.RouteConfiguration{Name: name, VirtualHosts: vhosts}
}

// NewResources collects resources by name and sets content versions
// (HashVersions). Each argument is a *Cluster, *ClusterLoadAssignment,
// *Listener or *RouteConfiguration.
func NewResources(msgs ...proto.Message) *translate.Resources {
	r := &translate.Resources{
		Listeners: map[string]*listenerv3.Listener{},
		Routes:    map[string]*routev3.RouteConfiguration{},
		Clusters:  map[string]*clusterv3.Cluster{},
		Endpoints: map[string]*endpointv3.ClusterLoadAssignment{},
	}
	for _, m := range msgs {
		switch m := m.(type) {
		case *clusterv3.Cluster:
			r.Clusters[m.GetName()] = m
		case *endpointv3.ClusterLoadAssignment:
			r.Endpoints[m.GetClusterName()] = m
		case *listenerv3.Listener:
			r.Listeners[m.GetName()] = m
		case *routev3.RouteConfiguration:
			r.Routes[m.GetName()] = m
		default:
			panic("xdstest.NewResources: unexpected message " + string(proto.MessageName(m)))
		}
	}
	HashVersions(r)
	return r
}

// HashVersions sets r.Versions to a hash of each type's content, as
// translate's contract requires (equal content, equal version).
func HashVersions(r *translate.Resources) {
	r.Versions = map[string]string{
		ClusterType:  hashMap(r.Clusters),
		EndpointType: hashMap(r.Endpoints),
		ListenerType: hashMap(r.Listeners),
		RouteType:    hashMap(r.Routes),
	}
}

func hashMap[M proto.Message](m map[string]M) string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	slices.Sort(names)
	h := xxhash.New()
	opts := proto.MarshalOptions{Deterministic: true}
	for _, n := range names {
		b, err := opts.Marshal(m[n])
		if err != nil {
			panic("xdstest: encoding " + n + ": " + err.Error())
		}
		_, _ = h.WriteString(n + "\x00" + strconv.Itoa(len(b)) + "\x00")
		_, _ = h.Write(b)
	}
	return strconv.FormatUint(h.Sum64(), 16)
}

func mustAny(m proto.Message) *anypb.Any {
	a, err := anypb.New(m)
	if err != nil {
		panic("xdstest: " + err.Error())
	}
	return a
}
