package translate

import (
	"sort"
	"strings"
	"sync"

	networking "istio.io/api/networking/v1alpha3"

	"github.com/weftmesh/weft/internal/model"
)

// scope is the outbound view shared by every proxy of one scopeKey: the
// services, VirtualServices and DestinationRules such a proxy sees (exportTo
// and its Sidecar's egress hosts applied). It reads nothing of a proxy but
// its key.
type scope struct {
	st  *snapState
	idx *index
	key scopeKey
	ns  string

	sidecar *sidecarEntry
	egress  []egressHost
	// gateways are the route gateway names this scope serves: "mesh" for
	// sidecars and proxyless clients, the selected Gateways for routers.
	gateways map[string]bool
	matched  map[int]bool // label selectors matched (by id)

	services []*model.Service // visible, one per host name, sorted by host
	// routableList is services without resolution NONE (see routable).
	routableList []*model.Service
	byHost       map[string]*model.Service
	vss          []*vsEntry // visible, the proxy's namespace first

	// Memos filled while building the scope (one goroutine).
	drMemo map[string]*drEntry
	vsHost map[string]*vsEntry // host → the mesh VirtualService that owns it

	// gwPorts are a router's listeners before policy filters (gateway.go),
	// gwShared the listeners built from them without any, once.
	gwPorts  []gwPort
	gwOnce   sync.Once
	gwShared []builtListener

	// httpProxy memoises the per-address HTTP proxy listener.
	mu        sync.Mutex
	httpProxy map[string]*builtListener

	// alogs memoises the access logs per mode (accesslog.go).
	alogs alogMemo
}

// egressHost is one Sidecar egress host, "ns/dnsName", with "." resolved
// to the proxy's namespace.
type egressHost struct {
	ns   string // a namespace, "*" or "~"
	host string
}

// newScope computes the view of key k.
func newScope(st *snapState, k scopeKey) *scope {
	s := &scope{
		st: st, idx: st.idx, key: k, ns: k.namespace,
		gateways:  map[string]bool{},
		matched:   map[int]bool{},
		byHost:    map[string]*model.Service{},
		drMemo:    map[string]*drEntry{},
		httpProxy: map[string]*builtListener{},
	}
	if k.selectors != "" {
		for _, id := range strings.Split(k.selectors, ",") {
			s.matched[atoiOrNeg(id)] = true
		}
	}
	if k.typ == model.Router {
		for _, g := range strings.Split(k.gateways, ",") {
			if g != "" {
				s.gateways[g] = true
			}
		}
	} else {
		s.gateways[meshGateway] = true
		s.sidecar = s.findSidecar()
		s.egress = parseEgress(s.sidecar, k.namespace)
	}
	s.selectVirtualServices()
	s.selectServices()
	s.indexVirtualServiceHosts()
	return s
}

// findSidecar returns the Sidecar named by the key.
func (s *scope) findSidecar() *sidecarEntry {
	if s.key.sidecar.Name == "" {
		return nil
	}
	for _, sc := range s.idx.sidecars[s.key.sidecar.Namespace] {
		if sc.obj.Name == s.key.sidecar.Name {
			return sc
		}
	}
	return nil
}

// parseEgress returns the egress hosts of a Sidecar ("*/*" when there is
// no Sidecar or it has no egress listener, as Istio's default scope).
func parseEgress(sc *sidecarEntry, proxyNs string) []egressHost {
	if sc == nil || len(sc.spec.Egress) == 0 {
		return []egressHost{{ns: "*", host: "*"}}
	}
	var out []egressHost
	for _, l := range sc.spec.Egress {
		out = append(out, parseEgressHosts(l, proxyNs)...)
	}
	return out
}

// imported reports whether the egress hosts admit host name h of an object
// in namespace ns.
func (s *scope) imported(ns, h string) bool {
	if s.key.typ == model.Router {
		return true
	}
	for _, e := range s.egress {
		if e.ns == "~" || (e.ns != "*" && e.ns != ns) {
			continue
		}
		if model.HostMatches(e.host, h) {
			return true
		}
	}
	return false
}

