package e2e

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/proxy/streaminfo"
)

// Envoy's local reply body for an upstream reset before the response
// started (router.cc onUpstreamReset).
const resetBody = "upstream connect error or disconnect/reset before headers. reset reason: "

// holder is a named upstream set whose "/hold" requests block until
// released.
type holder struct {
	us      []*named
	held    atomic.Int64
	release chan struct{}
	once    sync.Once
}

func startHolders(t *testing.T, n int) *holder {
	h := &holder{release: make(chan struct{})}
	h.us = startNamed(t, n, func(u *named, w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path == "/hold" {
			h.held.Add(1)
			<-h.release
		}
		return false
	})
	t.Cleanup(h.free) // before the upstreams shut down (cleanups run last first)
	return h
}

func (h *holder) free() { h.once.Do(func() { close(h.release) }) }

// result is one response seen by a background request.
type result struct {
	code int
	body string
	err  error
}

// goGet sends a GET on its own goroutine; the result arrives on the channel.
func goGet(c *http.Client, url string) <-chan result {
	ch := make(chan result, 1)
	go func() {
		resp, err := c.Get(url)
		if err != nil {
			ch <- result{err: err}
			return
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		ch <- result{code: resp.StatusCode, body: string(b), err: err}
	}()
	return ch
}

func await(t *testing.T, ch <-chan result, what string) result {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: no response", what)
	}
	return result{}
}

// freePort returns a loopback address nothing listens on.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func TestUpstreamCircuitBreakerConnectionsAndPending(t *testing.T) {
	h := startHolders(t, 1)
	p := StartProxy(t, httpBootstrap("{cluster: c}", "", clusterYAML("c",
		"circuit_breakers: {thresholds: [{max_connections: 1, max_pending_requests: 1}]}", loc{eps: eps(h.us...)})))
	url := p.URL("front")
	first := goGet(Client(), url+"/hold")
	deadline := time.Now().Add(5 * time.Second)
	waitFor(t, deadline, "the first request to be held upstream", func() bool { return h.held.Load() == 1 })
	// The second request finds the only connection busy and no connection
	// slot: it waits as a pending request.
	second := goGet(Client(), url+"/hold")
	waitFor(t, deadline, "the second request to be pending", func() bool { return p.Stat("cluster.c.upstream_rq_pending_active") == 1 })
	for name, want := range map[string]int64{
		"cluster.c.circuit_breakers.default.cx_open":         1,
		"cluster.c.circuit_breakers.default.rq_pending_open": 1,
		"cluster.c.circuit_breakers.default.remaining_cx":    0,
	} {
		if got := p.Stat(name); got != want {
			t.Errorf("%s = %d, want %d", name, got, want)
		}
	}
	// The third is over both limits: 503 UO at once, never queued.
	start := time.Now()
	code, body, hdr := Get(t, Client(), url+"/")
	if took := time.Since(start); took > time.Second {
		t.Errorf("the overflowing request took %v: it must fail at once", took)
	}
	if code != 503 || body != resetBody+"overflow" {
		t.Errorf("overflow: got %d %q, want 503 %q", code, body, resetBody+"overflow")
	}
	if hdr.Get("x-envoy-overloaded") != "true" {
		t.Errorf("overflow reply lacks x-envoy-overloaded: true (Envoy adds it)")
	}
	info := p.NextStream(0)
	if info.Flags.String() != "UO" || info.Details != "upstream_reset_before_response_started{overflow}" {
		t.Errorf("overflow stream: flags %s details %q, want UO and upstream_reset_before_response_started{overflow}", info.Flags, info.Details)
	}
	if got := p.Stat("cluster.c.upstream_rq_pending_overflow"); got != 1 {
		t.Errorf("cluster.c.upstream_rq_pending_overflow = %d, want 1", got)
	}
	if got := p.Stat("cluster.c.upstream_rq_503"); got != 1 {
		t.Errorf("cluster.c.upstream_rq_503 = %d, want 1 (Envoy charges the overflow reply)", got)
	}
	h.free()
	for i, ch := range []<-chan result{first, second} {
		if r := await(t, ch, "held request"); r.err != nil || r.code != 200 {
			t.Errorf("held request %d: %d %v, want 200", i, r.code, r.err)
		}
	}
	// The pending request reused the one connection.
	if n := h.us[0].conns.Load(); n != 1 {
		t.Errorf("upstream accepted %d connections, want 1 (max_connections)", n)
	}
	p.WaitStat("cluster.c.circuit_breakers.default.rq_pending_open", 0)
	if got := p.Stat("cluster.c.upstream_rq_pending_total"); got != 1 {
		t.Errorf("cluster.c.upstream_rq_pending_total = %d, want 1", got)
	}
}

