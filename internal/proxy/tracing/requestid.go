package tracing

import "github.com/weftmesh/weft/internal/proxy/headers"

// Reason is why a request is traced, packed into its x-request-id as
// Envoy's UUID request-id extension does (pack_trace_reason, the default):
// the UUID's version digit (position 14) becomes '9' (sampled), 'a'
// (forced by x-envoy-force-trace), 'b' (forced by x-client-trace-id) or
// stays '4' (not traced). The next hop reads the decision back, so one
// sampling decision holds along a request's path.
type Reason uint8

const (
	NotTraceable Reason = iota
	Sampling
	ServiceForced
	ClientForced
)

const (
	uuidLen       = 36
	tracePosition = 14
)

// reasonOf reads the trace reason packed into request id rid; a value
// that is not a UUID is NotTraceable.
func reasonOf(rid []byte) Reason {
	if len(rid) != uuidLen {
		return NotTraceable
	}
	switch rid[tracePosition] {
	case '9':
		return Sampling
	case 'a':
		return ServiceForced
	case 'b':
		return ClientForced
	}
	return NotTraceable
}

// setReason packs r into the request's x-request-id (a UUID; other values
// are left alone). The header's bytes are views, so the value is copied
// into the arena first.
func setReason(h *headers.Map, r Reason) {
	rid := h.Get(headers.XRequestID)
	if len(rid) != uuidLen {
		return
	}
	c := byte('4')
	switch r {
	case Sampling:
		c = '9'
	case ServiceForced:
		c = 'a'
	case ClientForced:
		c = 'b'
	}
	if rid[tracePosition] == c {
		return
	}
	b := h.Alloc(uuidLen)
	copy(b, rid)
	b[tracePosition] = c
	h.SetRef(headers.XRequestID, b)
}

// ridInteger is Envoy's UUIDRequestIDExtension::getInteger: the first 8
// hex digits of the request id as a number, the stable input of the
// sampling decision (so every hop that re-decides decides alike).
func ridInteger(rid []byte) (uint64, bool) {
	if len(rid) < 8 {
		return 0, false
	}
	var n uint64
	for _, c := range rid[:8] {
		d, ok := unhex(c)
		if !ok {
			return 0, false
		}
		n = n<<4 | uint64(d)
	}
	return n, true
}

// Sampling holds the three percentages of HttpConnectionManager.tracing,
// in hundredths of a percent (0..10000, Envoy's resolution for
// tracing.random_sampling).
type SamplingConfig struct {
	Client, Random, Overall uint32
}

// Decide is Envoy's ConnectionManagerUtility::mutateTracingRequestHeader
// with the UUID request-id extension: a decision already packed into
// x-request-id (by a previous hop) stands; otherwise x-client-trace-id
// (within client sampling), then x-envoy-force-trace (internal requests
// only: the connection manager removes it from external ones), then
// random sampling on the request id's integer pick a reason; overall
// sampling caps every reason. The reason is written back into
// x-request-id. A request without a usable request id is not traced.
func Decide(h *headers.Map, c SamplingConfig) Reason {
	rid := h.Get(headers.XRequestID)
	n, ok := ridInteger(rid)
	if !ok {
		return NotTraceable
	}
	result := uint32(n % 10000)
	r := reasonOf(rid)
	if r == NotTraceable {
		switch {
		case h.Has(XClientTraceID) && result < c.Client:
			r = ClientForced
		case h.Has(XEnvoyForceTrace):
			r = ServiceForced
		case result < c.Random:
			r = Sampling
		}
		if r != NotTraceable {
			setReason(h, r)
		}
	}
	if r != NotTraceable && result >= c.Overall {
		r = NotTraceable
		setReason(h, r)
	}
	return r
}
