package bootstrap

import (
	"strings"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	corsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/cors/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

func mustAny(t *testing.T, m proto.Message) *anypb.Any {
	t.Helper()
	a, err := anypb.New(m)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// ingress builds an xDS Listener whose HCM has the given HTTP filters.
func ingress(t *testing.T, filters ...proto.Message) *listenerv3.Listener {
	hcm := &hcmv3.HttpConnectionManager{
		StatPrefix: "ingress",
		RouteSpecifier: &hcmv3.HttpConnectionManager_RouteConfig{RouteConfig: &routev3.RouteConfiguration{
			VirtualHosts: []*routev3.VirtualHost{{Name: "all", Domains: []string{"*"}}},
		}},
	}
	for _, f := range filters {
		hcm.HttpFilters = append(hcm.HttpFilters, &hcmv3.HttpFilter{
			Name:       "f",
			ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(t, f)},
		})
	}
	return &listenerv3.Listener{
		Name: "ingress",
		Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
			Address: "0.0.0.0", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 80},
		}}},
		FilterChains: []*listenerv3.FilterChain{{Filters: []*listenerv3.Filter{{
			Name:       "hcm",
			ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(t, hcm)},
		}}}},
	}
}

// TestCheckSupportedResources: the walker on single xDS resources, with a
// resource prefix, descending into Any.
func TestCheckSupportedResources(t *testing.T) {
	const chain = `listener "ingress".filter_chains[0].filters[0].typed_config`
	for _, tc := range []struct {
		name   string
		msg    proto.Message
		prefix string
		want   []string
	}{{
		name:   "supported listener",
		msg:    ingress(t, &routerv3.Router{SuppressEnvoyHeaders: true}),
		prefix: `listener "ingress"`,
	}, {
		name:   "unsupported HTTP filter type",
		msg:    ingress(t, &routerv3.Router{}, &corsv3.Cors{}),
		prefix: `listener "ingress"`,
		want:   []string{chain + ".http_filters[1].typed_config: type envoy.extensions.filters.http.cors.v3.Cors is not supported by weft-proxy (supported here: envoy.extensions.filters.http.router.v3.Router, envoy.extensions.filters.http.rbac.v3.RBAC, envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication, envoy.extensions.filters.http.fault.v3.HTTPFault, envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit, xds.type.v3.TypedStruct, udpa.type.v1.TypedStruct)"},
	}, {
		name:   "unsupported field inside a supported type",
		msg:    ingress(t, &routerv3.Router{StartChildSpan: true, DynamicStats: wrapperspb.Bool(false)}),
		prefix: `listener "ingress"`,
		want: []string{
			chain + ".http_filters[0].typed_config.dynamic_stats: not supported by weft-proxy",
			chain + ".http_filters[0].typed_config.start_child_span: not supported by weft-proxy",
		},
	}, {
		name: "cluster",
		msg: &clusterv3.Cluster{
			Name:           "web",
			ConnectTimeout: durationpb.New(1e9),
			RespectDnsTtl:  true,
			LbPolicy:       clusterv3.Cluster_LOAD_BALANCING_POLICY_CONFIG,
		},
		prefix: `cluster "web"`,
		want: []string{
			`cluster "web".lb_policy: LOAD_BALANCING_POLICY_CONFIG is not supported by weft-proxy (supported: ROUND_ROBIN, LEAST_REQUEST, RANDOM, RING_HASH, MAGLEV, CLUSTER_PROVIDED)`,
			`cluster "web".respect_dns_ttl: not supported by weft-proxy`,
		},
	}, {
		name: "enum number outside the enum",
		msg:  &clusterv3.Cluster{Name: "web", LbPolicy: 99},
		want: []string{"lb_policy: 99 is not a value of envoy.config.cluster.v3.Cluster.LbPolicy"},
	}, {
		name: "route configuration",
		msg: &routev3.RouteConfiguration{Name: "r", VirtualHosts: []*routev3.VirtualHost{{
			Name: "v", Domains: []string{"*"}, RequireTls: routev3.VirtualHost_ALL,
			Routes: []*routev3.Route{{
				Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
				Action: &routev3.Route_Route{Route: &routev3.RouteAction{RetryPolicy: &routev3.RetryPolicy{
					RetryPriority: &routev3.RetryPolicy_RetryPriority{Name: "envoy.retry_priorities.previous_priorities"}}}},
			}},
		}}},
		prefix: `route "r"`,
		want: []string{
			`route "r".virtual_hosts[0].routes[0].route.retry_policy.retry_priority: not supported by weft-proxy`,
			`route "r".virtual_hosts[0].require_tls: not supported by weft-proxy`,
		},
	}, {
		name: "cluster load assignment",
		msg: &endpointv3.ClusterLoadAssignment{ClusterName: "web", Endpoints: []*endpointv3.LocalityLbEndpoints{{
			LbEndpoints: []*endpointv3.LbEndpoint{{HostIdentifier: &endpointv3.LbEndpoint_Endpoint{
				Endpoint: &endpointv3.Endpoint{HealthCheckConfig: &endpointv3.Endpoint_HealthCheckConfig{PortValue: 1}},
			}}},
		}}},
		prefix: `endpoints "web"`,
		want:   []string{`endpoints "web".endpoints[0].lb_endpoints[0].endpoint.health_check_config: not supported by weft-proxy`},
	}, {
		name: "empty Any and undecodable Any",
		msg: &listenerv3.Listener{FilterChains: []*listenerv3.FilterChain{{Filters: []*listenerv3.Filter{
			{Name: "a", ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: &anypb.Any{}}},
			{Name: "b", ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: &anypb.Any{
				TypeUrl: "type.googleapis.com/" + string(tcpProxyType), Value: []byte{0xff}}}},
		}}}},
		want: []string{
			`filter_chains[0].filters[0].typed_config: "@type" is missing`,
			"filter_chains[0].filters[1].typed_config: cannot decode envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy: ...",
		},
	}, {
		name: "a type with no allowlist entry",
		msg:  &corsv3.Cors{},
		want: []string{"envoy.extensions.filters.http.cors.v3.Cors is not supported by weft-proxy"},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			errs := CheckSupported(tc.msg, tc.prefix)
			if tc.want == nil {
				if errs != nil {
					t.Fatalf("CheckSupported = %v, want nil", errs)
				}
				return
			}
			assertErrors(t, errs, tc.want)
		})
	}
}

