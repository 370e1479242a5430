package http1

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/proxy/headers"
)

// serveEcho is a tiny HTTP/1.1 server loop on the codec: it echoes the
// request body (plus "!") in a chunked response, reports the request's
// trailer and method in headers, and sends a trailer of its own.
func serveEcho(nc net.Conn) {
	defer nc.Close()
	c := NewConn(nc, Options{})
	defer c.Release()
	var (
		req  headers.Request
		resp headers.Response
		tr   headers.Map
		out  headers.Map
	)
	for {
		head, err := c.ReadRequest(&req)
		if err != nil {
			if e, ok := err.(*Error); ok {
				resp.Reset()
				resp.Status = e.Status
				c.WriteResponseHead(&resp, Framing{}, headers.HTTP11)
				c.EndBody(nil)
				c.Flush()
			}
			return
		}
		if head.ExpectContinue {
			if err := c.WriteContinue(); err != nil {
				return
			}
		}
		tr.Reset()
		c.Body().SetTrailers(&tr)
		body, err := io.ReadAll(c.Body())
		if err != nil {
			return
		}
		resp.Reset()
		resp.Status = 200
		resp.AddBytes([]byte("x-method"), req.Method)
		resp.AddBytes([]byte("x-path"), req.Path)
		resp.AddBytes([]byte("x-trailer-in"), tr.Get("x-client-trailer"))
		resp.Add("trailer", "x-server-trailer")
		if _, err := c.WriteResponseHead(&resp, Framing{Kind: BodyChunked}, req.Protocol); err != nil {
			return
		}
		c.Write(body)
		c.Write([]byte("!"))
		out.Reset()
		out.Add("x-server-trailer", "done")
		if c.EndBody(&out) != nil || c.Flush() != nil || !head.KeepAlive {
			return
		}
	}
}

// checkNoLeak waits (up to a deadline) for the goroutine count to come back
// to what it was before a test started its servers and clients.
func checkNoLeak(t *testing.T, before int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines left running, %d before the test", runtime.NumGoroutine(), before)
		}
		runtime.Gosched()
		time.Sleep(time.Millisecond) // polling a condition, not synchronising
	}
}

func TestNetHTTPClientToCodecServer(t *testing.T) {
	defer checkNoLeak(t, runtime.NumGoroutine())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var accepted atomic.Int32
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			wg.Add(1)
			go func() { defer wg.Done(); serveEcho(nc) }()
		}
	}()
	tr := &http.Transport{ExpectContinueTimeout: 5 * time.Second, MaxIdleConnsPerHost: 1}
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	defer func() {
		tr.CloseIdleConnections()
		ln.Close()
		wg.Wait()
	}()
	url := "http://" + ln.Addr().String()

	// 1. Chunked request with a trailer (unknown length: net/http chunks it).
	req, _ := http.NewRequest("POST", url+"/echo?x=1", io.MultiReader(strings.NewReader("hello "), strings.NewReader("world")))
	req.ContentLength = -1
	req.Trailer = http.Header{"X-Client-Trailer": {"tv"}}
	checkEcho(t, client, req, "hello world!", "tv", "/echo?x=1")

	// 2. Content-Length request with Expect: 100-continue.
	req, _ = http.NewRequest("PUT", url+"/put", strings.NewReader(strings.Repeat("p", 3000)))
	req.Header.Set("Expect", "100-continue")
	checkEcho(t, client, req, strings.Repeat("p", 3000)+"!", "", "/put")

	// 3. A GET without body on the same connection.
	req, _ = http.NewRequest("GET", url+"/get", nil)
	checkEcho(t, client, req, "!", "", "/get")

	if n := accepted.Load(); n != 1 {
		t.Fatalf("%d connections accepted, want 1 (keep-alive)", n)
	}
}

func checkEcho(t *testing.T, client *http.Client, req *http.Request, wantBody, wantTrailerIn, wantPath string) {
	t.Helper()
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || string(body) != wantBody {
		t.Fatalf("status %d body %q, want %q", resp.StatusCode, body, wantBody)
	}
	if got := resp.Header.Get("X-Trailer-In"); got != wantTrailerIn {
		t.Fatalf("server saw trailer %q, want %q", got, wantTrailerIn)
	}
	if got := resp.Header.Get("X-Path"); got != wantPath {
		t.Fatalf("server saw path %q, want %q", got, wantPath)
	}
	if got := resp.Trailer.Get("X-Server-Trailer"); got != "done" {
		t.Fatalf("response trailer %q, want done", got)
	}
	if len(resp.TransferEncoding) != 1 || resp.TransferEncoding[0] != "chunked" {
		t.Fatalf("transfer encoding %v", resp.TransferEncoding)
	}
}

