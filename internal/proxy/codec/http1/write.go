package http1

import (
	"fmt"
	"net/http"
	"strconv"

	"github.com/weftmesh/weft/internal/proxy/headers"
)

// outState is the framing of the outgoing message.
type outState struct {
	active    bool
	kind      BodyKind
	remaining int64 // BodyLength: bytes still to write
	suppress  bool  // the message has no body on the wire (HEAD, 1xx, 204, 304): Write drops bytes
	raw       bool  // tunnel (CONNECT, upgrade, 101): Write passes bytes unframed
}

// statusLines holds "HTTP/1.1 NNN Reason\r\n" for 100..599, built once.
// Reasons are net/http's; codes it does not know get "Unknown", as Envoy's
// CodeUtility::toString does.
var statusLines = func() (t [600][]byte) {
	for code := 100; code < 600; code++ {
		t[code] = []byte("HTTP/1.1 " + strconv.Itoa(code) + " " + reason(code) + "\r\n")
	}
	return t
}()

func reason(code int) string {
	if s := http.StatusText(code); s != "" {
		return s
	}
	return "Unknown"
}

const continueResponse = "HTTP/1.1 100 Continue\r\n\r\n"

var hostName = []byte(headers.Host)

// writeRequestHead implements Conn.WriteRequestHead.
func (c *connState) writeRequestHead(req *headers.Request, f Framing) error {
	if c.werr != nil {
		return c.werr
	}
	connect := string(req.Method) == "CONNECT"
	target := req.Path
	if connect {
		target = req.Authority
	}
	if !validToken(req.Method) || len(target) == 0 || !validTarget(target) {
		return fmt.Errorf("%w: request line (method or target)", ErrInvalidFraming)
	}
	start := c.beginHead()
	c.put(req.Method)
	c.putString(" ")
	c.put(target)
	c.putString(" HTTP/1.1\r\n")
	if req.Authority != nil {
		if !validValue(req.Authority) {
			return c.abortHead(start, fmt.Errorf("%w: host", ErrInvalidField))
		}
		c.putField(hostName, req.Authority)
	}
	if err := c.putFields(&req.Map, true); err != nil {
		return c.abortHead(start, err)
	}
	out := outState{active: true, kind: f.Kind, remaining: f.Length}
	switch {
	case connect:
		// Envoy sends no framing header on CONNECT and passes the body
		// through as the tunnel.
		out = outState{active: true, raw: true}
	case f.Kind == BodyLength:
		c.putLength(f.Length)
	case isUpgradeRequest(&req.Map):
		// Envoy disables chunk encoding for upgrade requests: what follows
		// the head is the tunnel.
		out = outState{active: true, raw: true}
	case f.Kind == BodyNone:
		if methodHasBody(req.Method) {
			c.putString("content-length: 0\r\n")
		}
	case f.Kind == BodyChunked:
		c.putString("transfer-encoding: chunked\r\n")
	default:
		return c.abortHead(start, fmt.Errorf("%w: a request cannot be delimited by close", ErrInvalidFraming))
	}
	c.putString("\r\n")
	c.out = out
	return c.werr
}

// writeResponseHead implements Conn.WriteResponseHead.
func (c *connState) writeResponseHead(resp *headers.Response, f Framing, proto headers.Protocol) (Framing, error) {
	if c.werr != nil {
		return Framing{}, c.werr
	}
	status := resp.Status
	if status < 100 || status > 999 {
		return Framing{}, fmt.Errorf("%w: status %d", ErrInvalidFraming, status)
	}
	start := c.beginHead()
	c.putStatusLine(status, proto)
	if err := c.putFields(&resp.Map, false); err != nil {
		return Framing{}, c.abortHead(start, err)
	}
	used, out := c.responseFraming(status, f, proto)
	c.putString("\r\n")
	c.out = out
	return used, c.werr
}

