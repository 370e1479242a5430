package matcher

import (
	"errors"
	"regexp"
	"strings"
	"testing"

	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
)

func exact(v string, ic bool) *matcherv3.StringMatcher {
	return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: v}, IgnoreCase: ic}
}

func prefix(v string, ic bool) *matcherv3.StringMatcher {
	return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: v}, IgnoreCase: ic}
}

func suffix(v string, ic bool) *matcherv3.StringMatcher {
	return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Suffix{Suffix: v}, IgnoreCase: ic}
}

func contains(v string, ic bool) *matcherv3.StringMatcher {
	return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Contains{Contains: v}, IgnoreCase: ic}
}

func safeRegex(re string, ic bool) *matcherv3.StringMatcher {
	return &matcherv3.StringMatcher{
		MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: re}},
		IgnoreCase:   ic,
	}
}

// TestMatch checks every kind with and without ignore_case, through both
// Match and MatchString.
func TestMatch(t *testing.T) {
	tests := []struct {
		name string
		m    *matcherv3.StringMatcher
		yes  []string
		no   []string
	}{
		{"exact", exact("Foo", false), []string{"Foo"}, []string{"foo", "Foo ", "Fo", ""}},
		{"exact ignore_case", exact("Foo", true), []string{"foo", "FOO", "Foo"}, []string{"foo ", "fo", ""}},
		{"exact empty", exact("", false), []string{""}, []string{"a"}},
		{"prefix", prefix("/Api", false), []string{"/Api", "/Api/v1"}, []string{"/api/v1", "/Ap", ""}},
		{"prefix ignore_case", prefix("/Api", true), []string{"/api/v1", "/API", "/aPi"}, []string{"/ap", "x/api"}},
		{"prefix empty", prefix("", false), []string{"", "anything"}, nil},
		{"suffix", suffix(".Com", false), []string{"a.Com", ".Com"}, []string{"a.com", "Com", ""}},
		{"suffix ignore_case", suffix(".Com", true), []string{"a.com", "A.COM"}, []string{"a.co", "com"}},
		{"contains", contains("Ab", false), []string{"xAby", "Ab"}, []string{"xaby", "A", ""}},
		{"contains ignore_case", contains("Ab", true), []string{"xaBy", "AB", "ab"}, []string{"a b", "a", ""}},
		{"contains empty", contains("", true), []string{"", "x"}, nil},
		// ASCII folding only (Envoy's absl helpers): non-ASCII bytes must be equal.
		{"non-ASCII value ignore_case", exact("Émile", true), []string{"ÉMILE", "Émile", "ÉmIlE"}, []string{"émile", "ÉMİLE"}},
		{"non-ASCII prefix ignore_case", prefix("É", true), []string{"Éa", "É"}, []string{"éa"}},
		{"Kelvin sign is not k", exact("k", true), []string{"K", "k"}, []string{"\u212a"}},
		{"regex whole value", safeRegex("b+", false), []string{"b", "bbb"}, []string{"abbb", "bbba", ""}},
		{"regex alternation anchored as a whole", safeRegex("a|b", false), []string{"a", "b"}, []string{"ab", "ba", "xa"}},
		{"regex ignore_case has no effect", safeRegex("ab", true), []string{"ab"}, []string{"AB", "Ab"}},
		{"regex inline flag", safeRegex("(?i)ab", false), []string{"AB", "ab"}, []string{"abc"}},
		{"regex \\Q literal to the end", safeRegex(`\Qa)|(b`, false), []string{"a)|(b"}, []string{"a", "b"}},
		{"regex matches empty", safeRegex("x*", false), []string{"", "xx"}, []string{"y"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Compile(tc.m)
			if err != nil {
				t.Fatal(err)
			}
			for _, v := range tc.yes {
				if !s.Match([]byte(v)) || !s.MatchString(v) {
					t.Errorf("%q: no match, want a match", v)
				}
			}
			for _, v := range tc.no {
				if s.Match([]byte(v)) || s.MatchString(v) {
					t.Errorf("%q: match, want none", v)
				}
			}
		})
	}
}

