package rbac

import (
	"errors"
	"fmt"
	"strings"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"

	strmatch "github.com/weftmesh/weft/internal/proxy/matcher"
)

// compileString compiles a StringMatcher with the shared matcher package
// (Envoy's StringMatcherImpl: ASCII ignore_case, whole-value RE2). Like the
// other compile functions here, an error starts with the field path below m
// (".safe_regex.regex: ...", or ": ..." when m itself is at fault).
func compileString(m *matcherv3.StringMatcher) (strmatch.String, error) {
	s, err := strmatch.Compile(m)
	if err == nil {
		return s, nil
	}
	var e *strmatch.Error
	if errors.As(err, &e) && e.Field != "" {
		return s, fmt.Errorf(".%w", err)
	}
	return s, fmt.Errorf(": %w", err)
}

// headerKind is the kind of a header matcher.
type headerKind uint8

const (
	headerPresent headerKind = iota
	headerString
)

// headerMatcher is a compiled envoy.config.route.v3.HeaderMatcher.
type headerMatcher struct {
	name          string
	kind          headerKind
	present       bool
	str           strmatch.String
	invert        bool
	missingAsEmpt bool
}

// compileHeader compiles a HeaderMatcher with Envoy's HeaderUtility rules.
func compileHeader(h *routev3.HeaderMatcher) (*headerMatcher, error) {
	m := &headerMatcher{
		name:          strings.ToLower(h.GetName()),
		invert:        h.GetInvertMatch(),
		missingAsEmpt: h.GetTreatMissingHeaderAsEmpty(),
		kind:          headerString,
	}
	var sm *matcherv3.StringMatcher
	switch s := h.GetHeaderMatchSpecifier().(type) {
	case *routev3.HeaderMatcher_PresentMatch:
		m.kind, m.present = headerPresent, s.PresentMatch
	case *routev3.HeaderMatcher_StringMatch:
		sm = s.StringMatch
	case *routev3.HeaderMatcher_ExactMatch:
		sm = &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: s.ExactMatch}}
	case *routev3.HeaderMatcher_PrefixMatch:
		sm = &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: s.PrefixMatch}}
	case *routev3.HeaderMatcher_SuffixMatch:
		sm = &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Suffix{Suffix: s.SuffixMatch}}
	case *routev3.HeaderMatcher_ContainsMatch:
		sm = &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Contains{Contains: s.ContainsMatch}}
	case *routev3.HeaderMatcher_SafeRegexMatch:
		sm = &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: s.SafeRegexMatch}}
	case nil:
		// No specifier: Envoy matches when the header is present.
		m.kind, m.present = headerPresent, true
	default:
		return nil, fmt.Errorf(".header (%s): this match type is not supported by weft-proxy", h.GetName())
	}
	if sm != nil {
		s, err := compileString(sm)
		if err != nil {
			return nil, fmt.Errorf(".header (%s)%w", h.GetName(), err)
		}
		m.str = s
	}
	return m, nil
}

// match applies Envoy's HeaderUtility::matchHeaders: a missing header
// matches only "present_match: false" (inverted: only "present_match:
// true"), unless treat_missing_header_as_empty.
func (m *headerMatcher) match(a *Attributes) bool {
	v, ok := a.header(m.name)
	if !ok && !m.missingAsEmpt {
		if m.invert {
			return m.kind == headerPresent && m.present
		}
		return m.kind == headerPresent && !m.present
	}
	var r bool
	if m.kind == headerPresent {
		r = m.present
	} else {
		r = m.str.Match(v)
	}
	return r != m.invert
}