// selectVirtualServices keeps the VirtualServices exported to the proxy's
// namespace and admitted by its egress hosts, the proxy's own namespace
// first (Istio gives a namespace's own VirtualServices precedence).
func (s *scope) selectVirtualServices() {
	var own, other []*vsEntry
	for _, vs := range s.idx.virtualServices {
		if !model.ExportedTo(vs.spec.ExportTo, vs.obj.Namespace, s.ns) {
			continue
		}
		ok := false
		for _, h := range vs.hosts {
			if s.imported(vs.obj.Namespace, h) {
				ok = true
				break
			}
		}
		if !ok {
			continue
		}
		if vs.obj.Namespace == s.ns {
			own = append(own, vs)
		} else {
			other = append(other, vs)
		}
	}
	s.vss = append(own, other...)
}

// selectServices keeps the services exported to the proxy's namespace and
// admitted by its egress hosts, plus the destinations of the selected
// VirtualServices (as Istio's SidecarScope adds them), one per host name:
// the proxy namespace's when it declares the host, else the first by
// namespace.
func (s *scope) selectServices() {
	for _, svc := range s.idx.snap.Services {
		if svc.VisibleTo(s.ns) && s.imported(svc.Namespace, svc.Hostname) {
			s.addService(svc)
		}
	}
	for _, vs := range s.vss {
		for _, h := range destinationHosts(vs) {
			if _, ok := s.byHost[s.idx.fqdn(h, vs.obj.Namespace)]; ok {
				continue
			}
			for _, svc := range s.idx.snap.ServicesByHost(s.idx.fqdn(h, vs.obj.Namespace)) {
				if svc.VisibleTo(s.ns) {
					s.addService(svc)
				}
			}
		}
	}
	s.services = s.services[:0]
	for _, svc := range s.byHost {
		s.services = append(s.services, svc)
	}
	sort.Slice(s.services, func(i, j int) bool { return s.services[i].Hostname < s.services[j].Hostname })
	for _, svc := range s.services {
		if svc.Resolution != model.Passthrough {
			s.routableList = append(s.routableList, svc)
		}
	}
}

// addService records svc unless a service of the same host is already
// kept and is the proxy namespace's (or svc is not).
func (s *scope) addService(svc *model.Service) {
	prev, ok := s.byHost[svc.Hostname]
	if ok && (prev.Namespace == s.ns || svc.Namespace != s.ns) {
		return
	}
	s.byHost[svc.Hostname] = svc
}

// destinationHosts lists the destination hosts of every route of vs, as
// written.
func destinationHosts(vs *vsEntry) []string {
	var out []string
	for _, h := range vs.spec.Http {
		for _, d := range h.Route {
			out = append(out, d.GetDestination().GetHost())
		}
	}
	for _, t := range vs.spec.Tcp {
		for _, d := range t.Route {
			out = append(out, d.GetDestination().GetHost())
		}
	}
	for _, t := range vs.spec.Tls {
		for _, d := range t.Route {
			out = append(out, d.GetDestination().GetHost())
		}
	}
	return out
}

// indexVirtualServiceHosts decides, for every visible service host, which
// mesh-bound VirtualService owns it: the first (in precedence order) that
// names the host exactly, else the one with the most specific wildcard host
// that covers it (Istio's mostSpecificWildcardVsIndex).
func (s *scope) indexVirtualServiceHosts() {
	s.vsHost = map[string]*vsEntry{}
	var wild []*vsEntry
	for _, vs := range s.vss {
		if !vs.gateways[meshGateway] {
			continue
		}
		for _, h := range vs.hosts {
			if model.IsWildcardHost(h) {
				wild = append(wild, vs)
				continue
			}
			if _, ok := s.vsHost[h]; !ok {
				s.vsHost[h] = vs
			}
		}
	}
	for _, svc := range s.services {
		if _, ok := s.vsHost[svc.Hostname]; ok {
			continue
		}
		best, bestLen := (*vsEntry)(nil), -1
		for _, vs := range wild {
			for _, h := range vs.hosts {
				if model.IsWildcardHost(h) && model.HostSubsetOf(svc.Hostname, h) && len(h) > bestLen {
					best, bestLen = vs, len(h)
				}
			}
		}
		if best != nil {
			s.vsHost[svc.Hostname] = best
		}
	}
}

