package router

import (
	"errors"
	"regexp"

	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"

	"github.com/weftmesh/weft/internal/proxy/matcher"
)

// compileStringMatcher compiles an envoy.type.matcher.v3.StringMatcher at
// path with the shared matcher package (Envoy's StringMatcherImpl semantics),
// after rejecting the fields weft-proxy does not implement.
func compileStringMatcher(m *matcherv3.StringMatcher, path string) (matcher.String, error) {
	if m == nil {
		return matcher.String{}, errAt(path, "string matcher is required")
	}
	if err := checkFields(m, path, "exact", "prefix", "suffix", "contains", "safe_regex", "ignore_case"); err != nil {
		return matcher.String{}, err
	}
	if p, ok := m.GetMatchPattern().(*matcherv3.StringMatcher_SafeRegex); ok {
		if err := checkRegex(p.SafeRegex, field(path, "safe_regex")); err != nil {
			return matcher.String{}, err
		}
	}
	sm, err := matcher.Compile(m)
	if err != nil {
		return matcher.String{}, matcherErrAt(path, err)
	}
	return sm, nil
}

// compileRegexMatcher compiles a RegexMatcher at path into a whole-value
// matcher (HeaderMatcher.safe_regex_match).
func compileRegexMatcher(m *matcherv3.RegexMatcher, path string) (matcher.String, error) {
	if err := checkRegex(m, path); err != nil {
		return matcher.String{}, err
	}
	sm, err := matcher.CompileRegex(m)
	if err != nil {
		return matcher.String{}, matcherErrAt(path, err)
	}
	return sm, nil
}

// matcherErrAt turns a matcher.Error (its field relative to the matcher)
// into a ConfigError below path.
func matcherErrAt(path string, err error) error {
	var e *matcher.Error
	if !errors.As(err, &e) {
		return &ConfigError{Path: path, Err: err}
	}
	if e.Field != "" {
		path = field(path, e.Field)
	}
	return &ConfigError{Path: path, Err: e.Err}
}

// compileRegex compiles an envoy.type.matcher.v3.RegexMatcher. Go's regexp
// package implements RE2 syntax and semantics, which is what Envoy's
// google_re2 engine accepts.
func compileRegex(m *matcherv3.RegexMatcher, path string) (*regexp.Regexp, error) {
	if err := checkRegex(m, path); err != nil {
		return nil, err
	}
	re, err := regexp.Compile(m.GetRegex())
	if err != nil {
		return nil, errAt(field(path, "regex"), "invalid RE2: %v", err)
	}
	return re, nil
}

// checkRegex rejects a missing RegexMatcher and the fields weft-proxy does
// not implement.
func checkRegex(m *matcherv3.RegexMatcher, path string) error {
	if m == nil {
		return errAt(path, "regex matcher is required")
	}
	if err := checkFields(m, path, "regex", "google_re2"); err != nil {
		return err
	}
	// google_re2 is deprecated and selects the only engine there is; only its
	// max_program_size knob (also deprecated) is refused.
	return checkFields(m.GetGoogleRe2(), field(path, "google_re2"))
}

// compileFullRegex is compileRegex anchored at both ends: Envoy's safe_regex
// matchers require the whole value to match.
func compileFullRegex(m *matcherv3.RegexMatcher, path string) (*regexp.Regexp, error) {
	if err := checkRegex(m, path); err != nil {
		return nil, err
	}
	re, err := matcher.FullRegex(m.GetRegex())
	if err != nil {
		return nil, &ConfigError{Path: field(path, "regex"), Err: err}
	}
	return re, nil
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
