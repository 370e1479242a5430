package translate

import (
	"fmt"
	"net/netip"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/weftmesh/weft/internal/model"
)

// buildProxyless adds the resources of a proxyless gRPC client (grpc-go's
// xds:/// resolver): for every visible service HTTP port, a listener named
// "HOST:PORT" — the name the client asks for — holding an api_listener
// whose HCM fetches the route configuration "HOST:PORT" over ADS; that
// configuration has one virtual host for the service (its names with the
// port, as Istio's proxyless domains) with the routes of the mesh
// VirtualService that owns the host, else a default route. Istio names the
// route configuration like the cluster (outbound|PORT||HOST); weft uses the
// listener's name.
//
// Clusters are EDS (LOGICAL_DNS for DNS services) with the policies
// grpc-go implements; see newCluster and applyProxylessPolicy.
func (s *scope) buildProxyless(o *outbound) {
	for _, svc := range s.routable() {
		for _, p := range svc.Ports {
			if !p.Protocol.IsHTTP() {
				continue
			}
			name := hostPort(svc.Hostname, p.Number)
			o.listeners.put(hash(name, proxylessListener(name, svc, p.Number)))
			o.routes.put(hash(name, &routev3.RouteConfiguration{
				Name:         name,
				VirtualHosts: []*routev3.VirtualHost{s.proxylessVhost(name, svc, p.Number)},
			}))
		}
	}
	s.addServiceClusters(o)
}

// proxylessListener is the api_listener grpc-go accepts: an HCM with the
// router filter last and RDS over ADS (grpc-go's
// xdsresource.processClientSideListener).
func proxylessListener(name string, svc *model.Service, port uint32) *listenerv3.Listener {
	addr := "0.0.0.0"
	if len(svc.Addresses) > 0 {
		if _, err := netip.ParseAddr(svc.Addresses[0]); err == nil {
			addr = svc.Addresses[0]
		}
	}
	return &listenerv3.Listener{
		Name:    name,
		Address: socketAddress(addr, port),
		ApiListener: &listenerv3.ApiListener{ApiListener: mustAny(httpConnectionManager(hcmOptions{
			statPrefix: name, rds: name, proxyless: true,
		}))},
	}
}

// proxylessVhost is the one virtual host of a proxyless route
// configuration.
func (s *scope) proxylessVhost(name string, svc *model.Service, port uint32) *routev3.VirtualHost {
	o := routeOpts{port: port, proxyless: true}
	var routes []*routev3.Route
	if vs := s.vsHost[svc.Hostname]; vs != nil {
		s.warnProxyless(vs)
		routes = s.httpRoutes(vs, o)
	}
	if len(routes) == 0 {
		cluster := outboundCluster(port, "", svc.Hostname)
		routes = []*routev3.Route{defaultRoute(cluster, s.hashPolicy(svc.Hostname, port, ""), o)}
	}
	domains, _ := serviceDomains(svc, port, s.key.dnsDomain)
	return &routev3.VirtualHost{Name: name, Domains: newDomainSet().dedupe(domains, nil), Routes: routes}
}

// warnProxyless records the features of vs that grpc-go does not
// implement (internal/xds/xdsclient/xdsresource/unmarshal_rds.go and the
// xDS resolver's config selector): it ignores header mutations and
// rewrites, fails RPCs that hit a redirect or direct response, skips routes
// with query matches, matches headers against the RPC's metadata only (no
// pseudo-headers) and fails inverted matches on missing headers.
func (s *scope) warnProxyless(vs *vsEntry) {
	const msg = "not applied for proxyless gRPC clients: grpc-go %s"
	for i, h := range vs.spec.Http {
		path := fmt.Sprintf("spec.http[%d]", i)
		if h.Headers != nil || destinationHeaders(h) {
			s.st.warns.warnObject(vs.obj, path+".headers", fmt.Sprintf(msg, "ignores header operations"))
		}
		if h.Rewrite != nil {
			s.st.warns.warnObject(vs.obj, path+".rewrite", fmt.Sprintf(msg, "does not rewrite requests"))
		}
		if h.Redirect != nil {
			s.st.warns.warnObject(vs.obj, path+".redirect", fmt.Sprintf(msg, "fails RPCs whose route redirects"))
		}
		if h.DirectResponse != nil {
			s.st.warns.warnObject(vs.obj, path+".directResponse", fmt.Sprintf(msg, "fails RPCs whose route answers directly"))
		}
		for j, m := range h.Match {
			mp := fmt.Sprintf("%s.match[%d]", path, j)
			if len(m.QueryParams) > 0 {
				s.st.warns.warnObject(vs.obj, mp+".queryParams", fmt.Sprintf(msg, "skips routes that match on query parameters"))
			}
			if len(m.WithoutHeaders) > 0 {
				s.st.warns.warnObject(vs.obj, mp+".withoutHeaders", fmt.Sprintf(msg, "fails an inverted match when the header is missing"))
			}
			if m.Method != nil || m.Authority != nil || m.Scheme != nil {
				s.st.warns.warnObject(vs.obj, mp, fmt.Sprintf(msg, "matches metadata only: method, authority and scheme matches never match"))
			}
		}
	}
}

// destinationHeaders reports whether a destination of h has header
// operations.
func destinationHeaders(h *networking.HTTPRoute) bool {
	for _, d := range h.Route {
		if d.Headers != nil {
			return true
		}
	}
	return false
}
