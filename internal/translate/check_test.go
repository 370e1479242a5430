package translate

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/weftmesh/weft/internal/model"
	"github.com/weftmesh/weft/internal/proxy/bootstrap"
)

// pendingProxyFields are the fields translation emits (with Istio's
// semantics) that weft-proxy's supported subset does not list yet; they
// are requested from the proxy team. A rejection matching one of them is
// tolerated; any other rejection fails the test.
var pendingProxyFields = []*regexp.Regexp{
	// Gateways match Host without its port, as Istio's gateways do.
	regexp.MustCompile(`\.ignore_port_in_host_matching: not supported by weft-proxy$`),
	// A weighted destination's authority rewrite (VirtualService
	// route[].headers.request.set[":authority"]).
	regexp.MustCompile(`weighted_clusters\.clusters\[\d+\]\.host_rewrite_literal: not supported by weft-proxy$`),
}

// checkResources validates every resource of res for proxy p.
func checkResources(t *testing.T, p *model.Proxy, res *Resources) {
	t.Helper()
	for _, typ := range []string{ListenerType, RouteType, ClusterType, EndpointType} {
		if res.Versions[typ] == "" {
			t.Errorf("%s: no version for %s", p.ID, typ)
		}
	}
	for name, m := range res.Listeners {
		checkResource(t, p, fmt.Sprintf("listener %q", name), name, m, m.Name)
	}
	for name, m := range res.Routes {
		checkResource(t, p, fmt.Sprintf("route %q", name), name, m, m.Name)
	}
	for name, m := range res.Clusters {
		checkResource(t, p, fmt.Sprintf("cluster %q", name), name, m, m.Name)
	}
	for name, m := range res.Endpoints {
		checkResource(t, p, fmt.Sprintf("endpoints %q", name), name, m, m.ClusterName)
	}
	checkReferences(t, p, res)
	if p.Proxyless {
		checkGRPCShapes(t, res)
	}
}

// checkResource runs PGV (inside Anys too) and, for proxies, weft-proxy's
// supported-subset check on one resource.
func checkResource(t *testing.T, p *model.Proxy, path, key string, m proto.Message, name string) {
	t.Helper()
	if key != name {
		t.Errorf("%s: keyed %q but named %q", path, key, name)
	}
	if err := validateDeep(m.ProtoReflect()); err != nil {
		t.Errorf("%s %s: PGV: %v", p.ID, path, err)
	}
	if p.Proxyless {
		return
	}
	err := bootstrap.ValidateResource(m, path)
	var errs bootstrap.Errors
	if err != nil && !errors.As(err, &errs) {
		t.Fatalf("%s: %v", path, err)
	}
	for _, e := range errs {
		if !pending(e.Error()) {
			t.Errorf("%s: weft-proxy rejects: %v", p.ID, e)
		} else {
			t.Logf("pending in weft-proxy: %v", e)
		}
	}
}

func pending(msg string) bool {
	for _, re := range pendingProxyFields {
		if re.MatchString(msg) {
			return true
		}
	}
	return false
}

// validateDeep runs the generated ValidateAll on m and on the contents of
// every Any inside it (which PGV does not descend into).
func validateDeep(m protoreflect.Message) error {
	var errs []error
	if v, ok := m.Interface().(interface{ ValidateAll() error }); ok {
		if err := v.ValidateAll(); err != nil {
			errs = append(errs, err)
		}
	}
	walkAnys(m, func(a *anypb.Any) {
		inner, err := a.UnmarshalNew()
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %v", a.TypeUrl, err))
			return
		}
		if err := validateDeep(inner.ProtoReflect()); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", a.TypeUrl, err))
		}
	})
	return errors.Join(errs...)
}

