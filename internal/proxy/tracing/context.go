package tracing

import (
	"github.com/weftmesh/weft/internal/proxy/headers"
)

// Header names of the propagation formats weft-proxy reads and writes.
const (
	TraceParent      = "traceparent"
	TraceState       = "tracestate"
	B3               = "b3"
	B3TraceID        = "x-b3-traceid"
	B3SpanID         = "x-b3-spanid"
	B3ParentSpanID   = "x-b3-parentspanid"
	B3Sampled        = "x-b3-sampled"
	B3Flags          = "x-b3-flags"
	XClientTraceID   = "x-client-trace-id"
	XEnvoyForceTrace = "x-envoy-force-trace"
)

// TraceID is a 128-bit trace id; a 64-bit B3 id fills the low 8 bytes.
type TraceID [16]byte

// SpanID is a 64-bit span id.
type SpanID [8]byte

// IsValid reports whether the id is not all zeros (W3C and B3 both forbid
// the zero id).
func (t TraceID) IsValid() bool { return t != TraceID{} }

// IsValid reports whether the id is not all zeros.
func (s SpanID) IsValid() bool { return s != SpanID{} }

// Format is a propagation format.
type Format uint8

const (
	// W3C is W3C Trace Context (traceparent, tracestate): Envoy's
	// OpenTelemetry tracer.
	W3C Format = iota
	// B3Multi is Zipkin's x-b3-* headers: Envoy's Zipkin tracer.
	B3Multi
	// B3Single is the single "b3" header.
	B3Single
)

// SpanContext is what crosses a hop: the trace, the span that is the
// parent of the next hop's span, and the sampling decision.
type SpanContext struct {
	TraceID TraceID
	SpanID  SpanID
	// Sampled is the upstream's decision; meaningful when HasSampled.
	Sampled    bool
	HasSampled bool
	// Debug is B3's "d" / x-b3-flags: 1 (sampled, forced).
	Debug bool
	// TraceState is W3C tracestate, passed on unchanged (a view into the
	// request's headers).
	TraceState []byte
}

// Extract reads the downstream's span context from h: traceparent first
// (with tracestate), then the single b3 header, then x-b3-*. Malformed
// values are ignored (as Envoy's tracers ignore them: the hop then starts
// a new trace). ok is false when no valid context was found; a b3 header
// carrying only a sampling decision ("0", "1", "d") yields ok false with
// the decision in sc.
func Extract(h *headers.Map) (sc SpanContext, ok bool) {
	if v := h.Get(TraceParent); v != nil {
		if sc, ok = parseTraceParent(v); ok {
			sc.TraceState = h.Get(TraceState)
			return sc, true
		}
	}
	if v := h.Get(B3); v != nil {
		if sc, ok = parseB3Single(v); ok || sc.HasSampled {
			return sc, ok
		}
	}
	return parseB3Multi(h)
}

// parseTraceParent parses "00-<32 hex>-<16 hex>-<2 hex>" (version 00;
// later versions are read by their first four fields, as the W3C
// specification asks).
func parseTraceParent(v []byte) (sc SpanContext, ok bool) {
	const n = 55
	if len(v) < n || (len(v) > n && (v[n] != '-' || v[0] == '0' && v[1] == '0')) {
		return sc, false
	}
	ver, ok1 := hexByte(v[0], v[1])
	if !ok1 || ver == 0xff || v[2] != '-' || v[35] != '-' || v[52] != '-' {
		return sc, false
	}
	if !decodeHex(sc.TraceID[:], v[3:35]) || !decodeHex(sc.SpanID[:], v[36:52]) {
		return SpanContext{}, false
	}
	flags, ok2 := hexByte(v[53], v[54])
	if !ok2 || !sc.TraceID.IsValid() || !sc.SpanID.IsValid() {
		return SpanContext{}, false
	}
	sc.Sampled, sc.HasSampled = flags&1 == 1, true
	return sc, true
}

// parseB3Single parses "traceid-spanid[-sampled[-parentspanid]]" or a
// lone sampling state ("0", "1", "d").
func parseB3Single(v []byte) (sc SpanContext, ok bool) {
	if len(v) == 1 {
		setB3Sampled(&sc, v)
		return sc, false
	}
	var parts [4][]byte
	n := 0
	for start, i := 0, 0; i <= len(v); i++ {
		if i == len(v) || v[i] == '-' {
			if n == len(parts) {
				return SpanContext{}, false
			}
			parts[n] = v[start:i]
			n++
			start = i + 1
		}
	}
	if n < 2 || !decodeTraceID(&sc.TraceID, parts[0]) || len(parts[1]) != 16 || !decodeHex(sc.SpanID[:], parts[1]) {
		return SpanContext{}, false
	}
	if n >= 3 && !setB3Sampled(&sc, parts[2]) {
		return SpanContext{}, false
	}
	if n == 4 && (len(parts[3]) != 16 || !isHex(parts[3])) {
		return SpanContext{}, false
	}
	return sc, sc.TraceID.IsValid() && sc.SpanID.IsValid()
}

