package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/proxy/streaminfo"
)

// Retries, per-try timeouts and request mirroring (route retry_policy,
// request_mirror_policies; routerfilter/retry.go and mirror.go).

// retryBootstrap is a bootstrap with one HTTP listener "front" whose
// virtual host (with vhostExtra fields, a YAML flow-mapping fragment such
// as "include_request_attempt_count: true") has one route, prefix "/",
// with the given route action, plus clusters. listenerExtra adds fields to
// the listener (e.g. per_connection_buffer_limit_bytes).
func retryBootstrap(action, vhostExtra, listenerExtra string, clusters ...string) string {
	if vhostExtra != "" {
		vhostExtra = ", " + vhostExtra
	}
	if listenerExtra != "" {
		listenerExtra = "\n    " + listenerExtra
	}
	return fmt.Sprintf(adminHead+frontListener+`%s`+frontHCM+`
          route_config:
            name: local
            virtual_hosts:
            - {name: all, domains: ["*"], routes: [{match: {prefix: /}, route: %s}]%s}`+routerFilter+`
  clusters:
%s`, listenerExtra, action, vhostExtra, strings.Join(clusters, ""))
}

// flaky is a loopback upstream whose first fails requests fail (fail
// decides how), then every request is answered 200 with the request body
// echoed. It records each request's body and x-envoy-attempt-count.
type flaky struct {
	*named
	fails    int64
	n        atomic.Int64
	mu       sync.Mutex
	bodies   []string
	attempts []string
}

func startFlaky(t *testing.T, fails int64, fail func(w http.ResponseWriter, r *http.Request)) *flaky {
	f := &flaky{fails: fails}
	f.named = startNamedOn(t, "flaky", "127.0.0.1:0", func(_ *named, w http.ResponseWriter, r *http.Request) bool {
		b, _ := io.ReadAll(r.Body)
		f.mu.Lock()
		f.bodies = append(f.bodies, string(b))
		f.attempts = append(f.attempts, r.Header.Get("x-envoy-attempt-count"))
		f.mu.Unlock()
		if f.n.Add(1) <= f.fails {
			fail(w, r)
			return true
		}
		w.Write(b)
		return true
	})
	return f
}

func (f *flaky) seen() (bodies, attempts []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.bodies...), append([]string(nil), f.attempts...)
}

func fail503(w http.ResponseWriter, _ *http.Request) { http.Error(w, "busy", 503) }

// failReset closes the connection without a response.
func failReset(w http.ResponseWriter, _ *http.Request) {
	c, _, err := http.NewResponseController(w).Hijack()
	if err == nil {
		c.Close()
	}
}

const fastBackOff = "retry_back_off: {base_interval: 0.001s, max_interval: 0.002s}"

func TestRetryRecoversFromUpstreamFailures(t *testing.T) {
	for _, tc := range []struct {
		name    string
		retryOn string
		fail    func(http.ResponseWriter, *http.Request)
		h2      bool // the client speaks HTTP/2 (h2c)
	}{
		{"5xx", "5xx", fail503, false},
		{"gateway-error", "gateway-error", fail503, false},
		{"retriable-status-codes", "retriable-status-codes", fail503, false},
		{"reset", "reset", failReset, false},
		{"5xx covers reset", "5xx", failReset, false},
		{"h2c client 5xx", "5xx", fail503, true},
		{"h2c client reset", "reset", failReset, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := startFlaky(t, 2, tc.fail)
			action := fmt.Sprintf("{cluster: c, retry_policy: {retry_on: %q, num_retries: 3, retriable_status_codes: [503], %s}}", tc.retryOn, fastBackOff)
			p := StartProxy(t, retryBootstrap(action, "include_request_attempt_count: true, include_attempt_count_in_response: true", "",
				clusterYAML("c", "", loc{eps: eps(f.named)})))
			client := Client()
			if tc.h2 {
				client = H2CClient()
			}
			req, _ := http.NewRequest("POST", p.URL("front")+"/x", strings.NewReader("the body"))
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || string(b) != "the body" {
				t.Fatalf("got %d %q, want 200 %q", resp.StatusCode, b, "the body")
			}
			if got := resp.Header.Values("x-envoy-attempt-count"); len(got) != 1 || got[0] != "3" {
				t.Errorf("response x-envoy-attempt-count = %q, want [3]", got)
			}
			bodies, attempts := f.seen()
			if strings.Join(bodies, "|") != "the body|the body|the body" {
				t.Errorf("upstream saw bodies %q, want the same body three times", bodies)
			}
			if strings.Join(attempts, ",") != "1,2,3" {
				t.Errorf("x-envoy-attempt-count = %q, want 1,2,3", attempts)
			}
			p.WaitStat("cluster.c.upstream_rq_retry", 2)
			p.WaitStat("cluster.c.upstream_rq_retry_success", 1)
			p.WaitStat("cluster.c.upstream_rq_total", 3)
			if info := p.NextStream(0); info.Flags != 0 {
				t.Errorf("flags = %v, want none", info.Flags)
			}
		})
	}
}