func TestCodecClientToNetHTTPServer(t *testing.T) {
	defer checkNoLeak(t, runtime.NumGoroutine())
	var conns atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		switch r.URL.Path {
		case "/nocontent":
			w.WriteHeader(204)
			return
		case "/head":
			w.Header().Set("Content-Length", "1234")
			return
		}
		w.Header().Set("X-Trailer-In", r.Trailer.Get("X-Client-Trailer"))
		w.Header().Set("X-Host", r.Host)
		w.Header().Set("Trailer", "X-Server-Trailer")
		w.Write(body[:len(body)/2])
		w.(http.Flusher).Flush()
		w.Write(body[len(body)/2:])
		w.Header().Set("X-Server-Trailer", "done")
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()

	nc, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	c := NewConn(nc, Options{})
	defer c.Release()
	var resp headers.Response

	// 1. Chunked request with a trailer; chunked response with a trailer.
	req := headers.Request{Method: []byte("POST"), Path: []byte("/echo"), Authority: []byte("upstream.local")}
	req.Add("user-agent", "weft-test")
	if err := c.WriteRequestHead(&req, Framing{Kind: BodyChunked}); err != nil {
		t.Fatal(err)
	}
	c.Write([]byte("abc"))
	c.Write([]byte("defgh"))
	trOut := &headers.Map{}
	trOut.Add("x-client-trailer", "tv")
	if err := c.EndBody(trOut); err != nil {
		t.Fatal(err)
	}
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	head, err := c.ReadResponse(&resp, false)
	if err != nil {
		t.Fatal(err)
	}
	var trIn headers.Map
	c.Body().SetTrailers(&trIn)
	body, err := io.ReadAll(c.Body())
	if err != nil {
		t.Fatal(err)
	}
	if resp.Status != 200 || head.Framing.Kind != BodyChunked || !head.KeepAlive || string(body) != "abcdefgh" {
		t.Fatalf("status %d head %+v body %q", resp.Status, head, body)
	}
	if string(resp.Get("x-trailer-in")) != "tv" || string(resp.Get("x-host")) != "upstream.local" {
		t.Fatalf("server saw trailer %q host %q", resp.Get("x-trailer-in"), resp.Get("x-host"))
	}
	if string(trIn.Get("x-server-trailer")) != "done" {
		t.Fatalf("trailers %q", fieldsString(&trIn))
	}

	// 2. Content-Length request on the same connection.
	req = headers.Request{Method: []byte("PUT"), Path: []byte("/echo"), Authority: []byte("h")}
	c.WriteRequestHead(&req, Framing{BodyLength, 4})
	c.Write([]byte("wxyz"))
	c.EndBody(nil)
	c.Flush()
	if _, err := c.ReadResponse(&resp, false); err != nil {
		t.Fatal(err)
	}
	if body, err := io.ReadAll(c.Body()); err != nil || string(body) != "wxyz" {
		t.Fatalf("body %q err %v", body, err)
	}

	// 3. HEAD: Content-Length without a body; the connection stays usable.
	req = headers.Request{Method: []byte("HEAD"), Path: []byte("/head"), Authority: []byte("h")}
	c.WriteRequestHead(&req, Framing{})
	c.Flush()
	head, err = c.ReadResponse(&resp, true)
	if err != nil || head.Framing.Kind != BodyNone || string(resp.Get("content-length")) != "1234" || !c.Body().Done() {
		t.Fatalf("HEAD: head %+v fields %q err %v", head, fieldsString(&resp.Map), err)
	}

	// 4. 204.
	req = headers.Request{Method: []byte("GET"), Path: []byte("/nocontent"), Authority: []byte("h")}
	c.WriteRequestHead(&req, Framing{})
	c.Flush()
	if _, err := c.ReadResponse(&resp, false); err != nil || resp.Status != 204 || !c.Body().Done() {
		t.Fatalf("204: status %d err %v", resp.Status, err)
	}
	if n := conns.Load(); n != 1 {
		t.Fatalf("%d connections, want 1", n)
	}
}

// A malformed request gets the codec's status from the tiny server and
// net/http reads it.
func TestNetHTTPSeesCodecError(t *testing.T) {
	client, server := tcpPair(t)
	deadline := time.Now().Add(10 * time.Second)
	client.SetDeadline(deadline)
	server.SetDeadline(deadline) // a regression fails in time instead of hanging
	done := make(chan struct{})
	go func() { defer close(done); serveEcho(server) }()
	io.WriteString(client, "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n")
	got, _ := io.ReadAll(client)
	<-done
	if want := "HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n"; string(got) != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}
