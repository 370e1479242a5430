// Package http1 is weft-proxy's HTTP/1.1 codec, for both sides of the
// proxy: it parses request heads (server side) and response heads (client
// side) into headers.Request and headers.Response, frames and unframes
// bodies (Content-Length, chunked with trailers, until-close), and writes
// heads, bodies and trailers.
//
// It is written by hand rather than built on net/http because it sits on the
// proxy's hot path: a Conn reuses its buffers and header storage across
// messages, so a keep-alive connection parses and writes requests without
// allocating (see docs/PERFORMANCE.md for the measurements behind this).
//
// Parsing follows RFC 9112 strictly, as Envoy does: anything malformed is an
// error of type *Error that says which status a server should answer with
// and Envoy's response code details. The choices made where the RFC allows
// several, or where weft differs from Envoy, are:
//   - Lines must end in CRLF; a bare LF is a 400 (RFC 9112 §2.2 allows
//     accepting it; refusing it removes a request-smuggling vector).
//   - obs-fold (a field line starting with SP or HTAB) is a 400 (RFC 9112
//     §5.2 allows either this or unfolding; Envoy unfolds).
//   - Whitespace before the colon of a field name is a 400 (RFC 9112 §5.1).
//   - Empty lines before a request-line are skipped (RFC 9112 §2.2).
//   - HTTP/1.x with x >= 2 is handled as HTTP/1.1 (RFC 9110 §2.5); another
//     major version is a 505 (Envoy would treat it as HTTP/1.0).
//   - A second Content-Length is a 400 even with the same value, as Envoy's
//     parser is configured (disallow_multiple_content_length).
//   - Transfer-Encoding must be exactly "chunked" (one field, any case):
//     anything else is a 501, with Content-Length a 400, on CONNECT a 501,
//     in HTTP/1.0 a 400 — Envoy's checks plus RFC 9112 §6.1.
//
// Buffers come from size-class sync.Pools and return on Release. Parsed
// header fields point into the read buffer (names lowered in place); a
// keep-alive exchange allocates nothing once the maps have grown.
//
// A Conn is not safe for concurrent use, except that one goroutine may write
// (Write, EndBody, Flush) while another reads a body (an HTTP/1 upgrade
// tunnel or a request body streamed while the response arrives).
// WriteResponseHead reads what ReadRequest recorded about the request (HEAD,
// CONNECT), so the two must not run at the same time.
package http1

import (
	"bufio"
	"io"
	"net"

	"github.com/weftmesh/weft/internal/proxy/headers"
)

// Options bound what a Conn accepts. Zero fields take the defaults.
type Options struct {
	// MaxHeaderBytes bounds a message head: start line plus header lines,
	// CRLFs included. Default 60 KiB (Envoy's max_request_headers_kb).
	MaxHeaderBytes int
	// MaxHeaders bounds the number of header fields. Default 100 (Envoy's
	// max_headers_count).
	MaxHeaders int
	// BufferSize is the size of the read and write buffers. Default 16 KiB;
	// values are clamped to 4 KiB..256 KiB and rounded up to a power of two.
	// A head larger than the read buffer moves to a larger pooled buffer
	// (up to MaxHeaderBytes) for that message only.
	BufferSize int
	// AllowCustomMethods accepts any token as a request method. By default
	// only the methods Envoy's HTTP/1 parser knows are accepted (GET, POST,
	// ..., WebDAV methods, PURGE); others are a 400, as Envoy's
	// allow_custom_methods default.
	AllowCustomMethods bool
}

// BodyKind says how a message's body is delimited.
type BodyKind uint8

const (
	// BodyNone: no body (GET without Content-Length, HEAD responses, 204,
	// 304, 1xx, Content-Length: 0).
	BodyNone BodyKind = iota
	// BodyLength: exactly Length bytes.
	BodyLength
	// BodyChunked: chunked transfer coding, possibly with trailers.
	BodyChunked
	// BodyUntilClose: the body ends when the connection closes (responses
	// only).
	BodyUntilClose
)

// Framing is how a message body is delimited.
type Framing struct {
	Kind   BodyKind
	Length int64 // for BodyLength
}

// Head is what a parsed message head says about the connection and the
// body, beyond the header fields themselves.
type Head struct {
	Framing Framing
	// KeepAlive is false when the message asks to close the connection
	// after it (Connection: close, or HTTP/1.0 without keep-alive), and for
	// responses delimited by close or answering 101.
	KeepAlive bool
	// ExpectContinue is set when an HTTP/1.1 request carries
	// Expect: 100-continue (any case; HTTP/1.0 ones are ignored, RFC 9110
	// §10.1.1).
	ExpectContinue bool
	// Upgrade is set when the request asks for a protocol upgrade
	// (Connection: upgrade and a non-empty Upgrade header), or when a
	// response is 101 Switching Protocols. An "h2c" upgrade is not one:
	// Envoy ignores it and serves the request as HTTP/1.1, so the
	// connection manager must strip Upgrade/HTTP2-Settings as hop-by-hop.
	Upgrade bool
}