func TestRetryLimitExceededReturnsLastResponse(t *testing.T) {
	f := startFlaky(t, 1000, fail503)
	action := fmt.Sprintf("{cluster: c, retry_policy: {retry_on: 5xx, num_retries: 2, %s}}", fastBackOff)
	p := StartProxy(t, retryBootstrap(action, "", "", clusterYAML("c", "", loc{eps: eps(f.named)})))
	code, body, _ := Get(t, Client(), p.URL("front")+"/x")
	if code != 503 || !strings.Contains(body, "busy") {
		t.Fatalf("got %d %q, want the upstream's 503 \"busy\"", code, body)
	}
	if n := f.hits.Load(); n != 3 {
		t.Errorf("upstream hits = %d, want 3 (1 try + 2 retries)", n)
	}
	info := p.NextStream(0)
	if info.Flags&streaminfo.UpstreamRetryLimitExceeded == 0 {
		t.Errorf("flags = %v, want URX", info.Flags)
	}
	p.WaitStat("cluster.c.upstream_rq_retry_limit_exceeded", 1)
	p.WaitStat("cluster.c.upstream_rq_503", 3)
}

func TestRetryHeaders(t *testing.T) {
	// No retry_policy: x-envoy-retry-on and x-envoy-max-retries are
	// honoured from an internal caller (x-forwarded-for with one private
	// address) and stripped by the connection manager otherwise.
	for _, tc := range []struct {
		name, xff string
		hits      int64
		code      int
	}{{"internal", "10.1.2.3", 3, 200}, {"external", "203.0.113.7", 1, 503}} {
		t.Run(tc.name, func(t *testing.T) {
			f := startFlaky(t, 2, fail503)
			p := StartProxy(t, retryBootstrap("{cluster: c}", "", "", clusterYAML("c", "", loc{eps: eps(f.named)})))
			code, _, _ := Get(t, Client(), p.URL("front")+"/x", "x-forwarded-for", tc.xff,
				"x-envoy-retry-on", "5xx", "x-envoy-max-retries", "2")
			if code != tc.code || f.hits.Load() != tc.hits {
				t.Fatalf("status %d after %d hits, want %d after %d", code, f.hits.Load(), tc.code, tc.hits)
			}
		})
	}
}

func TestRetryConnectFailureAndPreviousHosts(t *testing.T) {
	t.Run("connect-failure", func(t *testing.T) {
		good := startNamed(t, 1, nil)[0]
		dead := ep{addr: "127.0.0.1:" + closedPort(t)}
		action := fmt.Sprintf("{cluster: c, retry_policy: {retry_on: connect-failure, num_retries: 2, %s}}", fastBackOff)
		p := StartProxy(t, retryBootstrap(action, "", "", clusterYAML("c", "", loc{eps: []ep{dead, {addr: good.addr}}})))
		for i := 0; i < 6; i++ {
			if code, body, _ := Get(t, Client(), p.URL("front")+"/x"); code != 200 || body != "u0" {
				t.Fatalf("request %d: %d %q, want 200 from u0", i, code, body)
			}
		}
		if p.Stat("cluster.c.upstream_cx_connect_fail") == 0 || p.Stat("cluster.c.upstream_rq_retry") == 0 {
			t.Errorf("connect failures %d, retries %d: want both > 0",
				p.Stat("cluster.c.upstream_cx_connect_fail"), p.Stat("cluster.c.upstream_rq_retry"))
		}
	})
	t.Run("previous_hosts", func(t *testing.T) {
		// RANDOM balancing over a host that always fails and one that
		// works: with previous_hosts and 30 more picks, a retry lands on
		// the other host unless 30 random picks in a row hit the failed
		// one (probability 2^-30 per retry).
		us := startNamed(t, 2, func(u *named, w http.ResponseWriter, _ *http.Request) bool {
			if u.name == "u0" {
				http.Error(w, "down", 503)
				return true
			}
			return false
		})
		action := fmt.Sprintf(`{cluster: c, retry_policy: {retry_on: 5xx, num_retries: 1, host_selection_retry_max_attempts: 30, %s,
          retry_host_predicate: [{name: envoy.retry_host_predicates.previous_hosts, typed_config: {"@type": type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate}}]}}`, fastBackOff)
		p := StartProxy(t, retryBootstrap(action, "", "", clusterYAML("c", "lb_policy: RANDOM", loc{eps: eps(us...)})))
		for i := 0; i < 20; i++ {
			if code, body, _ := Get(t, Client(), p.URL("front")+"/x"); code != 200 || body != "u1" {
				t.Fatalf("request %d: %d %q, want 200 from u1", i, code, body)
			}
		}
	})
}

