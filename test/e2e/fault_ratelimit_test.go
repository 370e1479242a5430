package e2e

// End-to-end tests of envoy.filters.http.fault and
// envoy.filters.http.local_ratelimit, both installed on the connection
// manager with a configuration that does nothing and enabled per route
// through typed_per_filter_config (how Istio installs the fault filter).

import (
	"fmt"
	"math"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/weftmesh/weft/internal/proxy/streaminfo"
)

// resilienceFilters are the fault and local rate limit filters, both
// inert at the connection manager level.
const resilienceFilters = `          - name: envoy.filters.http.fault
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault
          - name: envoy.filters.http.local_ratelimit
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit
              stat_prefix: http_local_rate_limiter
`

// startFiltered starts a "front" proxy with the resilience filters before
// the router.
func startFiltered(t *testing.T, f front) *Proxy {
	t.Helper()
	y := f.yaml()
	const anchor = "          http_filters:\n"
	if !strings.Contains(y, anchor) {
		t.Fatal("front.yaml() has no http_filters")
	}
	return StartProxy(t, strings.Replace(y, anchor, anchor+resilienceFilters, 1))
}

// faultRoute is a route for prefix to the backend with an HTTPFault
// per-route configuration (a YAML flow mapping of HTTPFault fields).
func faultRoute(prefix, fault string) string {
	return fmt.Sprintf(`  - match: {prefix: %s}
    route: {cluster: backend}
    typed_per_filter_config:
      envoy.filters.http.fault:
        "@type": type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault
        %s
`, prefix, fault)
}

func vhost(routes ...string) string {
	return "virtual_hosts:\n- name: all\n  domains: [\"*\"]\n  routes:\n" + strings.Join(routes, "")
}

// TestFaultAbortPercentage: a route aborting 50 % of requests with 503
// aborts a binomial share of N requests, each with FI in the stream info
// and counted in http.front.fault.aborts_injected; the others reach the
// upstream.
func TestFaultAbortPercentage(t *testing.T) {
	p := startFiltered(t, front{
		Routes:   vhost(faultRoute("/", `abort: {http_status: 503, percentage: {numerator: 50}}`)),
		Clusters: map[string]string{"backend": startEcho(t, "a")},
	})
	const n = 400
	c := Client()
	aborted := 0
	for i := 0; i < n; i++ {
		code, body, _ := Get(t, c, p.URL("front")+"/x")
		switch {
		case code == 503 && body == "fault filter abort":
			aborted++
		case code != 200:
			t.Fatalf("request %d: %d %q", i, code, body)
		}
	}
	// Binomial(n=400, p=0.5): mean 200, standard deviation 10. The
	// tolerance is 5 standard deviations (false failure rate < 1e-6).
	if math.Abs(float64(aborted)-200) > 50 {
		t.Errorf("aborted %d of %d requests, want 200 ± 50", aborted, n)
	}
	p.NextStream(n - 1)
	fi := 0
	for _, info := range p.Streams() {
		if info.Flags&streaminfo.FaultInjected != 0 {
			fi++
			if info.ResponseCode != 503 || info.Details != "fault_filter_abort" {
				t.Errorf("FI stream: code %d details %q", info.ResponseCode, info.Details)
			}
		}
	}
	if fi != aborted {
		t.Errorf("%d streams with FI, want %d", fi, aborted)
	}
	if got := p.Stat("http.front.fault.aborts_injected"); got != int64(aborted) {
		t.Errorf("aborts_injected = %d, want %d", got, aborted)
	}
	if got := p.Stat("cluster.backend.upstream_rq_total"); got != int64(n-aborted) {
		t.Errorf("upstream requests %d, want %d", got, n-aborted)
	}
}

// TestFaultFixedDelay: a 300 ms fixed delay on every request is measured by
// the client, flagged DI, counted, and the request then reaches the
// upstream; active_faults is back to 0.
func TestFaultFixedDelay(t *testing.T) {
	const delay = 300 * time.Millisecond
	p := startFiltered(t, front{
		Routes:   vhost(faultRoute("/", `delay: {fixed_delay: 0.3s, percentage: {numerator: 100}}`)),
		Clusters: map[string]string{"backend": startEcho(t, "a")},
	})
	c := Client()
	for i := 0; i < 3; i++ {
		start := time.Now()
		code, _, _ := Get(t, c, p.URL("front")+"/")
		took := time.Since(start)
		// At least the delay; at most the delay plus a generous 2 s for a
		// loaded machine running -race.
		if code != 200 || took < delay || took > delay+2*time.Second {
			t.Fatalf("request %d: %d after %v, want 200 after %v", i, code, took, delay)
		}
		if info := p.NextStream(i); info.Flags&streaminfo.DelayInjected == 0 || info.ResponseCode != 200 {
			t.Errorf("request %d: flags %v code %d, want DI and 200", i, info.Flags, info.ResponseCode)
		}
	}
	if got := p.Stat("http.front.fault.delays_injected"); got != 3 {
		t.Errorf("delays_injected = %d, want 3", got)
	}
	p.WaitStat("http.front.fault.active_faults", 0)
}

