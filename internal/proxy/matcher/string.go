// Package matcher compiles Envoy's envoy.type.matcher.v3.StringMatcher once,
// off the request path, into a String that matches values without
// allocating. It is the one implementation behind the router's header and
// query matchers, RBAC's string matchers and the TLS SAN matchers.
//
// Semantics follow Envoy's StringMatcherImpl:
//   - exact, prefix, suffix and contains compare bytes;
//   - ignore_case folds ASCII letters only (Envoy uses absl's
//     EqualsIgnoreCase / StartsWithIgnoreCase / AsciiStrToLower): non-ASCII
//     bytes must be equal;
//   - ignore_case has no effect on safe_regex, as the API documents;
//   - safe_regex is RE2 (Go's regexp implements RE2 syntax and semantics) and
//     must match the whole value, not a substring.
//
// Compile checks only what it needs to match. Rejecting fields a caller does
// not support (for example google_re2 knobs) is the caller's job.
package matcher

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"regexp/syntax"
	"unsafe"

	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
)

type kind uint8

const (
	kindExact kind = iota
	kindPrefix
	kindSuffix
	kindContains
	kindRegex
)

// String is a compiled StringMatcher. It is immutable after Compile and safe
// for concurrent use. The zero String is an exact matcher for the empty
// value.
type String struct {
	kind       kind
	ignoreCase bool           // never set for kindRegex
	value      []byte         // ASCII lower-cased when ignoreCase
	re         *regexp.Regexp // whole-value form, for kindRegex
}

// Error is a Compile error at a field of the StringMatcher.
type Error struct {
	// Field is the offending field's path relative to the StringMatcher, in
	// proto field names ("safe_regex.regex"); empty when the matcher as a
	// whole is at fault (no match pattern).
	Field string
	// Err says what is wrong.
	Err error
}

// Error returns "field: reason", or the reason alone when Field is empty.
func (e *Error) Error() string {
	if e.Field == "" {
		return e.Err.Error()
	}
	return e.Field + ": " + e.Err.Error()
}

// Unwrap returns Err.
func (e *Error) Unwrap() error { return e.Err }

// Compile compiles m. A nil m, or one without a match pattern, is an error
// (the API requires one of the patterns). Errors are *Error.
func Compile(m *matcherv3.StringMatcher) (String, error) {
	s := String{ignoreCase: m.GetIgnoreCase()}
	switch p := m.GetMatchPattern().(type) {
	case *matcherv3.StringMatcher_Exact:
		s.kind, s.value = kindExact, []byte(p.Exact)
	case *matcherv3.StringMatcher_Prefix:
		s.kind, s.value = kindPrefix, []byte(p.Prefix)
	case *matcherv3.StringMatcher_Suffix:
		s.kind, s.value = kindSuffix, []byte(p.Suffix)
	case *matcherv3.StringMatcher_Contains:
		s.kind, s.value = kindContains, []byte(p.Contains)
	case *matcherv3.StringMatcher_SafeRegex:
		r, err := CompileRegex(p.SafeRegex)
		if err != nil {
			return String{}, under("safe_regex", err)
		}
		return r, nil
	default:
		return String{}, &Error{Err: errors.New("one of exact, prefix, suffix, contains or safe_regex is required")}
	}
	if s.ignoreCase {
		lowerASCII(s.value)
	}
	return s, nil
}

// CompileRegex compiles a RegexMatcher used as a whole-value matcher (a
// StringMatcher's safe_regex, or a field of the same meaning such as
// HeaderMatcher.safe_regex_match). Only regex is read. Errors are *Error
// with Field relative to the RegexMatcher ("regex: invalid RE2: ...").
func CompileRegex(m *matcherv3.RegexMatcher) (String, error) {
	if m == nil {
		return String{}, &Error{Err: errors.New("regex matcher is required")}
	}
	re, err := FullRegex(m.GetRegex())
	if err != nil {
		return String{}, &Error{Field: "regex", Err: err}
	}
	return String{kind: kindRegex, re: re}, nil
}

// under places an *Error of a sub-message below the field that holds it.
func under(field string, err error) error {
	var e *Error
	if !errors.As(err, &e) {
		return &Error{Field: field, Err: err}
	}
	if e.Field != "" {
		field += "." + e.Field
	}
	return &Error{Field: field, Err: e.Err}
}

// FullRegex compiles an RE2 expression that must match a whole value, as
// Envoy's safe_regex matchers do (RE2::FullMatch). The anchors are added to
// the parsed expression, so an expression cannot escape them (`a)|(b` is
// rejected; `\Qa` stays a literal). Errors read "invalid RE2: ...".
func FullRegex(expr string) (*regexp.Regexp, error) {
	if _, err := regexp.Compile(expr); err != nil {
		return nil, fmt.Errorf("invalid RE2: %w", err)
	}
	// regexp.Compile parses with syntax.Perl; the parse cannot fail now.
	// Its String form is canonical (no \Q...\E) and re-parses to the same
	// expression.
	tree, err := syntax.Parse(expr, syntax.Perl)
	if err != nil {
		return nil, fmt.Errorf("invalid RE2: %w", err)
	}
	re, err := regexp.Compile(`^(?:` + tree.String() + `)$`)
	if err != nil {
		return nil, fmt.Errorf("invalid RE2 once anchored (report this): %w", err)
	}
	return re, nil
}

// Match reports whether v matches. It does not allocate (regexp may on its
// first uses, until its machine pool is warm).
func (s *String) Match(v []byte) bool {
	switch s.kind {
	case kindExact:
		if s.ignoreCase {
			return len(v) == len(s.value) && hasPrefixFold(v, s.value)
		}
		return bytes.Equal(v, s.value)
	case kindPrefix:
		if s.ignoreCase {
			return hasPrefixFold(v, s.value)
		}
		return bytes.HasPrefix(v, s.value)
	case kindSuffix:
		if s.ignoreCase {
			return len(v) >= len(s.value) && hasPrefixFold(v[len(v)-len(s.value):], s.value)
		}
		return bytes.HasSuffix(v, s.value)
	case kindContains:
		if s.ignoreCase {
			return containsFold(v, s.value)
		}
		return bytes.Contains(v, s.value)
	case kindRegex:
		return s.re.Match(v)
	}
	return false
}

// MatchString is Match for a string; it does not allocate either.
func (s *String) MatchString(v string) bool {
	// Match only reads v, so a read-only byte view of the string is safe.
	return s.Match(unsafe.Slice(unsafe.StringData(v), len(v)))
}

// lowerASCII lowers the ASCII letters of b in place.
func lowerASCII(b []byte) {
	for i, c := range b {
		b[i] = foldASCII(c)
	}
}

func foldASCII(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// hasPrefixFold reports whether v starts with lowerPrefix ignoring ASCII
// case. lowerPrefix must be ASCII lower case.
func hasPrefixFold(v, lowerPrefix []byte) bool {
	if len(v) < len(lowerPrefix) {
		return false
	}
	for i, c := range lowerPrefix {
		if foldASCII(v[i]) != c {
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
