package server

import (
	"github.com/weftmesh/weft/internal/proxy/fault"
	"github.com/weftmesh/weft/internal/proxy/httpfilter"
	"github.com/weftmesh/weft/internal/proxy/localratelimit"
	"github.com/weftmesh/weft/internal/proxy/stats"
)

// registerResilienceFilters adds envoy.filters.http.fault (its counters
// under the connection manager's scope, http.<stat_prefix>.fault.) and
// envoy.filters.http.local_ratelimit (under <stat_prefix>.http_local_rate_limit.
// at the root, as Envoy) to a connection manager's registry, with their
// per-route configurations.
func (s *Server) registerResilienceFilters(r *httpfilter.Registry, hcmScope *stats.Scope) {
	fault.Register(r, fault.Options{Scope: hcmScope})
	localratelimit.Register(r, localratelimit.Options{Scope: s.stats.Root()})
}
