package hcm

import (
	"github.com/weftmesh/weft/internal/proxy/httpfilter"
	"github.com/weftmesh/weft/internal/proxy/router"
)

// chainEntry is what the connection manager keeps of one http_filters
// entry besides the filter: the name per-route configuration is keyed by,
// and HttpFilter.disabled.
type chainEntry struct {
	name     string
	disabled bool
}

// runFilters runs the filter chain for a routed stream, as Envoy's filter
// manager builds a route's chain: a filter is skipped when the route's
// typed_per_filter_config disables it (FilterConfig.disabled), or when its
// HttpFilter.disabled is set and no level of the route mentions it; an entry
// for the filter at any level enables it. Each filter sees its own per-route
// configuration in s.FilterConfig. The lookup is one map access per filter
// and none when the route has no per-filter configuration.
func (m *Manager) runFilters(s *httpfilter.Stream) {
	perRoute := s.Route.HasFilterConfigs()
	for i, f := range m.filters {
		s.FilterConfig = nil
		if perRoute {
			fc, ok := s.Route.FilterConfig(m.chain[i].name)
			if ok && fc.Disabled || !ok && m.chain[i].disabled {
				continue
			}
			s.FilterConfig = fc.Config
		} else if m.chain[i].disabled {
			continue
		}
		if f.DecodeHeaders(s) == httpfilter.Stop {
			return
		}
	}
}

// filterConfigParser returns the registry as the route compiler's parser
// of typed_per_filter_config (nil without a registry).
func (m *Manager) filterConfigParser() router.FilterConfigParser {
	if m.o.Filters == nil {
		return nil
	}
	return m.o.Filters
}
