package routerfilter

import (
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/proxy/headers"
	"github.com/weftmesh/weft/internal/proxy/router"
)

func stateFor(on router.RetryOn, codes ...uint32) *retryState {
	p := *router.DefaultRetryPolicy()
	p.On, p.RetriableStatusCodes = on, codes
	return &retryState{policy: &p, on: on, remaining: p.NumRetries, interval: p.BaseInterval}
}

func response(status int, hdrs ...string) *headers.Response {
	r := &headers.Response{Status: status}
	for i := 0; i+1 < len(hdrs); i += 2 {
		r.Set(hdrs[i], hdrs[i+1])
	}
	return r
}

func TestWouldRetryResponse(t *testing.T) {
	for _, tc := range []struct {
		name string
		rs   *retryState
		resp *headers.Response
		want bool
	}{
		{"5xx on 500", stateFor(router.Retry5xx), response(500), true},
		{"5xx on 404", stateFor(router.Retry5xx), response(404), false},
		{"gateway-error on 503", stateFor(router.RetryGatewayError), response(503), true},
		{"gateway-error on 500", stateFor(router.RetryGatewayError), response(500), false},
		{"retriable-4xx on 409", stateFor(router.RetryRetriable4xx), response(409), true},
		{"retriable-4xx on 429", stateFor(router.RetryRetriable4xx), response(429), false},
		{"status codes", stateFor(router.RetryRetriableStatusCodes, 429), response(429), true},
		{"status codes not listed", stateFor(router.RetryRetriableStatusCodes, 429), response(503), false},
		{"codes without the condition", stateFor(router.Retry5xx, 429), response(429), false},
		{"overloaded never", stateFor(router.Retry5xx), response(503, "x-envoy-overloaded", "true"), false},
		{"rate limited without envoy-ratelimited", stateFor(router.Retry5xx), response(503, "x-envoy-ratelimited", "true"), false},
		{"envoy-ratelimited", stateFor(router.RetryEnvoyRateLimited), response(429, "x-envoy-ratelimited", "true"), true},
		{"grpc unavailable", stateFor(router.RetryGrpcUnavailable), response(200, "grpc-status", "14"), true},
		{"grpc internal not asked", stateFor(router.RetryGrpcUnavailable), response(200, "grpc-status", "13"), false},
		{"grpc ok", stateFor(router.RetryGrpcAny), response(200, "grpc-status", "0"), false},
		{"no condition", stateFor(0), response(503), false},
	} {
		if got := tc.rs.wouldRetryResponse(tc.resp); got != tc.want {
			t.Errorf("%s: wouldRetryResponse = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestWouldRetryResponseHeaderCodes(t *testing.T) {
	rs := stateFor(router.RetryRetriableStatusCodes)
	rs.parseCodes([]byte("418, x, 999,425"))
	if rs.nCodes != 2 || !rs.wouldRetryResponse(response(418)) || !rs.wouldRetryResponse(response(425)) {
		t.Errorf("codes %v (n %d): want 418 and 425 retriable, invalid entries skipped", rs.codes, rs.nCodes)
	}
}

func TestWouldRetryFailure(t *testing.T) {
	all := []failure{failOverflow, failConnect, failReset, failRefused, failPerTry, failFinal, failNotRetriable}
	for _, tc := range []struct {
		on      router.RetryOn
		started bool
		want    []failure // the retried ones
	}{
		{router.Retry5xx, true, []failure{failConnect, failReset, failRefused, failPerTry}},
		{router.RetryGatewayError, true, []failure{failConnect, failReset, failRefused, failPerTry}},
		{router.RetryReset, true, []failure{failConnect, failReset, failRefused, failPerTry}},
		{router.RetryConnectFailure, true, []failure{failConnect}},
		{router.RetryRefusedStream, true, []failure{failRefused}},
		{router.RetryResetBeforeRequest, true, nil},
		{router.RetryResetBeforeRequest, false, []failure{failConnect, failReset, failRefused, failPerTry}},
		{router.RetryGrpcUnavailable | router.RetryRetriable4xx, false, nil},
	} {
		rs := stateFor(tc.on)
		for _, f := range all {
			want := false
			for _, w := range tc.want {
				want = want || w == f
			}
			if got := rs.wouldRetryFailure(f, tc.started); got != want {
				t.Errorf("on %b started %v failure %d: retry = %v, want %v", tc.on, tc.started, f, got, want)
			}
		}
	}
}

// TestJitteredBackoff checks Envoy's fully jittered exponential back-off
// with chosen random values: the wait is random % interval (whole
// milliseconds), the interval doubles from the base up to the max.
func TestJitteredBackoff(t *testing.T) {
	rs := stateFor(router.Retry5xx)
	rs.policy.BaseInterval, rs.policy.MaxInterval, rs.interval = 25*time.Millisecond, 100*time.Millisecond, 25*time.Millisecond
	// random = 10_000 - 1 is interval - 1 ms modulo 25, 50 and 100 ms:
	// the longest wait of each interval (25, 50, then 100 ms for ever).
	for i, want := range []time.Duration{24, 49, 99, 99, 99} {
		if got := rs.nextBackoff(9999); got != want*time.Millisecond {
			t.Errorf("retry %d: %v, want %v", i+1, got, want*time.Millisecond)
		}
	}
	if d, _ := jitteredBackoff(0, 25*time.Millisecond, 250*time.Millisecond); d != 0 {
		t.Errorf("random 0: %v, want 0", d)
	}
	if d, next := jitteredBackoff(37, 25*time.Millisecond, 250*time.Millisecond); d != 12*time.Millisecond || next != 50*time.Millisecond {
		t.Errorf("random 37: %v next %v, want 12ms next 50ms", d, next)
	}
}

func TestRetryHeadersScan(t *testing.T) {
	req := &headers.Request{}
	req.Set("x-envoy-internal", "true")
	req.Set("x-envoy-expected-rq-timeout-ms", "100")
	if retryHeaders(req) {
		t.Error("retryHeaders found retry headers in a request without any")
	}
	if n := testing.AllocsPerRun(100, func() { retryHeaders(req) }); n != 0 {
		t.Errorf("retryHeaders allocates %v times", n)
	}
	req.Set("x-envoy-max-retries", "2")
	if !retryHeaders(req) {
		t.Error("retryHeaders missed x-envoy-max-retries")
	}
}

func TestApplyRetryHeaders(t *testing.T) {
	req := &headers.Request{}
	req.Set(hdrRetryOn, "5xx,bogus")
	req.Set(hdrRetryGrpcOn, "unavailable")
	req.Set(hdrMaxRetries, "4")
	req.Set(hdrPerTryTimeoutMs, "150")
	req.Set(hdrRetriableCodes, "418")
	rs := stateFor(router.RetryConnectFailure)
	rs.applyHeaders(req)
	if want := router.RetryConnectFailure | router.Retry5xx | router.RetryGrpcUnavailable; rs.on != want {
		t.Errorf("on = %b, want %b", rs.on, want)
	}
	if rs.remaining != 4 || rs.perTry != 150*time.Millisecond || rs.nCodes != 1 {
		t.Errorf("remaining %d per-try %v codes %d, want 4, 150ms, 1", rs.remaining, rs.perTry, rs.nCodes)
	}
	if retryHeaders(req) {
		t.Error("the retry headers were not removed from the upstream request")
	}
}

func TestReplayBody(t *testing.T) {
	b := &replayBody{data: []byte("hello world")}
	buf := make([]byte, 4)
	for try := 0; try < 2; try++ {
		b.rewind()
		var got []byte
		for {
			n, err := b.Read(buf)
			got = append(got, buf[:n]...)
			if err != nil {
				break
			}
		}
		if string(got) != "hello world" || b.Buffered() != 0 || !b.Complete() {
			t.Errorf("try %d read %q", try, got)
		}
	}
}

// BenchmarkRetryHeaders is the cost retries add to every request without a
// retry policy: one scan of the header names.
func BenchmarkRetryHeaders(b *testing.B) {
	req := &headers.Request{}
	for _, n := range []string{"user-agent", "accept", "x-forwarded-proto", "x-request-id", "x-envoy-internal", "x-envoy-expected-rq-timeout-ms"} {
		req.Set(n, "v")
	}
	b.ReportAllocs()
	for b.Loop() {
		if retryHeaders(req) {
			b.Fatal("found retry headers")
		}
	}
}
