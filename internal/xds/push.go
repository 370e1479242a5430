package xds

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/weftmesh/weft/internal/model"
	"github.com/weftmesh/weft/internal/translate"
)

// nodeTable holds the nodes that have live streams, by node id.
type nodeTable struct {
	mu sync.RWMutex
	m  map[string]*node
}

func (t *nodeTable) get(id string) *node {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.m[id]
}

// list returns the nodes.
func (t *nodeTable) list() []*node {
	t.mu.RLock()
	defer t.mu.RUnlock()
	out := make([]*node, 0, len(t.m))
	for _, n := range t.m {
		out = append(out, n)
	}
	return out
}

// add attaches a stream of proxy p to its node, creating the node for the
// first stream. It reports whether the node's resources must be computed:
// a new node, or an identity that differs from the node's (a proxy that
// reconnected with other metadata; the newest identity wins).
func (t *nodeTable) add(p *model.Proxy) (n *node, compute bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	n = t.m[p.ID]
	if n == nil {
		n = newNode(p)
		t.m[p.ID] = n
		n.streams = 1
		return n, true
	}
	n.streams++
	n.mu.Lock()
	defer n.mu.Unlock()
	if !sameIdentity(n.proxy, p) {
		n.proxy = p
		return n, true
	}
	return n, n.res == nil
}

// detach drops a stream from its node and forgets the node with its last
// stream.
func (t *nodeTable) detach(n *node) {
	t.mu.Lock()
	defer t.mu.Unlock()
	n.streams--
	if n.streams <= 0 && t.m[n.id] == n {
		delete(t.m, n.id)
	}
}

// attach registers a stream's proxy and computes its resources from the
// current snapshot when needed, so that its first requests are answered at
// once. The node is in the table before the snapshot is read, and Push
// stores the snapshot before it lists the nodes: a push that misses the
// node is one whose snapshot attach reads.
func (s *Server) attach(p *model.Proxy) *node {
	n, compute := s.nodes.add(p)
	if !compute {
		return n
	}
	s.mu.Lock()
	snap, seq := s.snap, s.seq
	s.mu.Unlock()
	if snap != nil {
		s.compute(n, snap, seq, time.Time{})
	}
	return n
}

// Push makes snap the current configuration and recomputes the resources
// of every connected proxy; each proxy is then sent the types whose
// version changed. Push returns when every proxy's responses are queued on
// its stream (not when they are delivered). Pushes are serialised; the
// caller debounces. A nil snapshot is ignored.
func (s *Server) Push(snap *model.Snapshot) { s.PushSince(snap, time.Time{}) }

// PushSince is Push for a configuration that changed at changed:
// pilot_proxy_convergence_time measures from then until each proxy's
// responses are queued. A zero changed is the start of the push.
func (s *Server) PushSince(snap *model.Snapshot, changed time.Time) {
	if snap == nil {
		return
	}
	s.pushMu.Lock()
	defer s.pushMu.Unlock()
	start := time.Now()
	if changed.IsZero() || changed.After(start) {
		changed = start
	}
	s.mu.Lock()
	s.snap = snap
	s.seq++
	seq := s.seq
	s.mu.Unlock()
	nodes := s.nodes.list()
	if s.interned != nil {
		s.interned.reset()
	}
	s.parallel(nodes, func(n *node) {
		s.metrics.queueTime.Observe(time.Since(start).Seconds())
		if s.compute(n, snap, seq, start) {
			s.metrics.convergence.Observe(time.Since(changed).Seconds())
		}
	})
	d := time.Since(start)
	s.metrics.pushDuration.Observe(d.Seconds())
	s.log.Debug("xds: pushed", "snapshot", snap.Version, "proxies", len(nodes), "duration", d)
}

// parallel runs f for every node on at most PushWorkers goroutines.
func (s *Server) parallel(nodes []*node, f func(*node)) {
	workers := min(s.o.PushWorkers, len(nodes))
	if workers <= 1 {
		for _, n := range nodes {
			f(n)
		}
		return
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= len(nodes) {
					return
				}
				f(nodes[i])
			}
		})
	}
	wg.Wait()
}

// compute generates and installs one node's resources and reports whether
// they were installed. On failure the node keeps its previous resources,
// and the error is logged and counted.
func (s *Server) compute(n *node, snap *model.Snapshot, seq uint64, pushStart time.Time) bool {
	n.mu.Lock()
	p, prev := n.proxy, n.res
	n.mu.Unlock()
	r, err := s.generate(snap, p)
	var nr *nodeResources
	if err == nil {
		s.checkVersions(r)
		nr, err = s.sets.build(prev, r)
	}
	if err != nil {
		s.metrics.internalErrors.Inc()
		s.log.Error("xds: cannot compute a proxy's resources; it keeps its previous ones", "proxy", p.ID, "snapshot", snap.Version, "error", err)
		return false
	}
	return s.set(n, seq, nr, pushStart)
}

// generate calls the generator, turning a panic into an error: one
// proxy's translation bug must not take the control plane down.
func (s *Server) generate(snap *model.Snapshot, p *model.Proxy) (r *translate.Resources, err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("translation panicked: %v", v)
		}
	}()
	r = s.o.Generator.Generate(snap, p)
	if r == nil {
		return nil, fmt.Errorf("translation returned no resources")
	}
	return r, nil
}

// checkVersions warns, once, when translation output lacks a type's
// version: the server then computes it from the content, for every proxy
// and push, and cannot share that type between proxies.
func (s *Server) checkVersions(r *translate.Resources) {
	for t, url := range typeURLs {
		if t == typeNameTable && r.NameTables == nil {
			continue // only proxies with a DNS proxy have one
		}
		if r.Versions[url] == "" {
			s.unversioned.Do(func() {
				s.log.Warn("xds: translation gave no version for a type; computing it from the content (slower, not shared between proxies)", "type", url)
			})
			return
		}
	}
}