func TestRetryGRPCUnavailable(t *testing.T) {
	var n atomic.Int64
	up := StartHTTP(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.ReadAll(r.Body)
		w.Header().Set("content-type", "application/grpc")
		if n.Add(1) <= 2 {
			w.Header().Set("grpc-status", "14") // trailers-only UNAVAILABLE
			w.Header().Set("grpc-message", "try again")
			return
		}
		w.Header().Set("trailer", "grpc-status")
		w.Write([]byte{0, 0, 0, 0, 0})
		w.Header().Set("grpc-status", "0")
	}))
	action := fmt.Sprintf("{cluster: c, retry_policy: {retry_on: unavailable, num_retries: 3, %s}}", fastBackOff)
	h2 := `typed_extension_protocol_options: {envoy.extensions.upstreams.http.v3.HttpProtocolOptions: {"@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions, explicit_http_config: {http2_protocol_options: {}}}}`
	p := StartProxy(t, retryBootstrap(action, "", "", clusterYAML("c", h2, loc{eps: []ep{{addr: up}}})))
	req, _ := http.NewRequest("POST", p.URL("front")+"/grpc.testing.TestService/EmptyCall", strings.NewReader("\x00\x00\x00\x00\x00"))
	req.Header.Set("content-type", "application/grpc")
	req.Header.Set("te", "trailers")
	resp, err := H2CClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Trailer.Get("grpc-status") != "0" {
		t.Fatalf("status %d grpc-status %q (header %q), want 200 and 0", resp.StatusCode,
			resp.Trailer.Get("grpc-status"), resp.Header.Get("grpc-status"))
	}
	if n.Load() != 3 {
		t.Errorf("upstream calls = %d, want 3", n.Load())
	}
	p.WaitStat("cluster.c.upstream_rq_retry", 2)
}