// walkAnys calls f for every Any directly or indirectly inside m (not
// inside the Anys themselves).
func walkAnys(m protoreflect.Message, f func(*anypb.Any)) {
	if a, ok := m.Interface().(*anypb.Any); ok {
		f(a)
		return
	}
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsList() && fd.Message() != nil:
			for i := 0; i < v.List().Len(); i++ {
				walkAnys(v.List().Get(i).Message(), f)
			}
		case fd.IsMap() && fd.MapValue().Message() != nil:
			v.Map().Range(func(_ protoreflect.MapKey, mv protoreflect.Value) bool {
				walkAnys(mv.Message(), f)
				return true
			})
		case !fd.IsList() && !fd.IsMap() && fd.Message() != nil:
			walkAnys(v.Message(), f)
		}
		return true
	})
}

// checkReferences checks that what resources name exists: the route
// configurations of HCMs, the clusters of routes and tcp_proxy filters, the
// load assignments of EDS clusters.
func checkReferences(t *testing.T, p *model.Proxy, res *Resources) {
	t.Helper()
	for _, l := range res.Listeners {
		for _, hcm := range listenerHCMs(t, l) {
			if name := hcm.GetRds().GetRouteConfigName(); name != "" && res.Routes[name] == nil {
				t.Errorf("%s: listener %s names route %q, which is not generated", p.ID, l.Name, name)
			}
			if rc := hcm.GetRouteConfig(); rc != nil {
				checkRouteClusters(t, p, rc, res)
			}
		}
		for _, fc := range l.FilterChains {
			for _, f := range fc.Filters {
				var tp tcpproxyv3.TcpProxy
				if f.GetTypedConfig().MessageIs(&tp) {
					if err := f.GetTypedConfig().UnmarshalTo(&tp); err != nil {
						t.Fatal(err)
					}
					for _, c := range append([]string{tp.GetCluster()}, weightedNames(&tp)...) {
						if c != "" && res.Clusters[c] == nil {
							t.Errorf("%s: listener %s proxies to cluster %q, which is not generated", p.ID, l.Name, c)
						}
					}
				}
			}
		}
	}
	for _, rc := range res.Routes {
		checkRouteClusters(t, p, rc, res)
	}
	for _, c := range res.Clusters {
		if c.GetType() == clusterv3.Cluster_EDS && res.Endpoints[c.Name] == nil {
			t.Errorf("%s: EDS cluster %s has no load assignment", p.ID, c.Name)
		}
	}
}

func weightedNames(tp *tcpproxyv3.TcpProxy) []string {
	var out []string
	for _, c := range tp.GetWeightedClusters().GetClusters() {
		out = append(out, c.Name)
	}
	return out
}

// checkRouteClusters checks the clusters a route configuration names
// (subsets without a DestinationRule excepted: clusters are not validated,
// Envoy answers 503 as for Istio).
func checkRouteClusters(t *testing.T, p *model.Proxy, rc *routev3.RouteConfiguration, res *Resources) {
	t.Helper()
	for _, vh := range rc.VirtualHosts {
		for _, r := range vh.Routes {
			names := []string{r.GetRoute().GetCluster()}
			for _, w := range r.GetRoute().GetWeightedClusters().GetClusters() {
				names = append(names, w.Name)
			}
			for _, n := range names {
				if n != "" && res.Clusters[n] == nil && !strings.Contains(n, "|missing|") {
					t.Errorf("%s: route %s vhost %s names cluster %q, which is not generated", p.ID, rc.Name, vh.Name, n)
				}
			}
		}
	}
}

// listenerHCMs returns the HCMs of a listener (filter chains and
// api_listener).
func listenerHCMs(t *testing.T, l *listenerv3.Listener) []*hcmv3.HttpConnectionManager {
	t.Helper()
	var out []*hcmv3.HttpConnectionManager
	unpack := func(a *anypb.Any) {
		var h hcmv3.HttpConnectionManager
		if a.MessageIs(&h) {
			if err := a.UnmarshalTo(&h); err != nil {
				t.Fatal(err)
			}
			out = append(out, &h)
		}
	}
	if a := l.GetApiListener().GetApiListener(); a != nil {
		unpack(a)
	}
	for _, fc := range l.FilterChains {
		for _, f := range fc.Filters {
			unpack(f.GetTypedConfig())
		}
	}
	return out
}

