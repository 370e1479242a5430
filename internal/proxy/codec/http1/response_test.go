package http1

import (
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/proxy/headers"
)

func TestReadResponse(t *testing.T) {
	tests := []struct {
		name   string
		in     string
		head   bool // response to HEAD
		status int
		fields string
		want   Head
		body   string
	}{
		{"content-length", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nServer: s\r\n\r\nhi",
			false, 200, "content-length: 2\nserver: s\n", Head{Framing: Framing{BodyLength, 2}, KeepAlive: true}, "hi"},
		{"no reason phrase", "HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n",
			false, 200, "content-length: 0\n", Head{KeepAlive: true}, ""},
		{"empty reason phrase", "HTTP/1.1 404 \r\nContent-Length: 0\r\n\r\n",
			false, 404, "content-length: 0\n", Head{KeepAlive: true}, ""},
		{"chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
			false, 200, "transfer-encoding: chunked\n", Head{Framing: Framing{Kind: BodyChunked}, KeepAlive: true}, "abc"},
		{"until close", "HTTP/1.1 200 OK\r\n\r\nrest",
			false, 200, "", Head{Framing: Framing{Kind: BodyUntilClose}}, "rest"},
		{"http/1.0 closes", "HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nx",
			false, 200, "content-length: 1\n", Head{Framing: Framing{BodyLength, 1}}, "x"},
		{"http/1.0 keep-alive", "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\nx",
			false, 200, "connection: keep-alive\ncontent-length: 1\n", Head{Framing: Framing{BodyLength, 1}, KeepAlive: true}, "x"},
		{"connection close", "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\nx",
			false, 200, "connection: close\ncontent-length: 1\n", Head{Framing: Framing{BodyLength, 1}}, "x"},
		{"HEAD keeps content-length, no body", "HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n",
			true, 200, "content-length: 1234\n", Head{KeepAlive: true}, ""},
		{"HEAD chunked, no body", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
			true, 200, "transfer-encoding: chunked\n", Head{KeepAlive: true}, ""},
		{"204 drops content-length 0", "HTTP/1.1 204 No Content\r\nContent-Length: 0\r\nX: y\r\n\r\n",
			false, 204, "x: y\n", Head{KeepAlive: true}, ""},
		{"304 has no body", "HTTP/1.1 304 Not Modified\r\nContent-Length: 99\r\n\r\n",
			false, 304, "content-length: 99\n", Head{KeepAlive: true}, ""},
		{"1xx skipped", "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n" +
			"HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok",
			false, 201, "content-length: 2\n", Head{Framing: Framing{BodyLength, 2}, KeepAlive: true}, "ok"},
		{"101 upgrade", "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
			false, 101, "connection: Upgrade\nupgrade: websocket\n", Head{Upgrade: true}, ""},
	}
	for _, tt := range tests {
		for _, s := range splits {
			t.Run(tt.name+"/"+s.String(), func(t *testing.T) {
				c, _ := newFake(tt.in, s, Options{})
				defer c.Release()
				var resp headers.Response
				head, err := c.ReadResponse(&resp, tt.head)
				if err != nil {
					t.Fatalf("ReadResponse: %v", err)
				}
				body, err := io.ReadAll(c.Body())
				if err != nil {
					t.Fatalf("body: %v", err)
				}
				if resp.Status != tt.status || fieldsString(&resp.Map) != tt.fields || head != tt.want || string(body) != tt.body {
					t.Fatalf("got %d %q %+v %q\nwant %d %q %+v %q", resp.Status, fieldsString(&resp.Map), head, body,
						tt.status, tt.fields, tt.want, tt.body)
				}
			})
		}
	}
}