// Error is a protocol error found while parsing. A server answers it with
// Status and closes the connection. Once a Conn returned an *Error from a
// read call, every later read call returns it again.
type Error struct {
	// Status is the HTTP status a server should reply with: 400, 431, 501
	// or 505 for a request. For a response (ReadResponse and its body) it is
	// 503, what Envoy answers downstream when an upstream response is
	// malformed (its router reports upstream_reset_before_response_started
	// {protocol_error} and the UPE flag; Details here names the codec cause).
	Status int
	// Details is Envoy's %RESPONSE_CODE_DETAILS% for the error, one of the
	// Detail* constants, for example "http1.codec_error" or
	// "http1.headers_too_large". Missing Host is Envoy's
	// "missing_host_header"; a bad or repeated Host "http.invalid_authority".
	Details string
	// Reason is a short human description for logs.
	Reason string
}

func (e *Error) Error() string { return "http1: " + e.Reason }

// Conn is one HTTP/1 connection: buffered reader and writer plus codec state.
type Conn struct {
	// fields are private to the implementation
	impl connState
}

// NewConn wraps c. Buffers come from a pool and go back on Release.
func NewConn(c net.Conn, o Options) *Conn { return newConn(c, o) }

// NetConn returns the underlying connection.
func (c *Conn) NetConn() net.Conn { return c.impl.netConn() }

// Reader returns a buffered reader for upgrade and CONNECT tunnels: it
// yields the bytes already read past the last head (they belong to the
// tunnel), then reads the socket. Its WriteTo lets a TCP destination splice.
// Once it is used, the Conn's own read calls must not be used again.
func (c *Conn) Reader() *bufio.Reader { return c.impl.reader() }

// Release returns the buffers to their pool. The Conn, and every header
// field it parsed, must not be used afterwards; the net.Conn is not closed.
func (c *Conn) Release() { c.impl.release() }

// ReadRequest reads the next request head into req (reset first). The
// request's Host header goes to req.Authority; every other field, including
// Connection, Content-Length and Transfer-Encoding, stays in req.Map with
// a lower-case name (except a "Content-Length: 0" on CONNECT, dropped as
// Envoy does). Path is the origin-form target, "*" for OPTIONS *, nil for
// CONNECT, whose authority-form target goes to Authority. An absolute-form
// target ("http://host/p") sets Authority from the URL (replacing Host),
// Path to its origin form and Scheme to its scheme ("http" or "https",
// lowered); otherwise Scheme is left nil (the connection manager knows it).
// Authority is nil when an HTTP/1.0 request has no Host (an HTTP/1.1 one is
// a 400); the connection manager decides (Envoy answers 400
// missing_host_header unless default_host_for_http_10 is set).
// UpgradeProto is the lowered Upgrade value when Head.Upgrade is set.
//
// It returns io.EOF when the connection closes cleanly before a new request
// starts (empty lines aside), io.ErrUnexpectedEOF when it closes inside a
// head, ErrBodyUnread when the previous request's body was not read to its
// end, and an *Error for malformed input. The fields of req point into the
// Conn's storage and stay valid until the next ReadRequest.
func (c *Conn) ReadRequest(req *headers.Request) (Head, error) { return c.impl.readRequest(req) }

// ReadResponse reads the next response head into resp (reset first).
// headRequest says whether the request was HEAD (its response has no body).
// 1xx responses other than 101 are read and discarded, as are their heads.
// A 101 has Head.Upgrade set and no body: what follows is the tunnel (see
// Reader). A 2xx answer to CONNECT is framed like any response (usually
// BodyUntilClose); the caller that sent CONNECT treats it as a tunnel. A
// "Content-Length: 0" on 1xx/204 is removed from resp.Map, as Envoy does.
// Errors are as for ReadRequest, with *Error.Status 503. The fields of resp
// point into the Conn's storage and stay valid until the next ReadResponse.
func (c *Conn) ReadResponse(resp *headers.Response, headRequest bool) (Head, error) {
	return c.impl.readResponse(resp, headRequest)
}

// Body returns the reader of the body of the message last read. Its Read
// returns io.EOF at the end of the body. For a chunked body, trailers (if any)
// are added to the trailers map given to SetTrailers before EOF is returned.
// The reader is reused by the next message.
func (c *Conn) Body() *BodyReader { return c.impl.bodyReader() }