// TestCompileLowersPatternASCIIOnly: the configured value is folded the
// same way as the input, so an upper-case non-ASCII pattern still matches
// itself (bytes.ToLower would have turned "É" into "é" and never matched).
func TestCompileLowersPatternASCIIOnly(t *testing.T) {
	s, err := Compile(contains("xÉ\xffY", true))
	if err != nil {
		t.Fatal(err)
	}
	if !s.MatchString("--XÉ\xffy--") {
		t.Error("pattern with non-ASCII and invalid UTF-8 bytes does not match itself ignoring ASCII case")
	}
	if s.MatchString("--xé\xffy--") {
		t.Error("non-ASCII letters folded; Envoy folds ASCII only")
	}
}

func TestCompileErrors(t *testing.T) {
	tests := []struct {
		name      string
		m         *matcherv3.StringMatcher
		wantField string
		wantMsg   string
	}{
		{"nil", nil, "", "one of exact, prefix, suffix, contains or safe_regex is required"},
		{"empty", &matcherv3.StringMatcher{}, "", "one of exact, prefix, suffix, contains or safe_regex is required"},
		{"empty with ignore_case", &matcherv3.StringMatcher{IgnoreCase: true}, "", "one of exact"},
		{"invalid regex", safeRegex("a(", false), "safe_regex.regex", "safe_regex.regex: invalid RE2: error parsing regexp: missing closing ): `a(`"},
		{"regex escaping its anchors", safeRegex("a)|(b", false), "safe_regex.regex", "safe_regex.regex: invalid RE2: error parsing regexp: unexpected )"},
		{"unsupported RE2 feature", safeRegex(`(?=a)`, false), "safe_regex.regex", "safe_regex.regex: invalid RE2: error parsing regexp: invalid or unsupported Perl syntax"},
		{"nil regex matcher", &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_SafeRegex{}}, "safe_regex", "safe_regex: regex matcher is required"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Compile(tc.m)
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error = %v (%T), want a *matcher.Error", err, err)
			}
			if e.Field != tc.wantField || !strings.HasPrefix(err.Error(), tc.wantMsg) {
				t.Errorf("error = %q at field %q, want one starting %q at field %q", err, e.Field, tc.wantMsg, tc.wantField)
			}
		})
	}
}

func TestCompileRegex(t *testing.T) {
	s, err := CompileRegex(&matcherv3.RegexMatcher{Regex: "[0-9]+"})
	if err != nil {
		t.Fatal(err)
	}
	if !s.MatchString("123") || s.MatchString("a123") || s.MatchString("123a") {
		t.Error("CompileRegex does not match whole values")
	}
	for _, tc := range []struct {
		m         *matcherv3.RegexMatcher
		wantField string
		wantMsg   string
	}{
		{nil, "", "regex matcher is required"},
		{&matcherv3.RegexMatcher{Regex: "("}, "regex", "regex: invalid RE2: error parsing regexp: missing closing )"},
	} {
		_, err := CompileRegex(tc.m)
		var e *Error
		if !errors.As(err, &e) || e.Field != tc.wantField || !strings.HasPrefix(err.Error(), tc.wantMsg) {
			t.Errorf("CompileRegex(%v) error = %v, want one starting %q at field %q", tc.m, err, tc.wantMsg, tc.wantField)
		}
	}
}

func TestZeroStringIsExactEmpty(t *testing.T) {
	var s String
	if !s.MatchString("") || s.MatchString("a") || s.Match([]byte("a")) {
		t.Error("zero String does not behave as exact \"\"")
	}
}

// FuzzFullRegex checks FullRegex against plain anchoring for expressions
// where plain anchoring is sound (they compile alone and hold no \Q).
func FuzzFullRegex(f *testing.F) {
	for _, s := range [][2]string{
		{"a|b", "ab"}, {"(?i)x+", "XX"}, {"[a-c]*d", "abcd"}, {`(?U)a+`, "aa"},
		{"^a$", "a"}, {"(?s).", "\n"}, {".", "\n"}, {`\pL+`, "é"}, {"", ""}, {"a{2,3}", "aaaa"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, expr, v string) {
		if strings.Contains(expr, `\Q`) {
			return
		}
		if _, err := regexp.Compile(expr); err != nil {
			return
		}
		plain, err := regexp.Compile(`^(?:` + expr + `)$`)
		if err != nil {
			return
		}
		re, err := FullRegex(expr)
		if err != nil {
			t.Fatalf("FullRegex(%q): %v", expr, err)
		}
		if got, want := re.MatchString(v), plain.MatchString(v); got != want {
			t.Fatalf("FullRegex(%q) on %q = %v, plain anchoring = %v", expr, v, got, want)
		}
	})
}
