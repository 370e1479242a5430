package router

import (
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"

	"github.com/weftmesh/weft/internal/proxy/headers"
)

// This file exports the route table's header matching and header mutation
// to HTTP filters whose configuration embeds the same Envoy messages
// (envoy.filters.http.fault's headers, envoy.filters.http.local_ratelimit's
// response_headers_to_add), so that they behave exactly as in routes.

// HeaderMatchers is a compiled list of config.route.v3.HeaderMatcher that
// matches when all of them match (Envoy's HeaderUtility::matchHeaders). It
// is immutable and safe for concurrent use.
type HeaderMatchers struct {
	ms []headerMatcher
	// scratch holds the pooled buffers for joining repeated headers.
	scratch *Table
}

// CompileHeaderMatchers compiles hms; errors are ConfigErrors under path
// (the list field, e.g. "headers").
func CompileHeaderMatchers(hms []*routev3.HeaderMatcher, path string) (HeaderMatchers, error) {
	out := HeaderMatchers{scratch: &Table{}}
	for i, hm := range hms {
		m, err := compileHeaderMatcher(hm, index(path, i))
		if err != nil {
			return HeaderMatchers{}, err
		}
		out.ms = append(out.ms, m)
	}
	return out, nil
}

// Empty reports whether there are no matchers (Match is then always true).
func (h *HeaderMatchers) Empty() bool { return len(h.ms) == 0 }

// Match reports whether req matches every matcher, with the route matchers'
// semantics (repeated headers joined with ","; a missing header never
// matches unless treat_missing_header_as_empty). It does not allocate once
// the pooled join buffer exists.
func (h *HeaderMatchers) Match(req *headers.Request) bool {
	for i := range h.ms {
		if !h.ms[i].matches(req, h.scratch) {
			return false
		}
	}
	return true
}

// HeaderMutation is a compiled list of config.core.v3.HeaderValueOption
// with the route's semantics (append_action, keep_empty_value, %VAR%
// formats). It is immutable and safe for concurrent use.
type HeaderMutation struct{ m mutation }

// CompileHeaderMutation compiles adds; errors are ConfigErrors under path.
func CompileHeaderMutation(adds []*corev3.HeaderValueOption, path string) (HeaderMutation, error) {
	m, err := compileMutation(adds, nil, path, "")
	return HeaderMutation{m: m}, err
}

// Empty reports whether the mutation does nothing.
func (h *HeaderMutation) Empty() bool { return h == nil || len(h.m.add) == 0 && len(h.m.remove) == 0 }

// Apply evaluates the mutation on m (request or response headers). req is
// the downstream request (read by %REQ()%; may be nil) and vars the
// stream's variables (nil: variables print nothing). Values without
// variables are referenced, not copied.
func (h *HeaderMutation) Apply(m *headers.Map, req *headers.Request, vars Vars) {
	if h.Empty() {
		return
	}
	h.m.apply(m, req, vars)
}