// WriteRequestHead writes a request line and header block. Fields of
// req.Map are written as they are, except that Host is written first from
// req.Authority and the framing headers (Content-Length, Transfer-Encoding)
// are written from f, not taken from req.Map. The request-target is
// req.Path, or req.Authority for CONNECT.
//
// Framing as Envoy's encoder: BodyNone adds "content-length: 0" except for
// GET, HEAD, DELETE, OPTIONS, TRACE and CONNECT; BodyUntilClose is refused
// (ErrInvalidFraming). CONNECT, and an upgrade request (Upgrade field plus
// "upgrade" in Connection) not framed by BodyLength, get no framing header
// and Write passes bytes through unframed (the tunnel).
//
// A field whose name is not a token or whose value holds CR, LF, NUL or
// another control character is refused with ErrInvalidField (values set by
// configuration are never written altered); nothing of the head is sent
// when the head fits in the write buffer.
func (c *Conn) WriteRequestHead(req *headers.Request, f Framing) error {
	return c.impl.writeRequestHead(req, f)
}

// WriteResponseHead writes a status line and header block for a response to
// a request of protocol proto (HTTP/1.0 peers get "HTTP/1.0" and
// HTTP/1.0-compatible framing: BodyChunked is turned into BodyUntilClose).
// Framing headers are written from f, not taken from resp.Map; BodyNone is
// "content-length: 0". It returns the framing actually used on the wire,
// which tells the caller whether it must close the connection after the
// body (BodyUntilClose).
//
// The codec remembers the last request read on this Conn: for a response to
// HEAD, and for 304, the Content-Length of f is written but no body (Write
// drops its bytes; the framing returned is BodyNone); 1xx and 204 get no
// framing header and no body; 101 and a 2xx to CONNECT get no framing
// header and Write passes the tunnel bytes through (BodyUntilClose is
// returned). Invalid fields are refused as for WriteRequestHead.
func (c *Conn) WriteResponseHead(resp *headers.Response, f Framing, proto headers.Protocol) (Framing, error) {
	return c.impl.writeResponseHead(resp, f, proto)
}

// Write writes body bytes, chunk-framed when the current outgoing message is
// chunked (an empty p writes nothing). It implements io.Writer. It refuses
// bytes beyond a Content-Length (ErrBodyTooLong, nothing written) and bytes
// for a BodyNone message (ErrBodyNotAllowed). Small writes are buffered;
// one that does not fit goes out with the buffer in one vectored write.
func (c *Conn) Write(p []byte) (int, error) { return c.impl.write(p) }

// EndBody ends the outgoing message body: for a chunked body it writes the
// last chunk and trailers (nil for none; trailers of other framings are
// dropped, as Envoy does). For a Content-Length body not fully written it
// returns ErrBodyIncomplete and the write side is unusable (close the
// connection). It does not flush.
func (c *Conn) EndBody(trailers *headers.Map) error { return c.impl.endBody(trailers) }

// WriteContinue writes an interim "100 Continue" response and flushes it.
func (c *Conn) WriteContinue() error { return c.impl.writeContinue() }

// Flush sends buffered output to the network. Write errors are sticky.
func (c *Conn) Flush() error { return c.impl.flush() }

// Peek waits until at least n bytes are buffered (reading the socket as
// needed, under the connection's read deadline) and returns every buffered
// unread byte, consuming none. Use it only between messages: to wait for the
// next request under an idle timeout, or to sniff a protocol preface. n must
// not exceed the buffer size. A read error (timeout, EOF) is returned with
// the bytes buffered so far, and stays: the connection is then done.
func (c *Conn) Peek(n int) ([]byte, error) { return c.impl.peek(n) }

// Buffered returns how many read bytes are buffered and not yet consumed.
func (c *Conn) Buffered() int { return c.impl.buffered() }

// BodyReader reads one message body. It is an io.Reader; WriteTo copies the
// body to w straight from the read buffer, without an intermediate buffer.
type BodyReader struct {
	impl bodyState
}

var _ io.WriterTo = (*BodyReader)(nil)

// Read implements io.Reader. It may return n > 0 together with io.EOF when
// the body ends within the bytes already received. Protocol errors in the
// body (bad chunk framing, bad or oversized trailers) are *Error values;
// a body cut short by the peer is io.ErrUnexpectedEOF.
func (b *BodyReader) Read(p []byte) (int, error) { return b.impl.read(p) }

// WriteTo implements io.WriterTo: it writes the rest of the body to w and
// returns at its end (nil error), or on the first read or write error.
func (b *BodyReader) WriteTo(w io.Writer) (int64, error) { return b.impl.writeTo(w) }

// SetTrailers sets the map chunked trailers are added to (nil discards
// them). Trailer fields are copied into m (lowered names), so they outlive
// the read buffer. It applies to the current message only: the next
// ReadRequest/ReadResponse resets it to nil.
func (b *BodyReader) SetTrailers(m *headers.Map) { b.impl.setTrailers(m) }

// Remaining is the number of body bytes left for a BodyLength body, -1
// otherwise.
func (b *BodyReader) Remaining() int64 { return b.impl.remainingBytes() }

// Done reports whether the whole body has been read.
func (b *BodyReader) Done() bool { return b.impl.done }

// Drain reads and discards the rest of the body, up to max bytes; it
// reports whether the body ended within max (so the connection can be
// reused).
func (b *BodyReader) Drain(max int64) bool { return b.impl.drain(max) }