func TestUpstreamCircuitBreakerMaxRequests(t *testing.T) {
	for _, tc := range []struct {
		name     string
		settings string
		max      int
	}{
		{"http1", "circuit_breakers: {thresholds: [{max_requests: 1}]}", 1},
		{"http2", "circuit_breakers: {thresholds: [{max_requests: 2}]}\nhttp2_protocol_options: {}", 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := startHolders(t, 1)
			p := StartProxy(t, httpBootstrap("{cluster: c}", "", clusterYAML("c", tc.settings, loc{eps: eps(h.us...)})))
			var held []<-chan result
			deadline := time.Now().Add(5 * time.Second)
			for i := range tc.max {
				held = append(held, goGet(Client(), p.URL("front")+"/hold"))
				waitFor(t, deadline, "a request to be held", func() bool { return h.held.Load() == int64(i+1) })
			}
			if got := p.Stat("cluster.c.circuit_breakers.default.rq_open"); got != 1 {
				t.Errorf("rq_open = %d, want 1 at max_requests", got)
			}
			start := time.Now()
			code, body, _ := Get(t, Client(), p.URL("front")+"/")
			if took := time.Since(start); took > time.Second || code != 503 || body != resetBody+"overflow" {
				t.Errorf("over max_requests: %d %q after %v, want 503 %q at once", code, body, took, resetBody+"overflow")
			}
			if f := p.NextStream(0).Flags.String(); f != "UO" {
				t.Errorf("flags %s, want UO", f)
			}
			if got := p.Stat("cluster.c.upstream_rq_pending_overflow"); got != 1 {
				t.Errorf("cluster.c.upstream_rq_pending_overflow = %d, want 1", got)
			}
			// Envoy's chargeUpstreamAbort counts every reset reply as its
			// upstream code, overflow included.
			if got := p.Stat("cluster.c.upstream_rq_503"); got != 1 {
				t.Errorf("cluster.c.upstream_rq_503 = %d, want 1", got)
			}
			h.free()
			for _, ch := range held {
				if r := await(t, ch, "held request"); r.err != nil || r.code != 200 {
					t.Errorf("held request: %d %v, want 200", r.code, r.err)
				}
			}
			p.WaitStat("cluster.c.circuit_breakers.default.rq_open", 0)
			if tc.name == "http2" && h.us[0].conns.Load() != 1 {
				t.Errorf("HTTP/2 upstream accepted %d connections, want 1 (streams multiplexed)", h.us[0].conns.Load())
			}
		})
	}
}

func TestUpstreamConnectionRefused(t *testing.T) {
	addr := freePort(t)
	p := StartProxy(t, httpBootstrap("{cluster: c}", "", clusterYAML("c", "", loc{eps: []ep{{addr: addr}}})))
	code, body, _ := Get(t, Client(), p.URL("front")+"/")
	// Envoy: reset reason RemoteConnectionFailure with the socket's
	// strerror as the transport failure reason.
	want := resetBody + "remote connection failure, transport failure reason: delayed connect error: Connection refused"
	if code != 503 || body != want {
		t.Errorf("got %d %q, want 503 %q", code, body, want)
	}
	info := p.NextStream(0)
	if info.Flags.String() != "UF" {
		t.Errorf("flags %s, want UF", info.Flags)
	}
	if want := "upstream_reset_before_response_started{remote_connection_failure|delayed_connect_error:_Connection_refused}"; info.Details != want {
		t.Errorf("details %q, want %q", info.Details, want)
	}
	for name, want := range map[string]int64{
		"cluster.c.upstream_cx_connect_fail": 1,
		"cluster.c.upstream_rq_503":          1,
		"cluster.c.upstream_rq_5xx":          1,
	} {
		if got := p.Stat(name); got != want {
			t.Errorf("%s = %d, want %d", name, got, want)
		}
	}
}

func TestUpstreamNoHealthyHost(t *testing.T) {
	p := StartProxy(t, httpBootstrap("{cluster: c}", "", clusterYAML("c", "")))
	code, body, _ := Get(t, Client(), p.URL("front")+"/")
	if code != 503 || body != "no healthy upstream" {
		t.Errorf("got %d %q, want 503 \"no healthy upstream\"", code, body)
	}
	info := p.NextStream(0)
	if info.Flags.String() != "UH" || info.Details != "no_healthy_upstream" {
		t.Errorf("flags %s details %q, want UH no_healthy_upstream", info.Flags, info.Details)
	}
	if got := p.Stat("cluster.c.upstream_cx_none_healthy"); got != 1 {
		t.Errorf("cluster.c.upstream_cx_none_healthy = %d, want 1", got)
	}
}

