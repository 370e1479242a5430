package e2e

import (
	"fmt"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/proxy/streaminfo"
)

// TestMalformedRequests sends malformed requests over raw TCP: each gets
// the codec's status with connection: close (then the connection closes),
// nothing reaches the upstream, and the proxy keeps serving.
func TestMalformedRequests(t *testing.T) {
	p := startFront(t, front{Clusters: map[string]string{"backend": startEcho(t, "a")}})
	cases := []struct {
		name, req string
		status    int
	}{
		{"no-host", "GET / HTTP/1.1\r\n\r\n", 400},
		{"two-hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400},
		{"bad-host", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400},
		{"garbage-line", "GARBAGE\r\n\r\n", 400},
		{"unknown-method", "FOO / HTTP/1.1\r\nHost: h\r\n\r\n", 400},
		{"bad-version", "GET / HTTP/1.x\r\nHost: h\r\n\r\n", 400},
		{"http2-version", "GET / HTTP/2.0\r\nHost: h\r\n\r\n", 505},
		{"bare-lf", "GET / HTTP/1.1\nHost: h\n\n", 400},
		{"space-before-colon", "GET / HTTP/1.1\r\nHost : h\r\n\r\n", 400},
		{"bad-field-name", "GET / HTTP/1.1\r\nHost: h\r\nBad(Name): x\r\n\r\n", 400},
		{"control-in-value", "GET / HTTP/1.1\r\nHost: h\r\nX: a\x01b\r\n\r\n", 400},
		{"obs-fold", "GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n b\r\n\r\n", 400},
		{"bad-target", "GET /a\x7fb HTTP/1.1\r\nHost: h\r\n\r\n", 400},
		{"relative-target", "GET a/b HTTP/1.1\r\nHost: h\r\n\r\n", 400},
		{"bad-content-length", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1x\r\n\r\n", 400},
		{"negative-content-length", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n", 400},
		{"two-content-lengths", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx", 400},
		{"cl-and-te", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
		{"te-gzip", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n", 501},
		{"te-gzip-chunked", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501},
		{"te-in-http10", "POST / HTTP/1.0\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n", 400},
		{"absolute-ftp", "GET ftp://h/ HTTP/1.1\r\nHost: h\r\n\r\n", 400},
		{"userinfo", "GET http://u@h/ HTTP/1.1\r\nHost: h\r\n\r\n", 400},
		{"too-many-headers", "GET / HTTP/1.1\r\nHost: h\r\n" + strings.Repeat("X-A: 1\r\n", 101) + "\r\n", 431},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rc := dialRaw(t, p.Addr("front"))
			rc.send(c.req)
			resp, _, err := rc.tryResponse("GET")
			if err != nil {
				t.Fatalf("no response: %v", err)
			}
			if resp.StatusCode != c.status || !resp.Close {
				t.Fatalf("status %d close=%v, want %d with connection: close", resp.StatusCode, resp.Close, c.status)
			}
			rc.expectClosed(5 * time.Second)
		})
	}
	if got := p.Stat("cluster.backend.upstream_rq_total"); got != 0 {
		t.Errorf("%d malformed requests reached the upstream", got)
	}
	for _, info := range p.Streams() {
		if info.Flags&streaminfo.DownstreamProtocolError == 0 {
			t.Errorf("stream %d %q recorded without DPE: %v", info.ResponseCode, info.Details, info.Flags)
		}
	}
	if status, _, _ := Get(t, Client(), p.URL("front")+"/after"); status != 200 {
		t.Fatalf("proxy no longer serves: %d", status)
	}
}

// TestMalformedChunkedBody: a request whose chunked body is malformed after
// a valid head is not forwarded as if complete; the client gets 400 (Envoy
// answers a codec error with 400 while no response has started) or at
// least a closed connection, and the proxy keeps serving.
func TestMalformedChunkedBody(t *testing.T) {
	// A 1 s route timeout bounds what a regression would cost.
	p := startFront(t, front{
		Routes:   strings.Replace(defaultRoutes, "cluster: backend", "cluster: backend, timeout: 1s", 1),
		Clusters: map[string]string{"backend": startEcho(t, "a")},
	})
	for _, body := range []string{
		"zz\r\nabc\r\n0\r\n\r\n",
		"3\r\nabcdef\r\n0\r\n\r\n",
		"3\r\nabc\r\n0\r\nBad Trailer\r\n\r\n",
		"ffffffffffffffffffff\r\n",
	} {
		rc := dialRaw(t, p.Addr("front"))
		rc.send("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n" + body)
		resp, _, err := rc.tryResponse("POST")
		if err == nil && resp.StatusCode == 200 {
			t.Errorf("body %q: forwarded as a complete request (200)", body)
			continue
		}
		if err == nil && resp.StatusCode != 400 {
			// The chunked body is streamed upstream by the router's body
			// goroutine; its codec error must abandon the upstream
			// exchange so that the client gets Envoy's 400 at once, not
			// the route timeout's 504.
			t.Errorf("body %q: status %d, want 400", body, resp.StatusCode)
		}
		rc.expectClosed(5 * time.Second)
	}
	if status, _, _ := Get(t, Client(), p.URL("front")+"/after"); status != 200 {
		t.Fatalf("proxy no longer serves: %d", status)
	}
}

// TestOversizedHeaders: a head over max_request_headers_kb (default 60 KiB)
// gets 431; one under it passes. The limit is configurable.
func TestOversizedHeaders(t *testing.T) {
	up := startEcho(t, "a")
	header := func(n int) string { return "X-Big: " + strings.Repeat("v", n) + "\r\n" }
	cases := []struct {
		name, hcm string
		size      int
		status    int
	}{
		{"default-under", "", 58 << 10, 200},
		{"default-over", "", 61 << 10, 431},
		{"default-far-over", "", 1 << 20, 431},
		{"configured-under", "max_request_headers_kb: 2", 1 << 10, 200},
		{"configured-over", "max_request_headers_kb: 2", 3 << 10, 431},
		{"configured-large", "max_request_headers_kb: 96", 90 << 10, 200},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := startFront(t, front{HCM: c.hcm, Clusters: map[string]string{"backend": up}})
			rc := dialRaw(t, p.Addr("front"))
			rc.send("GET / HTTP/1.1\r\nHost: h\r\n" + header(c.size) + "\r\n")
			resp, _, err := rc.tryResponse("GET")
			if err != nil {
				t.Fatalf("no response: %v", err)
			}
			if resp.StatusCode != c.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, c.status)
			}
			if c.status == 431 {
				if info := p.NextStream(0); info.Details != "http1.headers_too_large" {
					t.Errorf("details %q", info.Details)
				}
			}
		})
	}
}

