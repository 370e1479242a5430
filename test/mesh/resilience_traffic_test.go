package mesh

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// Fault injection, circuit breaking and mirroring from Istio YAML, and
// weft's LocalRateLimit, each proven through sidecars (resilience_test.go
// has the helpers).

// faultRoutes is the VirtualService of the faulty service (a GRPC port,
// so plain HTTP and gRPC both reach the app): gRPC calls with x-fault:
// grpc are aborted with RESOURCE_EXHAUSTED half of the time (a code no
// HTTP status maps to, so the client sees the fault's grpc-status), /delay
// waits 300 ms every time, and the rest is aborted with 503 20 % of the
// time.
const faultRoutes = `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: faulty, namespace: default}
spec:
  hosts: [faulty.default.svc.cluster.local]
  http:
  - match:
    - headers:
        x-fault: {exact: grpc}
    fault:
      abort: {grpcStatus: RESOURCE_EXHAUSTED, percentage: {value: 50}}
    route:
    - destination: {host: faulty.default.svc.cluster.local}
  - match:
    - uri: {prefix: /delay}
    fault:
      delay: {fixedDelay: 300ms, percentage: {value: 100}}
    route:
    - destination: {host: faulty.default.svc.cluster.local}
  - fault:
      abort: {httpStatus: 503, percentage: {value: 20}}
    route:
    - destination: {host: faulty.default.svc.cluster.local}
`

// faultDelay is faultRoutes' fixed delay.
const faultDelay = 300 * time.Millisecond

// TestFaultAbortDelayAndGRPC: the client sidecar injects the
// VirtualService's faults (the app is a plain endpoint: faults are applied
// on the client side, Istio's outbound HCM): HTTP aborts at 20 % and gRPC
// aborts at 50 % within ±5σ binomial bands, aborted requests never reach
// the app, and the fixed delay is measured.
func TestFaultAbortDelayAndGRPC(t *testing.T) {
	a := startApp(t, "faulty")
	cp := startControlPlane(t, map[string]string{
		"faulty.yaml":    serviceYAML("faulty", "GRPC", workload{name: "faulty-1", ip: "127.0.0.1", port: a.port}),
		"faulty-vs.yaml": faultRoutes,
	})
	client := startSidecar(t, cp, sidecarOptions{Name: "sleep", IP: "127.0.0.3",
		Labels: map[string]string{"app": "sleep"}, ProxyPort: freePort(t, "127.0.0.1")})
	cluster := "cluster." + outbound("faulty")
	// The fault filter's statistics in the client sidecar's outbound HTTP
	// proxy listener (Envoy's http.<stat_prefix>.fault.*): the response
	// flags FI and DI are counted there.
	faults := "http.outbound_" + strings.ReplaceAll(client.proxy, ":", "_") + ".fault."
	c := meshClient(t, client)

	t.Run("http abort 20%", func(t *testing.T) {
		const n = 1000
		codes := parallelCodes(t, c, serviceURL("faulty"), n, 4)
		lo, hi := binomialBound(n, 0.20)
		if codes[200]+codes[503] != n || codes[503] < lo || codes[503] > hi {
			t.Fatalf("%d requests: %v; want only 200 and 503, 503 in [%d, %d] (±5σ of 20 %%)", n, codes, lo, hi)
		}
		// Aborted in the client sidecar: only the others went upstream.
		if got := client.stat(cluster + ".upstream_rq_total"); got != int64(codes[200]) {
			t.Errorf("%s.upstream_rq_total = %d, want the %d requests not aborted", cluster, got, codes[200])
		}
		if got := client.stat(faults + "aborts_injected"); got != int64(codes[503]) {
			t.Errorf("fault.aborts_injected = %d, want the %d 503s", got, codes[503])
		}
		t.Logf("%d requests: %v (503 band [%d, %d])", n, codes, lo, hi)
	})

	t.Run("fixed delay", func(t *testing.T) {
		// Five concurrent requests, each delayed 300 ms; the upper bound
		// (300 ms + 700 ms) leaves room for a loaded -race run, the lower
		// bound is exact (a delay never ends early).
		var wg sync.WaitGroup
		took := make([]time.Duration, 5)
		codes := make([]int, 5)
		for i := range took {
			wg.Add(1)
			go func() {
				defer wg.Done()
				start := time.Now()
				codes[i], _, _ = get(c, serviceURL("faulty")+"delay")
				took[i] = time.Since(start)
			}()
		}
		wg.Wait()
		for i, d := range took {
			if codes[i] != 200 || d < faultDelay || d > faultDelay+700*time.Millisecond {
				t.Errorf("delayed request %d: %d after %v, want 200 after %v (+ ≤ 700 ms)", i, codes[i], d, faultDelay)
			}
		}
		if got := client.stat(faults + "delays_injected"); got != 5 {
			t.Errorf("fault.delays_injected = %d, want 5", got)
		}
		t.Logf("delayed requests took %v", took)
	})

	t.Run("grpc abort 50%", func(t *testing.T) {
		cc, err := grpc.NewClient("passthrough:///"+client.proxy,
			grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithAuthority("faulty.default.svc.cluster.local:8080"))
		if err != nil {
			t.Fatal(err)
		}
		defer cc.Close()
		tc := testpb.NewTestServiceClient(cc)
		const n = 200
		abortsBefore := client.stat(faults + "aborts_injected")
		got := map[codes.Code]int{}
		for i := 0; i < n; i++ {
			ctx, cancel := context.WithTimeout(metadata.AppendToOutgoingContext(context.Background(), "x-fault", "grpc"), 5*time.Second)
			resp, err := tc.UnaryCall(ctx, &testpb.SimpleRequest{})
			cancel()
			if err == nil && resp.GetServerId() != "faulty" {
				t.Fatalf("call %d: answered by %q, want faulty", i, resp.GetServerId())
			}
			got[status.Code(err)]++
		}
		aborted := client.stat(faults + "aborts_injected")
		lo, hi := binomialBound(n, 0.5)
		if got[codes.OK]+got[codes.ResourceExhausted] != n || got[codes.ResourceExhausted] < lo || got[codes.ResourceExhausted] > hi {
			t.Fatalf("%d gRPC calls: %v; want only OK and ResourceExhausted, ResourceExhausted in [%d, %d] (±5σ of 50 %%)", n, got, lo, hi)
		}
		if aborted-abortsBefore != int64(got[codes.ResourceExhausted]) {
			t.Errorf("fault.aborts_injected grew by %d, want the %d aborted calls", aborted-abortsBefore, got[codes.ResourceExhausted])
		}
		t.Logf("%d gRPC calls: %v (band [%d, %d])", n, got, lo, hi)
	})
}

