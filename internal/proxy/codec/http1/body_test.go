package http1

import (
	"bytes"
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/proxy/headers"
)

const chunkedHead = "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"

func TestChunkedBody(t *testing.T) {
	tests := []struct {
		name     string
		body     string
		want     string
		trailers string
	}{
		{"one chunk", "5\r\nhello\r\n0\r\n\r\n", "hello", ""},
		{"hex sizes any case", "a\r\n0123456789\r\nA\r\nabcdefghij\r\n0\r\n\r\n", "0123456789abcdefghij", ""},
		{"leading zeros", "0005\r\nhello\r\n000\r\n\r\n", "hello", ""},
		{"extensions ignored", "5;a=b;c\r\nhello\r\n0;last\r\n\r\n", "hello", ""},
		{"BWS before extension", "5 \t;a\r\nhello\r\n0\r\n\r\n", "hello", ""},
		{"trailers", "3\r\nabc\r\n0\r\nX-One: 1\r\nGrpc-Status:  0 \r\n\r\n", "abc", "x-one: 1\ngrpc-status: 0\n"},
		{"empty body", "0\r\n\r\n", "", ""},
	}
	for _, tt := range tests {
		for _, s := range splits {
			t.Run(tt.name+"/"+s.String(), func(t *testing.T) {
				c, _ := newFake(chunkedHead+tt.body, s, Options{})
				defer c.Release()
				var req headers.Request
				if _, err := c.ReadRequest(&req); err != nil {
					t.Fatal(err)
				}
				var tr headers.Map
				c.Body().SetTrailers(&tr)
				if c.Body().Remaining() != -1 {
					t.Fatalf("Remaining of a chunked body = %d, want -1", c.Body().Remaining())
				}
				got, err := io.ReadAll(c.Body())
				if err != nil || string(got) != tt.want {
					t.Fatalf("body %q err %v, want %q", got, err, tt.want)
				}
				if fieldsString(&tr) != tt.trailers {
					t.Fatalf("trailers %q, want %q", fieldsString(&tr), tt.trailers)
				}
				if !c.Body().Done() {
					t.Fatal("not Done")
				}
			})
		}
	}
}

func TestChunkedBodyErrors(t *testing.T) {
	tests := []struct {
		name    string
		body    string
		opts    Options
		status  int
		details string
	}{
		{"not hex", "zz\r\n", Options{}, 400, DetailCodecError},
		{"empty size", "\r\n", Options{}, 400, DetailCodecError},
		{"size overflow", "10000000000000000\r\n", Options{}, 400, DetailCodecError},
		{"garbage after size", "5x\r\nhello\r\n", Options{}, 400, DetailCodecError},
		{"lone CR in extension", "5;a\rb\r\nhello\r\n", Options{}, 400, DetailCodecError},
		{"bare LF after size", "5\nhello\r\n", Options{}, 400, DetailCodecError},
		{"data longer than size", "3\r\nhello\r\n0\r\n\r\n", Options{}, 400, DetailCodecError},
		{"no CRLF after data", "5\r\nhelloXY0\r\n\r\n", Options{}, 400, DetailCodecError},
		{"size line too long", "5;" + strings.Repeat("a", 5000) + "\r\n", Options{}, 400, DetailCodecError},
		{"bad trailer name", "0\r\nBad Name: x\r\n\r\n", Options{}, 400, DetailCodecError},
		{"bad trailer value", "0\r\nX: a\x01\r\n\r\n", Options{}, 400, DetailInvalidCharacters},
		{"too many trailers", "0\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n", Options{MaxHeaders: 3}, 431, DetailTooManyHeaders},
		{"trailers too large", "0\r\nA: " + strings.Repeat("a", 300) + "\r\n\r\n", Options{MaxHeaderBytes: 256}, 431, DetailHeadersTooLarge},
	}
	for _, tt := range tests {
		for _, s := range splits {
			t.Run(tt.name+"/"+s.String(), func(t *testing.T) {
				c, _ := newFake(chunkedHead+tt.body, s, tt.opts)
				defer c.Release()
				var req headers.Request
				if _, err := c.ReadRequest(&req); err != nil {
					t.Fatal(err)
				}
				_, err := io.ReadAll(c.Body())
				wantError(t, err, tt.status, tt.details)
				if _, err2 := c.ReadRequest(&req); err2 != err {
					t.Fatalf("ReadRequest after a body error = %v, want the same error", err2)
				}
			})
		}
	}
}

func TestBodyCutShort(t *testing.T) {
	for _, in := range []string{
		"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\nabc",
		chunkedHead + "5\r\nhel",
		chunkedHead + "5\r\nhello",
		chunkedHead + "5\r\nhello\r\n0\r\nX: 1\r\n",
	} {
		for _, s := range splits {
			c, _ := newFake(in, s, Options{})
			var req headers.Request
			if _, err := c.ReadRequest(&req); err != nil {
				t.Fatal(err)
			}
			if _, err := io.ReadAll(c.Body()); err != io.ErrUnexpectedEOF {
				t.Fatalf("%q/%v: err = %v, want io.ErrUnexpectedEOF", in, s, err)
			}
			c.Release()
		}
	}
}

// The end of the body is reported with the last bytes, without a further
// read call, when the terminating chunk is already buffered.
func TestReadReturnsEOFWithLastBytes(t *testing.T) {
	c, _ := newFake(chunkedHead+"5\r\nhello\r\n0\r\n\r\n", whole, Options{})
	defer c.Release()
	var req headers.Request
	if _, err := c.ReadRequest(&req); err != nil {
		t.Fatal(err)
	}
	p := make([]byte, 64)
	n, err := c.Body().Read(p)
	if n != 5 || err != io.EOF || !c.Body().Done() {
		t.Fatalf("Read = %d, %v, Done %v; want 5, io.EOF, true", n, err, c.Body().Done())
	}
}

