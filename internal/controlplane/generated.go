package controlplane

import (
	"time"

	"github.com/weftmesh/weft/internal/config"
)

// Overlay is configuration held in memory rather than read from
// ConfigDir, as `weft up` keeps it: every push merges it with ConfigDir's
// objects by key, Overrides over ConfigDir over Defaults.
type Overlay struct {
	// Defaults apply unless ConfigDir (or Overrides) has an object with
	// the same key: weft up's ServiceEntries, WorkloadEntries and Sidecars
	// generated from its local manifest.
	Defaults []*config.Object
	// Overrides replace ConfigDir's objects with the same key, as `kubectl
	// apply` replaces an object: the files of `weft apply`.
	Overrides []*config.Object
}

// SetOverlay replaces the in-memory configuration. The objects must be
// valid (loaded, or built with config.NewObject) and are not modified
// afterwards. It triggers a push (the initial one, when called before
// Run). Safe for concurrent use.
func (c *ControlPlane) SetOverlay(o Overlay) {
	o.Defaults = append([]*config.Object(nil), o.Defaults...)
	o.Overrides = append([]*config.Object(nil), o.Overrides...)
	c.overlay.Store(&o)
	c.changed.CompareAndSwap(0, time.Now().UnixNano())
	c.reasonsMu.Lock()
	c.reasons[triggerGlobal] = true
	c.reasonsMu.Unlock()
	c.trigger()
}

// withOverlay returns the objects of a push: ConfigDir's (objs) merged
// with the overlay by key.
func (c *ControlPlane) withOverlay(objs []*config.Object) []*config.Object {
	o := c.overlay.Load()
	if o == nil || len(o.Defaults)+len(o.Overrides) == 0 {
		return objs
	}
	byKey := make(map[config.Key]*config.Object, len(objs)+len(o.Defaults)+len(o.Overrides))
	for _, obj := range o.Defaults {
		byKey[obj.Key()] = obj
	}
	for _, layer := range [][]*config.Object{objs, o.Overrides} {
		for _, obj := range layer {
			byKey[obj.Key()] = obj
		}
	}
	out := make([]*config.Object, 0, len(byKey))
	for _, obj := range byKey {
		out = append(out, obj)
	}
	return out // model.NewSnapshot sorts each kind
}
