package xds

import (
	"sort"

	"github.com/weftmesh/weft/internal/model"
)

// ConnectedProxies returns the identity of every connected proxy, one per
// node id (its newest stream's), sorted by id. The proxies are shared:
// callers must not modify them. Safe for concurrent use.
func (s *Server) ConnectedProxies() []*model.Proxy {
	conns := s.conns.list()
	sort.Slice(conns, func(i, j int) bool { return conns[i].connectedAt.Before(conns[j].connectedAt) })
	byID := map[string]*model.Proxy{}
	for _, c := range conns {
		c.mu.Lock()
		if c.proxy != nil {
			byID[c.proxy.ID] = c.proxy
		}
		c.mu.Unlock()
	}
	out := make([]*model.Proxy, 0, len(byID))
	for _, p := range byID {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}