// parallelCodes sends n GET requests with the given number of workers and
// counts the status codes (0 for a transport error).
func parallelCodes(t *testing.T, c *http.Client, url string, n, workers int) map[int]int {
	t.Helper()
	var (
		mu   sync.Mutex
		out  = map[int]int{}
		next = make(chan struct{}, n)
		wg   sync.WaitGroup
	)
	for range n {
		next <- struct{}{}
	}
	close(next)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range next {
				code, _, _ := get(c, url)
				mu.Lock()
				out[code]++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return out
}

// slowPool is the slow service's DestinationRule: one connection, one
// pending request, two requests, one request per connection.
const slowPool = `
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: slow, namespace: default}
spec:
  host: slow.default.svc.cluster.local
  trafficPolicy:
    connectionPool:
      tcp: {maxConnections: 1}
      http: {http1MaxPendingRequests: 1, http2MaxRequests: 2, maxRequestsPerConnection: 1}
`

// reply is the outcome of a request sent in the background.
type reply struct {
	code int
	hdr  http.Header
	body string
	took time.Duration
	err  error
}

// goGet sends GET url through c in the background.
func goGet(c *http.Client, url string) <-chan reply {
	ch := make(chan reply, 1)
	go func() {
		start := time.Now()
		resp, err := c.Get(url)
		r := reply{err: err}
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			r.code, r.hdr, r.body = resp.StatusCode, resp.Header, string(b)
		}
		r.took = time.Since(start)
		ch <- r
	}()
	return ch
}

// slowDelay is the slow app's latency in TestCircuitBreakerOverflow.
const slowDelay = 600 * time.Millisecond

