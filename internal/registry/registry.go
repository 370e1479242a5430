// Package registry holds weft-control's service registries: the sources of
// the mesh's services and their endpoints (model.Service, model.Endpoint).
//
// A registry turns one kind of source into services. In file mode the source
// is the configuration itself: ServiceEntry and WorkloadEntry objects (File,
// and the pure function FromConfig behind it, with Istio's ServiceEntry
// semantics). Kubernetes Services and EndpointSlices are a second Registry
// beside it (internal/registry/kube). An Aggregate merges several registries into the
// one list of services a model.Snapshot is built from, resolving a hostname
// declared twice in one namespace the way Istio does.
//
// Data flows one way: config objects → registry → []*model.Service →
// model.Snapshot. Registries never reach into translation or xDS; they only
// say "my services may have changed" (Subscribe), and the control plane
// builds a new snapshot.
package registry

import (
	"sort"
	"sync"

	"github.com/weftmesh/weft/internal/model"
)

// Provider is the kind of source a registry reads. The values are Istio's
// provider IDs (pilot/pkg/serviceregistry/provider): they decide precedence
// when two registries declare the same hostname in the same namespace.
type Provider string

// Providers.
const (
	// Kubernetes: Services and EndpointSlices. A Kubernetes service takes
	// precedence over a service of any other provider with the same hostname
	// and namespace, as in Istio (no "domain squatting" by a ServiceEntry).
	Kubernetes Provider = "Kubernetes"
	// External: ServiceEntry and WorkloadEntry objects (Istio calls the
	// ServiceEntry registry "External").
	External Provider = "External"
)

// Source is what consumers of services need: the current list and a signal
// when it changes. An Aggregate is a Source; so is every Registry.
type Source interface {
	// Services returns the current services: at most one per (Hostname,
	// Namespace), sorted by Hostname then Namespace, each with its
	// Endpoints sorted (model.Service documents the order).
	//
	// The returned slice and everything it points to are immutable: callers
	// must not modify them, and the source never modifies values it has
	// returned (a change produces new values). Successive calls may return
	// the same pointers when nothing changed, so a consumer can compare
	// pointers to find what did not change. Safe for concurrent use; never
	// blocks on I/O.
	Services() []*model.Service

	// Subscribe registers f to be called each time Services may return
	// something new because the source's own inputs changed. f carries no
	// data: the subscriber calls Services afterwards. f is called after the
	// new services are visible through Services, on the goroutine that
	// made the change, with no lock of the source held. f must return
	// quickly and must not block (a non-blocking channel send or setting a
	// dirty flag is the intended use); it may call Services, Subscribe and
	// cancel functions. Calls may coalesce: one call can stand for several
	// changes.
	//
	// cancel removes f; it is idempotent. A notification already in
	// progress when cancel is called may still call f once.
	Subscribe(f func()) (cancel func())
}

// Registry is one source of services, with an identity.
type Registry interface {
	Source
	// Name identifies the registry in errors and debug output, for example
	// "file" or "kubernetes/cluster-1". Unique within an Aggregate.
	Name() string
	// Provider is the kind of source the registry reads.
	Provider() Provider
}

// subscribers is the Subscribe half of a Source: a set of callbacks,
// notified in the order they subscribed.
type subscribers struct {
	mu   sync.Mutex
	next uint64
	fns  map[uint64]func()
}

// add registers f and returns its cancel function.
func (s *subscribers) add(f func()) func() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fns == nil {
		s.fns = map[uint64]func(){}
	}
	id := s.next
	s.next++
	s.fns[id] = f
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		delete(s.fns, id)
	}
}

// notify calls every subscriber, without holding the lock, so that a
// callback may subscribe or cancel.
func (s *subscribers) notify() {
	s.mu.Lock()
	ids := make([]uint64, 0, len(s.fns))
	for id := range s.fns {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	fns := make([]func(), len(ids))
	for i, id := range ids {
		fns[i] = s.fns[id]
	}
	s.mu.Unlock()
	for _, f := range fns {
		f()
	}
}

// Subscribers is the Subscribe half of a Source, for registries outside
// this package (internal/registry/kube): Add registers a callback, Notify
// calls every callback in the order they were added, with no lock held.
// The zero value is ready to use; safe for concurrent use.
type Subscribers struct{ s subscribers }

// Add registers f and returns its idempotent cancel function.
func (s *Subscribers) Add(f func()) (cancel func()) { return s.s.add(f) }

// Notify calls every registered callback on the caller's goroutine.
func (s *Subscribers) Notify() { s.s.notify() }