// slowFirst answers its first slow requests only when the test ends, the
// others at once.
func slowFirst(t *testing.T, slow int64) *flaky {
	release := make(chan struct{})
	f := startFlaky(t, slow, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	t.Cleanup(func() { close(release) })
	return f
}

func TestRetryPerTryTimeout(t *testing.T) {
	t.Run("retried", func(t *testing.T) {
		f := slowFirst(t, 1)
		action := fmt.Sprintf("{cluster: c, timeout: 5s, retry_policy: {retry_on: 5xx, num_retries: 2, per_try_timeout: 0.2s, %s}}", fastBackOff)
		p := StartProxy(t, retryBootstrap(action, "", "", clusterYAML("c", "", loc{eps: eps(f.named)})))
		start := time.Now()
		code, _, _ := Get(t, Client(), p.URL("front")+"/x")
		if code != 200 {
			t.Fatalf("status %d, want 200 from the second try", code)
		}
		if el := time.Since(start); el > 3*time.Second {
			t.Errorf("took %v, want about one per-try timeout (0.2s)", el)
		}
		p.WaitStat("cluster.c.upstream_rq_per_try_timeout", 1)
		p.WaitStat("cluster.c.upstream_rq_retry", 1)
	})
	t.Run("route timeout bounds all tries", func(t *testing.T) {
		f := slowFirst(t, 1000)
		action := fmt.Sprintf("{cluster: c, timeout: 0.3s, retry_policy: {retry_on: 5xx, num_retries: 10, per_try_timeout: 0.2s, %s}}", fastBackOff)
		p := StartProxy(t, retryBootstrap(action, "", "", clusterYAML("c", "", loc{eps: eps(f.named)})))
		start := time.Now()
		code, _, _ := Get(t, Client(), p.URL("front")+"/x")
		el := time.Since(start)
		if code != 504 || el > 2*time.Second {
			t.Fatalf("got %d after %v, want 504 at the 0.3s route timeout", code, el)
		}
		if n := f.hits.Load(); n != 2 {
			t.Errorf("hits = %d, want 2 (a 0.2s try, then one cut by the route timeout)", n)
		}
		p.WaitStat("cluster.c.upstream_rq_timeout", 1)
	})
	t.Run("last try times out", func(t *testing.T) {
		f := slowFirst(t, 1000)
		action := fmt.Sprintf("{cluster: c, timeout: 5s, retry_policy: {retry_on: gateway-error, num_retries: 1, per_try_timeout: 0.1s, %s}}", fastBackOff)
		p := StartProxy(t, retryBootstrap(action, "", "", clusterYAML("c", "", loc{eps: eps(f.named)})))
		code, body, _ := Get(t, Client(), p.URL("front")+"/x")
		if code != 504 || body != "upstream request timeout" {
			t.Fatalf("got %d %q, want 504 \"upstream request timeout\"", code, body)
		}
		info := p.NextStream(0)
		if info.Flags&streaminfo.UpstreamRequestTimeout == 0 || info.Flags&streaminfo.UpstreamRetryLimitExceeded == 0 {
			t.Errorf("flags = %v, want UT and URX", info.Flags)
		}
		if n := f.hits.Load(); n != 2 {
			t.Errorf("hits = %d, want 2", n)
		}
	})
}

func TestRetryOverflow(t *testing.T) {
	for _, tc := range []struct{ name, breakers string }{
		{"max_retries", "circuit_breakers: {thresholds: [{max_retries: 0}]}"},
		{"retry_budget", "circuit_breakers: {thresholds: [{retry_budget: {budget_percent: {value: 0}, min_retry_concurrency: 0}}]}"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := startFlaky(t, 1, fail503)
			action := fmt.Sprintf("{cluster: c, retry_policy: {retry_on: 5xx, num_retries: 3, %s}}", fastBackOff)
			p := StartProxy(t, retryBootstrap(action, "", "", clusterYAML("c", tc.breakers, loc{eps: eps(f.named)})))
			code, body, _ := Get(t, Client(), p.URL("front")+"/x")
			if code != 503 || !strings.Contains(body, "busy") {
				t.Fatalf("got %d %q, want the upstream's 503 (no retry allowed)", code, body)
			}
			if n := f.hits.Load(); n != 1 {
				t.Errorf("hits = %d, want 1", n)
			}
			if info := p.NextStream(0); info.Flags&streaminfo.UpstreamOverflow == 0 {
				t.Errorf("flags = %v, want UO", info.Flags)
			}
			p.WaitStat("cluster.c.upstream_rq_retry_overflow", 1)
		})
	}
}

func TestRetryBodyBeyondBufferLimit(t *testing.T) {
	// A body over per_request_buffer_limit_bytes is streamed, not
	// buffered: the request is not retried (Envoy's behaviour).
	f := startFlaky(t, 1, fail503)
	action := fmt.Sprintf("{cluster: c, retry_policy: {retry_on: 5xx, num_retries: 3, %s}}", fastBackOff)
	p := StartProxy(t, retryBootstrap(action, "per_request_buffer_limit_bytes: 4", "", clusterYAML("c", "", loc{eps: eps(f.named)})))
	req, _ := http.NewRequest("POST", p.URL("front")+"/x", strings.NewReader("longer than four bytes"))
	resp, err := Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 503 || f.hits.Load() != 1 {
		t.Fatalf("status %d after %d hits, want 503 after 1", resp.StatusCode, f.hits.Load())
	}
	p.WaitStat("cluster.c.retry_or_shadow_abandoned", 1)
}

func TestNoRetryAfterResponseStarted(t *testing.T) {
	// The upstream sends its head and part of the body, then resets: the
	// head went downstream, so the stream is reset rather than retried.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var hits atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			hits.Add(1)
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					line, err := br.ReadString('\n')
					if err != nil || line == "\r\n" {
						break
					}
				}
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial")
			}()
		}
	}()
	action := fmt.Sprintf("{cluster: c, retry_policy: {retry_on: \"5xx,reset\", num_retries: 3, %s}}", fastBackOff)
	p := StartProxy(t, retryBootstrap(action, "", "", clusterYAML("c", "", loc{eps: []ep{{addr: ln.Addr().String()}}})))
	resp, err := Client().Get(p.URL("front") + "/x")
	if err == nil {
		_, err = io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("status %d, want the upstream's 200 head", resp.StatusCode)
		}
	}
	if err == nil {
		t.Fatal("the truncated response read cleanly, want an error")
	}
	p.NextStream(0)
	if n := hits.Load(); n != 1 {
		t.Errorf("upstream connections = %d, want 1 (no retry)", n)
	}
	if n := p.Stat("cluster.c.upstream_rq_retry"); n != 0 {
		t.Errorf("upstream_rq_retry = %d, want 0", n)
	}
}

