package agent

import (
	"fmt"
	"net/netip"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
)

// MetricsName names the metrics listener and the cluster of the admin it
// routes to: Istio's bootstrap calls them prometheus_stats.
const MetricsName = "prometheus_stats"

// defaultClusterID is Istio's CLUSTER_ID when none is configured.
const defaultClusterID = "Kubernetes"

func (o *Options) clusterID() string {
	if o.ClusterID != "" {
		return o.ClusterID
	}
	return defaultClusterID
}

// HealthName names the readiness listener (Istio's 15021 /healthz/ready).
const HealthName = "health"

// adminClusterName is the static cluster of the admin itself, which the
// metrics and health listeners route to (Istio's bootstrap names it
// prometheus_stats).
const adminClusterName = MetricsName

// addMetricsListener adds Istio's metrics endpoint to the static resources,
// as Istio's bootstrap template (tools/packaging/common/envoy_bootstrap.json)
// does: a listener on addr whose connection manager routes the prefix
// /stats/prometheus to the admin. Only that path is served: the rest of the
// admin stays on its own address.
func addMetricsListener(static *bootstrapv3.Bootstrap_StaticResources, addr string, admin netip.AddrPort) error {
	return addAdminPathListener(static, adminPath{
		name: MetricsName, addr: addr, statPrefix: "stats", prefix: "/stats/prometheus",
	}, admin)
}

// addHealthListener adds Istio's readiness endpoint (port 15021,
// /healthz/ready, which Kubernetes probes): a listener on addr routing
// /healthz/ready to the admin's /ready, so that it answers 200 once the
// proxy has its configuration and is not draining, 503 otherwise.
func addHealthListener(static *bootstrapv3.Bootstrap_StaticResources, addr string, admin netip.AddrPort) error {
	return addAdminPathListener(static, adminPath{
		name: HealthName, addr: addr, statPrefix: "health", prefix: "/healthz/ready", rewrite: "/ready",
	}, admin)
}

// adminPath is one admin path served on a listener of its own.
type adminPath struct {
	name, addr, statPrefix string
	prefix, rewrite        string // the path served; its admin path when different
}

// addAdminPathListener adds a listener serving one admin path, and the
// admin's static cluster when it is not there yet.
func addAdminPathListener(static *bootstrapv3.Bootstrap_StaticResources, p adminPath, admin netip.AddrPort) error {
	ap, err := netip.ParseAddrPort(p.addr)
	if err != nil {
		return fmt.Errorf("%s address %q: want ip:port", p.name, p.addr)
	}
	router, err := anypb.New(&routerv3.Router{})
	if err != nil {
		return err
	}
	action := &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: adminClusterName}, PrefixRewrite: p.rewrite}
	mgr, err := anypb.New(&hcmv3.HttpConnectionManager{
		StatPrefix: p.statPrefix,
		RouteSpecifier: &hcmv3.HttpConnectionManager_RouteConfig{RouteConfig: &routev3.RouteConfiguration{
			VirtualHosts: []*routev3.VirtualHost{{
				Name:    "backend",
				Domains: []string{"*"},
				Routes: []*routev3.Route{{
					Match:  &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: p.prefix}},
					Action: &routev3.Route_Route{Route: action},
				}},
			}},
		}},
		HttpFilters: []*hcmv3.HttpFilter{{Name: "envoy.filters.http.router", ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: router}}},
	})
	if err != nil {
		return err
	}
	static.Listeners = append(static.Listeners, &listenerv3.Listener{
		Name:    p.name,
		Address: socketAddress(ap.Addr().String(), uint32(ap.Port())),
		FilterChains: []*listenerv3.FilterChain{{Filters: []*listenerv3.Filter{{
			Name:       "envoy.filters.network.http_connection_manager",
			ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mgr},
		}}}},
	})
	for _, c := range static.Clusters {
		if c.GetName() == adminClusterName {
			return nil
		}
	}
	static.Clusters = append(static.Clusters, &clusterv3.Cluster{
		Name:                 adminClusterName,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC},
		ConnectTimeout:       durationpb.New(250e6),
		LoadAssignment: &endpointv3.ClusterLoadAssignment{
			ClusterName: adminClusterName,
			Endpoints: []*endpointv3.LocalityLbEndpoints{{LbEndpoints: []*endpointv3.LbEndpoint{{
				HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{Address: socketAddress(admin.Addr().String(), uint32(admin.Port()))}},
			}}}},
		},
	})
	return nil
}
