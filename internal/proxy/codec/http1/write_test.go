package http1

import (
	"errors"
	"strings"
	"testing"

	"github.com/weftmesh/weft/internal/proxy/headers"
)

// serverConn returns a Conn that has read the given request (so that the
// writer knows HEAD and CONNECT), and its fake socket with output cleared.
func serverConn(t *testing.T, request string) (*Conn, *fakeConn) {
	t.Helper()
	c, fc := newFake(request, whole, Options{})
	if request != "" {
		var req headers.Request
		if _, err := c.ReadRequest(&req); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(c.Release)
	return c, fc
}

func response(status int, kv ...string) *headers.Response {
	r := &headers.Response{Status: status}
	for i := 0; i < len(kv); i += 2 {
		r.Add(kv[i], kv[i+1])
	}
	return r
}

const getReq = "GET / HTTP/1.1\r\nHost: h\r\n\r\n"

func TestWriteResponse(t *testing.T) {
	tests := []struct {
		name      string
		request   string
		resp      *headers.Response
		f         Framing
		proto     headers.Protocol
		body      string
		trailers  []string
		wantFrame Framing
		want      string
	}{
		{"content-length", getReq, response(200, "content-type", "text/plain", "content-length", "999"),
			Framing{BodyLength, 5}, headers.HTTP11, "hello", nil, Framing{BodyLength, 5},
			"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 5\r\n\r\nhello"},
		{"no body is content-length 0", getReq, response(404),
			Framing{}, headers.HTTP11, "", nil, Framing{},
			"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n"},
		{"chunked with trailers", getReq, response(200, "transfer-encoding", "gzip"),
			Framing{Kind: BodyChunked}, headers.HTTP11, "abc", []string{"grpc-status", "0", "x-t", "v"}, Framing{Kind: BodyChunked},
			"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\ngrpc-status: 0\r\nx-t: v\r\n\r\n"},
		{"http/1.0 chunked becomes until close", "GET / HTTP/1.0\r\n\r\n", response(200),
			Framing{Kind: BodyChunked}, headers.HTTP10, "abc", nil, Framing{Kind: BodyUntilClose},
			"HTTP/1.0 200 OK\r\n\r\nabc"},
		{"204 has no framing and no body", getReq, response(204),
			Framing{BodyLength, 3}, headers.HTTP11, "abc", nil, Framing{},
			"HTTP/1.1 204 No Content\r\n\r\n"},
		{"304 keeps content-length, no body", getReq, response(304),
			Framing{BodyLength, 3}, headers.HTTP11, "abc", nil, Framing{},
			"HTTP/1.1 304 Not Modified\r\ncontent-length: 3\r\n\r\n"},
		{"HEAD keeps content-length, no body", "HEAD / HTTP/1.1\r\nHost: h\r\n\r\n", response(200),
			Framing{BodyLength, 3}, headers.HTTP11, "abc", nil, Framing{},
			"HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\n"},
		{"HEAD chunked is informational", "HEAD / HTTP/1.1\r\nHost: h\r\n\r\n", response(200),
			Framing{Kind: BodyChunked}, headers.HTTP11, "abc", nil, Framing{},
			"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"},
		{"HEAD without length", "HEAD / HTTP/1.1\r\nHost: h\r\n\r\n", response(200),
			Framing{}, headers.HTTP11, "", nil, Framing{},
			"HTTP/1.1 200 OK\r\n\r\n"},
		{"101 is a tunnel", getReq, response(101, "upgrade", "websocket", "connection", "upgrade"),
			Framing{}, headers.HTTP11, "raw", nil, Framing{Kind: BodyUntilClose},
			"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: upgrade\r\n\r\nraw"},
		{"200 to CONNECT is a tunnel", "CONNECT h:1 HTTP/1.1\r\nHost: h:1\r\n\r\n", response(200),
			Framing{Kind: BodyChunked}, headers.HTTP11, "raw", nil, Framing{Kind: BodyUntilClose},
			"HTTP/1.1 200 OK\r\n\r\nraw"},
		{"unknown status", getReq, response(799),
			Framing{}, headers.HTTP11, "", nil, Framing{},
			"HTTP/1.1 799 Unknown\r\ncontent-length: 0\r\n\r\n"},
		{"status without text", getReq, response(599),
			Framing{}, headers.HTTP11, "", nil, Framing{},
			"HTTP/1.1 599 Unknown\r\ncontent-length: 0\r\n\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, fc := serverConn(t, tt.request)
			used, err := c.WriteResponseHead(tt.resp, tt.f, tt.proto)
			if err != nil || used != tt.wantFrame {
				t.Fatalf("WriteResponseHead = %+v, %v; want %+v", used, err, tt.wantFrame)
			}
			if n, err := c.Write([]byte(tt.body)); err != nil || n != len(tt.body) {
				t.Fatalf("Write = %d, %v", n, err)
			}
			var tr *headers.Map
			if tt.trailers != nil {
				tr = &headers.Map{}
				for i := 0; i < len(tt.trailers); i += 2 {
					tr.Add(tt.trailers[i], tt.trailers[i+1])
				}
			}
			if err := c.EndBody(tr); err != nil {
				t.Fatalf("EndBody: %v", err)
			}
			if err := c.Flush(); err != nil {
				t.Fatal(err)
			}
			if got := fc.out.String(); got != tt.want {
				t.Fatalf("wrote\n%q\nwant\n%q", got, tt.want)
			}
			if fc.writes != 1 {
				t.Fatalf("%d writes, want 1", fc.writes)
			}
		})
	}
}