func TestBodyWriteTo(t *testing.T) {
	body := strings.Repeat("abcdefgh", 5000)
	var chunked strings.Builder
	for i := 0; i < len(body); i += 3000 {
		end := min(i+3000, len(body))
		chunked.WriteString(strconv.FormatInt(int64(end-i), 16) + "\r\n")
		chunked.WriteString(body[i:end] + "\r\n")
	}
	chunked.WriteString("0\r\n\r\n")
	for _, s := range []split{whole, 1000} {
		c, _ := newFake(chunkedHead+chunked.String(), s, Options{BufferSize: 4096})
		var req headers.Request
		if _, err := c.ReadRequest(&req); err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		n, err := c.Body().WriteTo(&out)
		if err != nil || n != int64(len(body)) || out.String() != body {
			t.Fatalf("%v: WriteTo = %d, %v; body equal %v", s, n, err, out.String() == body)
		}
		c.Release()
	}
}

// tcpPair returns both ends of a loopback TCP connection.
func tcpPair(t *testing.T) (client, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type res struct {
		c   net.Conn
		err error
	}
	ch := make(chan res, 1)
	go func() {
		c, err := ln.Accept()
		ch <- res{c, err}
	}()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	r := <-ch
	if r.err != nil {
		t.Fatal(r.err)
	}
	t.Cleanup(func() { client.Close(); r.c.Close() })
	return client, r.c
}

// A writer goroutine sends two pipelined requests one byte per write (with
// TCP_NODELAY each byte is its own segment); the codec reassembles heads,
// chunked and fixed-length bodies and trailers.
func TestBytewiseOverTCP(t *testing.T) {
	client, server := tcpPair(t)
	in := "POST /a HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n" +
		"4\r\nwxyz\r\n3;e=1\r\nabc\r\n0\r\nX-T: done\r\n\r\n" +
		"PUT /b HTTP/1.1\r\nHost: h\r\nContent-Length: 6\r\nConnection: close\r\n\r\nsix!!!"
	errc := make(chan error, 1)
	go func() {
		for i := 0; i < len(in); i++ {
			if _, err := client.Write([]byte{in[i]}); err != nil {
				errc <- err
				return
			}
		}
		errc <- client.(*net.TCPConn).CloseWrite()
	}()
	server.SetDeadline(time.Now().Add(10 * time.Second))
	c := NewConn(server, Options{})
	defer c.Release()
	var req headers.Request
	if _, err := c.ReadRequest(&req); err != nil {
		t.Fatal(err)
	}
	var tr headers.Map
	c.Body().SetTrailers(&tr)
	body, err := io.ReadAll(c.Body())
	if err != nil || string(body) != "wxyzabc" || string(tr.Get("x-t")) != "done" {
		t.Fatalf("first: body %q trailers %q err %v", body, fieldsString(&tr), err)
	}
	head, err := c.ReadRequest(&req)
	if err != nil || head.KeepAlive || string(req.Path) != "/b" {
		t.Fatalf("second: %q %+v %v", req.Path, head, err)
	}
	body, err = io.ReadAll(c.Body())
	if err != nil || string(body) != "six!!!" {
		t.Fatalf("second body %q err %v", body, err)
	}
	if _, err := c.ReadRequest(&req); err != io.EOF {
		t.Fatalf("after half-close: %v, want io.EOF", err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

func TestReadDirectLargeBody(t *testing.T) {
	body := strings.Repeat("z", 100000)
	c, _ := newFake("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 100000\r\n\r\n"+body, 8192, Options{})
	defer c.Release()
	var req headers.Request
	if _, err := c.ReadRequest(&req); err != nil {
		t.Fatal(err)
	}
	p := make([]byte, 32<<10)
	var got []byte
	for {
		n, err := c.Body().Read(p)
		got = append(got, p[:n]...)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if string(got) != body {
		t.Fatalf("body mismatch: %d bytes", len(got))
	}
	if _, err := c.Body().Read(p); err != io.EOF {
		t.Fatalf("Read after the end = %v", err)
	}
}

func TestUntilCloseBody(t *testing.T) {
	for _, s := range splits {
		c, _ := newFake("HTTP/1.1 200 OK\r\nX: y\r\n\r\nall of this until close", s, Options{})
		var resp headers.Response
		head, err := c.ReadResponse(&resp, false)
		if err != nil || head.Framing.Kind != BodyUntilClose || head.KeepAlive {
			t.Fatalf("%v: head %+v err %v", s, head, err)
		}
		body, err := io.ReadAll(c.Body())
		if err != nil || string(body) != "all of this until close" || !c.Body().Done() {
			t.Fatalf("%v: body %q err %v", s, body, err)
		}
		c.Release()
	}
}

func TestNetworkErrorIsReturned(t *testing.T) {
	boom := errors.New("boom")
	c := NewConn(errConn{boom}, Options{})
	defer c.Release()
	var req headers.Request
	if _, err := c.ReadRequest(&req); err != boom {
		t.Fatalf("err = %v, want the network error", err)
	}
}

type errConn struct{ err error }

func (e errConn) Read([]byte) (int, error)         { return 0, e.err }
func (e errConn) Write([]byte) (int, error)        { return 0, e.err }
func (e errConn) Close() error                     { return nil }
func (e errConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (e errConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (e errConn) SetDeadline(time.Time) error      { return nil }
func (e errConn) SetReadDeadline(time.Time) error  { return nil }
func (e errConn) SetWriteDeadline(time.Time) error { return nil }
