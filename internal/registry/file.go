package registry

import (
	"cmp"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/weftmesh/weft/internal/config"
	"github.com/weftmesh/weft/internal/model"
)

// File is the file-mode registry: its services come from the ServiceEntry
// and WorkloadEntry objects of the configuration (FromConfig). The control
// plane calls Update with the current objects each time the configuration
// changes; File recomputes only when a ServiceEntry or WorkloadEntry
// changed, then notifies its subscribers.
//
// Safe for concurrent use: Services never blocks (it reads an atomically
// swapped result); Updates are serialised.
type File struct {
	o    FileOptions
	subs subscribers

	updateMu sync.Mutex // serialises Update: swaps and notifications keep their order
	state    atomic.Pointer[fileState]
}

// fileState is one immutable result of FromConfig.
type fileState struct {
	// raw lists the inputs in the order the last Update got them; inputs
	// lists them sorted by key.
	raw      []inputVersion
	inputs   []inputVersion
	services []*model.Service
	problems []*config.Error
}

// inputVersion identifies one input object's content: its version, or the
// object itself when it has none.
type inputVersion struct {
	key     config.Key
	version string
	obj     *config.Object
}

var _ Registry = (*File)(nil)

// NewFile returns an empty file registry.
func NewFile(o FileOptions) *File {
	if o.Name == "" {
		o.Name = DefaultFileName
	}
	f := &File{o: o}
	f.state.Store(&fileState{})
	return f
}

// Name implements Registry.
func (f *File) Name() string { return f.o.Name }

// Provider implements Registry: External, Istio's name for the ServiceEntry
// registry.
func (f *File) Provider() Provider { return External }

// Services implements Source.
func (f *File) Services() []*model.Service { return f.state.Load().services }

// Problems returns the problems of the last computation (FromConfig's
// errors and warnings). The slice is immutable.
func (f *File) Problems() []*config.Error { return f.state.Load().problems }

// Subscribe implements Source. Subscribers are called by Update.
func (f *File) Subscribe(fn func()) func() { return f.subs.add(fn) }

// Update replaces the registry's inputs with objs (the whole current
// configuration; kinds other than ServiceEntry and WorkloadEntry are
// ignored, and objs is not retained beyond those). When the ServiceEntries
// and WorkloadEntries differ from the previous Update (by key and
// config.Object.Version), it recomputes the services, publishes them and
// notifies subscribers before returning; otherwise it does nothing. It
// returns the current problems and whether the services were recomputed.
func (f *File) Update(objs []*config.Object) (problems []*config.Error, changed bool) {
	f.updateMu.Lock()
	defer f.updateMu.Unlock()
	old := f.state.Load()
	raw, inputs := fingerprint(objs, old)
	if sameInputs(old.inputs, inputs) && old.services != nil {
		if len(raw) > 0 && &raw[0] != &old.raw[0] {
			// Same objects in a new order: remember the order for next time.
			f.state.Store(&fileState{raw: raw, inputs: old.inputs, services: old.services, problems: old.problems})
		}
		return old.problems, false
	}
	services, problems := FromConfig(objs, f.o)
	if services == nil {
		services = []*model.Service{}
	}
	f.state.Store(&fileState{raw: raw, inputs: inputs, services: services, problems: problems})
	f.subs.notify()
	return problems, true
}

// fingerprint lists the ServiceEntries and WorkloadEntries of objs by key,
// in input order (raw) and sorted. When raw equals the previous Update's
// raw list (a caller passing its objects in a stable order), the previous
// sorted list is reused and nothing is sorted.
func fingerprint(objs []*config.Object, prev *fileState) (raw, sorted []inputVersion) {
	raw = make([]inputVersion, 0, len(prev.raw))
	for _, o := range objs {
		if o == nil || (o.Kind != config.ServiceEntry && o.Kind != config.WorkloadEntry) {
			continue
		}
		iv := inputVersion{key: o.Key(), version: o.Version}
		if o.Version == "" {
			iv.obj = o
		}
		raw = append(raw, iv)
	}
	if sameInputs(raw, prev.raw) {
		return prev.raw, prev.inputs
	}
	sorted = slices.Clone(raw)
	slices.SortFunc(sorted, func(a, b inputVersion) int {
		if c := cmp.Compare(a.key.Namespace, b.key.Namespace); c != 0 {
			return c
		}
		if c := cmp.Compare(a.key.Name, b.key.Name); c != 0 {
			return c
		}
		if c := cmp.Compare(a.key.Kind, b.key.Kind); c != 0 {
			return c
		}
		return cmp.Compare(a.version, b.version)
	})
	return raw, sorted
}

func sameInputs(a, b []inputVersion) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