func TestReadResponseBad(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		details string
	}{
		{"short status", "HTTP/1.1 20 OK\r\n\r\n", DetailCodecError},
		{"status 600", "HTTP/1.1 600 X\r\n\r\n", DetailCodecError},
		{"status 099", "HTTP/1.1 099 X\r\n\r\n", DetailCodecError},
		{"bad protocol", "HTP/1.1 200 OK\r\n\r\n", DetailCodecError},
		{"http/2", "HTTP/2.0 200 OK\r\n\r\n", DetailCodecError},
		{"no space after code", "HTTP/1.1 200OK\r\n\r\n", DetailCodecError},
		{"CTL in reason", "HTTP/1.1 200 O\x01K\r\n\r\n", DetailCodecError},
		{"TE in 204", "HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\n\r\n", DetailTENotAllowed},
		{"CL in 204", "HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n", DetailCLNotAllowed},
		{"TE in 1xx", "HTTP/1.1 100 Continue\r\nTransfer-Encoding: chunked\r\n\r\n", DetailTENotAllowed},
		{"CL and TE", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", DetailChunkedContentLength},
		{"TE gzip", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", DetailInvalidTransferEncoding},
		{"bad field", "HTTP/1.1 200 OK\r\nX y: z\r\n\r\n", DetailCodecError},
		{"bad value", "HTTP/1.1 200 OK\r\nX: \x00\r\n\r\n", DetailInvalidCharacters},
		{"two content-lengths", "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n", DetailCodecError},
	}
	for _, tt := range tests {
		for _, s := range splits {
			t.Run(tt.name+"/"+s.String(), func(t *testing.T) {
				c, _ := newFake(tt.in, s, Options{})
				defer c.Release()
				var resp headers.Response
				_, err := c.ReadResponse(&resp, false)
				wantError(t, err, 503, tt.details)
			})
		}
	}
}

func TestReadResponseChunkErrorIs503(t *testing.T) {
	c, _ := newFake("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nxyz\r\n", whole, Options{})
	defer c.Release()
	var resp headers.Response
	if _, err := c.ReadResponse(&resp, false); err != nil {
		t.Fatal(err)
	}
	_, err := io.ReadAll(c.Body())
	wantError(t, err, 503, DetailCodecError)
}

func TestReadResponseEOF(t *testing.T) {
	for in, want := range map[string]error{
		"":                               io.EOF,
		"HTTP/1.1 2":                     io.ErrUnexpectedEOF,
		"HTTP/1.1 200 OK\r\nX: y\r\n":    io.ErrUnexpectedEOF,
		"HTTP/1.1 100 Continue\r\n\r\n":  io.ErrUnexpectedEOF, // bytes of the response had arrived
		"HTTP/1.1 100 Continue\r\n\r\nH": io.ErrUnexpectedEOF,
	} {
		c, _ := newFake(in, whole, Options{})
		var resp headers.Response
		if _, err := c.ReadResponse(&resp, false); err != want {
			t.Errorf("%q: err = %v, want %v", in, err, want)
		}
		c.Release()
	}
}

// After a 101 the bytes that followed the head belong to the tunnel.
func TestUpgradeTunnelReader(t *testing.T) {
	c, _ := newFake("HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: upgrade\r\n\r\nearly-bytes", whole, Options{})
	defer c.Release()
	var resp headers.Response
	head, err := c.ReadResponse(&resp, false)
	if err != nil || !head.Upgrade {
		t.Fatalf("head %+v err %v", head, err)
	}
	if c.Buffered() != len("early-bytes") {
		t.Fatalf("Buffered = %d", c.Buffered())
	}
	got, err := io.ReadAll(c.Reader())
	if err != nil || string(got) != "early-bytes" {
		t.Fatalf("tunnel read %q err %v", got, err)
	}
}

// After a 101 over TCP, Reader hands the early bytes and then the rest of
// the stream to io.Copy (tunnelSource.WriteTo, which lets a TCP
// destination splice from the socket).
func TestUpgradeTunnelOverTCP(t *testing.T) {
	upClient, upServer := tcpPair(t)  // proxy (client side) <-> upstream
	downProxy, downPeer := tcpPair(t) // proxy <-> downstream peer
	deadline := time.Now().Add(10 * time.Second)
	for _, c := range []net.Conn{upClient, upServer, downProxy, downPeer} {
		c.SetDeadline(deadline)
	}
	go func() {
		io.WriteString(upServer, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: upgrade\r\n\r\nearly|")
		io.WriteString(upServer, strings.Repeat("later|", 2000))
		upServer.(*net.TCPConn).CloseWrite()
	}()
	c := NewConn(upClient, Options{})
	defer c.Release()
	var resp headers.Response
	head, err := c.ReadResponse(&resp, false)
	if err != nil || !head.Upgrade {
		t.Fatalf("head %+v err %v", head, err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := io.Copy(downProxy, c.Reader())
		downProxy.(*net.TCPConn).CloseWrite()
		done <- err
	}()
	got, err := io.ReadAll(downPeer)
	if err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if want := "early|" + strings.Repeat("later|", 2000); string(got) != want {
		t.Fatalf("tunnel carried %d bytes, want %d", len(got), len(want))
	}
}
