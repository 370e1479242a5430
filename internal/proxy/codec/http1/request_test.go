package http1

import (
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/weftmesh/weft/internal/proxy/headers"
)

type reqWant struct {
	method, path, authority, scheme, upgrade string // "<nil>" for nil
	proto                                    headers.Protocol
	fields                                   string
	head                                     Head
	body                                     string
}

func TestReadRequestGood(t *testing.T) {
	keep := Head{KeepAlive: true}
	tests := []struct {
		name string
		in   string
		want reqWant
	}{
		{"simple", "GET /a?b=c HTTP/1.1\r\nHost: example.com\r\nUser-Agent: x\r\n\r\n",
			reqWant{"GET", "/a?b=c", "example.com", "<nil>", "<nil>", headers.HTTP11, "user-agent: x\n", keep, ""}},
		{"names lowered, OWS trimmed, empty value", "GET / HTTP/1.1\r\nHOST: h\r\nX-Foo:  a b \t\r\nX-Empty:\r\nX-Tab: a\tb\r\n\r\n",
			reqWant{"GET", "/", "h", "<nil>", "<nil>", headers.HTTP11, "x-foo: a b\nx-empty: \nx-tab: a\tb\n", keep, ""}},
		{"obs-text value", "GET / HTTP/1.1\r\nHost: h\r\nX: caf\xc3\xa9\r\n\r\n",
			reqWant{"GET", "/", "h", "<nil>", "<nil>", headers.HTTP11, "x: caf\xc3\xa9\n", keep, ""}},
		{"http/1.0 without host closes", "GET / HTTP/1.0\r\n\r\n",
			reqWant{"GET", "/", "<nil>", "<nil>", "<nil>", headers.HTTP10, "", Head{}, ""}},
		{"http/1.0 keep-alive", "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n",
			reqWant{"GET", "/", "<nil>", "<nil>", "<nil>", headers.HTTP10, "connection: Keep-Alive\n", keep, ""}},
		{"connection close among options", "GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, CLOSE\r\n\r\n",
			reqWant{"GET", "/", "h", "<nil>", "<nil>", headers.HTTP11, "connection: keep-alive, CLOSE\n", Head{}, ""}},
		{"http/1.2 is 1.1", "GET / HTTP/1.2\r\nHost: h\r\n\r\n",
			reqWant{"GET", "/", "h", "<nil>", "<nil>", headers.HTTP11, "", keep, ""}},
		{"leading empty lines skipped", "\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n",
			reqWant{"GET", "/", "h", "<nil>", "<nil>", headers.HTTP11, "", keep, ""}},
		{"empty host allowed", "GET / HTTP/1.1\r\nHost:\r\n\r\n",
			reqWant{"GET", "/", "", "<nil>", "<nil>", headers.HTTP11, "", keep, ""}},
		{"content-length body", "POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello",
			reqWant{"POST", "/p", "h", "<nil>", "<nil>", headers.HTTP11, "content-length: 5\n",
				Head{Framing: Framing{BodyLength, 5}, KeepAlive: true}, "hello"}},
		{"content-length zero is no body", "POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 000\r\n\r\n",
			reqWant{"POST", "/p", "h", "<nil>", "<nil>", headers.HTTP11, "content-length: 000\n", keep, ""}},
		{"chunked body with extensions and trailers",
			"POST /p HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: Chunked\r\n\r\n" +
				"5;ext=1\r\nhello\r\n6 ; a=\"b\"\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n",
			reqWant{"POST", "/p", "h", "<nil>", "<nil>", headers.HTTP11, "transfer-encoding: Chunked\n",
				Head{Framing: Framing{Kind: BodyChunked}, KeepAlive: true}, "hello world"}},
		{"absolute-form replaces host", "GET http://Example.com:8080/p?q=1 HTTP/1.1\r\nHost: other\r\n\r\n",
			reqWant{"GET", "/p?q=1", "Example.com:8080", "http", "<nil>", headers.HTTP11, "", keep, ""}},
		{"absolute-form without host header or path", "GET HTTPS://h HTTP/1.1\r\n\r\n",
			reqWant{"GET", "/", "h", "https", "<nil>", headers.HTTP11, "", keep, ""}},
		{"absolute-form query only", "GET http://h?x=1 HTTP/1.1\r\nHost: h\r\n\r\n",
			reqWant{"GET", "/?x=1", "h", "http", "<nil>", headers.HTTP11, "", keep, ""}},
		{"asterisk-form", "OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n",
			reqWant{"OPTIONS", "*", "h", "<nil>", "<nil>", headers.HTTP11, "", keep, ""}},
		{"connect authority-form", "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
			reqWant{"CONNECT", "<nil>", "example.com:443", "<nil>", "<nil>", headers.HTTP11, "", keep, ""}},
		{"connect ipv6 drops content-length 0", "CONNECT [::1]:8443 HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
			reqWant{"CONNECT", "<nil>", "[::1]:8443", "<nil>", "<nil>", headers.HTTP11, "", keep, ""}},
		{"expect 100-continue", "PUT / HTTP/1.1\r\nHost: h\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n\r\nx",
			reqWant{"PUT", "/", "h", "<nil>", "<nil>", headers.HTTP11, "expect: 100-Continue\ncontent-length: 1\n",
				Head{Framing: Framing{BodyLength, 1}, KeepAlive: true, ExpectContinue: true}, "x"}},
		{"expect ignored in http/1.0", "PUT / HTTP/1.0\r\nExpect: 100-continue\r\n\r\n",
			reqWant{"PUT", "/", "<nil>", "<nil>", "<nil>", headers.HTTP10, "expect: 100-continue\n", Head{}, ""}},
		{"websocket upgrade", "GET /ws HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, Upgrade\r\nUpgrade: WebSocket\r\n\r\n",
			reqWant{"GET", "/ws", "h", "<nil>", "websocket", headers.HTTP11, "connection: keep-alive, Upgrade\nupgrade: WebSocket\n",
				Head{KeepAlive: true, Upgrade: true}, ""}},
		{"upgrade without connection option", "GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n\r\n",
			reqWant{"GET", "/", "h", "<nil>", "<nil>", headers.HTTP11, "upgrade: websocket\n", keep, ""}},
		{"h2c upgrade ignored", "GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAA\r\n\r\n",
			reqWant{"GET", "/", "h", "<nil>", "<nil>", headers.HTTP11, "connection: Upgrade, HTTP2-Settings\nupgrade: h2c\nhttp2-settings: AAA\n", keep, ""}},
	}
	for _, tt := range tests {
		for _, s := range splits {
			t.Run(tt.name+"/"+s.String(), func(t *testing.T) {
				c, _ := newFake(tt.in, s, Options{})
				defer c.Release()
				var req headers.Request
				head, err := c.ReadRequest(&req)
				if err != nil {
					t.Fatalf("ReadRequest: %v", err)
				}
				got := reqWant{nilOr(req.Method), nilOr(req.Path), nilOr(req.Authority), nilOr(req.Scheme),
					nilOr(req.UpgradeProto), req.Protocol, fieldsString(&req.Map), head, ""}
				trailers := &headers.Map{}
				c.Body().SetTrailers(trailers)
				body, err := io.ReadAll(c.Body())
				if err != nil {
					t.Fatalf("body: %v", err)
				}
				got.body = string(body)
				if got != tt.want {
					t.Fatalf("got  %+v\nwant %+v", got, tt.want)
				}
				if !c.Body().Done() {
					t.Fatal("body not Done after EOF")
				}
				if strings.Contains(tt.in, "X-Trailer") && fieldsString(trailers) != "x-trailer: t\n" {
					t.Fatalf("trailers = %q", fieldsString(trailers))
				}
				if _, err := c.ReadRequest(&req); err != io.EOF {
					t.Fatalf("second ReadRequest = %v, want io.EOF", err)
				}
			})
		}
	}
}