// TestFaultDelayEndsWithDownstream: a client that gives up during a long
// delay frees the stream at once (no 60 s wait).
func TestFaultDelayEndsWithDownstream(t *testing.T) {
	p := startFiltered(t, front{
		Routes:   vhost(faultRoute("/", `delay: {fixed_delay: 60s, percentage: {numerator: 100}}`)),
		Clusters: map[string]string{"backend": startEcho(t, "a")},
	})
	c := H2CClient()
	c.Timeout = 200 * time.Millisecond
	if resp, err := c.Get(p.URL("front") + "/"); err == nil {
		resp.Body.Close()
		t.Fatal("request during a 60 s delay succeeded")
	}
	p.WaitStat("http.front.fault.active_faults", 0) // within 5 s, not 60
	if info := p.NextStream(0); info.Flags&streaminfo.DelayInjected == 0 {
		t.Errorf("flags %v, want DI", info.Flags)
	}
	if got := p.Stat("cluster.backend.upstream_rq_total"); got != 0 {
		t.Errorf("the abandoned request reached the upstream")
	}
}

// TestFaultGRPCAbort: a grpc_status abort answers a gRPC call with HTTP 200
// and that status (UNAVAILABLE here), with FI.
func TestFaultGRPCAbort(t *testing.T) {
	p := startFiltered(t, front{
		Routes:   vhost(faultRoute("/", `abort: {grpc_status: 14, percentage: {numerator: 100}}`)),
		Clusters: map[string]string{"backend": startEcho(t, "a")},
	})
	cc := dialGRPC(t, p.Addr("front"))
	_, err := healthpb.NewHealthClient(cc).Check(grpcCtx(t), &healthpb.HealthCheckRequest{})
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("Check: %v, want code Unavailable", err)
	}
	if info := p.NextStream(0); info.ResponseCode != 200 || info.Flags&streaminfo.FaultInjected == 0 {
		t.Errorf("recorded code %d flags %v, want 200 FI", info.ResponseCode, info.Flags)
	}
}

// TestFaultPerRoute: the inert listener-level filter injects nothing; a
// route's configuration enables it for that route only; a virtual host's
// configuration applies to its routes unless a route disables the filter
// with a FilterConfig; header-controlled aborts need header_abort.
func TestFaultPerRoute(t *testing.T) {
	routes := `virtual_hosts:
- name: faulty
  domains: ["faulty.example"]
  typed_per_filter_config:
    envoy.filters.http.fault:
      "@type": type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault
      abort: {http_status: 418, percentage: {numerator: 100}}
  routes:
  - match: {prefix: /spared}
    route: {cluster: backend}
    typed_per_filter_config:
      envoy.filters.http.fault:
        "@type": type.googleapis.com/envoy.config.route.v3.FilterConfig
        disabled: true
  - match: {prefix: /}
    route: {cluster: backend}
- name: all
  domains: ["*"]
  routes:
` + faultRoute("/abort", `abort: {http_status: 502, percentage: {numerator: 100}}`) +
		faultRoute("/header", `abort: {header_abort: {}, percentage: {numerator: 100}}`) + `  - match: {prefix: /}
    route: {cluster: backend}
`
	p := startFiltered(t, front{Routes: routes, Clusters: map[string]string{"backend": startEcho(t, "a")}})
	c := Client()
	for _, tc := range []struct {
		path string
		hdr  []string
		want int
	}{
		{"/plain", nil, 200},
		{"/plain", []string{"x-envoy-fault-abort-request", "500"}, 200}, // no header_abort here
		{"/abort", nil, 502},
		{"/header", nil, 200},
		{"/header", []string{"x-envoy-fault-abort-request", "451"}, 451},
		{"/header", []string{"x-envoy-fault-abort-request", "451", "x-envoy-fault-abort-request-percentage", "0"}, 200},
		{"/x", []string{"host", "faulty.example"}, 418},
		{"/spared", []string{"host", "faulty.example"}, 200},
	} {
		if code, _, _ := Get(t, c, p.URL("front")+tc.path, tc.hdr...); code != tc.want {
			t.Errorf("GET %s %v: %d, want %d", tc.path, tc.hdr, code, tc.want)
		}
	}
}