// TestCircuitBreakerOverflow: with the slow app (600 ms per request, and
// held until the test releases it), the client sidecar admits one request on its one connection and queues one
// (http1MaxPendingRequests: 1); every further concurrent request is
// answered at once by the client sidecar with 503, x-envoy-overloaded:
// true and the UO flag (counted in upstream_rq_pending_overflow, Envoy's
// overflow statistic), while the admitted two are still in flight: nothing
// else is queued, and the overflowing requests never reach the app. Then
// the two admitted requests complete, the queued one on a new connection
// (maxRequestsPerConnection: 1).
func TestCircuitBreakerOverflow(t *testing.T) {
	a := startTestApp(t, "slow", true)
	a.delay = slowDelay
	cp := startControlPlane(t, map[string]string{
		"slow.yaml":    serviceYAML("slow", "HTTP", workload{name: "slow-1", ip: "127.0.0.1", port: a.port}),
		"slow-dr.yaml": slowPool,
	})
	client := startSidecar(t, cp, sidecarOptions{Name: "sleep", IP: "127.0.0.3",
		Labels: map[string]string{"app": "sleep"}, ProxyPort: freePort(t, "127.0.0.1")})
	cluster := "cluster." + outbound("slow")
	c := meshClient(t, client)

	first := goGet(c, serviceURL("slow"))
	waitFor(t, "the first request held by the app", 10*time.Second, func() bool { return a.hits.Load() == 1 })
	second := goGet(c, serviceURL("slow"))
	waitFor(t, "the second request pending in the client sidecar", 10*time.Second, func() bool {
		return client.stat(cluster+".upstream_rq_pending_active") == 1
	})

	const overflow = 8
	replies := make([]<-chan reply, overflow)
	for i := range replies {
		replies[i] = goGet(c, serviceURL("slow"))
	}
	var slowest time.Duration
	for i, ch := range replies {
		r := <-ch
		// "At once": under a third of the slow app's latency (it takes
		// a few milliseconds; the third leaves room for a loaded -race
		// run), while the admitted requests stay held (checked below):
		// an overflow that queued would still be waiting.
		if r.err != nil || r.code != 503 || r.hdr.Get("x-envoy-overloaded") != "true" || r.took > slowDelay/3 {
			t.Errorf("overflowing request %d: %d %q x-envoy-overloaded=%q after %v %v; want 503 with x-envoy-overloaded: true at once",
				i, r.code, r.body, r.hdr.Get("x-envoy-overloaded"), r.took, r.err)
		}
		slowest = max(slowest, r.took)
	}
	select {
	case r := <-first:
		t.Fatalf("the held request completed (%d after %v) before the app was released", r.code, r.took)
	default:
	}
	if got := client.stat(cluster + ".upstream_rq_pending_overflow"); got != overflow {
		t.Errorf("%s.upstream_rq_pending_overflow = %d, want %d (UO, never retried)", cluster, got, overflow)
	}
	if got := a.hits.Load(); got != 1 {
		t.Errorf("the app received %d requests while holding the first, want 1", got)
	}

	a.release()
	var held time.Duration
	for i, ch := range []<-chan reply{first, second} {
		r := <-ch
		if r.err != nil || r.code != 200 || r.body != "slow" || r.took < slowDelay {
			t.Errorf("admitted request %d: %d %q %v after %v, want 200 from slow after ≥ %v", i+1, r.code, r.body, r.err, r.took, slowDelay)
		}
		held = max(held, r.took)
	}
	if h, n := a.hits.Load(), a.conns.Load(); h != 2 || n != 2 {
		t.Errorf("the app got %d requests on %d connections, want 2 on 2 (one connection at a time, one request each)", h, n)
	}
	t.Logf("%d overflow replies, the slowest after %v; the admitted requests took up to %v (the slow app: %v each)",
		overflow, slowest.Round(time.Microsecond), held.Round(time.Millisecond), slowDelay)
}

// mirrorRoutes sends the front service's traffic to front and mirrors all
// of it (mirrorPercentage 100) to the shadow service.
const mirrorRoutes = `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: front, namespace: default}
spec:
  hosts: [front.default.svc.cluster.local]
  http:
  - route:
    - destination: {host: front.default.svc.cluster.local}
    mirror: {host: shadow.default.svc.cluster.local}
    mirrorPercentage: {value: 100}
`

// TestMirrorToShadow: every request to front is mirrored to the shadow
// app with Host "front.default.svc.cluster.local-shadow:8080" (Envoy's
// -shadow suffix on the host part). The shadow holds every request until
// the test ends; the main responses are unaffected: all 200 from front,
// each well under a second, while the shadow still holds them all.
func TestMirrorToShadow(t *testing.T) {
	front, shadow := startTestApp(t, "front", false), startTestApp(t, "shadow", true)
	cp := startControlPlane(t, map[string]string{
		"front.yaml":    serviceYAML("front", "HTTP", workload{name: "front-1", ip: "127.0.0.1", port: front.port}),
		"shadow.yaml":   serviceYAML("shadow", "HTTP", workload{name: "shadow-1", ip: "127.0.0.1", port: shadow.port}),
		"front-vs.yaml": mirrorRoutes,
	})
	client := startSidecar(t, cp, sidecarOptions{Name: "sleep", IP: "127.0.0.3",
		Labels: map[string]string{"app": "sleep"}, ProxyPort: freePort(t, "127.0.0.1")})
	const n = 50
	const shadowHost = "front.default.svc.cluster.local-shadow:8080"
	c := meshClient(t, client)
	var slowest time.Duration
	for i := 0; i < n; i++ {
		start := time.Now()
		code, body, err := get(c, serviceURL("front"))
		took := time.Since(start)
		if err != nil || code != 200 || body != "front" || took > time.Second {
			t.Fatalf("request %d: %d %q %v after %v; want 200 from front at once while the shadow hangs", i, code, body, err, took)
		}
		slowest = max(slowest, took)
	}
	waitFor(t, "every request mirrored to the shadow", 10*time.Second, func() bool { return shadow.hits.Load() == n })
	if got := shadow.host(shadowHost); got != n {
		t.Errorf("the shadow saw %d requests with Host %q, want %d (hosts %v)", got, shadowHost, n, shadow.hosts)
	}
	if got := front.hits.Load(); got != n {
		t.Errorf("front received %d requests, want %d", got, n)
	}
	t.Logf("%d requests, the slowest main response %v; the shadow got all %d (Host %s) and held them", n, slowest.Round(time.Microsecond), n, shadowHost)
}