func TestUpstreamRouteTimeout(t *testing.T) {
	slow := startNamed(t, 1, func(u *named, w http.ResponseWriter, r *http.Request) bool {
		select {
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
		return true
	})
	for _, tc := range []struct{ name, settings string }{
		{"http1", ""},
		{"http2", "http2_protocol_options: {}"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := StartProxy(t, httpBootstrap("{cluster: c, timeout: 0.2s}", "", clusterYAML("c", tc.settings, loc{eps: eps(slow...)})))
			start := time.Now()
			code, body, _ := Get(t, Client(), p.URL("front")+"/")
			took := time.Since(start)
			if code != 504 || body != "upstream request timeout" {
				t.Errorf("got %d %q, want 504 \"upstream request timeout\"", code, body)
			}
			if took < 200*time.Millisecond || took > 2*time.Second {
				t.Errorf("answered after %v, want about the 200ms route timeout", took)
			}
			if f := p.NextStream(0).Flags.String(); f != "UT" {
				t.Errorf("flags %s, want UT", f)
			}
			for name, want := range map[string]int64{"cluster.c.upstream_rq_timeout": 1, "cluster.c.upstream_rq_504": 1} {
				if got := p.Stat(name); got != want {
					t.Errorf("%s = %d, want %d", name, got, want)
				}
			}
		})
	}
}

// rawUpstream accepts connections and runs serve on each, on loopback.
func rawUpstream(t *testing.T, serve func(c net.Conn)) (addr string, accepted *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var n atomic.Int64
	var wg sync.WaitGroup
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			n.Add(1)
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				serve(c)
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	return ln.Addr().String(), &n
}

// readRequest reads one request head (and a content-length body) from br.
func readRequest(br *bufio.Reader) (*http.Request, error) {
	req, err := http.ReadRequest(br)
	if err != nil {
		return nil, err
	}
	_, err = io.Copy(io.Discard, req.Body)
	return req, err
}

func TestUpstreamClosesMidResponse(t *testing.T) {
	for _, tc := range []struct{ name, head string }{
		{"content_length", "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n0123456789"},
		{"chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\na\r\n0123456789\r\n"},
	} {
		addr, _ := rawUpstream(t, func(c net.Conn) {
			if _, err := readRequest(bufio.NewReader(c)); err == nil {
				io.WriteString(c, tc.head)
			}
		})
		for _, client := range []struct {
			name string
			c    *http.Client
		}{{"http1", Client()}, {"h2c", H2CClient()}} {
			t.Run(tc.name+"/"+client.name, func(t *testing.T) {
				p := StartProxy(t, httpBootstrap("{cluster: c}", "", clusterYAML("c", "", loc{eps: []ep{{addr: addr}}})))
				resp, err := client.c.Get(p.URL("front") + "/")
				if err != nil {
					t.Fatalf("the response head should arrive: %v", err)
				}
				b, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 || err == nil {
					t.Errorf("got %d, body %q, err %v: want 200 then a reset stream (a read error)", resp.StatusCode, b, err)
				}
				// Envoy's HTTP/1 codec client resets the stream with
				// ConnectionTermination when the upstream closes: flag UC.
				if f := p.NextStream(0).Flags.String(); f != "UC" {
					t.Errorf("flags %s, want UC", f)
				}
			})
		}
	}
}

