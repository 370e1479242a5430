package http2

import (
	"golang.org/x/net/http2/hpack"

	"github.com/weftmesh/weft/internal/proxy/headers"
)

// blockKind says what a header block being decoded is.
type blockKind uint8

const (
	// blockDiscard blocks are decoded only to keep the HPACK state in step
	// (a refused stream, a stream this endpoint already reset).
	blockDiscard blockKind = iota
	blockRequest
	blockResponse
	blockTrailers
)

// Request pseudo-headers seen in a block.
const (
	pseudoMethod uint8 = 1 << iota
	pseudoScheme
	pseudoAuthority
	pseudoPath
	pseudoStatus
)

// hblock is the header block being decoded: where its fields go, the
// limits they are held to and what RFC 9113 §8.2-8.3 checks found. The
// connection's HPACK decoder emits into it; fields are copied into the
// target's arena, so a reused target stops allocating once grown.
type hblock struct {
	dec       *hpack.Decoder
	kind      blockKind
	streamID  uint32
	endStream bool

	req  *headers.Request
	resp *headers.Response
	tr   *headers.Map

	maxSize, maxCount int // 0: no limit
	size, count       int
	tooLarge          bool
	malformed         string // why the block is malformed; "" when it is not

	regular       bool  // a regular field was seen: no pseudo-header may follow
	pseudo        uint8 // pseudo-headers seen
	host          []byte
	contentLength int64 // -1 when absent
}

// start prepares the block for decoding into its target.
func (b *hblock) start(kind blockKind, id uint32, endStream bool) {
	b.kind, b.streamID, b.endStream = kind, id, endStream
	b.size, b.count = 0, 0
	b.tooLarge, b.malformed = false, ""
	b.regular, b.pseudo, b.host = false, 0, nil
	b.contentLength = -1
	b.dec.SetEmitEnabled(kind != blockDiscard)
}

// target returns the map regular fields go into.
func (b *hblock) target() *headers.Map {
	switch b.kind {
	case blockRequest:
		return &b.req.Map
	case blockResponse:
		return &b.resp.Map
	}
	return b.tr
}

// emit receives one decoded field from the HPACK decoder.
func (b *hblock) emit(f hpack.HeaderField) {
	if b.malformed != "" || b.tooLarge {
		return
	}
	b.size += len(f.Name) + len(f.Value) + 32
	b.count++
	if b.maxSize > 0 && b.size > b.maxSize || b.maxCount > 0 && b.count > b.maxCount {
		// Keep decoding for the HPACK state, store nothing more.
		b.tooLarge = true
		b.dec.SetEmitEnabled(false)
		return
	}
	if !validValue(f.Value) {
		b.malformed = "invalid field value"
		return
	}
	if len(f.Name) > 0 && f.Name[0] == ':' {
		b.pseudoField(f)
		return
	}
	b.regular = true
	if !validName(f.Name) {
		b.malformed = "invalid field name"
		return
	}
	switch f.Name {
	case "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade":
		b.malformed = "connection-specific field " + f.Name
		return
	case "te":
		if f.Value != "trailers" {
			b.malformed = "te other than trailers"
			return
		}
	case "content-length":
		if b.kind != blockTrailers && !b.setContentLength(f.Value) {
			return
		}
	case "host":
		if b.kind == blockRequest {
			b.host = copyValue(&b.req.Map, f.Value)
			return
		}
	case "cookie":
		if b.kind == blockRequest && b.req.Has("cookie") {
			// Cookie crumbs are joined into one field (RFC 9113 §8.2.3),
			// as an HTTP/1 upstream expects a single Cookie header.
			b.req.AppendValue("cookie", "; ", []byte(f.Value))
			return
		}
	}
	addField(b.target(), f.Name, f.Value)
}

// setContentLength records a content-length value. Repeated fields must
// agree (RFC 9110 §8.6).
func (b *hblock) setContentLength(v string) bool {
	n, ok := parseLength(v)
	if !ok || b.contentLength >= 0 && n != b.contentLength {
		b.malformed = "invalid content-length"
		return false
	}
	b.contentLength = n
	return true
}

