package rbac

import (
	"bytes"
	"fmt"
	"regexp"
	"strings"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
)

// strKind is the kind of a string matcher.
type strKind uint8

const (
	strExact strKind = iota
	strPrefix
	strSuffix
	strContains
	strRegex
)

// strMatcher is a compiled envoy.type.matcher.v3.StringMatcher.
type strMatcher struct {
	kind       strKind
	value      string
	lower      string // value in lower case, for ignore_case
	vb         []byte // value as bytes
	ignoreCase bool
	re         *regexp.Regexp
}

// compileString compiles a StringMatcher. Regexes are RE2 (Go's regexp is
// RE2) and match the whole value, as Envoy's safe_regex does.
func compileString(m *matcherv3.StringMatcher) (strMatcher, error) {
	s := strMatcher{ignoreCase: m.GetIgnoreCase()}
	switch p := m.GetMatchPattern().(type) {
	case *matcherv3.StringMatcher_Exact:
		s.kind, s.value = strExact, p.Exact
	case *matcherv3.StringMatcher_Prefix:
		s.kind, s.value = strPrefix, p.Prefix
	case *matcherv3.StringMatcher_Suffix:
		s.kind, s.value = strSuffix, p.Suffix
	case *matcherv3.StringMatcher_Contains:
		s.kind, s.value = strContains, p.Contains
	case *matcherv3.StringMatcher_SafeRegex:
		re, err := regexp.Compile("^(?:" + p.SafeRegex.GetRegex() + ")$")
		if err != nil {
			return s, fmt.Errorf(".safe_regex.regex: %v", err)
		}
		s.kind, s.re = strRegex, re
	default:
		return s, fmt.Errorf(": a string matcher needs exact, prefix, suffix, contains or safe_regex")
	}
	s.lower = strings.ToLower(s.value)
	s.vb = []byte(s.value)
	return s, nil
}

// matchString matches a string value.
func (s *strMatcher) matchString(v string) bool {
	if s.kind == strRegex {
		return s.re.MatchString(v)
	}
	if !s.ignoreCase {
		switch s.kind {
		case strExact:
			return v == s.value
		case strPrefix:
			return strings.HasPrefix(v, s.value)
		case strSuffix:
			return strings.HasSuffix(v, s.value)
		}
		return strings.Contains(v, s.value)
	}
	switch s.kind {
	case strExact:
		return strings.EqualFold(v, s.value)
	case strPrefix:
		return len(v) >= len(s.value) && strings.EqualFold(v[:len(s.value)], s.value)
	case strSuffix:
		return len(v) >= len(s.value) && strings.EqualFold(v[len(v)-len(s.value):], s.value)
	}
	return containsFold(v, s.lower)
}

// matchBytes matches a byte value without converting it.
func (s *strMatcher) matchBytes(v []byte) bool {
	if s.kind == strRegex {
		return s.re.Match(v)
	}
	if !s.ignoreCase {
		switch s.kind {
		case strExact:
			return string(v) == s.value
		case strPrefix:
			return len(v) >= len(s.value) && string(v[:len(s.value)]) == s.value
		case strSuffix:
			return len(v) >= len(s.value) && string(v[len(v)-len(s.value):]) == s.value
		}
		return bytes.Contains(v, s.vb)
	}
	switch s.kind {
	case strExact:
		return len(v) == len(s.value) && bytes.EqualFold(v, s.vb)
	case strPrefix:
		return len(v) >= len(s.value) && bytes.EqualFold(v[:len(s.value)], s.vb)
	case strSuffix:
		return len(v) >= len(s.value) && bytes.EqualFold(v[len(v)-len(s.value):], s.vb)
	}
	for i := 0; i+len(s.value) <= len(v); i++ {
		if bytes.EqualFold(v[i:i+len(s.value)], s.vb) {
			return true
		}
	}
	return false
}

// containsFold reports whether lower (lower case) is in v, ignoring case.
func containsFold(v, lower string) bool {
	for i := 0; i+len(lower) <= len(v); i++ {
		if strings.EqualFold(v[i:i+len(lower)], lower) {
			return true
		}
	}
	return false
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
	str           strMatcher
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
		r = m.str.matchBytes(v)
	}
	return r != m.invert
}
