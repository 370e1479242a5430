package fault

import (
	"context"
	"github.com/weftmesh/weft/internal/proxy/httpfilter/filtertest"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/proxy/headers"
	"github.com/weftmesh/weft/internal/proxy/httpfilter"
	"github.com/weftmesh/weft/internal/proxy/stats"
	"github.com/weftmesh/weft/internal/proxy/streaminfo"
)

func TestCompileErrors(t *testing.T) {
	for _, tc := range []struct{ y, want string }{
		{`abort: {http_status: 100, percentage: {numerator: 1}}`, "abort.http_status: must be in [200, 600)"},
		{`abort: {percentage: {numerator: 1}}`, "abort: set http_status, grpc_status or header_abort"},
		{`delay: {percentage: {numerator: 1}}`, "delay: set fixed_delay or header_delay"},
		{`delay: {fixed_delay: 0s}`, "delay.fixed_delay: must be a positive duration"},
		{`downstream_nodes: [a]`, "downstream_nodes: not supported by weft-proxy"},
		{`response_rate_limit: {fixed_limit: {limit_kbps: 1}}`, "response_rate_limit: not supported"},
		{`abort: {http_status: 500, response_body: x}`, "abort.response_body: not supported"},
		{`headers: [{name: ""}]`, "headers[0].name: header name is required"},
	} {
		_, err := Compile(parseFault(t, tc.y))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", tc.y, err, tc.want)
		}
	}
}

// TestAbortPercentage draws with the real random source. Binomial(n, p):
// the tolerance is 5 standard deviations, sqrt(n p (1-p)), so a correct
// filter fails with probability below 1e-6.
func TestAbortPercentage(t *testing.T) {
	for _, tc := range []struct {
		pct string
		p   float64
	}{
		{`{numerator: 25}`, 0.25},
		{`{numerator: 5000, denominator: TEN_THOUSAND}`, 0.5},
		{`{numerator: 100000, denominator: MILLION}`, 0.1},
		{`{numerator: 0}`, 0},
		{`{numerator: 100}`, 1},
	} {
		f := newFilter(t, `abort: {http_status: 503, percentage: `+tc.pct+`}`, Options{})
		const n = 4000
		var w filtertest.Recorder
		aborted := 0
		for i := 0; i < n; i++ {
			w.Reset()
			s := filtertest.NewStream(&w)
			st := f.DecodeHeaders(s)
			if st == httpfilter.Stop {
				aborted++
				if w.Status != 503 || string(w.Body) != AbortBody || s.Info.Flags&streaminfo.FaultInjected == 0 {
					t.Fatalf("abort reply %d %q flags %v", w.Status, w.Body, s.Info.Flags)
				}
			}
		}
		mean, sd := n*tc.p, math.Sqrt(n*tc.p*(1-tc.p))
		if math.Abs(float64(aborted)-mean) > 5*sd {
			t.Errorf("percentage %s: %d of %d aborted, want %.0f ± %.0f", tc.pct, aborted, n, mean, 5*sd)
		}
		if got := f.c.aborts.Value(); got != uint64(aborted) {
			t.Errorf("aborts_injected %d, want %d", got, aborted)
		}
	}
}

// seq returns a deterministic draw sequence.
func seq(vals ...uint64) func() uint64 {
	i := 0
	return func() uint64 { v := vals[i%len(vals)]; i++; return v }
}

