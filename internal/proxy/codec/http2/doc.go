// Package http2 is weft-proxy's own HTTP/2 codec, for both sides of the
// proxy: ServerConn serves a downstream connection, ClientConn multiplexes
// upstream requests over one connection. Frames are parsed and written with
// golang.org/x/net/http2's Framer and header blocks are compressed with
// golang.org/x/net/http2/hpack; this package holds the connection and stream
// state machines, flow control and write batching (RFC 9113).
//
// It exists because it sits on the proxy's hot path (docs/PERFORMANCE.md,
// "gRPC: why 2× nginx"): x/net's server and transport flush every frame
// group separately and hand frames between goroutines. Here:
//
//   - One reader goroutine per connection decodes frames. It never blocks on
//     a stream: request and response bodies go into per-stream buffers whose
//     size the flow-control windows bound. Header blocks are decoded straight
//     into the stream's headers.Request or headers.Response.
//   - Frames are appended to one connection write buffer under the
//     connection's lock and written by whoever flushes. Work the reader does
//     for a read (waking streams, starting request handlers, control frames
//     such as SETTINGS and PING acknowledgements and WINDOW_UPDATEs) is
//     batched until it has consumed every complete frame that read brought.
//     A unary gRPC exchange therefore costs one read and one write on each
//     side: the request's HEADERS and DATA arrive together and the response's
//     HEADERS, DATA and trailers leave in one write.
//   - Server streams run the Handler on a goroutine of their own (one
//     goroutine per stream, the proxy's model); stream objects, their body
//     buffers and header storage are pooled.
//
// Flow control: both windows (connection and stream) are kept in both
// directions. Received bytes are returned to the peer with WINDOW_UPDATE once
// the application has consumed half a window, so a slow reader holds the
// peer back instead of growing buffers. Changes of the peer's
// SETTINGS_INITIAL_WINDOW_SIZE adjust every stream's send window, which may
// become negative (RFC 9113 §6.9.2).
//
// Errors follow RFC 9113 §5.4: connection errors send GOAWAY with the last
// processed stream and close the connection after a delayed close (half
// close, then read until the peer closes or a second passes, as Envoy's
// delayed_close_timeout); stream errors send RST_STREAM. Frames received on
// streams the endpoint reset itself are ignored (§5.1). PRIORITY information
// is parsed and ignored, as RFC 9113 §5.3.2 allows.
//
// Concurrency: a connection's reader goroutine and any number of stream
// goroutines share it. A stream's receive side (Read, ReadHeaders) is used by
// one goroutine and its send side (WriteHeaders, Write, Flush, Finish,
// CloseSend) by one goroutine, which may be a different one.
package http2