// rateLimit is the LocalRateLimit of the limited workload (weft's
// resource, docs/RATELIMIT.md): a bucket of 50 tokens (the burst), 5
// more every 50 ms: a sustained 100 requests per second.
const rateLimit = `
apiVersion: networking.weft.dev/v1alpha1
kind: LocalRateLimit
metadata: {name: limited, namespace: default}
spec:
  workloadSelector: {matchLabels: {app: limited}}
  tokenBucket: {maxTokens: 50, tokensPerFill: 5, fillInterval: 50ms}
  xRateLimitHeaders: true
`

// rateLimitBurst and rateLimitRate are rateLimit's bucket size and
// sustained rate (tokensPerFill / fillInterval).
const (
	rateLimitBurst = 50
	rateLimitRate  = 100.0 // per second
	rateLimitWin   = 2 * time.Second
)

// TestRateLimitAdmitsConfiguredRate: the limited app's sidecar limits its
// inbound listener; two workers send as fast as they can through the
// client sidecar for a 2 s window (far above 100/s). The sidecar admits
// burst + rate × window requests ± 5 %, where the window runs from the
// first request sent to the last: 50 + 100/s × 2 s ≈ 250. The bucket,
// full at the start, empties at once, and from then on each 50 ms fill is
// used before the next; a fill more or less inside the window is 5 tokens
// (2 %), within the 5 %. The rest get 429 from the server sidecar (the RL
// flag, counted in its rate_limited statistic) and never reach the app.
func TestRateLimitAdmitsConfiguredRate(t *testing.T) {
	a := startTestApp(t, "limited", false)
	w := workload{name: "limited-1", ip: "127.0.0.21", port: a.port}
	cp := startControlPlane(t, map[string]string{
		"limited.yaml":    serviceYAML("limited", "HTTP", w),
		"limited-rl.yaml": rateLimit,
	})
	server := startSidecar(t, cp, sidecarOptions{Name: w.name, IP: w.ip,
		Labels: map[string]string{"app": "limited"}, ProxyPort: freePort(t, "127.0.0.1")})
	client := startSidecar(t, cp, sidecarOptions{Name: "sleep", IP: "127.0.0.3",
		Labels: map[string]string{"app": "sleep"}, ProxyPort: freePort(t, "127.0.0.1")})

	c := meshClient(t, client)
	ld := startLoad(c, serviceURL("limited"), 2)
	<-time.After(rateLimitWin) // the measurement window, not a synchronisation
	results := ld.finish()

	first, last := results[0].at, results[0].at
	codes := map[int]int{}
	for _, r := range results {
		codes[r.code]++
		if r.at.Before(first) {
			first = r.at
		}
		if r.at.After(last) {
			last = r.at
		}
	}
	window := last.Sub(first)
	want := rateLimitBurst + rateLimitRate*window.Seconds()
	lo, hi := int(want*0.95), int(want*1.05+1)
	if codes[200]+codes[429] != len(results) || codes[200] < lo || codes[200] > hi {
		t.Fatalf("%d requests in %v: %v; want only 200 and 429, 200 in [%d, %d] (%d + %.0f/s × %v ± 5 %%)",
			len(results), window, codes, lo, hi, rateLimitBurst, rateLimitRate, window.Round(time.Millisecond))
	}
	if got := a.hits.Load(); got != int64(codes[200]) {
		t.Errorf("the app received %d requests, want the %d admitted", got, codes[200])
	}
	// The filter's statistics are at the root of the stats tree, under
	// its stat_prefix, as Envoy's.
	const limited = "http_local_rate_limiter.http_local_rate_limit.rate_limited"
	if got := server.stat(limited); got != int64(codes[429]) {
		t.Errorf("%s = %d, want the %d 429s", limited, got, codes[429])
	}
	// xRateLimitHeaders: true puts x-ratelimit-limit on every response.
	if r := <-goGet(c, serviceURL("limited")); r.hdr.Get("x-ratelimit-limit") == "" {
		t.Errorf("a response without x-ratelimit-limit (%d, headers %v)", r.code, r.hdr)
	}
	t.Logf("%d requests in %v: %v; admitted band [%d, %d] around %.0f (%.1f/s beyond the burst)",
		len(results), window.Round(time.Millisecond), codes, lo, hi, want, float64(codes[200]-rateLimitBurst)/window.Seconds())
}