// TestUpstreamStaleKeepAlive checks that a pooled connection the upstream
// closed while idle is not a failure for the next request.
func TestUpstreamStaleKeepAlive(t *testing.T) {
	t.Run("closed_while_idle", func(t *testing.T) {
		// The upstream keeps connections alive and closes one after 200 ms
		// without a request (its keep-alive timeout).
		closed := make(chan struct{}, 8)
		addr, accepted := rawUpstream(t, func(c net.Conn) {
			defer func() {
				c.Close() // before telling the test
				closed <- struct{}{}
			}()
			br := bufio.NewReader(c)
			for {
				c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
				if _, err := readRequest(br); err != nil {
					return
				}
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
			}
		})
		p := StartProxy(t, httpBootstrap("{cluster: c}", "", clusterYAML("c", "", loc{eps: []ep{{addr: addr}}})))
		c := Client()
		for i, method := range []string{"GET", "POST", "GET"} {
			if i > 0 {
				select {
				case <-closed: // the upstream closed the pooled connection
				case <-time.After(5 * time.Second):
					t.Fatalf("the upstream did not close its idle connection")
				}
			}
			req, _ := http.NewRequest(method, p.URL("front")+"/", nil)
			if method == "POST" {
				// A body cannot be replayed: the stale connection must be
				// noticed before the request is sent.
				req, _ = http.NewRequest(method, p.URL("front")+"/", strings.NewReader("body"))
			}
			resp, err := c.Do(req)
			if err != nil {
				t.Fatalf("%s: %v", method, err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Errorf("%s %d after the upstream closed its idle connection: %d, want 200", method, i, resp.StatusCode)
			}
		}
		if n := accepted.Load(); n != 3 {
			t.Errorf("upstream accepted %d connections, want 3 (one per request)", n)
		}
	})
	t.Run("closed_right_after_response", func(t *testing.T) {
		// The upstream answers with keep-alive framing and closes at once:
		// the close races with the next request. A bodiless request is
		// replayed on a new connection when the stale one fails before
		// any response byte.
		addr, _ := rawUpstream(t, func(c net.Conn) {
			if _, err := readRequest(bufio.NewReader(c)); err == nil {
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
			}
		})
		p := StartProxy(t, httpBootstrap("{cluster: c}", "", clusterYAML("c", "", loc{eps: []ep{{addr: addr}}})))
		c := Client()
		for i := range 30 {
			if code, body, _ := Get(t, c, p.URL("front")+"/"); code != 200 {
				t.Fatalf("request %d: %d %q", i, code, body)
			}
		}
	})
}

func TestUpstreamClusterNotFound(t *testing.T) {
	us := startNamed(t, 1, nil)
	cl := clusterYAML("c", "", loc{eps: eps(us...)})
	t.Run("default_503", func(t *testing.T) {
		// validate_clusters: false lets a static route name a cluster that
		// does not exist (Envoy checks at request time then).
		p := StartProxy(t, httpBootstrap("{cluster: nope}", "validate_clusters: false", cl))
		code, body, _ := Get(t, Client(), p.URL("front")+"/")
		if code != 503 || body != "" {
			t.Errorf("got %d %q, want 503 with no body", code, body)
		}
		info := p.NextStream(0)
		if info.Flags.String() != "NC" || info.Details != "cluster_not_found" {
			t.Errorf("flags %s details %q, want NC cluster_not_found", info.Flags, info.Details)
		}
	})
	t.Run("cluster_not_found_response_code", func(t *testing.T) {
		p := StartProxy(t, httpBootstrap("{cluster: nope, cluster_not_found_response_code: NOT_FOUND}", "validate_clusters: false", cl))
		if code, _, _ := Get(t, Client(), p.URL("front")+"/"); code != 404 {
			t.Errorf("got %d, want 404", code)
		}
	})
	t.Run("weighted", func(t *testing.T) {
		p := StartProxy(t, httpBootstrap("{weighted_clusters: {clusters: [{name: c, weight: 1}, {name: nope, weight: 1}]}}", "validate_clusters: false", cl))
		seen := map[int]int{}
		for range 60 {
			code, _, _ := Get(t, Client(), p.URL("front")+"/")
			seen[code]++
		}
		// Each pick is 1/2: both outcomes appear in 60 picks unless
		// with probability 2^-59.
		if seen[200] == 0 || seen[503] == 0 || seen[200]+seen[503] != 60 {
			t.Errorf("statuses %v, want both 200 (cluster c) and 503 (missing cluster)", seen)
		}
	})
}

// backloggedListener returns the address of a listening socket whose accept
// queue is full: the kernel drops further SYNs, so a connect to it hangs
// until the connecting side gives up. This is a hermetic way to make a
// connect time out on loopback.
func backloggedListener(t *testing.T) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", sa.(*syscall.SockaddrInet4).Port)
	// Fill the accept queue (backlog 0 admits one connection) until a
	// connect times out.
	for i := 0; ; i++ {
		c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return addr
			}
			t.Fatalf("filling the accept queue: %v", err)
		}
		t.Cleanup(func() { c.Close() })
		if i == 16 {
			t.Fatalf("the accept queue of a backlog-0 listener did not fill after %d connections", i+1)
		}
	}
}