func TestHeaderControlledAbort(t *testing.T) {
	f := newFilter(t, `abort: {header_abort: {}, percentage: {numerator: 50}}`, Options{Random: seq(10)})
	for _, tc := range []struct {
		hdr        []string
		wantStatus int // 0: no abort
		wantGRPC   string
	}{
		{nil, 0, ""},
		{[]string{HeaderAbortRequest, "429"}, 429, ""},
		{[]string{HeaderAbortRequest, "600"}, 0, ""}, // out of [200, 600)
		{[]string{HeaderAbortRequest, "abc"}, 0, ""},
		{[]string{HeaderAbortGRPCRequest, "14"}, 200, "14"},
		{[]string{HeaderAbortGRPCRequest, "0"}, 200, "0"},
		{[]string{HeaderAbortRequest, "503", HeaderAbortGRPCRequest, "14"}, 503, ""},
		// The percentage header lowers the configured 50 % to 5 %: a draw
		// of 10 misses; it cannot raise it.
		{[]string{HeaderAbortRequest, "503", HeaderAbortRequestPercentage, "5"}, 0, ""},
		{[]string{HeaderAbortRequest, "503", HeaderAbortRequestPercentage, "100"}, 503, ""},
	} {
		var w filtertest.Recorder
		s := filtertest.NewStream(&w, tc.hdr...)
		s.GRPC = tc.wantGRPC != ""
		st := f.DecodeHeaders(s)
		if tc.wantStatus == 0 {
			if st != httpfilter.Continue || w.Sent {
				t.Errorf("%v: aborted with %d", tc.hdr, w.Status)
			}
			continue
		}
		if st != httpfilter.Stop || w.Status != tc.wantStatus {
			t.Errorf("%v: status %v %d, want %d", tc.hdr, st, w.Status, tc.wantStatus)
		}
		if g := string(w.Header.Get(headers.GRPCStatus)); g != tc.wantGRPC {
			t.Errorf("%v: grpc-status %q, want %q", tc.hdr, g, tc.wantGRPC)
		}
	}
}

func TestFixedAbortIgnoresHeaders(t *testing.T) {
	f := newFilter(t, `abort: {grpc_status: 4, percentage: {numerator: 100}}`, Options{})
	var w filtertest.Recorder
	s := filtertest.NewStream(&w, HeaderAbortRequest, "500", HeaderAbortRequestPercentage, "0")
	s.GRPC = true
	if f.DecodeHeaders(s) != httpfilter.Stop || w.Status != 200 || string(w.Header.Get(headers.GRPCStatus)) != "4" {
		t.Fatalf("status %d grpc-status %q, want 200 / 4", w.Status, w.Header.Get(headers.GRPCStatus))
	}
}

func TestHeaderControlledDelay(t *testing.T) {
	f := newFilter(t, `delay: {header_delay: {}, percentage: {numerator: 100}}`, Options{})
	for _, tc := range []struct {
		hdr  []string
		want time.Duration
		ok   bool
	}{
		{nil, 0, false},
		{[]string{HeaderDelayRequest, "250"}, 250 * time.Millisecond, true},
		{[]string{HeaderDelayRequest, "0"}, 0, false},
		{[]string{HeaderDelayRequest, "-5"}, 0, false},
		{[]string{HeaderDelayRequest, "250", HeaderDelayRequestPercentage, "0"}, 0, false},
	} {
		s := filtertest.NewStream(&filtertest.Recorder{}, tc.hdr...)
		d, ok := f.settings.delayFor(&s.Req, f.random)
		if d != tc.want || ok != tc.ok {
			t.Errorf("%v: delay %v %v, want %v %v", tc.hdr, d, ok, tc.want, tc.ok)
		}
	}
}

// TestDelayThenAbort: a delay is injected (DI), then the abort (FI); the
// request counts once in active_faults while it lasts.
func TestDelayThenAbort(t *testing.T) {
	f := newFilter(t, `
delay: {fixed_delay: 0.02s, percentage: {numerator: 100}}
abort: {http_status: 500, percentage: {numerator: 100}}`, Options{})
	var w filtertest.Recorder
	s := filtertest.NewStream(&w)
	start := time.Now()
	if f.DecodeHeaders(s) != httpfilter.Stop || w.Status != 500 {
		t.Fatalf("status %d", w.Status)
	}
	if took := time.Since(start); took < 20*time.Millisecond {
		t.Errorf("returned after %v, before the 20 ms delay", took)
	}
	if s.Info.Flags&(streaminfo.DelayInjected|streaminfo.FaultInjected) != streaminfo.DelayInjected|streaminfo.FaultInjected {
		t.Errorf("flags %v, want DI and FI", s.Info.Flags)
	}
	if f.c.delays.Value() != 1 || f.c.aborts.Value() != 1 || f.c.active.Value() != 0 {
		t.Errorf("delays %d aborts %d active %d", f.c.delays.Value(), f.c.aborts.Value(), f.c.active.Value())
	}
}

