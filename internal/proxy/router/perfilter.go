package router

import (
	"sort"
	"strconv"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/types/known/anypb"
)

// This file is the per-route HTTP filter configuration: the
// typed_per_filter_config maps of RouteConfiguration, VirtualHost and Route,
// keyed by the name of an HTTP filter in the connection manager's
// http_filters. It follows Envoy's router (per_filter_config.cc and
// config_impl.cc):
//
//   - each value is parsed when the table is compiled, by the filter that
//     handles its type (Envoy finds the factory by the value's type URL, not
//     by the key); a value nobody handles fails compilation unless it is
//     wrapped in a config.route.v3.FilterConfig with is_optional;
//   - a FilterConfig wrapper may disable the filter (disabled: true, config
//     ignored) or enable it without configuration (an empty config Any),
//     overriding the filter's own HttpFilter.disabled;
//   - at request time the most specific level wins: route, then virtual
//     host, then route configuration. The configuration is the most
//     specific one present; whether the filter is disabled is decided by the
//     most specific level that has an entry for it.
//
// Levels are merged once per route at compile time, so a request resolves a
// filter's configuration with one map lookup. Levels share parsed values: a
// virtual host's configuration is the same object for all its routes (a
// local rate limit configured on a virtual host has one token bucket for
// the whole virtual host, as in Envoy).
//
// WeightedCluster.ClusterWeight.typed_per_filter_config is not supported:
// weft-proxy picks the weighted cluster in the router filter, after the
// other filters ran.

// FilterConfigParser parses the per-route configurations of HTTP filters.
// httpfilter.Registry implements it. It is called at compile time only and
// must be safe for concurrent use.
type FilterConfigParser interface {
	// ParsePerRouteConfig parses one typed_per_filter_config value (or the
	// config of a FilterConfig wrapper). known is false when no HTTP filter
	// handles cfg's type; err is then nil. The returned value is what
	// filters get from Route.FilterConfig; it must be immutable or safe for
	// concurrent use.
	ParsePerRouteConfig(cfg *anypb.Any) (parsed any, known bool, err error)
}

// FilterConfig is an HTTP filter's per-route configuration, resolved for one
// route.
type FilterConfig struct {
	// Config is the parsed configuration of the most specific level that has
	// one; nil when the levels only enable or disable the filter (or name an
	// optional type no filter handles). Without a FilterConfigParser in the
	// CompileOptions it is the unparsed *anypb.Any.
	Config any
	// Disabled is the FilterConfig.disabled of the most specific level that
	// mentions the filter: the connection manager skips the filter.
	Disabled bool
}

// perFilter is one level's, or one route's merged, per-filter
// configuration by filter name. nil when empty.
type perFilter map[string]FilterConfig

// FilterConfig returns the per-route configuration of the HTTP filter named
// name (its name in http_filters), merged from the route, its virtual host
// and the route configuration. ok is false when no level mentions the
// filter. It does not allocate.
func (r *Route) FilterConfig(name string) (cfg FilterConfig, ok bool) {
	if r == nil || r.filters == nil {
		return FilterConfig{}, false
	}
	cfg, ok = r.filters[name]
	return cfg, ok
}

// HasFilterConfigs reports whether any level of the route has per-filter
// configuration (when false, FilterConfig always reports ok false).
func (r *Route) HasFilterConfigs() bool { return r != nil && r.filters != nil }

const filterConfigType = "envoy.config.route.v3.FilterConfig"

// compilePerFilter parses one level's typed_per_filter_config; path names
// the map field.
func (c *compiler) compilePerFilter(m map[string]*anypb.Any, path string) (perFilter, error) {
	if len(m) == 0 {
		return nil, nil
	}
	names := make([]string, 0, len(m))
	for name := range m {
		names = append(names, name)
	}
	sort.Strings(names)
	out := make(perFilter, len(m))
	for _, name := range names {
		p := path + "[" + strconv.Quote(name) + "]"
		fc, err := c.perFilterEntry(m[name], p)
		if err != nil {
			return nil, err
		}
		out[name] = fc
	}
	return out, nil
}

// perFilterEntry parses one value, unwrapping a FilterConfig.
func (c *compiler) perFilterEntry(a *anypb.Any, path string) (FilterConfig, error) {
	if a == nil || a.GetTypeUrl() == "" {
		return FilterConfig{}, errAt(path, "a typed configuration (@type) is required")
	}
	if string(a.MessageName()) != filterConfigType {
		return c.parsePerFilter(a, false, path)
	}
	var w routev3.FilterConfig
	if err := a.UnmarshalTo(&w); err != nil {
		return FilterConfig{}, errAt(path, "cannot decode %s: %v", filterConfigType, err)
	}
	if err := checkFields(&w, path, "config", "is_optional", "disabled"); err != nil {
		return FilterConfig{}, err
	}
	switch {
	case w.GetDisabled():
		return FilterConfig{Disabled: true}, nil
	case w.GetConfig() == nil:
		return FilterConfig{}, errAt(field(path, "config"),
			"required unless disabled is true (an empty config {} enables the filter without configuration)")
	case w.GetConfig().GetTypeUrl() == "":
		return FilterConfig{}, nil
	}
	return c.parsePerFilter(w.GetConfig(), w.GetIsOptional(), field(path, "config"))
}

func (c *compiler) parsePerFilter(a *anypb.Any, optional bool, path string) (FilterConfig, error) {
	p := c.opts.FilterConfigs
	if p == nil {
		return FilterConfig{Config: a}, nil
	}
	cfg, known, err := p.ParsePerRouteConfig(a)
	switch {
	case err != nil:
		return FilterConfig{}, &ConfigError{Path: path, Err: err}
	case !known && optional:
		return FilterConfig{}, nil
	case !known:
		return FilterConfig{}, errAt(path, "no HTTP filter of weft-proxy takes per-route configuration of type %s "+
			"(wrap it in a %s with is_optional: true to ignore it)", a.MessageName(), filterConfigType)
	}
	return FilterConfig{Config: cfg}, nil
}

// mergePerFilter merges levels from the least to the most specific: a more
// specific entry decides Disabled, and its Config wins when it has one.
func mergePerFilter(levels ...perFilter) perFilter {
	var out perFilter
	for _, l := range levels {
		for name, fc := range l {
			if out == nil {
				out = perFilter{}
			}
			prev := out[name]
			if fc.Config == nil {
				fc.Config = prev.Config
			}
			out[name] = fc
		}
	}
	return out
}