// shadowRecorder is an upstream that records the Host and body of each
// request, optionally holding it until the test ends.
type shadowRecorder struct {
	*named
	got chan string // "host body"
}

func startShadow(t *testing.T, hold bool) *shadowRecorder {
	release := make(chan struct{})
	s := &shadowRecorder{got: make(chan string, 16)}
	s.named = startNamedOn(t, "shadow", "127.0.0.1:0", func(_ *named, w http.ResponseWriter, r *http.Request) bool {
		b, _ := io.ReadAll(r.Body)
		s.got <- r.Host + " " + string(b)
		if hold {
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}
		return false
	})
	t.Cleanup(func() { close(release) })
	return s
}

func TestMirror(t *testing.T) {
	main := startNamed(t, 1, nil)[0]
	mirrorAction := "{cluster: main, timeout: 5s, request_mirror_policies: [{cluster: shadow}]}"
	t.Run("reaches the shadow with -shadow host and body", func(t *testing.T) {
		sh := startShadow(t, false)
		p := StartProxy(t, retryBootstrap(mirrorAction, "", "",
			clusterYAML("main", "", loc{eps: eps(main)}), clusterYAML("shadow", "", loc{eps: eps(sh.named)})))
		req, _ := http.NewRequest("POST", p.URL("front")+"/x", strings.NewReader("payload"))
		req.Host = "example.com:8080"
		resp, err := Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(b) != "u0" {
			t.Fatalf("main response %d %q, want 200 from u0", resp.StatusCode, b)
		}
		select {
		case got := <-sh.got:
			if got != "example.com-shadow:8080 payload" {
				t.Errorf("shadow saw %q, want %q", got, "example.com-shadow:8080 payload")
			}
		case <-time.After(5 * time.Second):
			t.Fatal("the shadow got no request")
		}
	})
	t.Run("slow shadow does not delay the main response", func(t *testing.T) {
		sh := startShadow(t, true)
		p := StartProxy(t, retryBootstrap(mirrorAction, "", "",
			clusterYAML("main", "", loc{eps: eps(main)}), clusterYAML("shadow", "", loc{eps: eps(sh.named)})))
		for i := 0; i < 3; i++ {
			start := time.Now()
			code, body, _ := Get(t, Client(), p.URL("front")+"/x")
			if code != 200 || body != "u0" {
				t.Fatalf("main response %d %q, want 200 from u0", code, body)
			}
			// The shadow holds every request until the test ends (5 s
			// route timeout): the main response must not wait for it.
			if el := time.Since(start); el > 2*time.Second {
				t.Fatalf("main response took %v while the shadow hangs", el)
			}
		}
		for i := 0; i < 3; i++ {
			select {
			case <-sh.got:
			case <-time.After(5 * time.Second):
				t.Fatal("the shadow did not receive every request")
			}
		}
	})
	t.Run("down shadow", func(t *testing.T) {
		dead := ep{addr: "127.0.0.1:" + closedPort(t)}
		p := StartProxy(t, retryBootstrap(mirrorAction, "", "",
			clusterYAML("main", "", loc{eps: eps(main)}), clusterYAML("shadow", "", loc{eps: []ep{dead}})))
		for i := 0; i < 3; i++ {
			if code, body, _ := Get(t, Client(), p.URL("front")+"/x"); code != 200 || body != "u0" {
				t.Fatalf("main response %d %q, want 200 from u0", code, body)
			}
		}
		p.WaitStat("cluster.shadow.upstream_cx_connect_fail", 3)
		p.WaitStat("cluster.shadow.upstream_rq_503", 3)
	})
	t.Run("fraction 0 sends nothing", func(t *testing.T) {
		sh := startShadow(t, false)
		action := "{cluster: main, request_mirror_policies: [{cluster: shadow, runtime_fraction: {default_value: {numerator: 0}}}]}"
		p := StartProxy(t, retryBootstrap(action, "", "",
			clusterYAML("main", "", loc{eps: eps(main)}), clusterYAML("shadow", "", loc{eps: eps(sh.named)})))
		for i := 0; i < 5; i++ {
			Get(t, Client(), p.URL("front")+"/x")
		}
		if n := p.Stat("cluster.shadow.upstream_rq_total"); n != 0 {
			t.Errorf("shadow upstream_rq_total = %d, want 0", n)
		}
	})
}
