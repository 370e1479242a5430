package translate

import (
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"sort"
	"strconv"
	"strings"
	"sync"

	networking "istio.io/api/networking/v1alpha3"

	"github.com/weftmesh/weft/internal/config"
	"github.com/weftmesh/weft/internal/model"
)

// keptSnapshots is how many snapshots the cache keeps state for: the newest
// and the one before, so that a push still in flight for the previous
// snapshot does not evict the new one.
const keptSnapshots = 2

// cache holds the state derived from the newest snapshots. Safe for
// concurrent use.
type cache struct {
	mu     sync.Mutex
	states []*snapState // newest first
}

func newCache() *cache { return &cache{} }

// state returns the derived state of s, creating it (and evicting the
// oldest) when s is new.
func (c *cache) state(s *model.Snapshot, o Options) *snapState {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, st := range c.states {
		if st.snap == s {
			return st
		}
	}
	st := newSnapState(s, o)
	if len(c.states) > 0 {
		st.inherit(c.states[0])
	}
	c.states = append([]*snapState{st}, c.states...)
	if len(c.states) > keptSnapshots {
		c.states = c.states[:keptSnapshots]
	}
	return st
}

// defaultRoute returns the shared default route to an outbound cluster
// of port (defaultRoute with no hash policy and no VirtualService).
func (st *snapState) defaultRoute(cluster string, port uint32) *routev3.Route {
	st.mu.Lock()
	defer st.mu.Unlock()
	r, ok := st.defaultRoutes[cluster]
	if !ok {
		r = defaultRoute(cluster, nil, routeOpts{port: port})
		st.defaultRoutes[cluster] = r
	}
	return r
}

// inherit seeds st's memos with what prev built that still holds for
// st's snapshot: the cluster sets of services that are still in it (same
// identity, so unchanged) under rules that still apply the same way (the
// key holds the rule's spec), and every default route (it depends on the
// cluster name only). A push after a VirtualService change then rebuilds
// no cluster at all. Entries are shared, never modified.
func (st *snapState) inherit(prev *snapState) {
	prev.mu.Lock()
	defer prev.mu.Unlock()
	services := make(map[*model.Service]bool, len(st.snap.Services))
	for _, svc := range st.snap.Services {
		services[svc] = true
	}
	rules := map[*networking.DestinationRule]bool{}
	for _, obj := range st.snap.List(config.DestinationRule) {
		if spec, ok := obj.Spec.(*networking.DestinationRule); ok {
			rules[spec] = true
		}
	}
	for k, cs := range prev.clusters {
		if services[k.svc] && (k.dr == nil || rules[k.dr]) {
			st.clusters[k] = cs
			for _, w := range cs.warns {
				st.warns.add(w)
			}
		}
	}
	for name, r := range prev.defaultRoutes {
		st.defaultRoutes[name] = r
	}
}

// retain keeps only the state of s (if any).
func (c *cache) retain(s *model.Snapshot) {
	c.mu.Lock()
	defer c.mu.Unlock()
	kept := c.states[:0]
	for _, st := range c.states {
		if st.snap == s {
			kept = append(kept, st)
		}
	}
	clear(c.states[len(kept):])
	c.states = kept
}

// snapState is everything derived from one snapshot: its index, its static
// warnings, the warnings met while generating, and the outbound resources of
// every scope generated so far.
type snapState struct {
	snap *model.Snapshot
	opts Options
	idx  *index

	staticOnce sync.Once
	static     []*config.Error
	warns      warnSet

	instOnce sync.Once
	inst     instances // built on the first inbound lookup

	mu     sync.Mutex
	scopes map[scopeKey]*scopeEntry
	// clusters memoises the clusters and load assignments of one service
	// for one DestinationRule, shared by every scope that resolves the
	// same rule.
	clusters map[clusterMemoKey]*clusterSet
	// defaultRoutes memoises the default route (no VirtualService, no
	// hash policy) of each outbound cluster: the HTTP proxy route of every
	// scope holds one per visible service, so sharing them saves a copy
	// per namespace. Routes are immutable once built.
	defaultRoutes map[string]*routev3.Route
}