// TestSlowlorisDoesNotWedge opens many connections that never finish their
// request head; other clients keep being served, and with
// request_headers_timeout the slow ones get 408 and are closed.
func TestSlowlorisDoesNotWedge(t *testing.T) {
	p := startFront(t, front{HCM: "request_headers_timeout: 1s", Clusters: map[string]string{"backend": startEcho(t, "a")}})
	const slow = 64
	conns := make([]*rawConn, slow)
	for i := range conns {
		conns[i] = dialRaw(t, p.Addr("front"))
		conns[i].send("GET /slow HTTP/1.1\r\nHost: h\r\nX-Partial: ")
	}
	// While they hang, normal requests are served promptly.
	c := Client()
	for i := 0; i < 10; i++ {
		start := time.Now()
		if status, _, _ := Get(t, c, p.URL("front")+"/fast"); status != 200 {
			t.Fatalf("request %d: %d", i, status)
		}
		if d := time.Since(start); d > 500*time.Millisecond {
			t.Errorf("request %d took %v next to %d slow clients", i, d, slow)
		}
	}
	var wg sync.WaitGroup
	for i, rc := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, _, err := rc.tryResponse("GET")
			if err != nil || resp.StatusCode != 408 {
				t.Errorf("slow client %d: %v %v, want 408", i, resp, err)
			}
		}()
	}
	wg.Wait()
	if got := p.Stat("http.front.downstream_rq_header_timeout"); got != slow {
		t.Errorf("http.front.downstream_rq_header_timeout = %d, want %d", got, slow)
	}
}

// TestGarbageInput sends random and adversarial bytes on many connections:
// the proxy must neither crash nor stop serving, and every connection must
// end (answered or closed) rather than hang.
func TestGarbageInput(t *testing.T) {
	// The route timeout (2 s) bounds the requests whose body goes bad after
	// the head, should the router wait for the upstream (see
	// TestMalformedChunkedBody).
	p := startFront(t, front{
		HCM:      "request_headers_timeout: 2s",
		Routes:   strings.Replace(defaultRoutes, "cluster: backend", "cluster: backend, timeout: 2s", 1),
		Clusters: map[string]string{"backend": startEcho(t, "a")},
	})
	rng := rand.New(rand.NewPCG(1, 2)) // fixed seed: the same bytes every run
	inputs := []string{
		"\x00\x00\x00\x00",
		"\r\n\r\n\r\n",
		strings.Repeat("A", 70<<10),
		"GET " + strings.Repeat("/a", 40<<10) + " HTTP/1.1\r\nHost: h\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 99999999999999999999\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffffff\r\n",
		"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n" + strings.Repeat("1;ext="+strings.Repeat("e", 100)+"\r\nx\r\n", 100) + "0\r\n\r\n",
		"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x12\x04\x00\x00\x00\x00\x00garbage-frames",
		"PRI * HTTP/2.0\r\n\r\nXX",
		"GET / HTTP/1.1\r\nHost: h\r\n\r\n\x16\x03\x01\x02\x00",
		"CONNECT h:80 HTTP/1.1\r\nHost: h:80\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: \r\n\r\n",
		"OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n",
		"GET http://h HTTP/1.1\r\n\r\n",
	}
	for i := 0; i < 40; i++ {
		b := make([]byte, 1+rng.IntN(4096))
		for j := range b {
			b[j] = byte(rng.IntN(256))
		}
		inputs = append(inputs, string(b))
	}
	// HTTP-shaped garbage: a valid start with random bytes spliced in.
	for i := 0; i < 40; i++ {
		b := []byte("POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello")
		for k := 0; k < 3; k++ {
			b[rng.IntN(len(b))] = byte(rng.IntN(256))
		}
		inputs = append(inputs, string(b))
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for i, in := range inputs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c, err := net.Dial("tcp", p.Addr("front"))
			if err != nil {
				t.Errorf("input %d: dial: %v", i, err)
				return
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(8 * time.Second))
			c.Write([]byte(in))
			if cw, ok := c.(*net.TCPConn); ok {
				cw.CloseWrite()
			}
			buf := make([]byte, 32<<10)
			for {
				if _, err := c.Read(buf); err != nil {
					if isTimeoutErr(err) {
						t.Errorf("input %d (%q...): connection neither answered nor closed", i, fmt.Sprintf("%.30q", in))
					}
					return
				}
			}
		}()
	}
	wg.Wait()
	if status, body, _ := Get(t, Client(), p.URL("front")+"/still-alive"); status != 200 || !strings.Contains(body, "still-alive") {
		t.Fatalf("proxy no longer serves: %d %q", status, body)
	}
}
