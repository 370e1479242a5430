package translate

import (
	"sort"
	"strings"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/weftmesh/weft/internal/model"
)

// httpProxyRoute is Istio's route name for the HTTP proxy listener
// (model.RDSHttpProxy).
const httpProxyRoute = "http_proxy"

// maxDirectResponseBody is Istio's 1 MiB limit for direct response bodies
// (Envoy's default is 4 KiB).
const maxDirectResponseBody = 1 << 20

// vhostBuilder assembles the virtual hosts of one route configuration.
type vhostBuilder struct {
	domains *domainSet
	names   map[string]bool
	vhosts  []*routev3.VirtualHost
	// portFilter drops the domains without a port on ports other than 80,
	// as Istio's mergeAllVirtualHosts does for the HTTP proxy route: a
	// request through a proxy names the port unless it is the default.
	portFilter bool
}

// add appends a virtual host named name (skipped if the name is taken or
// no domain is left).
func (b *vhostBuilder) add(name string, port uint32, domains, alt []string, routes []*routev3.Route) {
	if b.names[name] {
		return
	}
	if b.portFilter && port != 80 {
		kept := domains[:0:0]
		for _, d := range domains {
			if strings.Contains(d, ":") {
				kept = append(kept, d)
			}
		}
		domains = kept
	}
	domains = b.domains.dedupe(domains, alt)
	if len(domains) == 0 {
		return
	}
	b.names[name] = true
	b.vhosts = append(b.vhosts, &routev3.VirtualHost{Name: name, Domains: domains, Routes: routes})
}

// sorted returns the virtual hosts sorted by name (Istio's
// SortVirtualHosts).
func (b *vhostBuilder) sorted() []*routev3.VirtualHost {
	sort.Slice(b.vhosts, func(i, j int) bool { return b.vhosts[i].Name < b.vhosts[j].Name })
	return b.vhosts
}

// routeConfig wraps virtual hosts into a route configuration the way Istio
// does: clusters are not validated (a route may name a subset whose rule
// arrives later; Envoy answers 503 meanwhile) and direct responses may be
// up to 1 MiB.
func routeConfig(name string, vhosts []*routev3.VirtualHost) *routev3.RouteConfiguration {
	return &routev3.RouteConfiguration{
		Name:                           name,
		VirtualHosts:                   vhosts,
		ValidateClusters:               wrapperspb.Bool(false),
		MaxDirectResponseBodySizeBytes: wrapperspb.UInt32(maxDirectResponseBody),
	}
}

// svcPort names one port of one service.
type svcPort struct {
	host string
	port uint32
}

// httpProxyRoutes builds the "http_proxy" route configuration: one virtual
// host per visible service and HTTP port, named "HOST:PORT", whose routes
// come from the mesh VirtualService that owns the host, else a default
// route to outbound|PORT||HOST. VirtualService hosts that are no service
// get virtual hosts too, on the ports of the services the VirtualService
// owns.
//
// Istio builds this configuration with one route list for all ports; weft
// builds the routes of each port separately (as Istio does for its
// per-port routes "8080"), so that port matches and destinations without a
// port resolve as they would on a per-port listener.
func (s *scope) httpProxyRoutes() *routev3.RouteConfiguration {
	b := s.newVhostBuilder(true)
	handled := map[svcPort]bool{}
	for _, vs := range s.vss {
		if !vs.gateways[meshGateway] {
			continue
		}
		owned := s.ownedServices(vs)
		for _, port := range httpPorts(owned) {
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
					handled[svcPort{svc.Hostname, port}] = true
				}
			}
		}
	}
	for _, svc := range s.routable() {
		for _, p := range svc.Ports {
			if !p.Protocol.IsHTTP() || handled[svcPort{svc.Hostname, p.Number}] {
				continue
			}
			domains, alt := serviceDomains(svc, p.Number, s.key.dnsDomain)
			cluster := outboundCluster(p.Number, "", svc.Hostname)
			var route *routev3.Route
			if hp := s.hashPolicy(svc.Hostname, p.Number, ""); hp != nil {
				route = defaultRoute(cluster, hp, routeOpts{port: p.Number})
			} else {
				route = s.st.defaultRoute(cluster, p.Number) // shared by every scope
			}
			b.add(hostPort(svc.Hostname, p.Number), p.Number, domains, alt, []*routev3.Route{route})
		}
	}
	return routeConfig(httpProxyRoute, b.sorted())
}

// newVhostBuilder returns a builder that knows every visible service's
// full names (so that short names never shadow them).
func (s *scope) newVhostBuilder(portFilter bool) *vhostBuilder {
	b := &vhostBuilder{domains: newDomainSet(), names: map[string]bool{}, portFilter: portFilter}
	for _, svc := range s.services {
		b.domains.fqdns[svc.Hostname] = true
		for _, p := range svc.Ports {
			b.domains.fqdns[hostPort(svc.Hostname, p.Number)] = true
		}
	}
	return b
}

// ownedServices returns the visible services whose host vs owns, sorted by
// host.
func (s *scope) ownedServices(vs *vsEntry) []*model.Service {
	var out []*model.Service
	for _, svc := range s.routable() {
		if s.vsHost[svc.Hostname] == vs {
			out = append(out, svc)
		}
	}
	return out
}

// nonServiceHosts returns vs's hosts that name no visible service: exact
// names not in the registry and wildcards that cover no service (Istio's
// separateVSHostsAndServices).
func (s *scope) nonServiceHosts(vs *vsEntry) []string {
	var out []string
	for _, h := range vs.hosts {
		if !model.IsWildcardHost(h) {
			if s.byHost[h] == nil {
				out = append(out, h)
			}
			continue
		}
		covers := false
		for _, svc := range s.services {
			if model.HostMatches(h, svc.Hostname) {
				covers = true
				break
			}
		}
		if !covers {
			out = append(out, h)
		}
	}
	return out
}

// httpPorts returns the HTTP port numbers of services, sorted, once each.
func httpPorts(services []*model.Service) []uint32 {
	seen := map[uint32]bool{}
	var out []uint32
	for _, svc := range services {
		for _, p := range svc.Ports {
			if p.Protocol.IsHTTP() && !seen[p.Number] {
				seen[p.Number] = true
				out = append(out, p.Number)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}
