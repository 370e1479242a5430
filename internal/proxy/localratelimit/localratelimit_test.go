package localratelimit

import (
	"github.com/weftmesh/weft/internal/proxy/httpfilter/filtertest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/proxy/httpfilter"
	"github.com/weftmesh/weft/internal/proxy/stats"
	"github.com/weftmesh/weft/internal/proxy/streaminfo"
)

func TestBucketFakeClock(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1000, 0)}
	b := NewBucket(3, 2, time.Second, clk.now)
	take := func() bool { ok, _, _ := b.Take(); return ok }
	for _, step := range []struct {
		advance time.Duration
		takes   int
		want    int // admitted
	}{
		{0, 5, 3},                       // starts full: max_tokens
		{999 * time.Millisecond, 1, 0},  // no fill before the interval ends
		{time.Millisecond, 5, 2},        // one fill: tokens_per_fill
		{10 * time.Second, 5, 3},        // many fills, capped at max_tokens
		{1500 * time.Millisecond, 5, 2}, // one boundary crossed
		{500 * time.Millisecond, 5, 2},  // the next boundary (fills are aligned to the start)
	} {
		clk.add(step.advance)
		got := 0
		for i := 0; i < step.takes; i++ {
			if take() {
				got++
			}
		}
		if got != step.want {
			t.Fatalf("after +%v: admitted %d of %d, want %d", step.advance, got, step.takes, step.want)
		}
	}
}

func TestBucketRemainingAndReset(t *testing.T) {
	clk := &fakeClock{t: time.Unix(0, 0)}
	b := NewBucket(2, 1, 10*time.Second, clk.now)
	clk.add(3 * time.Second)
	if ok, rem, reset := b.Take(); !ok || rem != 1 || reset != 7*time.Second {
		t.Fatalf("Take: %v %d %v, want true 1 7s", ok, rem, reset)
	}
	b.Take()
	if ok, rem, _ := b.Take(); ok || rem != 0 {
		t.Fatalf("empty bucket: %v %d", ok, rem)
	}
}

func TestBucketZeroMax(t *testing.T) {
	b := NewBucket(0, 1, time.Second, nil)
	if ok, _, _ := b.Take(); ok {
		t.Fatal("a bucket of max_tokens 0 admitted a request")
	}
}