func newSnapState(s *model.Snapshot, o Options) *snapState {
	return &snapState{
		snap:     s,
		opts:     o,
		idx:      newIndex(s, o.ClusterDomain),
		scopes:   map[scopeKey]*scopeEntry{},
		clusters: map[clusterMemoKey]*clusterSet{},

		defaultRoutes: map[string]*routev3.Route{},
	}
}

// scopeKey is everything a proxy's outbound resources depend on. Two
// proxies with equal keys get the same shared resources; nothing else of
// the proxy may be read while building them.
type scopeKey struct {
	typ       model.NodeType
	proxyless bool
	namespace string
	dnsDomain string
	sidecar   config.Key // zero: no Sidecar resource applies
	gateways  string     // routers: the selected Gateways, "ns/name" joined by ","
	selectors string     // ids of the label selectors the proxy matches, joined by ","
	mtls      bool       // the proxy has a workload certificate (hasMeshCert)
	capture   bool       // INTERCEPTION_MODE REDIRECT (capture.go)
}

// scopeEntry builds one scope's outbound resources once.
type scopeEntry struct {
	once sync.Once
	sc   *scope
	out  *outbound
}

// keyFor computes proxy p's scope key.
func (st *snapState) keyFor(p *model.Proxy) scopeKey {
	k := scopeKey{
		typ:       p.Type,
		proxyless: p.Proxyless,
		namespace: p.Namespace,
		dnsDomain: p.DNSDomain,
		mtls:      !p.Proxyless && hasMeshCert(p),
		capture:   captures(p),
	}
	if k.dnsDomain == "" {
		k.dnsDomain = p.Namespace + ".svc." + st.opts.ClusterDomain
	}
	if p.Type == model.Router {
		k.gateways = strings.Join(st.idx.gatewaysFor(p), ",")
	} else if sc := st.idx.sidecarFor(p); sc != nil {
		k.sidecar = sc.obj.Key()
	}
	if ids := st.idx.matchedSelectors(p); len(ids) > 0 {
		parts := make([]string, len(ids))
		for i, id := range ids {
			parts[i] = strconv.Itoa(id)
		}
		k.selectors = strings.Join(parts, ",")
	}
	return k
}

// scope returns the scope of key k with its outbound resources, building
// them on first use. Concurrent callers for one key wait for one build.
func (st *snapState) scope(k scopeKey) (*scope, *outbound) {
	st.mu.Lock()
	e := st.scopes[k]
	if e == nil {
		e = &scopeEntry{}
		st.scopes[k] = e
	}
	st.mu.Unlock()
	e.once.Do(func() {
		e.sc = newScope(st, k)
		e.out = e.sc.buildOutbound()
	})
	return e.sc, e.out
}

// warnings returns the static warnings of the snapshot and those met while
// generating, sorted and without repeats.
func (st *snapState) warnings() []*config.Error {
	st.staticOnce.Do(func() { st.static = staticWarnings(st.idx) })
	var all warnSet
	for _, w := range st.static {
		all.add(w)
	}
	for _, w := range st.warns.list() {
		all.add(w)
	}
	return all.list()
}

// warnSet collects warnings once per object, field and message. Safe for
// concurrent use.
type warnSet struct {
	mu   sync.Mutex
	seen map[[4]string]bool
	errs []*config.Error
}

func (w *warnSet) add(e *config.Error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	k := [4]string{e.Key.String(), e.Path, e.Message, e.Source.String()}
	if w.seen[k] {
		return
	}
	if w.seen == nil {
		w.seen = map[[4]string]bool{}
	}
	w.seen[k] = true
	w.errs = append(w.errs, e)
}

// list returns the warnings sorted by object, then field path.
func (w *warnSet) list() []*config.Error {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := append([]*config.Error(nil), w.errs...)
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if ka, kb := a.Key.String(), b.Key.String(); ka != kb {
			return ka < kb
		}
		if a.Path != b.Path {
			return a.Path < b.Path
		}
		return a.Message < b.Message
	})
	return out
}

// warnObject records a warning about a field of obj.
func (w *warnSet) warnObject(obj *config.Object, path, msg string) {
	w.add(objectWarning(obj, path, msg))
}

// objectWarning is a warning about a field of obj.
func objectWarning(obj *config.Object, path, msg string) *config.Error {
	return &config.Error{Source: obj.Source, Key: obj.Key(), Path: path, Message: msg, Warning: true}
}
