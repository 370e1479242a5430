package matcher

import (
	"testing"

	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
)

// BenchmarkMatch shows Match and MatchString allocate nothing, for every
// kind (the values are typical header values).
func BenchmarkMatch(b *testing.B) {
	cases := []struct {
		name string
		s    String
		v    string
	}{
		{"exact", mustCompile(b, exact("application/json", false)), "application/json"},
		{"exact_ignore_case", mustCompile(b, exact("application/json", true)), "Application/JSON"},
		{"prefix_ignore_case", mustCompile(b, prefix("Mozilla/", true)), "mozilla/5.0 (X11; Linux x86_64)"},
		{"suffix", mustCompile(b, suffix(".svc.cluster.local", false)), "reviews.default.svc.cluster.local"},
		{"contains_ignore_case", mustCompile(b, contains("linux", true)), "mozilla/5.0 (X11; Linux x86_64)"},
		{"regex", mustCompile(b, safeRegex(`spiffe://cluster\.local/ns/[a-z-]+/sa/[a-z-]+`, false)), "spiffe://cluster.local/ns/default/sa/reviews"},
	}
	for _, c := range cases {
		vb := []byte(c.v)
		b.Run(c.name+"/Match", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if !c.s.Match(vb) {
					b.Fatal("no match")
				}
			}
		})
		b.Run(c.name+"/MatchString", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if !c.s.MatchString(c.v) {
					b.Fatal("no match")
				}
			}
		})
	}
}

// TestMatchDoesNotAllocate makes the benchmark's 0 allocs/op a test.
func TestMatchDoesNotAllocate(t *testing.T) {
	for _, m := range []String{
		mustCompile(t, exact("Foo", true)), mustCompile(t, prefix("Foo", false)),
		mustCompile(t, suffix("Foo", true)), mustCompile(t, contains("Foo", true)),
		mustCompile(t, safeRegex("[a-z]+", false)),
	} {
		v := "xxfooxx"
		vb := []byte(v)
		if n := testing.AllocsPerRun(100, func() { m.Match(vb); m.MatchString(v) }); n != 0 {
			t.Errorf("%v: %v allocs per run, want 0", m.kind, n)
		}
	}
}

func mustCompile(tb testing.TB, m *matcherv3.StringMatcher) String {
	tb.Helper()
	s, err := Compile(m)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}