// TestBucketConcurrent: concurrent takers never get more tokens than the
// bucket holds (the interval is long enough that no fill happens).
func TestBucketConcurrent(t *testing.T) {
	b := NewBucket(1000, 1, time.Hour, nil)
	var admitted atomic.Int64
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 500; i++ {
				if ok, _, _ := b.Take(); ok {
					admitted.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if admitted.Load() != 1000 {
		t.Fatalf("admitted %d, want exactly 1000", admitted.Load())
	}
}

func TestCompileErrors(t *testing.T) {
	for _, tc := range []struct {
		y        string
		perRoute bool
		want     string
	}{
		{`{}`, false, "stat_prefix: required"},
		{`{stat_prefix: s, token_bucket: {max_tokens: 1, fill_interval: 0.01s}}`, false, "token_bucket.fill_interval: must be at least 50ms"},
		{`{stat_prefix: s, token_bucket: {max_tokens: 1}}`, false, "token_bucket.fill_interval: required"},
		{`{stat_prefix: s, token_bucket: {max_tokens: 1, tokens_per_fill: 0, fill_interval: 1s}}`, false, "tokens_per_fill: must be greater than 0"},
		{`{stat_prefix: s}`, true, "token_bucket: required in a per-route"},
		{`{stat_prefix: s, local_rate_limit_per_downstream_connection: true}`, false, "local_rate_limit_per_downstream_connection: not supported"},
		{`{stat_prefix: s, response_headers_to_add: [{header: {key: ":status", value: x}}]}`, false, "response_headers_to_add[0].header.key"},
	} {
		_, err := Compile(parseLRL(t, tc.y), CompileOptions{PerRoute: tc.perRoute})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", tc.y, err, tc.want)
		}
	}
}

const limited = `
stat_prefix: lim
token_bucket: {max_tokens: 2, tokens_per_fill: 1, fill_interval: 1s}
filter_enabled: {default_value: {numerator: 100}, runtime_key: ignored}
filter_enforced: {default_value: {numerator: 100}}
status: {code: 503}
response_headers_to_add: [{header: {key: x-rl, value: "1"}}]
request_headers_to_add_when_not_enforced: [{header: {key: x-would-limit, value: "1"}}]
`

func TestFilterEnforced(t *testing.T) {
	st := stats.NewStore()
	clk := &fakeClock{t: time.Unix(0, 0)}
	f, err := New(parseLRL(t, limited), Options{Scope: st.Root(), Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	var codes []int
	for i := 0; i < 3; i++ {
		var w filtertest.Recorder
		s := filtertest.NewStream(&w)
		if f.DecodeHeaders(s) == httpfilter.Stop {
			codes = append(codes, w.Status)
			if string(w.Body) != Body || string(w.Header.Get("x-rl")) != "1" ||
				s.Info.Flags&streaminfo.RateLimited == 0 || s.Info.Details != Details {
				t.Errorf("limited reply: body %q x-rl %q flags %v details %q", w.Body, w.Header.Get("x-rl"), s.Info.Flags, s.Info.Details)
			}
		} else {
			codes = append(codes, 0)
		}
	}
	if codes[0] != 0 || codes[1] != 0 || codes[2] != 503 {
		t.Fatalf("codes %v, want [0 0 503] (0: passed)", codes)
	}
	for name, want := range map[string]int64{
		"lim.http_local_rate_limit.enabled": 3, "lim.http_local_rate_limit.ok": 2,
		"lim.http_local_rate_limit.rate_limited": 1, "lim.http_local_rate_limit.enforced": 1,
	} {
		if got := st.CounterValue(name); got != want {
			t.Errorf("%s = %d, want %d", name, got, want)
		}
	}
}

func TestFilterNotEnforcedAndDisabled(t *testing.T) {
	notEnforced := strings.Replace(limited, "filter_enforced: {default_value: {numerator: 100}}", "", 1)
	f, err := New(parseLRL(t, notEnforced), Options{Now: (&fakeClock{}).now})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		var w filtertest.Recorder
		s := filtertest.NewStream(&w)
		if f.DecodeHeaders(s) != httpfilter.Continue || w.Sent {
			t.Fatalf("request %d refused while not enforced", i)
		}
		if got := string(s.Req.Get("x-would-limit")); (i == 2) != (got == "1") {
			t.Errorf("request %d: x-would-limit %q", i, got)
		}
	}
	off, err := New(parseLRL(t, `{stat_prefix: disabled, token_bucket: {max_tokens: 0, fill_interval: 1s}}`), Options{})
	if err != nil {
		t.Fatal(err)
	}
	var w filtertest.Recorder
	if off.DecodeHeaders(filtertest.NewStream(&w)) != httpfilter.Continue {
		t.Fatal("filter_enabled unset (0 %) refused a request")
	}
}

// TestPerRouteBuckets: a per-route configuration replaces the filter's and
// has its own bucket.
func TestPerRouteBuckets(t *testing.T) {
	clk := &fakeClock{t: time.Unix(0, 0)}
	o := Options{Now: clk.now}
	f, err := New(parseLRL(t, `{stat_prefix: listener}`), o)
	if err != nil {
		t.Fatal(err)
	}
	a, errA := Compile(parseLRL(t, limited), CompileOptions{Now: clk.now, PerRoute: true})
	b, errB := Compile(parseLRL(t, limited), CompileOptions{Now: clk.now, PerRoute: true})
	if errA != nil || errB != nil {
		t.Fatal(errA, errB)
	}
	pass := func(cfg *Config) bool {
		s := filtertest.NewStream(&filtertest.Recorder{})
		s.FilterConfig = cfg
		return f.DecodeHeaders(s) == httpfilter.Continue
	}
	if !pass(a) || !pass(a) || pass(a) {
		t.Fatal("route a: want 2 admitted then refused")
	}
	if !pass(b) {
		t.Fatal("route b shares route a's bucket")
	}
	if !pass(nil) {
		t.Fatal("the inert listener-level configuration refused a request")
	}
}

func TestXRateLimitHeaders(t *testing.T) {
	clk := &fakeClock{t: time.Unix(0, 0)}
	f, err := New(parseLRL(t, limited+"enable_x_ratelimit_headers: DRAFT_VERSION_03\n"), Options{Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	var w filtertest.Recorder
	s := filtertest.NewStream(&w)
	if f.DecodeHeaders(s) != httpfilter.Continue {
		t.Fatal("first request refused")
	}
	s.Resp.Status = 200
	s.W.WriteHeaders(&s.Resp, true) // as the router would
	if l, r, rs := w.Header.Get(HeaderLimit), w.Header.Get(HeaderRemaining), w.Header.Get(HeaderReset); string(l) != "2" || string(r) != "1" || string(rs) != "1" {
		t.Errorf("x-ratelimit headers %q %q %q, want 2 1 1", l, r, rs)
	}
	if _, ok := s.W.(httpfilter.Hijacker); !ok {
		t.Error("the wrapped writer lost Hijack")
	}
}

func BenchmarkDecodeHeaders(b *testing.B) {
	for _, bc := range []struct{ name, y string }{
		{"inert", `{stat_prefix: s}`},
		{"admit", `{stat_prefix: s, token_bucket: {max_tokens: 4000000000, fill_interval: 1s}, filter_enabled: {default_value: {numerator: 100}}, filter_enforced: {default_value: {numerator: 100}}}`},
		{"limit", `{stat_prefix: s, token_bucket: {max_tokens: 0, fill_interval: 1s}, filter_enabled: {default_value: {numerator: 100}}, filter_enforced: {default_value: {numerator: 100}}}`},
	} {
		b.Run(bc.name, func(b *testing.B) {
			f, err := New(parseLRL(b, bc.y), Options{})
			if err != nil {
				b.Fatal(err)
			}
			var w filtertest.Recorder
			s := filtertest.NewStream(&w)
			b.ReportAllocs()
			for b.Loop() {
				w.Sent, w.Body = false, w.Body[:0]
				s.Info.Reset()
				f.DecodeHeaders(s)
			}
		})
	}
}

func BenchmarkBucketTakeParallel(b *testing.B) {
	bk := NewBucket(1<<31, 1, time.Hour, nil)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			bk.Take()
		}
	})
}
