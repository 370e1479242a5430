package httpfilter

import (
	"context"
	"io"
	"net"

	"google.golang.org/protobuf/types/known/structpb"

	"github.com/weftmesh/weft/internal/proxy/headers"
	"github.com/weftmesh/weft/internal/proxy/network"
	"github.com/weftmesh/weft/internal/proxy/router"
	"github.com/weftmesh/weft/internal/proxy/streaminfo"
)

// ResponseWriter sends a response downstream. The connection manager gives
// each stream one for its codec; filters may wrap it. Methods are called
// from the stream's goroutine only, in this order: WriteHeaders once, then
// Write and Flush any number of times, then Finish once (WriteHeaders with
// endStream true finishes the stream by itself).
type ResponseWriter interface {
	// WriteHeaders sends the status and headers. The writer adds the
	// connection-level headers it owns (date, server, framing). endStream
	// means no body follows. h may be changed by the call.
	WriteHeaders(h *headers.Response, endStream bool) error
	// Write sends body bytes (possibly buffered).
	Write(p []byte) (int, error)
	// Flush sends buffered body bytes to the peer.
	Flush() error
	// Finish ends the response, with trailers when t is non-nil and not
	// empty, and flushes.
	Finish(t *headers.Map) error
	// HeadersSent reports whether WriteHeaders has been called.
	HeadersSent() bool
	// Abort resets the stream without completing the response (HTTP/2
	// RST_STREAM; HTTP/1 closes the connection), for an upstream that
	// failed after the response started.
	Abort()
}

// Hijacker is implemented by HTTP/1 response writers: after a 101 response
// the router takes the connection over to tunnel an upgraded protocol.
type Hijacker interface {
	// Hijack returns the downstream connection and the bytes the codec has
	// read from it but not consumed. The connection manager closes the
	// connection when the stream's handler returns.
	Hijack() (net.Conn, []byte, error)
}

// Stream is one HTTP request/response exchange, owned by the goroutine that
// serves it. The connection manager resets and reuses Streams.
type Stream struct {
	// Ctx ends when the downstream goes away (HTTP/2 stream reset,
	// connection close) or the server stops.
	Ctx context.Context

	// Req holds the request headers; filters may change them.
	Req headers.Request
	// Body is the request body, never nil. For HTTP/1 requests that asked
	// for 100-continue, the first Read sends "100 Continue".
	Body io.Reader
	// ContentLength is the request body length: 0 for none, -1 when it is
	// not known in advance (chunked, or HTTP/2 without content-length).
	ContentLength int64

	// Resp is scratch space for the response head.
	Resp headers.Response
	// RespTrailers is scratch space for response trailers.
	RespTrailers headers.Map

	// W sends the response downstream.
	W ResponseWriter

	// Info records what happened, for logs and stats.
	Info streaminfo.Info
	// Conn is the downstream connection.
	Conn *network.Conn

	// Route and VirtualHost are the route the connection manager chose (nil
	// when none matched).
	Route       *router.Route
	VirtualHost *router.VirtualHost
	// FilterConfig is the running filter's per-route configuration (the
	// Config of s.Route.FilterConfig under the filter's name in
	// http_filters: route, then virtual host, then route configuration
	// level), or nil. The connection manager sets it before each filter's
	// DecodeHeaders; a filter that needs it later keeps its own copy.
	FilterConfig any

	// GRPC is set when the request's content-type is application/grpc*:
	// local replies are then sent as gRPC trailers-only responses.
	GRPC bool
	// CloseConnection asks the connection manager to close the downstream
	// connection after this stream (HTTP/1).
	CloseConnection bool
	// SuppressEnvoyHeaders is the router's suppress_envoy_headers.
	SuppressEnvoyHeaders bool
	// Metadata is the stream's dynamic metadata by filter name (Envoy's
	// dynamic metadata): filters such as envoy.filters.http.jwt_authn
	// write it, later filters (RBAC) read it. nil when none; a filter
	// that writes it replaces the map or its own key, never another
	// filter's values.
	Metadata map[string]*structpb.Struct
}

// Reset clears the stream for reuse.
func (s *Stream) Reset() {
	s.Ctx = nil
	s.Req.Reset()
	s.Body = nil
	s.ContentLength = 0
	s.Resp.Reset()
	s.RespTrailers.Reset()
	s.W = nil
	s.Info.Reset()
	s.Conn = nil
	s.Route, s.VirtualHost = nil, nil
	s.FilterConfig = nil
	s.GRPC, s.CloseConnection, s.SuppressEnvoyHeaders = false, false, false
	s.Metadata = nil
}
