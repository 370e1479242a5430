package http2

import (
	"testing"

	"golang.org/x/net/http2/hpack"

	"github.com/weftmesh/weft/internal/proxy/headers"
)

// decodeAll decodes blocks in order with one decoder.
func decodeAll(t *testing.T, blocks ...[]byte) [][]hpack.HeaderField {
	t.Helper()
	dec := hpack.NewDecoder(4096, nil)
	var out [][]hpack.HeaderField
	for _, b := range blocks {
		fs, err := dec.DecodeFull(b)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, fs)
	}
	return out
}

func fieldValue(fs []hpack.HeaderField, name string) (string, bool) {
	for _, f := range fs {
		if f.Name == name {
			return f.Value, true
		}
	}
	return "", false
}

// TestEncoderVolatileValuesNotRetained: a never-indexed value is encoded
// from its bytes without the encoder keeping them, and interned values
// survive their source bytes being reused.
func TestEncoderVolatileValuesNotRetained(t *testing.T) {
	e := newHenc()
	id := []byte("11111111-aaaa")
	ct := []byte("application/grpc")
	var m headers.Map
	m.AddRef([]byte("x-request-id"), id)
	m.AddRef([]byte("content-type"), ct)
	e.response(200, &m)
	first := append([]byte(nil), e.block()...)
	copy(id, "22222222-bbbb")
	copy(ct, "XXXXXXXXXXXXXXXX") // a reused buffer: the table must not see it
	m.Reset()
	m.AddRef([]byte("x-request-id"), id)
	m.AddRef([]byte("content-type"), []byte("application/grpc"))
	e.response(200, &m)
	second := append([]byte(nil), e.block()...)
	got := decodeAll(t, first, second)
	for i, want := range []string{"11111111-aaaa", "22222222-bbbb"} {
		if v, _ := fieldValue(got[i], "x-request-id"); v != want {
			t.Errorf("block %d: x-request-id %q, want %q", i, v, want)
		}
		if v, _ := fieldValue(got[i], "content-type"); v != "application/grpc" {
			t.Errorf("block %d: content-type %q", i, v)
		}
	}
	for _, f := range got[1] {
		if f.Name == "x-request-id" && !f.Sensitive {
			t.Error("x-request-id not sent as never-indexed")
		}
	}
	if len(second) >= len(first) {
		t.Errorf("second block %d bytes, first %d: repeated fields were not indexed", len(second), len(first))
	}
}

// TestEncoderRequest: pseudo-headers first; connection-specific fields,
// host and te other than trailers are left out (RFC 9113 §8.2.2).
func TestEncoderRequest(t *testing.T) {
	e := newHenc()
	r := headers.Request{Method: []byte("GET"), Authority: []byte("example.com"), Path: []byte("/a?b")}
	r.Set("connection", "keep-alive")
	r.Set("keep-alive", "5")
	r.Set("upgrade", "h2c")
	r.Set("transfer-encoding", "chunked")
	r.Set("proxy-connection", "x")
	r.Set("host", "other")
	r.Set("te", "trailers")
	r.Set("x-kept", "1")
	e.request(&r)
	first := append([]byte(nil), e.block()...)
	fs := decodeAll(t, first)[0]
	want := []string{":method=GET", ":scheme=http", ":authority=example.com", ":path=/a?b", "te=trailers", "x-kept=1"}
	if len(fs) != len(want) {
		t.Fatalf("fields %v, want %v", fs, want)
	}
	for i, f := range fs {
		if f.Name+"="+f.Value != want[i] {
			t.Errorf("field %d: %s=%s, want %s", i, f.Name, f.Value, want[i])
		}
	}
	r.Set("te", "gzip")
	e.request(&r)
	// The second block may refer to the dynamic table entries the first
	// one added: one decoder reads both, in order.
	if _, ok := fieldValue(decodeAll(t, first, e.block())[1], "te"); ok {
		t.Error("te: gzip was forwarded")
	}
}

// TestDecodeRequestCookiesAndHost: cookie crumbs are joined; host stands
// in for a missing :authority and never appears as a field.
func TestDecodeRequestCookiesAndHost(t *testing.T) {
	var b hblock
	b.dec = hpack.NewDecoder(4096, b.emit)
	var r headers.Request
	b.req = &r
	b.start(blockRequest, 1, true)
	for _, f := range [][2]string{{":method", "GET"}, {":scheme", "http"}, {":path", "/"}, {"cookie", "a=1"}, {"host", "h.example"}, {"cookie", "b=2"}} {
		b.emit(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	if !b.finish() {
		t.Fatalf("malformed: %s", b.malformed)
	}
	if string(r.Authority) != "h.example" || r.Map.Has("host") {
		t.Errorf("authority %q, host field present %v", r.Authority, r.Map.Has("host"))
	}
	if string(r.Get("cookie")) != "a=1; b=2" || r.Count("cookie") != 1 {
		t.Errorf("cookie %q (%d fields), want one joined field", r.Get("cookie"), r.Count("cookie"))
	}
}