// responseFraming writes the framing header of a response and returns the
// framing used on the wire and the writer state, following Envoy's
// StreamEncoderImpl::encodeHeadersBase:
//   - 101, and 2xx to CONNECT: no framing header, the body is the tunnel;
//   - 1xx and 204: no framing header, no body;
//   - 304 and responses to HEAD: Content-Length passed through when given
//     (and for HEAD an informational "transfer-encoding: chunked"), no body;
//   - otherwise BodyNone is "content-length: 0", BodyChunked is chunked for
//     HTTP/1.1 and until-close for HTTP/1.0 peers.
func (c *connState) responseFraming(status int, f Framing, proto headers.Protocol) (Framing, outState) {
	switch {
	case status == 101 || c.reqConnect && status/100 == 2:
		return Framing{Kind: BodyUntilClose}, outState{active: true, raw: true}
	case status < 200 || status == 204:
		return Framing{}, outState{active: true, suppress: true}
	case status == 304 || c.reqHead:
		if f.Kind == BodyLength {
			c.putLength(f.Length)
		} else if f.Kind == BodyChunked && c.reqHead && proto != headers.HTTP10 {
			c.putString("transfer-encoding: chunked\r\n")
		}
		return Framing{}, outState{active: true, suppress: true}
	}
	switch f.Kind {
	case BodyNone:
		c.putString("content-length: 0\r\n")
	case BodyLength:
		c.putLength(f.Length)
	case BodyChunked:
		if proto == headers.HTTP10 {
			f = Framing{Kind: BodyUntilClose}
		} else {
			c.putString("transfer-encoding: chunked\r\n")
		}
	}
	return f, outState{active: true, kind: f.Kind, remaining: f.Length}
}

// headRoom is the space a head should find in the write buffer when it
// starts: a start line and a few fields, so that the head can be rolled
// back if a field is refused.
const headRoom = 1 << 10

// beginHead makes room for a head and returns where it starts in the
// buffer.
func (c *connState) beginHead() int {
	if cap(c.wbuf)-len(c.wbuf) < headRoom {
		c.flushBuf()
	}
	c.headFlushed = false
	return len(c.wbuf)
}

// putStatusLine writes the status line; HTTP/1.0 peers get "HTTP/1.0"
// (Envoy does so when it accepts HTTP/1.0).
func (c *connState) putStatusLine(status int, proto headers.Protocol) {
	at := len(c.wbuf)
	if status < len(statusLines) {
		c.put(statusLines[status])
	} else {
		c.putString("HTTP/1.1 ")
		c.putInt(int64(status), 10)
		c.putString(" Unknown\r\n")
	}
	if proto == headers.HTTP10 && at+7 < len(c.wbuf) {
		c.wbuf[at+7] = '0'
	}
}

// putFields writes the fields of m, except the framing fields (written from
// the Framing argument) and, for requests, host. Every name must be a token
// and every value free of control characters: a CR or LF set by
// configuration could otherwise split the message. Such a field fails the
// whole head (ErrInvalidField) rather than being silently altered.
func (c *connState) putFields(m *headers.Map, request bool) error {
	for i := range m.Fields {
		f := &m.Fields[i]
		switch string(f.Name) {
		case headers.ContentLength, headers.TransferEncoding:
			continue
		case headers.Host:
			if request {
				continue
			}
		}
		if !validToken(f.Name) || !validValue(f.Value) {
			return fmt.Errorf("%w: %q", ErrInvalidField, f.Name)
		}
		c.putField(f.Name, f.Value)
	}
	return nil
}

// abortHead undoes a head that failed validation. If part of it was
// already flushed (a head larger than the buffer), the connection is
// unusable and the error becomes sticky.
func (c *connState) abortHead(start int, err error) error {
	if c.headFlushed || c.werr != nil {
		if c.werr == nil {
			c.werr = err
		}
		return err
	}
	c.wbuf = c.wbuf[:start]
	return err
}

// isUpgradeRequest reports whether m asks for an upgrade: an Upgrade field
// and "upgrade" among the Connection options (Envoy's Utility::isUpgrade).
func isUpgradeRequest(m *headers.Map) bool {
	if !m.Has(headers.Upgrade) {
		return false
	}
	for i := m.Index(headers.Connection, 0); i >= 0; i = m.Index(headers.Connection, i+1) {
		if headers.HasToken(m.Fields[i].Value, "upgrade") {
			return true
		}
	}
	return false
}

// methodHasBody reports whether a request without body still needs
// "content-length: 0" (Envoy's HeaderUtility::requestShouldHaveNoBody is
// the opposite list).
func methodHasBody(m []byte) bool {
	switch string(m) {
	case "GET", "HEAD", "DELETE", "CONNECT", "OPTIONS", "TRACE":
		return false
	}
	return true
}
