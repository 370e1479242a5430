package xds

import "sync"

// interner keeps one copy of each resource name proxies subscribe to.
// Every sidecar of a mesh subscribes to the same thousands of EDS cluster
// names and go-control-plane keeps each stream's subscription; without
// interning each stream holds its own decoded copy of every name (about
// 14 MiB for 500 proxies of a 1,000-service mesh). The table is replaced
// at each push, so that names no longer in use are not kept for ever:
// streams keep the copies they already hold.
type interner struct {
	mu sync.Mutex
	m  map[string]string
}

func newInterner() *interner { return &interner{m: map[string]string{}} }

// names replaces each name by its shared copy.
func (in *interner) names(names []string) {
	if len(names) == 0 {
		return
	}
	in.mu.Lock()
	for i, n := range names {
		if c, ok := in.m[n]; ok {
			names[i] = c
		} else {
			in.m[n] = n
		}
	}
	in.mu.Unlock()
}

// reset starts a new table.
func (in *interner) reset() {
	in.mu.Lock()
	in.m = map[string]string{}
	in.mu.Unlock()
}