func TestWriteRequestHead(t *testing.T) {
	tests := []struct {
		name string
		req  headers.Request
		f    Framing
		body string
		want string
	}{
		{"GET without body", headers.Request{Method: []byte("GET"), Path: []byte("/p?q"), Authority: []byte("up:8080")},
			Framing{}, "", "GET /p?q HTTP/1.1\r\nhost: up:8080\r\nx-a: 1\r\n\r\n"},
		{"POST without body gets content-length 0", headers.Request{Method: []byte("POST"), Path: []byte("/"), Authority: []byte("h")},
			Framing{}, "", "POST / HTTP/1.1\r\nhost: h\r\nx-a: 1\r\ncontent-length: 0\r\n\r\n"},
		{"chunked", headers.Request{Method: []byte("PUT"), Path: []byte("/"), Authority: []byte("h")},
			Framing{Kind: BodyChunked}, "hello", "PUT / HTTP/1.1\r\nhost: h\r\nx-a: 1\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"},
		{"length", headers.Request{Method: []byte("PUT"), Path: []byte("/"), Authority: []byte("h")},
			Framing{BodyLength, 2}, "hi", "PUT / HTTP/1.1\r\nhost: h\r\nx-a: 1\r\ncontent-length: 2\r\n\r\nhi"},
		{"CONNECT uses authority, no framing", headers.Request{Method: []byte("CONNECT"), Authority: []byte("h:443")},
			Framing{Kind: BodyChunked}, "tunnel", "CONNECT h:443 HTTP/1.1\r\nhost: h:443\r\nx-a: 1\r\n\r\ntunnel"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, fc := serverConn(t, "")
			req := tt.req
			req.Add("x-a", "1")
			req.Add("content-length", "77") // framing comes from f, never from the map
			if err := c.WriteRequestHead(&req, tt.f); err != nil {
				t.Fatal(err)
			}
			if _, err := c.Write([]byte(tt.body)); err != nil {
				t.Fatal(err)
			}
			if err := c.EndBody(nil); err != nil {
				t.Fatal(err)
			}
			c.Flush()
			if got := fc.out.String(); got != tt.want {
				t.Fatalf("wrote\n%q\nwant\n%q", got, tt.want)
			}
		})
	}
}

func TestWriteUpgradeRequestIsRaw(t *testing.T) {
	c, fc := serverConn(t, "")
	req := headers.Request{Method: []byte("GET"), Path: []byte("/ws"), Authority: []byte("h")}
	req.Add("connection", "Upgrade")
	req.Add("upgrade", "websocket")
	if err := c.WriteRequestHead(&req, Framing{Kind: BodyChunked}); err != nil {
		t.Fatal(err)
	}
	c.Write([]byte("frame"))
	c.Flush()
	want := "GET /ws HTTP/1.1\r\nhost: h\r\nconnection: Upgrade\r\nupgrade: websocket\r\n\r\nframe"
	if fc.out.String() != want {
		t.Fatalf("wrote %q", fc.out.String())
	}
}

// Values that would split the message are refused, and nothing of the head
// is left in the buffer: a local reply can still be written.
func TestWriteRefusesInvalidFields(t *testing.T) {
	for _, kv := range [][2]string{
		{"x-bad", "a\r\nx-injected: 1"},
		{"x-bad", "a\nb"},
		{"x-bad", "a\x00b"},
		{"bad name", "v"},
		{"", "v"},
		{"x-bad:", "v"},
	} {
		c, fc := serverConn(t, getReq)
		resp := &headers.Response{Status: 200}
		resp.Add("x-ok", "1")
		resp.AddRef([]byte(kv[0]), []byte(kv[1]))
		if _, err := c.WriteResponseHead(resp, Framing{}, headers.HTTP11); !errors.Is(err, ErrInvalidField) {
			t.Fatalf("%q: err = %v, want ErrInvalidField", kv, err)
		}
		if _, err := c.WriteResponseHead(response(500), Framing{}, headers.HTTP11); err != nil {
			t.Fatal(err)
		}
		c.EndBody(nil)
		c.Flush()
		if got := fc.out.String(); got != "HTTP/1.1 500 Internal Server Error\r\ncontent-length: 0\r\n\r\n" {
			t.Fatalf("%q: wrote %q", kv, got)
		}
	}
	c, _ := serverConn(t, "")
	req := headers.Request{Method: []byte("GET"), Path: []byte("/a b"), Authority: []byte("h")}
	if err := c.WriteRequestHead(&req, Framing{}); !errors.Is(err, ErrInvalidFraming) {
		t.Fatalf("path with space: %v", err)
	}
	req = headers.Request{Method: []byte("GET"), Path: []byte("/"), Authority: []byte("h\r\nx: y")}
	if err := c.WriteRequestHead(&req, Framing{}); !errors.Is(err, ErrInvalidField) {
		t.Fatalf("host with CRLF: %v", err)
	}
	if err := c.WriteRequestHead(&req, Framing{Kind: BodyUntilClose}); err == nil {
		t.Fatal("BodyUntilClose request accepted")
	}
	if _, err := c.WriteResponseHead(response(42), Framing{}, headers.HTTP11); !errors.Is(err, ErrInvalidFraming) {
		t.Fatalf("status 42: %v", err)
	}
}