func TestReadRequestBad(t *testing.T) {
	const ok = "GET / HTTP/1.1\r\nHost: h\r\n"
	tests := []struct {
		name    string
		in      string
		opts    Options
		status  int
		details string
	}{
		{"missing host", "GET / HTTP/1.1\r\n\r\n", Options{}, 400, DetailMissingHost},
		{"two hosts", ok + "Host: h\r\n\r\n", Options{}, 400, DetailInvalidAuthority},
		{"host with space", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", Options{}, 400, DetailInvalidAuthority},
		{"host with slash", "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", Options{}, 400, DetailInvalidAuthority},
		{"lower-case method", "get / HTTP/1.1\r\nHost: h\r\n\r\n", Options{}, 400, DetailCodecError},
		{"unknown method", "FOO / HTTP/1.1\r\nHost: h\r\n\r\n", Options{}, 400, DetailCodecError},
		{"method with bad char", "GE(T / HTTP/1.1\r\nHost: h\r\n\r\n", Options{AllowCustomMethods: true}, 400, DetailCodecError},
		{"line starts with space", " GET / HTTP/1.1\r\nHost: h\r\n\r\n", Options{}, 400, DetailCodecError},
		{"double space", "GET  / HTTP/1.1\r\nHost: h\r\n\r\n", Options{}, 400, DetailCodecError},
		{"trailing space", "GET / HTTP/1.1 \r\nHost: h\r\n\r\n", Options{}, 400, DetailCodecError},
		{"space in target", "GET /a b HTTP/1.1\r\nHost: h\r\n\r\n", Options{}, 400, DetailCodecError},
		{"NUL in target", "GET /\x00 HTTP/1.1\r\nHost: h\r\n\r\n", Options{}, 400, DetailCodecError},
		{"tab in target", "GET /\t HTTP/1.1\r\nHost: h\r\n\r\n", Options{}, 400, DetailCodecError},
		{"non-ascii target", "GET /caf\xc3\xa9 HTTP/1.1\r\nHost: h\r\n\r\n", Options{}, 400, DetailCodecError},
		{"no version", "GET /\r\nHost: h\r\n\r\n", Options{}, 400, DetailCodecError},
		{"bad version", "GET / HTTP/1.x\r\nHost: h\r\n\r\n", Options{}, 400, DetailCodecError},
		{"lower-case version", "GET / http/1.1\r\nHost: h\r\n\r\n", Options{}, 400, DetailCodecError},
		{"http/2.0", "GET / HTTP/2.0\r\nHost: h\r\n\r\n", Options{}, 505, DetailCodecError},
		{"http/0.9 version", "GET / HTTP/0.9\r\nHost: h\r\n\r\n", Options{}, 505, DetailCodecError},
		{"bare LF", "GET / HTTP/1.1\nHost: h\n\n", Options{}, 400, DetailCodecError},
		{"bare LF in fields", ok + "X: a\n\r\n", Options{}, 400, DetailCodecError},
		{"space before colon", ok + "X : a\r\n\r\n", Options{}, 400, DetailCodecError},
		{"obs-fold", ok + "X: a\r\n b\r\n\r\n", Options{}, 400, DetailCodecError},
		{"no colon", ok + "Xa\r\n\r\n", Options{}, 400, DetailCodecError},
		{"empty name", ok + ": a\r\n\r\n", Options{}, 400, DetailCodecError},
		{"non-token name", ok + "X(y): a\r\n\r\n", Options{}, 400, DetailCodecError},
		{"NUL in value", ok + "X: a\x00b\r\n\r\n", Options{}, 400, DetailInvalidCharacters},
		{"CR in value", ok + "X: a\rb\r\n\r\n", Options{}, 400, DetailInvalidCharacters},
		{"DEL in value", ok + "X: a\x7f\r\n\r\n", Options{}, 400, DetailInvalidCharacters},
		{"CTL in long value", ok + "X: aaaaaaaaaaaaaaaa\x01aaaaaaaa\r\n\r\n", Options{}, 400, DetailInvalidCharacters},
		{"CL and TE", ok + "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", Options{}, 400, DetailChunkedContentLength},
		{"TE and CL", ok + "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", Options{}, 400, DetailChunkedContentLength},
		{"TE gzip", ok + "Transfer-Encoding: gzip\r\n\r\n", Options{}, 501, DetailInvalidTransferEncoding},
		{"TE gzip, chunked", ok + "Transfer-Encoding: gzip, chunked\r\n\r\n", Options{}, 501, DetailInvalidTransferEncoding},
		{"TE twice", ok + "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", Options{}, 501, DetailInvalidTransferEncoding},
		{"TE in http/1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", Options{}, 400, DetailInvalidTransferEncoding},
		{"CL letters", ok + "Content-Length: abc\r\n\r\n", Options{}, 400, DetailCodecError},
		{"CL negative", ok + "Content-Length: -1\r\n\r\n", Options{}, 400, DetailCodecError},
		{"CL plus sign", ok + "Content-Length: +5\r\n\r\n", Options{}, 400, DetailCodecError},
		{"CL empty", ok + "Content-Length:\r\n\r\n", Options{}, 400, DetailCodecError},
		{"CL list", ok + "Content-Length: 5, 5\r\n\r\n", Options{}, 400, DetailCodecError},
		{"CL overflow", ok + "Content-Length: 9999999999999999999\r\n\r\n", Options{}, 400, DetailCodecError},
		{"CL twice same", ok + "Content-Length: 5\r\nContent-Length: 5\r\n\r\n", Options{}, 400, DetailCodecError},
		{"CL twice different", ok + "Content-Length: 5\r\nContent-Length: 6\r\n\r\n", Options{}, 400, DetailCodecError},
		{"CONNECT with body", "CONNECT h:1 HTTP/1.1\r\nHost: h:1\r\nContent-Length: 5\r\n\r\n", Options{}, 400, DetailBodyDisallowed},
		{"CONNECT with TE", "CONNECT h:1 HTTP/1.1\r\nHost: h:1\r\nTransfer-Encoding: chunked\r\n\r\n", Options{}, 501, DetailInvalidTransferEncoding},
		{"CONNECT origin-form", "CONNECT / HTTP/1.1\r\nHost: h\r\n\r\n", Options{}, 400, DetailInvalidURL},
		{"CONNECT without port", "CONNECT h HTTP/1.1\r\nHost: h\r\n\r\n", Options{}, 400, DetailInvalidURL},
		{"CONNECT userinfo", "CONNECT u@h:1 HTTP/1.1\r\nHost: h\r\n\r\n", Options{}, 400, DetailInvalidURL},
		{"asterisk with GET", "GET * HTTP/1.1\r\nHost: h\r\n\r\n", Options{}, 400, DetailInvalidURL},
		{"asterisk with suffix", "OPTIONS *x HTTP/1.1\r\nHost: h\r\n\r\n", Options{}, 400, DetailInvalidURL},
		{"absolute ftp", "GET ftp://h/ HTTP/1.1\r\nHost: h\r\n\r\n", Options{}, 400, DetailInvalidScheme},
		{"absolute userinfo", "GET http://u@h/ HTTP/1.1\r\nHost: h\r\n\r\n", Options{}, 400, DetailInvalidURL},
		{"absolute empty authority", "GET http:///p HTTP/1.1\r\nHost: h\r\n\r\n", Options{}, 400, DetailInvalidURL},
		{"relative without slash", "GET x HTTP/1.1\r\nHost: h\r\n\r\n", Options{}, 400, DetailInvalidURL},
		{"head too large", ok + "X: " + strings.Repeat("a", 300) + "\r\n\r\n", Options{MaxHeaderBytes: 256}, 431, DetailHeadersTooLarge},
		{"request line too large", "GET /" + strings.Repeat("a", 300) + " HTTP/1.1\r\n", Options{MaxHeaderBytes: 256}, 431, DetailHeadersTooLarge},
		{"no end of head", ok + strings.Repeat("X: a\r\n", 100), Options{MaxHeaderBytes: 256}, 431, DetailHeadersTooLarge},
		{"too many headers", ok + "A: 1\r\nB: 2\r\nC: 3\r\n\r\n", Options{MaxHeaders: 3}, 431, DetailTooManyHeaders},
	}
	for _, tt := range tests {
		for _, s := range splits {
			t.Run(tt.name+"/"+s.String(), func(t *testing.T) {
				c, _ := newFake(tt.in, s, tt.opts)
				defer c.Release()
				var req headers.Request
				_, err := c.ReadRequest(&req)
				wantError(t, err, tt.status, tt.details)
				if req.Method != nil || req.Len() != 0 {
					t.Fatalf("request not reset after error: %q %d fields", req.Method, req.Len())
				}
				if _, err2 := c.ReadRequest(&req); err2 != err {
					t.Fatalf("second ReadRequest = %v, want the same error", err2)
				}
			})
		}
	}
}

func TestReadRequestCustomMethod(t *testing.T) {
	c, _ := newFake("QUERY / HTTP/1.1\r\nHost: h\r\n\r\n", whole, Options{AllowCustomMethods: true})
	defer c.Release()
	var req headers.Request
	if _, err := c.ReadRequest(&req); err != nil || string(req.Method) != "QUERY" {
		t.Fatalf("ReadRequest = %q, %v", req.Method, err)
	}
}

func TestReadRequestEOF(t *testing.T) {
	tests := []struct {
		in   string
		want error
	}{
		{"", io.EOF},
		{"\r\n\r\n", io.EOF},
		{"GET / HT", io.ErrUnexpectedEOF},
		{"GET / HTTP/1.1\r\nHost: h\r\n", io.ErrUnexpectedEOF},
		{"GET / HTTP/1.1\r\nHost: h\r\nX: y", io.ErrUnexpectedEOF},
	}
	for _, tt := range tests {
		for _, s := range splits {
			c, _ := newFake(tt.in, s, Options{})
			var req headers.Request
			if _, err := c.ReadRequest(&req); err != tt.want {
				t.Errorf("%q/%v: err = %v, want %v", tt.in, s, err, tt.want)
			}
			c.Release()
		}
	}
}

func TestPipelinedRequestsOneRead(t *testing.T) {
	in := "POST /1 HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc" +
		"POST /2 HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nde\r\n0\r\n\r\n" +
		"GET /3 HTTP/1.1\r\nHost: h\r\n\r\n"
	c, fc := newFake(in, whole, Options{})
	defer c.Release()
	var req headers.Request
	for i, want := range []struct{ path, body string }{{"/1", "abc"}, {"/2", "de"}, {"/3", ""}} {
		if _, err := c.ReadRequest(&req); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		body, err := io.ReadAll(c.Body())
		if err != nil || string(req.Path) != want.path || string(body) != want.body {
			t.Fatalf("request %d: path %q body %q err %v", i, req.Path, body, err)
		}
	}
	if fc.reads != 1 {
		t.Fatalf("three pipelined requests took %d reads, want 1", fc.reads)
	}
	if _, err := c.ReadRequest(&req); err != io.EOF {
		t.Fatalf("after the last request: %v, want io.EOF", err)
	}
}

func TestUnreadBodyRefused(t *testing.T) {
	in := "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\n\r\nbody" + "GET /next HTTP/1.1\r\nHost: h\r\n\r\n"
	c, _ := newFake(in, whole, Options{})
	defer c.Release()
	var req headers.Request
	if _, err := c.ReadRequest(&req); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ReadRequest(&req); !errors.Is(err, ErrBodyUnread) {
		t.Fatalf("err = %v, want ErrBodyUnread", err)
	}
	if !c.Body().Drain(1 << 10) {
		t.Fatal("Drain did not finish the body")
	}
	if _, err := c.ReadRequest(&req); err != nil || string(req.Path) != "/next" {
		t.Fatalf("after Drain: %q %v", req.Path, err)
	}
}

func TestDrainLimit(t *testing.T) {
	c, _ := newFake("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 100\r\n\r\n"+strings.Repeat("x", 100), byByte, Options{})
	defer c.Release()
	var req headers.Request
	if _, err := c.ReadRequest(&req); err != nil {
		t.Fatal(err)
	}
	if c.Body().Drain(10) {
		t.Fatal("Drain(10) of a 100-byte body reported done")
	}
	if got := c.Body().Remaining(); got != 90 {
		t.Fatalf("Remaining = %d, want 90", got)
	}
	if !c.Body().Drain(1000) || c.Body().Remaining() != 0 {
		t.Fatal("Drain(1000) did not finish the body")
	}
}

// A head larger than the read buffer moves to a bigger buffer; its fields
// stay valid while the body is read through the normal-size buffer.
func TestLargeHeadAndBody(t *testing.T) {
	big := strings.Repeat("v", 9000)
	body := strings.Repeat("0123456789", 2000)
	in := "POST /big HTTP/1.1\r\nHost: h\r\nX-Big: " + big + "\r\nX-After: z\r\nContent-Length: 20000\r\n\r\n" + body +
		"GET /next HTTP/1.1\r\nHost: h\r\n\r\n"
	for _, s := range splits {
		c, _ := newFake(in, s, Options{BufferSize: 4096})
		var req headers.Request
		if _, err := c.ReadRequest(&req); err != nil {
			t.Fatalf("%v: %v", s, err)
		}
		got, err := io.ReadAll(c.Body())
		if err != nil || string(got) != body {
			t.Fatalf("%v: body len %d err %v", s, len(got), err)
		}
		if string(req.Get("x-big")) != big || string(req.Get("x-after")) != "z" || string(req.Path) != "/big" {
			t.Fatalf("%v: fields changed while the body was read", s)
		}
		if _, err := c.ReadRequest(&req); err != nil || string(req.Path) != "/next" {
			t.Fatalf("%v: next request %q %v", s, req.Path, err)
		}
		c.Release()
	}
}