// TestCheckSupportedUnknownFields: fields from a newer API version (unknown
// to this binary) are reported, not ignored.
func TestCheckSupportedUnknownFields(t *testing.T) {
	data, err := proto.Marshal(&clusterv3.Cluster{Name: "web"})
	if err != nil {
		t.Fatal(err)
	}
	data = protowire.AppendTag(data, 9999, protowire.VarintType)
	data = protowire.AppendVarint(data, 1)
	var c clusterv3.Cluster
	if err := proto.Unmarshal(data, &c); err != nil {
		t.Fatal(err)
	}
	errs := CheckSupported(&c, `cluster "web"`)
	if len(errs) != 1 || errs[0].Path != `cluster "web"` || !strings.Contains(errs[0].Reason, "unknown to weft-proxy") {
		t.Fatalf("got %v", errs)
	}
}

// TestValidateResource: PGV and the allowlist on one resource; PGV runs on
// typed_config contents too.
func TestValidateResource(t *testing.T) {
	l := ingress(t, &routerv3.Router{})
	if err := ValidateResource(l, `listener "ingress"`); err != nil {
		t.Fatalf("ValidateResource(valid) = %v", err)
	}
	bad := ingress(t, &routerv3.Router{})
	bad.FilterChains[0].Filters[0].GetTypedConfig().Value = mustAny(t, &hcmv3.HttpConnectionManager{
		RouteSpecifier: &hcmv3.HttpConnectionManager_RouteConfig{RouteConfig: &routev3.RouteConfiguration{}},
	}).Value
	err := ValidateResource(bad, `listener "ingress"`)
	assertErrors(t, err, []string{
		`listener "ingress".filter_chains[0].filters[0].typed_config.stat_prefix: value length must be at least 1 runes`,
	})
}
