package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/proxy/streaminfo"
)

const onlyExampleRoutes = `
virtual_hosts:
- name: only
  domains: ["only.example"]
  routes:
  - match: {prefix: /api}
    route: {cluster: backend}
`

// TestNoRouteLocalReply: a request no route matches gets 404 with the NR
// flag (unknown host, or known host and unknown path), the connection stays
// usable, and http.<prefix>.no_route counts them.
func TestNoRouteLocalReply(t *testing.T) {
	p := startFront(t, front{Routes: onlyExampleRoutes, Clusters: map[string]string{"backend": startEcho(t, "a")}})
	rc := dialRaw(t, p.Addr("front"))
	for i, req := range []string{
		"GET /api HTTP/1.1\r\nHost: other.example\r\n\r\n",
		"GET /nope HTTP/1.1\r\nHost: only.example\r\n\r\n",
		"HEAD /nope HTTP/1.1\r\nHost: only.example\r\n\r\n",
	} {
		rc.send(req)
		method, _, _ := strings.Cut(req, " ")
		resp, body := rc.response(method)
		if resp.StatusCode != 404 || body != "" || resp.Close {
			t.Fatalf("request %d: %d %q close=%v", i, resp.StatusCode, body, resp.Close)
		}
		if resp.Header.Get("date") == "" || resp.Header.Get("server") == "" {
			t.Errorf("request %d: local reply without date/server: %v", i, resp.Header)
		}
		info := p.NextStream(i)
		if info.ResponseCode != 404 || info.Flags&streaminfo.NoRouteFound == 0 || info.Details != "route_not_found" {
			t.Errorf("request %d: recorded %d flags %v details %q, want 404 NR route_not_found", i, info.ResponseCode, info.Flags, info.Details)
		}
	}
	rc.send("GET /api HTTP/1.1\r\nHost: only.example\r\n\r\n")
	if resp, _ := rc.response("GET"); resp.StatusCode != 200 {
		t.Fatalf("routed request after 404s: %d", resp.StatusCode)
	}
	if got := p.Stat("http.front.no_route"); got != 3 {
		t.Errorf("http.front.no_route = %d, want 3", got)
	}
	if got := p.Stat("cluster.backend.upstream_rq_total"); got != 1 {
		t.Errorf("cluster.backend.upstream_rq_total = %d, want 1", got)
	}
}

// TestHTTP10Rejected: without accept_http_10 an HTTP/1.0 request gets 426
// (Envoy's low_version) and the connection closes.
func TestHTTP10Rejected(t *testing.T) {
	p := startFront(t, front{Clusters: map[string]string{"backend": startEcho(t, "a")}})
	rc := dialRaw(t, p.Addr("front"))
	rc.send("GET / HTTP/1.0\r\nHost: h\r\nConnection: keep-alive\r\n\r\n")
	resp, _ := rc.response("GET")
	if resp.StatusCode != 426 {
		t.Fatalf("status %d, want 426", resp.StatusCode)
	}
	rc.expectClosed(5 * time.Second)
	if info := p.NextStream(0); info.Details != "low_version" || info.Flags&streaminfo.DownstreamProtocolError == 0 {
		t.Errorf("recorded details %q flags %v", info.Details, info.Flags)
	}
	if got := p.Stat("cluster.backend.upstream_rq_total"); got != 0 {
		t.Errorf("the request reached the upstream (%d)", got)
	}
}