// parseB3Multi reads x-b3-traceid, x-b3-spanid, x-b3-sampled, x-b3-flags.
func parseB3Multi(h *headers.Map) (sc SpanContext, ok bool) {
	if f := h.Get(B3Flags); len(f) == 1 && f[0] == '1' {
		sc.Debug, sc.Sampled, sc.HasSampled = true, true, true
	} else if s := h.Get(B3Sampled); s != nil {
		var tmp SpanContext
		if setB3Sampled(&tmp, s) {
			sc.Sampled, sc.HasSampled = tmp.Sampled, true
		}
	}
	tid, sid := h.Get(B3TraceID), h.Get(B3SpanID)
	if tid == nil || sid == nil {
		return sc, false
	}
	if !decodeTraceID(&sc.TraceID, tid) || len(sid) != 16 || !decodeHex(sc.SpanID[:], sid) ||
		!sc.TraceID.IsValid() || !sc.SpanID.IsValid() {
		return SpanContext{Sampled: sc.Sampled, HasSampled: sc.HasSampled, Debug: sc.Debug}, false
	}
	return sc, true
}

// setB3Sampled reads a B3 sampling state: "1"/"true", "0"/"false", "d".
func setB3Sampled(sc *SpanContext, v []byte) bool {
	switch string(v) {
	case "1", "true":
		sc.Sampled, sc.HasSampled = true, true
	case "0", "false":
		sc.Sampled, sc.HasSampled = false, true
	case "d":
		sc.Sampled, sc.HasSampled, sc.Debug = true, true, true
	default:
		return false
	}
	return true
}

// decodeTraceID reads a 16- or 32-hex-digit B3 trace id.
func decodeTraceID(t *TraceID, v []byte) bool {
	switch len(v) {
	case 32:
		return decodeHex(t[:], v)
	case 16:
		*t = TraceID{}
		return decodeHex(t[8:], v)
	}
	return false
}

// Inject writes sc into h in format f, replacing any header of that
// format the downstream sent. Values go to h's arena: no allocation once
// the arena has grown. parent is the span id of sc's parent, for B3's
// x-b3-parentspanid (zero: none).
func Inject(h *headers.Map, f Format, sc *SpanContext, parent SpanID) {
	switch f {
	case W3C:
		b := h.Alloc(55)
		b[0], b[1], b[2] = '0', '0', '-'
		encodeHex(b[3:35], sc.TraceID[:])
		b[35] = '-'
		encodeHex(b[36:52], sc.SpanID[:])
		b[52], b[53], b[54] = '-', '0', '0'
		if sc.Sampled {
			b[54] = '1'
		}
		h.SetRef(TraceParent, b)
		if sc.TraceState != nil {
			h.SetRef(TraceState, sc.TraceState)
		}
	case B3Multi:
		injectB3Multi(h, sc, parent)
	case B3Single:
		n := 32 + 1 + 16 + 2
		if parent.IsValid() {
			n += 17
		}
		b := h.Alloc(n)
		encodeHex(b[:32], sc.TraceID[:])
		b[32] = '-'
		encodeHex(b[33:49], sc.SpanID[:])
		b[49], b[50] = '-', sampledChar(sc)
		if parent.IsValid() {
			b[51] = '-'
			encodeHex(b[52:68], parent[:])
		}
		h.SetRef(B3, b)
	}
}

func injectB3Multi(h *headers.Map, sc *SpanContext, parent SpanID) {
	b := h.Alloc(32 + 16 + 16)
	encodeHex(b[:32], sc.TraceID[:])
	encodeHex(b[32:48], sc.SpanID[:])
	h.SetRef(B3TraceID, b[:32])
	h.SetRef(B3SpanID, b[32:48])
	if parent.IsValid() {
		encodeHex(b[48:64], parent[:])
		h.SetRef(B3ParentSpanID, b[48:64])
	} else {
		h.Del(B3ParentSpanID)
	}
	if sc.Debug {
		h.Set(B3Flags, "1")
		h.Del(B3Sampled)
		return
	}
	h.Del(B3Flags)
	if sc.Sampled {
		h.Set(B3Sampled, "1")
	} else {
		h.Set(B3Sampled, "0")
	}
}

func sampledChar(sc *SpanContext) byte {
	switch {
	case sc.Debug:
		return 'd'
	case sc.Sampled:
		return '1'
	}
	return '0'
}

const hexDigits = "0123456789abcdef"

// encodeHex writes src as lower-case hex into dst (len(dst) == 2*len(src)).
func encodeHex(dst, src []byte) {
	for i, c := range src {
		dst[2*i], dst[2*i+1] = hexDigits[c>>4], hexDigits[c&15]
	}
}

// decodeHex reads lower- or upper-case hex src into dst (len(src) ==
// 2*len(dst)). W3C requires lower case; upper case is accepted as Envoy
// does for B3.
func decodeHex(dst, src []byte) bool {
	if len(src) != 2*len(dst) {
		return false
	}
	for i := range dst {
		b, ok := hexByte(src[2*i], src[2*i+1])
		if !ok {
			return false
		}
		dst[i] = b
	}
	return true
}

func isHex(v []byte) bool {
	for _, c := range v {
		if _, ok := unhex(c); !ok {
			return false
		}
	}
	return true
}

func hexByte(a, b byte) (byte, bool) {
	x, ok1 := unhex(a)
	y, ok2 := unhex(b)
	return x<<4 | y, ok1 && ok2
}

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}