// TestLocalRateLimit: a route's token bucket (10 tokens, 10 more every
// 100 ms: 100 requests/s after a burst of 10) under saturating load admits
// its rate ± 5 % over a 3 s window; every other request gets 429
// "local_rate_limited" with RL, and the counters add up. A route without a
// per-route configuration is not limited (the listener-level filter is
// inert).
func TestLocalRateLimit(t *testing.T) {
	routes := vhost(`  - match: {prefix: /limited}
    route: {cluster: backend}
    typed_per_filter_config:
      envoy.filters.http.local_ratelimit:
        "@type": type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit
        stat_prefix: limited
        token_bucket: {max_tokens: 10, tokens_per_fill: 10, fill_interval: 0.1s}
        filter_enabled: {default_value: {numerator: 100}}
        filter_enforced: {default_value: {numerator: 100}}
        response_headers_to_add: [{header: {key: x-limited, value: "yes"}}]
        enable_x_ratelimit_headers: DRAFT_VERSION_03
`, `  - match: {prefix: /}
    route: {cluster: backend}
`)
	p := startFiltered(t, front{Routes: routes, Clusters: map[string]string{"backend": startEcho(t, "a")}})
	const (
		workers = 4
		window  = 3 * time.Second
		rate    = 100.0 // tokens per second
		burst   = 10.0
	)
	var ok, limited, bad atomic.Int64
	var firstBad atomic.Value
	start := time.Now()
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := Client()
			for time.Since(start) < window {
				resp, err := c.Get(p.URL("front") + "/limited")
				if err != nil {
					bad.Add(1)
					firstBad.CompareAndSwap(nil, err.Error())
					return
				}
				body := readAll(resp)
				switch {
				case resp.StatusCode == 200 && resp.Header.Get("x-ratelimit-limit") == "10":
					ok.Add(1)
				case resp.StatusCode == 429 && body == "local_rate_limited" && resp.Header.Get("x-limited") == "yes" &&
					resp.Header.Get("x-ratelimit-remaining") == "0":
					limited.Add(1)
				default:
					bad.Add(1)
					firstBad.CompareAndSwap(nil, fmt.Sprintf("%d %q %v", resp.StatusCode, body, resp.Header))
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if bad.Load() > 0 {
		t.Fatalf("%d unexpected responses, first: %v", bad.Load(), firstBad.Load())
	}
	// The bucket is full when the load starts, then fills 10 tokens at
	// each 100 ms boundary. Saturating load admits burst + rate × elapsed,
	// give or take one fill (10 tokens, 3 % of the ~310 expected) from
	// where the window falls relative to the fill boundaries; the
	// tolerance is ± 5 %.
	want := burst + rate*elapsed.Seconds()
	if got := float64(ok.Load()); math.Abs(got-want) > 0.05*want {
		t.Errorf("admitted %v requests in %v, want %.0f ± 5 %%", got, elapsed, want)
	}
	if limited.Load() < ok.Load() {
		t.Errorf("only %d requests limited for %d admitted: the load did not saturate the bucket", limited.Load(), ok.Load())
	}
	total := ok.Load() + limited.Load()
	p.NextStream(int(total) - 1)
	rl := 0
	for _, info := range p.Streams() {
		if info.Flags&streaminfo.RateLimited != 0 {
			rl++
			if info.ResponseCode != 429 || info.Details != "local_rate_limited" {
				t.Errorf("RL stream: code %d details %q", info.ResponseCode, info.Details)
			}
		}
	}
	if rl != int(limited.Load()) {
		t.Errorf("%d streams with RL, want %d", rl, limited.Load())
	}
	for name, want := range map[string]int64{
		"limited.http_local_rate_limit.enabled":      total,
		"limited.http_local_rate_limit.ok":           ok.Load(),
		"limited.http_local_rate_limit.rate_limited": limited.Load(),
		"limited.http_local_rate_limit.enforced":     limited.Load(),
	} {
		if got := p.Stat(name); got != want {
			t.Errorf("%s = %d, want %d", name, got, want)
		}
	}
	c := Client()
	for i := 0; i < 50; i++ {
		if code, _, _ := Get(t, c, p.URL("front")+"/other"); code != 200 {
			t.Fatalf("unlimited route: request %d got %d", i, code)
		}
	}
}

// readAll reads and closes a response body.
func readAll(resp *http.Response) string {
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 512)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			return b.String()
		}
	}
}

// TestFilterDisabledByDefault: an http_filters entry with disabled: true
// (here a fault filter that aborts everything) runs only on routes whose
// typed_per_filter_config enables it, with a FilterConfig whose empty
// config keeps the listener-level configuration.
func TestFilterDisabledByDefault(t *testing.T) {
	f := front{
		Routes: vhost(`  - match: {prefix: /enabled}
    route: {cluster: backend}
    typed_per_filter_config:
      aborter:
        "@type": type.googleapis.com/envoy.config.route.v3.FilterConfig
        config: {}
`, `  - match: {prefix: /}
    route: {cluster: backend}
`),
		Clusters: map[string]string{"backend": startEcho(t, "a")},
	}
	const anchor = "          http_filters:\n"
	y := strings.Replace(f.yaml(), anchor, anchor+`          - name: aborter
            disabled: true
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault
              abort: {http_status: 503, percentage: {numerator: 100}}
`, 1)
	p := StartProxy(t, y)
	c := Client()
	if code, _, _ := Get(t, c, p.URL("front")+"/other"); code != 200 {
		t.Errorf("route without per-route config: %d, want 200 (filter disabled by default)", code)
	}
	if code, body, _ := Get(t, c, p.URL("front")+"/enabled"); code != 503 || body != "fault filter abort" {
		t.Errorf("route enabling the filter: %d %q, want 503 fault filter abort", code, body)
	}
}
