package istiostats

import (
	"sync"
	"sync/atomic"
)

// cowMap is a map read without locks: readers load the current map and
// index it; writers (rare: a new label set, a new peer) copy it under a
// mutex and publish the copy. When it holds max entries the next insert
// starts over from an empty map, so that caches keyed by what peers send
// stay bounded.
type cowMap[K comparable, V any] struct {
	m   atomic.Pointer[map[K]V]
	mu  sync.Mutex
	max int
}

// load returns the current map (nil before the first insert); callers
// index it themselves, so that m[string(b)] needs no allocation.
func (c *cowMap[K, V]) load() map[K]V {
	if p := c.m.Load(); p != nil {
		return *p
	}
	return nil
}

// getOrAdd returns the value for k, storing mk() first when there is none.
func (c *cowMap[K, V]) getOrAdd(k K, mk func() V) V {
	if v, ok := c.load()[k]; ok {
		return v
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	old := c.load()
	if v, ok := old[k]; ok {
		return v
	}
	v := mk()
	n := len(old)
	if c.max > 0 && n >= c.max {
		old, n = nil, 0
	}
	next := make(map[K]V, n+1)
	for kk, vv := range old {
		next[kk] = vv
	}
	next[k] = v
	c.m.Store(&next)
	return v
}
