package http1

import (
	"bytes"
	"errors"
	"io"
	"net/http/httputil"
	"testing"

	"github.com/weftmesh/weft/internal/proxy/headers"
)

// fuzzSegments cuts data into reads of seg bytes (0: one read).
func fuzzSegments(data []byte, seg uint8) [][]byte {
	if seg == 0 {
		return [][]byte{data}
	}
	var out [][]byte
	for len(data) > 0 {
		n := min(int(seg), len(data))
		out = append(out, data[:n])
		data = data[n:]
	}
	return out
}

var requestSeeds = []string{
	"GET / HTTP/1.1\r\nHost: h\r\n\r\n",
	"POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello",
	"POST /p HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5;x\r\nhello\r\n0\r\nT: 1\r\n\r\n",
	"GET http://a.example:80/x?y HTTP/1.1\r\nHost: b\r\n\r\nGET / HTTP/1.0\r\n\r\n",
	"CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n",
	"OPTIONS * HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: WebSocket\r\n\r\n",
	"\r\nPUT / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 0\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n b\r\n\r\n",
	"GET / HTTP/1.1\nHost: h\n\n",
}

// FuzzReadRequest feeds arbitrary bytes, cut into arbitrary reads, to the
// request parser. It must never panic, and whatever it accepts must hold
// the codec's invariants.
func FuzzReadRequest(f *testing.F) {
	for i, s := range requestSeeds {
		f.Add([]byte(s), uint8(i%3))
	}
	f.Fuzz(func(t *testing.T, data []byte, seg uint8) {
		fc := &fakeConn{segs: fuzzSegments(data, seg)}
		c := NewConn(fc, Options{MaxHeaderBytes: 4096, MaxHeaders: 32, BufferSize: 4096})
		defer c.Release()
		var req headers.Request
		for n := 0; n < 8; n++ {
			head, err := c.ReadRequest(&req)
			if err != nil {
				checkParseError(t, err, false)
				return
			}
			checkRequest(t, &req, head)
			if !c.Body().Drain(1 << 20) {
				return
			}
		}
	})
}

func checkParseError(t *testing.T, err error, response bool) {
	var e *Error
	if !errors.As(err, &e) {
		if err != io.EOF && err != io.ErrUnexpectedEOF {
			t.Fatalf("unexpected error type %T: %v", err, err)
		}
		return
	}
	switch {
	case response && e.Status != 503:
		t.Fatalf("response error with status %d", e.Status)
	case !response && e.Status != 400 && e.Status != 431 && e.Status != 501 && e.Status != 505:
		t.Fatalf("request error with status %d", e.Status)
	case e.Details == "" || e.Reason == "":
		t.Fatalf("error without details: %+v", e)
	}
}

func checkRequest(t *testing.T, req *headers.Request, head Head) {
	if !validToken(req.Method) {
		t.Fatalf("method %q", req.Method)
	}
	if req.Authority != nil && !validAuthority(req.Authority) {
		t.Fatalf("authority %q", req.Authority)
	}
	if req.Path == nil && string(req.Method) != "CONNECT" || req.Path != nil && !validTarget(req.Path) {
		t.Fatalf("path %q for %s", req.Path, req.Method)
	}
	if req.Protocol == headers.HTTP11 && req.Authority == nil {
		t.Fatal("HTTP/1.1 request without authority accepted")
	}
	if req.Scheme != nil && string(req.Scheme) != "http" && string(req.Scheme) != "https" {
		t.Fatalf("scheme %q", req.Scheme)
	}
	if head.Upgrade != (req.UpgradeProto != nil) || hasUpper(req.UpgradeProto) {
		t.Fatalf("upgrade %v proto %q", head.Upgrade, req.UpgradeProto)
	}
	checkFields(t, &req.Map)
	if req.Has("host") {
		t.Fatal("host field left in the map")
	}
	cl, te := req.Count("content-length"), req.Count("transfer-encoding")
	switch head.Framing.Kind {
	case BodyLength:
		n, ok := parseContentLength(req.Get("content-length"))
		if cl != 1 || te != 0 || !ok || n != head.Framing.Length || n <= 0 {
			t.Fatalf("length framing %d with cl=%d te=%d %q", head.Framing.Length, cl, te, req.Get("content-length"))
		}
	case BodyChunked:
		if te != 1 || cl != 0 || !equalFold(req.Get("transfer-encoding"), "chunked") {
			t.Fatalf("chunked framing with cl=%d te=%d", cl, te)
		}
	case BodyNone:
		n, _ := parseContentLength(req.Get("content-length"))
		if te != 0 || cl > 1 || n != 0 {
			t.Fatalf("no-body framing with cl=%d te=%d %q", cl, te, req.Get("content-length"))
		}
	default:
		t.Fatalf("request framing %v", head.Framing.Kind)
	}
}

// checkFields: lower-case token names, values without CR, LF or other
// control characters, no surrounding whitespace.
func checkFields(t *testing.T, m *headers.Map) {
	for _, f := range m.Fields {
		if len(f.Name) == 0 {
			t.Fatal("empty field name")
		}
		for _, c := range f.Name {
			if tokenLower[c] != c {
				t.Fatalf("field name %q not a lower-case token", f.Name)
			}
		}
		if !validValue(f.Value) || bytes.ContainsAny(f.Value, "\r\n") || len(trimOWS(f.Value)) != len(f.Value) {
			t.Fatalf("field value %q", f.Value)
		}
	}
}

// FuzzChunked feeds arbitrary bytes as a chunked request body. It must
// never panic; trailers must hold the field invariants; whatever both this
// decoder and net/http's chunked reader accept must decode to the same
// payload.
func FuzzChunked(f *testing.F) {
	for i, s := range []string{
		"5\r\nhello\r\n0\r\n\r\n",
		"a;ext=\"q\"\r\n0123456789\r\n0\r\nX-T: v\r\nY: w\r\n\r\n",
		"0\r\n\r\n",
		"ffffffffffffffff\r\n",
		"5\r\nhelloXX",
		"5 ;a\r\nhello\r\n0\r\n\r\n",
		"3\r\nabc\n0\r\n\r\n",
	} {
		f.Add([]byte(s), uint8(i%4))
	}
	f.Fuzz(func(t *testing.T, data []byte, seg uint8) {
		in := append([]byte(chunkedHead), data...)
		fc := &fakeConn{segs: fuzzSegments(in, seg)}
		c := NewConn(fc, Options{MaxHeaderBytes: 4096, MaxHeaders: 32, BufferSize: 4096})
		defer c.Release()
		var req headers.Request
		if _, err := c.ReadRequest(&req); err != nil {
			t.Fatalf("head: %v", err)
		}
		var tr headers.Map
		c.Body().SetTrailers(&tr)
		got, err := io.ReadAll(c.Body())
		if err != nil {
			checkParseError(t, err, false)
			return
		}
		checkFields(t, &tr)
		want, rerr := io.ReadAll(httputil.NewChunkedReader(bytes.NewReader(data)))
		if rerr != nil {
			// net/http is stricter in one place: it refuses BWS before a
			// chunk extension, which RFC 9112 §7.1.1 allows.
			return
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("payload %q, net/http decodes %q", got, want)
		}
	})
}