func TestWriteTrailerRefusedThenEnd(t *testing.T) {
	c, fc := serverConn(t, getReq)
	c.WriteResponseHead(response(200), Framing{Kind: BodyChunked}, headers.HTTP11)
	c.Write([]byte("x"))
	tr := &headers.Map{}
	tr.AddRef([]byte("x-t"), []byte("a\nb"))
	if err := c.EndBody(tr); !errors.Is(err, ErrInvalidField) {
		t.Fatalf("EndBody = %v", err)
	}
	if err := c.EndBody(nil); err != nil {
		t.Fatal(err)
	}
	c.Flush()
	if want := "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n"; fc.out.String() != want {
		t.Fatalf("wrote %q", fc.out.String())
	}
}

func TestWriteBodyLimits(t *testing.T) {
	c, _ := serverConn(t, getReq)
	if _, err := c.Write([]byte("x")); !errors.Is(err, ErrNoMessage) {
		t.Fatalf("Write before a head: %v", err)
	}
	c.WriteResponseHead(response(200), Framing{BodyLength, 3}, headers.HTTP11)
	if _, err := c.Write([]byte("abcd")); !errors.Is(err, ErrBodyTooLong) {
		t.Fatalf("too long: %v", err)
	}
	if _, err := c.Write([]byte("ab")); err != nil {
		t.Fatal(err)
	}
	if err := c.EndBody(nil); !errors.Is(err, ErrBodyIncomplete) {
		t.Fatalf("short body: %v", err)
	}
	if _, err := c.WriteResponseHead(response(200), Framing{}, headers.HTTP11); !errors.Is(err, ErrBodyIncomplete) {
		t.Fatalf("the write side must stay failed: %v", err)
	}

	c, _ = serverConn(t, getReq)
	c.WriteResponseHead(response(200), Framing{}, headers.HTTP11)
	if _, err := c.Write([]byte("x")); !errors.Is(err, ErrBodyNotAllowed) {
		t.Fatalf("BodyNone: %v", err)
	}
}

func TestWriteContinue(t *testing.T) {
	c, fc := serverConn(t, "POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n")
	if err := c.WriteContinue(); err != nil {
		t.Fatal(err)
	}
	if fc.out.String() != "HTTP/1.1 100 Continue\r\n\r\n" || fc.writes != 1 {
		t.Fatalf("wrote %q in %d writes", fc.out.String(), fc.writes)
	}
}

// A body larger than the buffer goes out with the head in few writes, and
// a head larger than the buffer is written in pieces.
func TestWriteLarge(t *testing.T) {
	c, fc := serverConn(t, getReq)
	big := strings.Repeat("h", 40000)
	resp := response(200, "x-big", big)
	body := strings.Repeat("b", 100000)
	c.WriteResponseHead(resp, Framing{Kind: BodyChunked}, headers.HTTP11)
	c.Write([]byte(body))
	c.Write([]byte("tail"))
	c.EndBody(nil)
	c.Flush()
	want := "HTTP/1.1 200 OK\r\nx-big: " + big + "\r\ntransfer-encoding: chunked\r\n\r\n186a0\r\n" + body + "\r\n4\r\ntail\r\n0\r\n\r\n"
	if fc.out.String() != want {
		t.Fatalf("large output differs (len %d, want %d)", fc.out.Len(), len(want))
	}
}

func TestHTTP10StatusLine(t *testing.T) {
	c, fc := serverConn(t, "GET / HTTP/1.0\r\n\r\n")
	c.WriteResponseHead(response(503), Framing{}, headers.HTTP10)
	c.EndBody(nil)
	c.Flush()
	if want := "HTTP/1.0 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n"; fc.out.String() != want {
		t.Fatalf("wrote %q", fc.out.String())
	}
	// The shared status line table must not have been modified.
	if string(statusLines[503][:8]) != "HTTP/1.1" {
		t.Fatal("status line table changed")
	}
}