// TestDelayEndsWithContext: a delay ends when the stream's context does; the
// stream is reset, nothing is sent and the request goes no further.
func TestDelayEndsWithContext(t *testing.T) {
	f := newFilter(t, `delay: {fixed_delay: 3600s, percentage: {numerator: 100}}`, Options{})
	var w filtertest.Recorder
	s := filtertest.NewStream(&w)
	ctx, cancel := context.WithCancel(context.Background())
	s.Ctx = ctx
	done := make(chan httpfilter.Status)
	go func() { done <- f.DecodeHeaders(s) }()
	deadline := time.Now().Add(5 * time.Second)
	for f.c.active.Value() != 1 { // the fault is in progress
		if time.Now().After(deadline) {
			t.Fatal("the delay did not start")
		}
		time.Sleep(time.Millisecond) // polling a condition with a deadline
	}
	cancel()
	select {
	case st := <-done:
		if st != httpfilter.Stop || w.Sent || !w.Aborted {
			t.Fatalf("status %v sent %v aborted %v", st, w.Sent, w.Aborted)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the delay did not end with the context")
	}
	if f.c.active.Value() != 0 || s.Info.Flags&streaminfo.DownstreamConnectionTermination == 0 {
		t.Errorf("active %d flags %v", f.c.active.Value(), s.Info.Flags)
	}
}

func TestMaxActiveFaults(t *testing.T) {
	f := newFilter(t, `
max_active_faults: 1
abort: {http_status: 500, percentage: {numerator: 100}}`, Options{})
	f.c.active.Inc() // one fault in progress elsewhere
	var w filtertest.Recorder
	if f.DecodeHeaders(filtertest.NewStream(&w)) != httpfilter.Continue || w.Sent {
		t.Fatal("fault injected over max_active_faults")
	}
	if f.c.overflow.Value() != 1 {
		t.Errorf("faults_overflow %d, want 1", f.c.overflow.Value())
	}
	f.c.active.Dec()
	if f.DecodeHeaders(filtertest.NewStream(&w)) != httpfilter.Stop {
		t.Fatal("fault not injected under max_active_faults")
	}
}

// TestMatching: headers and upstream_cluster restrict the requests; the
// per-route configuration replaces the filter's; an empty one does nothing.
func TestMatching(t *testing.T) {
	f := newFilter(t, `
headers: [{name: x-canary, string_match: {exact: "1"}}]
abort: {http_status: 500, percentage: {numerator: 100}}`, Options{})
	var w filtertest.Recorder
	if f.DecodeHeaders(filtertest.NewStream(&w)) != httpfilter.Continue {
		t.Error("aborted a request without the header")
	}
	if f.DecodeHeaders(filtertest.NewStream(&w, "x-canary", "1")) != httpfilter.Stop {
		t.Error("did not abort a request with the header")
	}
	pr, err := Compile(parseFault(t, `abort: {http_status: 418, percentage: {numerator: 100}}`))
	if err != nil {
		t.Fatal(err)
	}
	w.Reset()
	s := filtertest.NewStream(&w)
	s.FilterConfig = pr
	if f.DecodeHeaders(s) != httpfilter.Stop || w.Status != 418 {
		t.Errorf("per-route configuration: %d, want 418", w.Status)
	}
	empty, _ := Compile(parseFault(t, `{}`))
	s = filtertest.NewStream(&w, "x-canary", "1")
	s.FilterConfig = empty
	if f.DecodeHeaders(s) != httpfilter.Continue {
		t.Error("an empty per-route configuration injected a fault")
	}
}

func TestStatsNames(t *testing.T) {
	st := stats.NewStore()
	newFilter(t, `{}`, Options{Scope: st.Root().Scope("http").Scope("front")})
	for _, n := range []string{"http.front.fault.delays_injected", "http.front.fault.aborts_injected",
		"http.front.fault.faults_overflow", "http.front.fault.active_faults"} {
		if st.Get(n) == nil {
			t.Errorf("stat %s missing", n)
		}
	}
}

// BenchmarkDecodeHeaders is the per-request path of a filter whose route
// injects no fault (the common case) and of one that aborts.
func BenchmarkDecodeHeaders(b *testing.B) {
	for _, bc := range []struct{ name, y string }{
		{"inert", `{}`},
		{"miss", `abort: {http_status: 500, percentage: {numerator: 0}}`},
		{"abort", `abort: {http_status: 500, percentage: {numerator: 100}}`},
		{"header-miss", `abort: {header_abort: {}, percentage: {numerator: 100}}`},
	} {
		b.Run(bc.name, func(b *testing.B) {
			f := newFilter(b, bc.y, Options{})
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
