package registry

import (
	"fmt"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/weftmesh/weft/internal/config"
	"github.com/weftmesh/weft/internal/model"
)

// Input is one registry's services, for Merge.
type Input struct {
	Registry string
	Provider Provider
	// Services as Source.Services returns them.
	Services []*model.Service
}

// Merge combines the services of several registries into one list with at
// most one service per (hostname, namespace), following Istio (merge.go
// has the details):
//
//   - Precedence: Kubernetes registries first, then the others, each group
//     in the order of inputs (Istio's aggregate controller places
//     Kubernetes registries first; among services of equal standing Istio
//     keeps the oldest, and weft has no creation time across registries, so
//     the configured order stands in for it).
//   - Kubernetes + Kubernetes (one Service in several clusters): the first
//     one's attributes, every cluster's addresses, all endpoints.
//   - Otherwise the first wins; a later one with the same ports merges its
//     endpoints, one that agrees on resolution, exportTo and provider also
//     adds its new port numbers, and any other is ignored except for its
//     endpoints on the port names both declare. Each of these yields a
//     warning naming both declarations.
//
// The result is sorted by hostname then namespace. Inputs are not
// modified; services no other registry declares are returned as they are
// (the same pointers).
func Merge(inputs []Input) ([]*model.Service, []*config.Error) {
	ordered := append([]Input(nil), inputs...)
	sort.SliceStable(ordered, func(i, j int) bool {
		return ordered[i].Provider == Kubernetes && ordered[j].Provider != Kubernetes
	})
	groups := map[hostKey][]candidate{}
	var order []hostKey
	for _, in := range ordered {
		for _, s := range in.Services {
			k := hostKey{s.Hostname, s.Namespace}
			if _, ok := groups[k]; !ok {
				order = append(order, k)
			}
			groups[k] = append(groups[k], candidate{
				svc: s, provider: in.Provider, attrs: serviceAttrs(s),
				who:   fmt.Sprintf("%s in registry %s (%s)", s.Source, in.Registry, in.Provider),
				order: "registries are ordered Kubernetes first, then as configured, where Istio uses creation time",
			})
		}
	}
	out := make([]*model.Service, 0, len(order))
	var problems []*config.Error
	for _, k := range order {
		svc, errs := mergeGroup(groups[k])
		out = append(out, svc)
		problems = append(problems, errs...)
	}
	sortServices(out)
	sortErrors(problems)
	return out, problems
}

// Aggregate is a Source over several registries: their services merged by
// Merge. It subscribes to each registry and notifies its own subscribers
// when any of them changes; the merge runs lazily, on the first Services
// or Result call after a change, and its result is cached.
//
// Safe for concurrent use.
type Aggregate struct {
	regs    []Registry
	cancels []func()
	subs    subscribers

	gen atomic.Uint64 // bumped by every registry notification

	mu        sync.Mutex
	cachedGen uint64
	cached    *aggregateResult
}

type aggregateResult struct {
	services []*model.Service
	problems []*config.Error
}

var _ Source = (*Aggregate)(nil)

// NewAggregate returns an Aggregate over regs, which must have distinct
// names. Their order sets precedence among registries of one provider
// (see Merge). Call Close to unsubscribe from them.
func NewAggregate(regs ...Registry) (*Aggregate, error) {
	seen := map[string]bool{}
	for _, r := range regs {
		if seen[r.Name()] {
			return nil, fmt.Errorf("registry: two registries are named %q; give each a distinct name", r.Name())
		}
		seen[r.Name()] = true
	}
	a := &Aggregate{regs: append([]Registry(nil), regs...)}
	a.gen.Store(1) // cachedGen starts at 0: the first call merges
	for _, r := range a.regs {
		a.cancels = append(a.cancels, r.Subscribe(a.changed))
	}
	return a, nil
}

// changed runs when a registry notifies: it invalidates the cache, then
// passes the signal on.
func (a *Aggregate) changed() {
	a.gen.Add(1)
	a.subs.notify()
}

// Registries returns the registries, in the order given.
func (a *Aggregate) Registries() []Registry { return append([]Registry(nil), a.regs...) }

// Services implements Source.
func (a *Aggregate) Services() []*model.Service {
	s, _ := a.Result()
	return s
}

// Result returns the merged services and the merge's warnings, from one
// and the same merge. Both are immutable.
func (a *Aggregate) Result() ([]*model.Service, []*config.Error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	// Read the generation before the registries: a change that lands
	// during the merge bumps it again, so the next call merges again.
	gen := a.gen.Load()
	if a.cached == nil || a.cachedGen != gen {
		a.cached = a.merge()
		a.cachedGen = gen
	}
	return a.cached.services, a.cached.problems
}

func (a *Aggregate) merge() *aggregateResult {
	if len(a.regs) == 1 {
		return &aggregateResult{services: a.regs[0].Services()}
	}
	inputs := make([]Input, len(a.regs))
	for i, r := range a.regs {
		inputs[i] = Input{Registry: r.Name(), Provider: r.Provider(), Services: r.Services()}
	}
	s, p := Merge(inputs)
	return &aggregateResult{services: s, problems: p}
}

// Subscribe implements Source: f is called whenever one of the registries
// notifies.
func (a *Aggregate) Subscribe(f func()) func() { return a.subs.add(f) }

// Close unsubscribes from the registries. The Aggregate still answers
// Services afterwards, but no longer notices changes.
func (a *Aggregate) Close() {
	for _, c := range a.cancels {
		c()
	}
}
