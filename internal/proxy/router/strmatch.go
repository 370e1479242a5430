package router

import (
	"bytes"
	"regexp"

	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
)

type strKind uint8

const (
	strExact strKind = iota
	strPrefix
	strSuffix
	strContains
	strRegex
)

// stringMatcher is a compiled envoy.type.matcher.v3.StringMatcher.
// ignore_case is ASCII case folding as Envoy's absl helpers do; it has no
// effect on safe_regex, as the Envoy API documents.
type stringMatcher struct {
	kind       strKind
	value      []byte // lower-cased when ignoreCase
	ignoreCase bool
	re         *regexp.Regexp // full-match form for strRegex
}

func compileStringMatcher(m *matcherv3.StringMatcher, path string) (stringMatcher, error) {
	if m == nil {
		return stringMatcher{}, errAt(path, "string matcher is required")
	}
	if err := checkFields(m, path, "exact", "prefix", "suffix", "contains", "safe_regex", "ignore_case"); err != nil {
		return stringMatcher{}, err
	}
	sm := stringMatcher{ignoreCase: m.GetIgnoreCase()}
	switch p := m.GetMatchPattern().(type) {
	case *matcherv3.StringMatcher_Exact:
		sm.kind, sm.value = strExact, []byte(p.Exact)
	case *matcherv3.StringMatcher_Prefix:
		sm.kind, sm.value = strPrefix, []byte(p.Prefix)
	case *matcherv3.StringMatcher_Suffix:
		sm.kind, sm.value = strSuffix, []byte(p.Suffix)
	case *matcherv3.StringMatcher_Contains:
		sm.kind, sm.value = strContains, []byte(p.Contains)
	case *matcherv3.StringMatcher_SafeRegex:
		re, err := compileFullRegex(p.SafeRegex, field(path, "safe_regex"))
		if err != nil {
			return stringMatcher{}, err
		}
		sm.kind, sm.re, sm.ignoreCase = strRegex, re, false
	default:
		return stringMatcher{}, errAt(path, "one of exact, prefix, suffix, contains or safe_regex is required")
	}
	if sm.ignoreCase {
		sm.value = bytes.ToLower(sm.value)
	}
	return sm, nil
}

func (m *stringMatcher) match(v []byte) bool {
	switch m.kind {
	case strExact:
		if m.ignoreCase {
			return len(v) == len(m.value) && hasPrefixFold(v, m.value)
		}
		return bytes.Equal(v, m.value)
	case strPrefix:
		if m.ignoreCase {
			return hasPrefixFold(v, m.value)
		}
		return bytes.HasPrefix(v, m.value)
	case strSuffix:
		if m.ignoreCase {
			return len(v) >= len(m.value) && hasPrefixFold(v[len(v)-len(m.value):], m.value)
		}
		return bytes.HasSuffix(v, m.value)
	case strContains:
		if m.ignoreCase {
			return containsFold(v, m.value)
		}
		return bytes.Contains(v, m.value)
	case strRegex:
		return m.re.Match(v)
	}
	return false
}

// compileRegex compiles an envoy.type.matcher.v3.RegexMatcher. Go's regexp
// package implements RE2 syntax and semantics, which is what Envoy's
// google_re2 engine accepts.
func compileRegex(m *matcherv3.RegexMatcher, path string) (*regexp.Regexp, error) {
	if m == nil {
		return nil, errAt(path, "regex matcher is required")
	}
	if err := checkFields(m, path, "regex", "google_re2"); err != nil {
		return nil, err
	}
	// google_re2 is deprecated and selects the only engine there is; only its
	// max_program_size knob (also deprecated) is refused.
	if err := checkFields(m.GetGoogleRe2(), field(path, "google_re2")); err != nil {
		return nil, err
	}
	re, err := regexp.Compile(m.GetRegex())
	if err != nil {
		return nil, errAt(field(path, "regex"), "invalid RE2: %v", err)
	}
	return re, nil
}

// compileFullRegex is compileRegex anchored at both ends: Envoy's safe_regex
// matchers require the whole value to match.
func compileFullRegex(m *matcherv3.RegexMatcher, path string) (*regexp.Regexp, error) {
	re, err := compileRegex(m, path)
	if err != nil {
		return nil, err
	}
	return regexp.MustCompile(`^(?:` + re.String() + `)$`), nil
}

// rewriteTemplate converts an RE2 rewrite string (\0..\9 name capture groups,
// \\ is a backslash) into Go's Expand template ($ is escaped) and checks that
// the groups exist, as RE2's CheckRewriteString does.
func rewriteTemplate(re *regexp.Regexp, sub, path string) ([]byte, error) {
	out := make([]byte, 0, len(sub)+8)
	for i := 0; i < len(sub); i++ {
		c := sub[i]
		switch {
		case c == '$':
			out = append(out, '$', '$')
		case c != '\\':
			out = append(out, c)
		case i+1 == len(sub):
			return nil, errAt(path, "rewrite string ends with a lone backslash")
		case sub[i+1] == '\\':
			out = append(out, '\\')
			i++
		case sub[i+1] >= '0' && sub[i+1] <= '9':
			n := int(sub[i+1] - '0')
			if n > re.NumSubexp() {
				return nil, errAt(path, "rewrite string refers to group \\%d but the pattern has %d", n, re.NumSubexp())
			}
			out = append(out, '$', '{', sub[i+1], '}')
			i++
		default:
			return nil, errAt(path, "invalid escape \\%c in rewrite string (use \\0..\\9 or \\\\)", sub[i+1])
		}
	}
	return out, nil
}

// replaceAll is RE2's GlobalReplace with a template made by rewriteTemplate.
// It allocates.
func replaceAll(re *regexp.Regexp, tmpl, src []byte) []byte {
	return re.ReplaceAll(src, tmpl)
}

func lowerASCII(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// hasPrefixFold reports whether v starts with lowerPrefix ignoring ASCII case.
// lowerPrefix must be lower case.
func hasPrefixFold(v, lowerPrefix []byte) bool {
	if len(v) < len(lowerPrefix) {
		return false
	}
	for i, c := range lowerPrefix {
		if lowerASCII(v[i]) != c {
			return false
		}
	}
	return true
}

// containsFold reports whether v contains lowerSub ignoring ASCII case.
func containsFold(v, lowerSub []byte) bool {
	for i := 0; i+len(lowerSub) <= len(v); i++ {
		if hasPrefixFold(v[i:], lowerSub) {
			return true
		}
	}
	return false
}