func TestUpstreamConnectTimeout(t *testing.T) {
	addr := backloggedListener(t)
	p := StartProxy(t, httpBootstrap("{cluster: c, timeout: 5s}", "", clusterYAML("c", "connect_timeout: 0.25s", loc{eps: []ep{{addr: addr}}})))
	start := time.Now()
	code, body, _ := Get(t, Client(), p.URL("front")+"/")
	took := time.Since(start)
	// Envoy: the pool fails with Timeout, the router resets with
	// ConnectionTimeout: 503, flag UF, "reset reason: connection timeout".
	if code != 503 || body != resetBody+"connection timeout" {
		t.Errorf("got %d %q, want 503 %q", code, body, resetBody+"connection timeout")
	}
	if took < 250*time.Millisecond || took > 2*time.Second {
		t.Errorf("answered after %v, want about the 250ms connect_timeout", took)
	}
	if f := p.NextStream(0).Flags.String(); f != "UF" {
		t.Errorf("flags %s, want UF", f)
	}
	for name, want := range map[string]int64{"cluster.c.upstream_cx_connect_timeout": 1, "cluster.c.upstream_cx_connect_fail": 1} {
		if got := p.Stat(name); got != want {
			t.Errorf("%s = %d, want %d", name, got, want)
		}
	}
}

// TestUpstreamTunnelRouteIdleTimeout checks that an upgraded (WebSocket)
// tunnel closes after the route's idle_timeout of silence, as Envoy applies
// the stream idle timeout to upgraded streams, and stays open while bytes
// flow.
func TestUpstreamTunnelRouteIdleTimeout(t *testing.T) {
	addr, _ := rawUpstream(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		if _, err := http.ReadRequest(br); err != nil {
			return
		}
		io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		c.SetDeadline(time.Now().Add(10 * time.Second))
		io.Copy(c, br) // echo the tunnel
	})
	yaml := strings.Replace(httpBootstrap("{cluster: c, idle_timeout: 0.3s}", "", clusterYAML("c", "", loc{eps: []ep{{addr: addr}}})),
		"stat_prefix: front", "stat_prefix: front\n          upgrade_configs: [{upgrade_type: websocket}]", 1)
	p := StartProxy(t, yaml)
	c, err := net.Dial("tcp", p.Addr("front"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, "GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 101 {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	// Bytes every 100 ms for 600 ms (twice the idle timeout) keep it open.
	for i := range 6 {
		if i > 0 {
			time.Sleep(100 * time.Millisecond) // pacing the traffic, not synchronisation
		}
		msg := fmt.Sprintf("m%d\n", i)
		io.WriteString(c, msg)
		if got, err := br.ReadString('\n'); err != nil || got != msg {
			t.Fatalf("echo %d through the tunnel: %q %v", i, got, err)
		}
	}
	start := time.Now()
	if _, err := br.ReadByte(); err == nil {
		t.Fatal("read from a silent tunnel, want it closed")
	}
	if took := time.Since(start); took < 250*time.Millisecond || took > 3*time.Second {
		t.Errorf("the silent tunnel closed after %v, want about the route's 300ms idle_timeout", took)
	}
	if info := p.NextStream(0); info.ResponseCode != 101 || info.Flags.String() != "SI" {
		t.Errorf("tunnel stream: %d %s, want 101 with SI", info.ResponseCode, info.Flags)
	}
}

// TestUpstreamStreamIdleTimeout: with the route timeout disabled, a stream
// on which nothing moves for the route's idle_timeout ends as Envoy ends
// it: 408 "stream timeout" (SI) before the response started, a reset after.
func TestUpstreamStreamIdleTimeout(t *testing.T) {
	stall := startNamed(t, 1, func(u *named, w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path == "/partial" {
			w.WriteHeader(200)
			io.WriteString(w, "first bytes")
			w.(http.Flusher).Flush()
		}
		select {
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
		return true
	})
	for _, tc := range []struct{ name, settings string }{
		{"http1", ""},
		{"http2", "http2_protocol_options: {}"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := StartProxy(t, httpBootstrap("{cluster: c, timeout: 0s, idle_timeout: 0.2s}", "", clusterYAML("c", tc.settings, loc{eps: eps(stall...)})))
			start := time.Now()
			code, body, _ := Get(t, Client(), p.URL("front")+"/")
			if took := time.Since(start); code != 408 || body != "stream timeout" || took < 200*time.Millisecond || took > 2*time.Second {
				t.Errorf("idle before the response: %d %q after %v, want 408 \"stream timeout\" after about 200ms", code, body, took)
			}
			if info := p.NextStream(0); info.Flags != streaminfo.StreamIdleTimeout {
				t.Errorf("flags %v, want SI", info.Flags)
			}
			resp, err := Client().Get(p.URL("front") + "/partial")
			if err != nil {
				t.Fatal(err)
			}
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || string(b) != "first bytes" || err == nil {
				t.Errorf("idle mid-response: %d %q err=%v, want 200 \"first bytes\" then a reset", resp.StatusCode, b, err)
			}
			if info := p.NextStream(1); info.Flags != streaminfo.StreamIdleTimeout {
				t.Errorf("mid-response flags %v, want SI", info.Flags)
			}
		})
	}
}