// checkGRPCShapes asserts what grpc-go's xdsresource validation requires
// (internal/xds/xdsclient/xdsresource/unmarshal_{lds,rds,cds,eds}.go).
func checkGRPCShapes(t *testing.T, res *Resources) {
	t.Helper()
	for _, l := range res.Listeners {
		hcms := listenerHCMs(t, l)
		if l.ApiListener == nil || len(hcms) != 1 {
			t.Errorf("grpc: listener %s: want an api_listener with an HCM", l.Name)
			continue
		}
		h := hcms[0]
		if h.GetRds().GetConfigSource().GetAds() == nil || h.GetRds().GetRouteConfigName() == "" {
			t.Errorf("grpc: listener %s: RDS must use ADS and name the route", l.Name)
		}
		if n := len(h.HttpFilters); n == 0 || h.HttpFilters[n-1].Name != routerFilterName {
			t.Errorf("grpc: listener %s: the router filter must be last", l.Name)
		}
		if h.XffNumTrustedHops != 0 {
			t.Errorf("grpc: listener %s: xff_num_trusted_hops must be 0", l.Name)
		}
	}
	for _, rc := range res.Routes {
		for _, vh := range rc.VirtualHosts {
			for _, r := range vh.Routes {
				if r.Match == nil || r.Match.PathSpecifier == nil {
					t.Errorf("grpc: route %s: a route without a path specifier", rc.Name)
				}
				if ra := r.GetRoute(); ra != nil && ra.GetCluster() == "" && len(ra.GetWeightedClusters().GetClusters()) == 0 {
					t.Errorf("grpc: route %s: no cluster", rc.Name)
				}
			}
		}
	}
	for _, c := range res.Clusters {
		switch c.GetLbPolicy() {
		case clusterv3.Cluster_ROUND_ROBIN, clusterv3.Cluster_LEAST_REQUEST, clusterv3.Cluster_RING_HASH:
		default:
			t.Errorf("grpc: cluster %s: lb_policy %v is not accepted", c.Name, c.GetLbPolicy())
		}
		switch c.GetType() {
		case clusterv3.Cluster_EDS:
			if c.GetEdsClusterConfig().GetEdsConfig().GetAds() == nil {
				t.Errorf("grpc: cluster %s: EDS must use ADS", c.Name)
			}
		case clusterv3.Cluster_LOGICAL_DNS:
			eps := c.GetLoadAssignment().GetEndpoints()
			if len(eps) != 1 || len(eps[0].LbEndpoints) != 1 {
				t.Errorf("grpc: cluster %s: LOGICAL_DNS needs exactly one endpoint", c.Name)
			}
		default:
			t.Errorf("grpc: cluster %s: type %v is not accepted", c.Name, c.GetType())
		}
	}
	for _, cla := range res.Endpoints {
		seen := map[string]bool{}
		for _, l := range cla.Endpoints {
			if l.Locality == nil || l.GetLoadBalancingWeight().GetValue() == 0 {
				t.Errorf("grpc: endpoints %s: every locality needs a Locality and a weight", cla.ClusterName)
			}
			for _, e := range l.LbEndpoints {
				a := e.GetEndpoint().GetAddress().GetSocketAddress()
				k := fmt.Sprintf("%s:%d", a.GetAddress(), a.GetPortValue())
				if seen[k] {
					t.Errorf("grpc: endpoints %s: duplicate %s", cla.ClusterName, k)
				}
				seen[k] = true
				if w := e.GetLoadBalancingWeight(); w != nil && w.Value == 0 {
					t.Errorf("grpc: endpoints %s: zero weight", cla.ClusterName)
				}
			}
		}
	}
}
