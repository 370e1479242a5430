package http2

import (
	"bytes"
	"strconv"
	"unsafe"

	"golang.org/x/net/http2/hpack"

	"github.com/weftmesh/weft/internal/proxy/headers"
)

// maxInterned bounds the strings an encoder keeps for its HPACK table.
const maxInterned = 256

// henc encodes header blocks with the connection's HPACK encoder (its
// dynamic table must follow the order blocks go on the wire, so it is used
// under the connection's lock).
//
// hpack.Encoder takes strings and keeps the ones it indexes, while the
// proxy's headers are byte slices into reused buffers. Values are therefore
// interned: a bounded map from bytes to a string made once, so a field seen
// on every request (content-type, te, user-agent, grpc-status, :path of a
// gRPC method) costs no allocation after the first. Values that differ on
// every request (x-request-id) would only churn the table and the map: they
// are sent as never-indexed literals straight from their bytes (the encoder
// keeps nothing of a field it does not index).
type henc struct {
	enc    *hpack.Encoder
	buf    bytes.Buffer
	intern map[string]string
	num    [3]byte
}

func newHenc() *henc {
	e := &henc{intern: make(map[string]string, maxInterned)}
	e.enc = hpack.NewEncoder(&e.buf)
	return e
}

// str returns an interned string equal to b.
func (e *henc) str(b []byte) string {
	if s, ok := e.intern[string(b)]; ok {
		return s
	}
	if len(e.intern) >= maxInterned {
		clear(e.intern)
	}
	s := string(b)
	e.intern[s] = s
	return s
}

// field encodes one field into e.buf.
func (e *henc) field(name string, value []byte) {
	if volatileField(name) {
		v := unsafe.String(unsafe.SliceData(value), len(value))
		e.enc.WriteField(hpack.HeaderField{Name: name, Value: v, Sensitive: true})
		return
	}
	e.enc.WriteField(hpack.HeaderField{Name: name, Value: e.str(value)})
}

// volatileField reports fields whose value changes on every message.
func volatileField(name string) bool {
	switch name {
	case "x-request-id", "x-b3-traceid", "x-b3-spanid", "traceparent":
		return true
	}
	return false
}

// request encodes a request header block (RFC 9113 §8.3.1): the
// pseudo-headers, then the fields that may cross into HTTP/2.
func (e *henc) request(r *headers.Request) {
	e.buf.Reset()
	e.field(":method", r.Method)
	if string(r.Method) == "CONNECT" {
		e.field(":authority", r.Authority)
	} else {
		scheme := r.Scheme
		if len(scheme) == 0 {
			scheme = schemeHTTP
		}
		e.field(":scheme", scheme)
		if len(r.Authority) > 0 {
			e.field(":authority", r.Authority)
		}
		e.field(":path", r.Path)
	}
	e.fields(&r.Map)
}

var (
	schemeHTTP    = []byte("http")
	trailersValue = []byte("trailers")
)

// response encodes a response header block.
func (e *henc) response(status int, m *headers.Map) {
	e.buf.Reset()
	e.field(":status", strconv.AppendInt(e.num[:0], int64(status), 10))
	e.fields(m)
}

// trailers encodes a trailer block.
func (e *henc) trailers(m *headers.Map) {
	e.buf.Reset()
	e.fields(m)
}

// fields encodes m's fields, leaving out the connection-specific ones HTTP/2
// forbids (RFC 9113 §8.2.2) and host (it is :authority).
func (e *henc) fields(m *headers.Map) {
	for i := range m.Fields {
		f := &m.Fields[i]
		if len(f.Name) == 0 || f.Name[0] == ':' {
			continue
		}
		switch string(f.Name) {
		case "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "host":
			continue
		case "te":
			if !headers.EqualFold(f.Value, "trailers") {
				continue
			}
			e.field("te", trailersValue)
			continue
		}
		e.field(e.str(f.Name), f.Value)
	}
}

// block returns the encoded block.
func (e *henc) block() []byte { return e.buf.Bytes() }
