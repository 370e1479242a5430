package http1

import (
	"bytes"
	"io"
	"net"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/proxy/headers"
)

// replayConn serves the same message on every Read, as a keep-alive peer
// sending one message per exchange would, and discards writes. Reads and
// writes are counted: they stand for system calls.
type replayConn struct {
	msg           []byte
	reads, writes int
}

func (r *replayConn) Read(p []byte) (int, error) {
	r.reads++
	return copy(p, r.msg), nil
}

func (r *replayConn) Write(p []byte) (int, error) {
	r.writes++
	return len(p), nil
}

func (r *replayConn) Close() error                     { return nil }
func (r *replayConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (r *replayConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (r *replayConn) SetDeadline(time.Time) error      { return nil }
func (r *replayConn) SetReadDeadline(time.Time) error  { return nil }
func (r *replayConn) SetWriteDeadline(time.Time) error { return nil }

// benchRequest is a typical browser-like API request of about 400 bytes.
const benchRequest = "GET /api/v1/users/12345/profile?include=settings&format=json HTTP/1.1\r\n" +
	"Host: api.example.com\r\n" +
	"User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/120.0\r\n" +
	"Accept: application/json, text/plain, */*\r\n" +
	"Accept-Encoding: gzip, deflate, br\r\n" +
	"Accept-Language: en-US,en;q=0.9\r\n" +
	"Cookie: session=abcdef0123456789; theme=dark\r\n" +
	"X-Request-Id: 4f8b2c1e-9d3a-4e5f-8a7b-6c5d4e3f2a1b\r\n" +
	"Connection: keep-alive\r\n\r\n"

var (
	benchBody      = bytes.Repeat([]byte("x"), 1024)
	nameCT         = []byte("content-type")
	valCT          = []byte("application/json")
	nameServer     = []byte("server")
	valServer      = []byte("weft")
	nameDate       = []byte("date")
	valDate        = []byte("Mon, 02 Jan 2026 15:04:05 GMT")
	benchResponse  = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1024\r\nDate: Mon, 02 Jan 2026 15:04:05 GMT\r\nServer: upstream\r\n\r\n" + string(benchBody)
	benchAuthority = []byte("backend.local:8080")
	benchMethod    = []byte("GET")
	benchPath      = []byte("/api/v1/users/12345/profile?include=settings&format=json")
)

// BenchmarkServerRoundTrip: parse a ~400-byte keep-alive request from the
// buffer and write a 1 KiB response with three headers, flushed once.
func BenchmarkServerRoundTrip(b *testing.B) {
	rc := &replayConn{msg: []byte(benchRequest)}
	c := NewConn(rc, Options{})
	defer c.Release()
	var req headers.Request
	var resp headers.Response
	b.SetBytes(int64(len(benchRequest)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := c.ReadRequest(&req); err != nil {
			b.Fatal(err)
		}
		resp.Reset()
		resp.Status = 200
		resp.AddRef(nameCT, valCT)
		resp.AddRef(nameServer, valServer)
		resp.AddRef(nameDate, valDate)
		if _, err := c.WriteResponseHead(&resp, Framing{BodyLength, int64(len(benchBody))}, req.Protocol); err != nil {
			b.Fatal(err)
		}
		c.Write(benchBody)
		c.EndBody(nil)
		if err := c.Flush(); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(rc.reads)/float64(b.N), "reads/op")
	b.ReportMetric(float64(rc.writes)/float64(b.N), "writes/op")
}

// BenchmarkServerRoundTripChunked is the same with a chunked response body
// written in two pieces and a trailer.
func BenchmarkServerRoundTripChunked(b *testing.B) {
	rc := &replayConn{msg: []byte(benchRequest)}
	c := NewConn(rc, Options{})
	defer c.Release()
	var req headers.Request
	var resp headers.Response
	var tr headers.Map
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := c.ReadRequest(&req); err != nil {
			b.Fatal(err)
		}
		resp.Reset()
		resp.Status = 200
		resp.AddRef(nameCT, valCT)
		c.WriteResponseHead(&resp, Framing{Kind: BodyChunked}, req.Protocol)
		c.Write(benchBody[:512])
		c.Write(benchBody[512:])
		tr.Reset()
		tr.AddRef(nameServer, valServer)
		c.EndBody(&tr)
		if err := c.Flush(); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(rc.reads)/float64(b.N), "reads/op")
	b.ReportMetric(float64(rc.writes)/float64(b.N), "writes/op")
}

// BenchmarkClientRoundTrip: write a request head (upstream side), parse a
// response head with a 1 KiB Content-Length body and copy the body out.
func BenchmarkClientRoundTrip(b *testing.B) {
	rc := &replayConn{msg: []byte(benchResponse)}
	c := NewConn(rc, Options{})
	defer c.Release()
	var req headers.Request
	var resp headers.Response
	req.Method, req.Path, req.Authority = benchMethod, benchPath, benchAuthority
	req.AddRef(nameCT, valCT)
	req.AddRef(nameDate, valDate)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := c.WriteRequestHead(&req, Framing{}); err != nil {
			b.Fatal(err)
		}
		c.EndBody(nil)
		if err := c.Flush(); err != nil {
			b.Fatal(err)
		}
		if _, err := c.ReadResponse(&resp, false); err != nil {
			b.Fatal(err)
		}
		if n, err := c.Body().WriteTo(io.Discard); err != nil || n != 1024 {
			b.Fatal(n, err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(rc.reads)/float64(b.N), "reads/op")
	b.ReportMetric(float64(rc.writes)/float64(b.N), "writes/op")
}

// BenchmarkReadRequest is the parse alone.
func BenchmarkReadRequest(b *testing.B) {
	rc := &replayConn{msg: []byte(benchRequest)}
	c := NewConn(rc, Options{})
	defer c.Release()
	var req headers.Request
	b.SetBytes(int64(len(benchRequest)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := c.ReadRequest(&req); err != nil {
			b.Fatal(err)
		}
	}
}

// TestRoundTripAllocs pins the 0 allocs/op target of the hot path, so a
// regression fails the ordinary test run, not only the benchmark.
func TestRoundTripAllocs(t *testing.T) {
	rc := &replayConn{msg: []byte(benchRequest)}
	c := NewConn(rc, Options{})
	defer c.Release()
	var req headers.Request
	var resp headers.Response
	cycle := func() {
		if _, err := c.ReadRequest(&req); err != nil {
			t.Fatal(err)
		}
		resp.Reset()
		resp.Status = 200
		resp.AddRef(nameCT, valCT)
		c.WriteResponseHead(&resp, Framing{Kind: BodyChunked}, req.Protocol)
		c.Write(benchBody)
		c.EndBody(nil)
		c.Flush()
	}
	cycle() // warm the maps
	if n := testing.AllocsPerRun(200, cycle); n != 0 {
		t.Fatalf("server round trip allocates %.1f times per request, want 0", n)
	}
	if len(benchRequest) < 380 || len(benchRequest) > 420 {
		t.Fatalf("benchmark request is %d bytes, meant to be about 400", len(benchRequest))
	}
}