// routable returns the visible services that get outbound clusters:
// resolution NONE needs ORIGINAL_DST clusters, which weft-proxy does not
// support yet, so those get no routes or listeners either (a static
// warning says so).
func (s *scope) routable() []*model.Service { return s.routableList }

// sourceMatches reports whether a match's sourceLabels (registered in the
// index under msg) select this scope's proxies.
func (s *scope) sourceMatches(msg any, labels map[string]string) bool {
	if len(labels) == 0 {
		return true
	}
	id, ok := s.idx.selectorID[msg]
	return ok && s.matched[id]
}

// gatewayMatches reports whether a match's gateways list (resolved in
// namespace ns) admits this scope: an empty list always does.
func (s *scope) gatewayMatches(gateways []string, ns string) bool {
	if len(gateways) == 0 {
		return true
	}
	for _, g := range gateways {
		if s.gateways[resolveGateway(g, ns)] {
			return true
		}
	}
	return false
}

// destRule returns the DestinationRule that applies to host for this
// scope's proxies, in Istio's lookup order: a rule with a matching
// workloadSelector in the proxy's namespace, a rule in the proxy's
// namespace, an exported rule in the service's namespace, an exported rule
// in the root namespace. Within a namespace the most specific host wins.
func (s *scope) destRule(host string) *drEntry {
	if dr, ok := s.drMemo[host]; ok {
		return dr
	}
	dr := s.lookupDestRule(host)
	s.drMemo[host] = dr
	return dr
}

func (s *scope) lookupDestRule(host string) *drEntry {
	root := s.idx.snap.RootNamespace
	if dr := s.mostSpecific(s.ns, host, true); dr != nil {
		return dr
	}
	if svc := s.byHost[host]; svc != nil && svc.Namespace != s.ns {
		if dr := s.mostSpecific(svc.Namespace, host, false); dr != nil {
			return dr
		}
	}
	if s.ns != root {
		return s.mostSpecific(root, host, false)
	}
	return nil
}

// mostSpecific returns the rule of namespace ns visible to the proxy whose
// host covers host most specifically; own says ns is the proxy's namespace
// (rules with a matching workloadSelector come first there).
func (s *scope) mostSpecific(ns, host string, own bool) *drEntry {
	var best *drEntry
	for _, selectorPass := range []bool{true, false} {
		if selectorPass && !own {
			continue
		}
		for _, dr := range s.idx.destRules[ns] {
			if (dr.selector != nil) != selectorPass {
				continue
			}
			if selectorPass && !s.sourceMatches(dr.spec, dr.selector) {
				continue
			}
			if !model.ExportedTo(dr.spec.ExportTo, ns, s.ns) || !model.HostSubsetOf(host, dr.host) {
				continue
			}
			if best == nil || moreSpecific(dr.host, best.host) {
				best = dr
			}
		}
		if best != nil {
			return best
		}
	}
	return nil
}

// moreSpecific reports whether host pattern a is more specific than b: an
// exact name beats a wildcard, a longer wildcard beats a shorter one.
func moreSpecific(a, b string) bool {
	aw, bw := model.IsWildcardHost(a), model.IsWildcardHost(b)
	if aw != bw {
		return !aw
	}
	return len(a) > len(b)
}

// policy returns the traffic policy of host's DestinationRule for port and
// subset ("" for none), merged as Istio does (port-level settings replace
// the destination-level ones wholesale; subset fields override).
func (s *scope) policy(host string, port uint32, subset string) *networking.TrafficPolicy {
	dr := s.destRule(host)
	if dr == nil {
		return nil
	}
	return mergedPolicy(dr.spec, port, subset)
}

// serviceFor returns the visible service of host, preferring the one of
// namespace ns when several namespaces declare it.
func (s *scope) serviceFor(host, ns string) *model.Service {
	for _, svc := range s.idx.snap.ServicesByHost(host) {
		if svc.Namespace == ns && svc.VisibleTo(s.ns) {
			return svc
		}
	}
	return s.byHost[host]
}

// atoiOrNeg parses a small non-negative integer, -1 on error.
func atoiOrNeg(s string) int {
	n := 0
	if s == "" {
		return -1
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return -1
		}
		n = n*10 + int(c-'0')
	}
	return n
}
