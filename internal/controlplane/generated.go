package controlplane

import (
	"time"

	"github.com/weftmesh/weft/internal/config"
)

// SetGenerated replaces the objects generated in memory rather than read
// from ConfigDir (weft up's ServiceEntries and WorkloadEntries, built from
// its local manifest): every push adds them to ConfigDir's objects, an
// object of ConfigDir winning over a generated one with the same key.
// objs must be valid (config.NewObject) and are not modified afterwards.
// It triggers a push (the initial one, when called before Run). Safe for
// concurrent use.
func (c *ControlPlane) SetGenerated(objs []*config.Object) {
	objs = append([]*config.Object(nil), objs...)
	c.generated.Store(&objs)
	c.changed.CompareAndSwap(0, time.Now().UnixNano())
	c.reasonsMu.Lock()
	c.reasons[triggerService] = true // the generated objects are registry objects
	c.reasonsMu.Unlock()
	c.trigger()
}

// withGenerated returns the objects of a push: ConfigDir's (objs, sorted
// as config.Store.List returns them) and the generated ones whose key
// ConfigDir does not define.
func (c *ControlPlane) withGenerated(objs []*config.Object) []*config.Object {
	gen := c.generated.Load()
	if gen == nil || len(*gen) == 0 {
		return objs
	}
	have := make(map[config.Key]bool, len(objs))
	for _, o := range objs {
		have[o.Key()] = true
	}
	for _, o := range *gen {
		if !have[o.Key()] {
			objs = append(objs, o)
		}
	}
	return objs
}
