package httpfilter

import (
	"strconv"

	"github.com/weftmesh/weft/internal/proxy/headers"
	"github.com/weftmesh/weft/internal/proxy/router"
	"github.com/weftmesh/weft/internal/proxy/streaminfo"
)

// Envoy's local reply bodies.
const (
	BodyNoHealthyUpstream = "no healthy upstream"
	BodyUpstreamTimeout   = "upstream request timeout"
	BodyConnectFailure    = "upstream connect error or disconnect/reset before headers. reset reason: connection failure"
	BodyOverflow          = "upstream connect error or disconnect/reset before headers. reset reason: overflow"
	BodyConnTermination   = "upstream connect error or disconnect/reset before headers. reset reason: connection termination"
	BodyProtocolError     = "upstream connect error or disconnect/reset before headers. reset reason: protocol error"
)

// LocalReply is a response the proxy sends itself.
type LocalReply struct {
	Status  int
	Body    string
	Flag    streaminfo.ResponseFlags
	Details string
	// GRPCStatus, when non-zero, is the gRPC status of the reply to a gRPC
	// request instead of the one mapped from Status.
	GRPCStatus int
	// HasGRPCStatus makes GRPCStatus apply even when it is 0 (OK), as a
	// fault filter's grpc_status abort may ask.
	HasGRPCStatus bool
	// Overloaded adds "x-envoy-overloaded: true", as Envoy does when a
	// circuit breaker refuses a request (unless envoy headers are
	// suppressed).
	Overloaded bool
	// Headers, when set, is applied to the reply's headers before they are
	// sent (Envoy's sendLocalReply modify_headers; e.g. the local rate
	// limit's response_headers_to_add).
	Headers *router.HeaderMutation
}

// SendLocalReply answers the request from the proxy itself, as Envoy's
// sendLocalReply does: a text/plain body for HTTP, or a gRPC trailers-only
// response (HTTP 200 with grpc-status and grpc-message) for gRPC requests.
// It records status, flag and details in s.Info. It does nothing if the
// response has started; the caller must then reset the stream instead.
func SendLocalReply(s *Stream, status int, body string, flag streaminfo.ResponseFlags, details string) {
	Send(s, LocalReply{Status: status, Body: body, Flag: flag, Details: details})
}

// Send sends a local reply (see SendLocalReply).
func Send(s *Stream, lr LocalReply) {
	s.Info.SetFlag(lr.Flag)
	if s.W.HeadersSent() {
		return
	}
	status, body := lr.Status, lr.Body
	s.Info.Details = lr.Details
	s.Info.ResponseCode = status
	r := &s.Resp
	r.Reset()
	if lr.Overloaded && !s.SuppressEnvoyHeaders {
		r.Set("x-envoy-overloaded", "true")
	}
	lr.Headers.Apply(&r.Map, &s.Req, nil)
	var num [20]byte
	if s.GRPC {
		gs := lr.GRPCStatus
		if gs == 0 && !lr.HasGRPCStatus {
			gs = GRPCStatusFromHTTP(status)
		}
		r.Status = 200
		r.Set(headers.ContentType, "application/grpc")
		r.SetBytes(headers.GRPCStatus, strconv.AppendInt(num[:0], int64(gs), 10))
		if body != "" {
			r.SetBytes(headers.GRPCMessage, appendPercentEncoded(nil, body))
		}
		s.W.WriteHeaders(r, true)
		return
	}
	r.Status = status
	if body == "" || string(s.Req.Method) == "HEAD" {
		if body != "" {
			r.Set(headers.ContentType, "text/plain")
		}
		r.SetBytes(headers.ContentLength, strconv.AppendInt(num[:0], int64(len(body)), 10))
		s.W.WriteHeaders(r, true)
		return
	}
	r.Set(headers.ContentType, "text/plain")
	r.SetBytes(headers.ContentLength, strconv.AppendInt(num[:0], int64(len(body)), 10))
	if s.W.WriteHeaders(r, false) == nil {
		s.W.Write([]byte(body))
		s.Info.BytesSent += int64(len(body))
	}
	s.W.Finish(nil)
}

// GRPCStatusFromHTTP maps an HTTP status to a gRPC status code as the gRPC
// specification's "HTTP to gRPC Status Code Mapping" (and Envoy) does.
func GRPCStatusFromHTTP(status int) int {
	switch status {
	case 400:
		return 13 // INTERNAL
	case 401:
		return 16 // UNAUTHENTICATED
	case 403:
		return 7 // PERMISSION_DENIED
	case 404:
		return 12 // UNIMPLEMENTED
	case 429, 502, 503, 504:
		return 14 // UNAVAILABLE
	}
	return 2 // UNKNOWN
}

// appendPercentEncoded encodes a grpc-message value: bytes outside
// printable ASCII and '%' are percent-encoded (gRPC over HTTP/2 spec).
func appendPercentEncoded(dst []byte, s string) []byte {
	const hex = "0123456789ABCDEF"
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < ' ' || c > '~' || c == '%' {
			dst = append(dst, '%', hex[c>>4], hex[c&15])
			continue
		}
		dst = append(dst, c)
	}
	return dst
}