func (b *hblock) pseudoField(f hpack.HeaderField) {
	if b.regular {
		b.malformed = "pseudo-header after a regular field"
		return
	}
	var bit uint8
	switch {
	case b.kind == blockRequest:
		bit = requestPseudo(f.Name)
	case b.kind == blockResponse && f.Name == ":status":
		bit = pseudoStatus
	}
	if bit == 0 {
		b.malformed = "unexpected pseudo-header " + f.Name
		return
	}
	if b.pseudo&bit != 0 {
		b.malformed = "repeated pseudo-header " + f.Name
		return
	}
	b.pseudo |= bit
	if bit == pseudoStatus {
		st, ok := parseStatus(f.Value)
		if !ok {
			b.malformed = "invalid :status"
		}
		b.resp.Status = st
		return
	}
	r := b.req
	v := copyValue(&r.Map, f.Value)
	switch bit {
	case pseudoMethod:
		r.Method = v
	case pseudoScheme:
		r.Scheme = v
	case pseudoAuthority:
		r.Authority = v
	case pseudoPath:
		r.Path = v
	}
}

// requestPseudo maps a request pseudo-header to its bit; 0 for anything
// else (":protocol" included: extended CONNECT is not enabled, as Envoy
// without allow_connect).
func requestPseudo(name string) uint8 {
	switch name {
	case ":method":
		return pseudoMethod
	case ":scheme":
		return pseudoScheme
	case ":authority":
		return pseudoAuthority
	case ":path":
		return pseudoPath
	}
	return 0
}

// finish applies the checks that need the whole block. It returns false
// when the block is malformed (b.malformed says why).
func (b *hblock) finish() bool {
	if b.malformed != "" {
		return false
	}
	if b.tooLarge {
		return true // the caller answers 431
	}
	switch b.kind {
	case blockRequest:
		return b.finishRequest()
	case blockResponse:
		if b.pseudo&pseudoStatus == 0 {
			b.malformed = "missing :status"
			return false
		}
	}
	return true
}

// finishRequest checks the request pseudo-headers (RFC 9113 §8.3.1, §8.5)
// and takes the authority from Host when :authority is absent (§8.3.1).
func (b *hblock) finishRequest() bool {
	r := b.req
	if b.pseudo&pseudoMethod == 0 {
		b.malformed = "missing :method"
		return false
	}
	if string(r.Method) == "CONNECT" {
		if b.pseudo&(pseudoScheme|pseudoPath) != 0 || b.pseudo&pseudoAuthority == 0 {
			b.malformed = "invalid CONNECT pseudo-headers"
			return false
		}
	} else if b.pseudo&pseudoScheme == 0 || b.pseudo&pseudoPath == 0 || len(r.Path) == 0 {
		b.malformed = "missing :scheme or :path"
		return false
	}
	if r.Authority == nil && b.host != nil {
		r.Authority = b.host
	}
	return true
}

// addField appends name: value to m, both copied into m's arena.
func addField(m *headers.Map, name, value string) {
	buf := m.Alloc(len(name) + len(value))
	copy(buf, name)
	copy(buf[len(name):], value)
	m.AddRef(buf[:len(name):len(name)], buf[len(name):])
}

// copyValue copies v into m's arena; the result is non-nil even when v is
// empty (a present, empty field).
func copyValue(m *headers.Map, v string) []byte {
	buf := m.Alloc(len(v))
	copy(buf, v)
	return buf
}

// validName reports whether name is a lower-case field name token (RFC 9113
// §8.2.1: upper case is malformed).
func validName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		if !tokenLower[name[i]] {
			return false
		}
	}
	return true
}

// validValue reports whether v holds no NUL, CR or LF (RFC 9113 §8.2.1).
func validValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c == 0 || c == '\r' || c == '\n' {
			return false
		}
	}
	return true
}

// tokenLower marks the bytes of a field-name token (RFC 9110 §5.6.2)
// except upper-case letters.
var tokenLower = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()

// parseLength parses a content-length value: 1 to 18 digits.
func parseLength(v string) (int64, bool) {
	if v == "" || len(v) > 18 {
		return 0, false
	}
	var n int64
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// parseStatus parses a :status value: exactly three digits.
func parseStatus(v string) (int, bool) {
	if len(v) != 3 {
		return 0, false
	}
	n := 0
	for i := 0; i < 3; i++ {
		c := v[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, n >= 100
}