// TestRequestTimeouts: a client that does not finish its request head in
// request_headers_timeout, or its whole request in request_timeout, gets
// 408 and the connection closes; the deadline is not extended by bytes
// trickling in.
func TestRequestTimeouts(t *testing.T) {
	up := startEcho(t, "a")
	cases := []struct {
		name, hcm, send string
		trickle         bool
		details         string
	}{
		{"headers-timeout", "request_headers_timeout: 0.3s", "GET / HTTP/1.1\r\nHost: h\r\n", false, "request_header_timeout"},
		{"headers-timeout-trickle", "request_headers_timeout: 0.3s", "GET / HTTP/1.1\r\nHost: h\r\n", true, "request_header_timeout"},
		{"request-timeout-head", "request_timeout: 0.3s", "GET / HTTP/1.1\r\nHost: h\r\n", false, "request_overall_timeout"},
		{"request-timeout-body", "request_timeout: 0.3s", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\nhalf!", false, "request_overall_timeout"},
		{"request-timeout-large-body", "request_timeout: 0.3s", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1000000\r\n\r\nhalf!", false, "request_overall_timeout"},
		{"request-timeout-chunked-body", "request_timeout: 0.3s", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhalf!\r\n", false, "request_overall_timeout"},
		{"stream-idle-head", "stream_idle_timeout: 0.3s", "GET / HTTP/1.1\r\nHost: h\r\n", false, "stream_idle_timeout"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			// A 1 s route timeout bounds a regression of the streamed-body
			// cases (see below).
			p := startFront(t, front{HCM: c.hcm, Routes: strings.Replace(defaultRoutes, "cluster: backend", "cluster: backend, timeout: 1s", 1),
				Clusters: map[string]string{"backend": up}})
			rc := dialRaw(t, p.Addr("front"))
			rc.send(c.send)
			stop := make(chan struct{})
			defer close(stop)
			if c.trickle {
				go func() {
					tick := time.NewTicker(50 * time.Millisecond)
					defer tick.Stop()
					for i := 0; ; i++ {
						select {
						case <-stop:
							return
						case <-tick.C:
						}
						if _, err := rc.c.Write([]byte("x-slow-" + string(rune('a'+i%26)) + ": 1\r\n")); err != nil {
							return
						}
					}
				}()
			}
			start := time.Now()
			resp, _, err := rc.tryResponse("GET")
			if err != nil {
				t.Fatalf("no response: %v", err)
			}
			if resp.StatusCode != 408 {
				// A body streamed upstream (over 64 KiB, or chunked) goes
				// through the router's body goroutine: its failure must
				// abandon the upstream exchange so that the connection
				// manager can answer 408, not the route timeout's 504.
				t.Errorf("status %d, want 408", resp.StatusCode)
				return
			}
			if d := time.Since(start); d > 3*time.Second {
				t.Errorf("408 after %v; the timeout is 0.3s", d)
			}
			if !resp.Close {
				t.Error("408 without connection: close")
			}
			info := p.NextStream(0)
			if info.ResponseCode != 408 || c.details != "" && info.Details != c.details {
				t.Errorf("recorded %d %q, want 408 %q", info.ResponseCode, info.Details, c.details)
			}
		})
	}
}

// TestHeadersTimeoutSparesBody: request_headers_timeout covers the head
// only; a body that takes longer to arrive is still proxied.
func TestHeadersTimeoutSparesBody(t *testing.T) {
	p := startFront(t, front{HCM: "request_headers_timeout: 0.3s", Clusters: map[string]string{"backend": startEcho(t, "a")}})
	rc := dialRaw(t, p.Addr("front"))
	rc.send("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 6\r\n\r\n")
	for _, part := range []string{"ab", "cd", "ef"} {
		spaceOut(200 * time.Millisecond) // the body spans 0.6 s, twice the headers timeout
		rc.send(part)
	}
	resp, body := rc.response("POST")
	if resp.StatusCode != 200 || decodeEcho(t, body).Body != "abcdef" {
		t.Fatalf("slow body: %d %q", resp.StatusCode, body)
	}
}

// TestIdleTimeoutClosesKeepAlive: a keep-alive connection with no request
// for common_http_protocol_options.idle_timeout is closed and counted; one
// that keeps sending requests is not.
func TestIdleTimeoutClosesKeepAlive(t *testing.T) {
	p := startFront(t, front{
		HCM:      "common_http_protocol_options: {idle_timeout: 0.3s}",
		Clusters: map[string]string{"backend": startEcho(t, "a")},
	})
	rc := dialRaw(t, p.Addr("front"))
	rc.send("GET / HTTP/1.1\r\nHost: h\r\n\r\n")
	if resp, _ := rc.response("GET"); resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	start := time.Now()
	rc.expectClosed(5 * time.Second)
	if d := time.Since(start); d < 250*time.Millisecond {
		t.Errorf("closed after %v, before the 0.3s idle timeout", d)
	}
	p.WaitStat("http.front.downstream_cx_idle_timeout", 1)

	// Requests spaced by less than the timeout keep the connection.
	rc = dialRaw(t, p.Addr("front"))
	for i := 0; i < 4; i++ {
		rc.send("GET / HTTP/1.1\r\nHost: h\r\n\r\n")
		if resp, _, err := rc.tryResponse("GET"); err != nil || resp.StatusCode != 200 {
			t.Fatalf("request %d on a busy connection: %v", i, err)
		}
		spaceOut(100 * time.Millisecond)
	}
}

// spaceOut blocks for d; it spaces requests in time (it is not used to wait
// for a condition).
func spaceOut(d time.Duration) { <-time.After(d) }
