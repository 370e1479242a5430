package hcm

import (
	"context"
	"errors"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/weftmesh/weft/internal/proxy/codec/http1"
	"github.com/weftmesh/weft/internal/proxy/headers"
	"github.com/weftmesh/weft/internal/proxy/httpfilter"
	"github.com/weftmesh/weft/internal/proxy/network"
	"github.com/weftmesh/weft/internal/proxy/streaminfo"
)

// serveHTTP1 serves HTTP/1.1 requests one after the other on c. One Stream
// and one response writer are reused for every request of the connection.
func (m *Manager) serveHTTP1(c *network.Conn, hc *http1.Conn) {
	m.stats.cxHTTP1Total.Inc()
	m.stats.cxHTTP1Active.Inc()
	defer m.stats.cxHTTP1Active.Dec()
	st := &h1conn{nc: c.Raw()}
	m.conns.add(st)
	defer m.conns.remove(st)
	released := false
	defer func() {
		if !released {
			hc.Release()
		}
	}()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s := &httpfilter.Stream{}
	w := &h1Writer{m: m, c: hc}
	body := &h1Body{c: hc}
	var dl deadlines
	dl.nc = st.nc
	for {
		// Wait for the next request under the idle timeout.
		st.idle.Store(true)
		if m.draining() {
			m.stats.cxDrainClose.Inc()
			return
		}
		if m.idleTimeout > 0 {
			dl.read(m.idleTimeout)
		}
		if _, err := hc.Peek(1); err != nil {
			if isTimeout(err) && !m.draining() {
				m.stats.cxIdleTimeout.Inc()
			}
			return
		}
		st.idle.Store(false)
		if t := m.requestReadTimeout(); t > 0 {
			dl.read(t)
		}
		s.Reset()
		s.Info.StartTime = time.Now()
		head, err := hc.ReadRequest(&s.Req)
		if err != nil {
			m.http1ReadError(c, hc, s, err)
			return
		}
		s.Ctx = ctx
		s.Conn = c
		s.Req.Scheme = schemeHTTP
		s.ContentLength = 0
		switch head.Framing.Kind {
		case http1.BodyLength:
			s.ContentLength = head.Framing.Length
		case http1.BodyChunked:
			s.ContentLength = -1
		}
		body.reset(hc.Body(), head.ExpectContinue && head.Framing.Kind != http1.BodyNone)
		s.Body = body
		w.reset(s, head)
		if m.streamIdleTimeout > 0 {
			dl.write(m.streamIdleTimeout)
		}
		m.stats.rqHTTP1Total.Inc()
		m.handle(s, head.KeepAlive)
		if w.hijacked {
			released = true // the tunnel owns the connection and its buffers
			return
		}
		if w.closeConn || !head.KeepAlive || !w.finished {
			return
		}
		// A request body the router did not read must be drained before
		// the next request can be parsed (bounded, or the connection ends).
		if !hc.Body().Done() && !hc.Body().Drain(64<<10) {
			return
		}
	}
}

// requestReadTimeout is the read deadline while a request is being read:
// request_headers_timeout or request_timeout when set, else the stream idle
// timeout.
func (m *Manager) requestReadTimeout() time.Duration {
	t := m.streamIdleTimeout
	for _, d := range []time.Duration{m.requestHeadersTimeout, m.requestTimeout} {
		if d > 0 && (t == 0 || d < t) {
			t = d
		}
	}
	return t
}

// http1ReadError answers a request that could not be parsed, as Envoy does:
// the codec's status with connection: close, or nothing when the client
// went away or timed out before sending a request.
func (m *Manager) http1ReadError(c *network.Conn, hc *http1.Conn, s *httpfilter.Stream, err error) {
	var perr *http1.Error
	switch {
	case errors.As(err, &perr):
		m.stats.cxProtocolError.Inc()
		if perr.Status == 431 || perr.Status == 413 {
			m.stats.rqTooLarge.Inc()
		}
		m.localReplyOnConn(c, hc, s, perr.Status, streaminfo.DownstreamProtocolError, perr.Details)
	case isTimeout(err):
		// The request had started (a byte was peeked) but did not arrive
		// in time.
		m.stats.rqHeadersTimeout.Inc()
		m.localReplyOnConn(c, hc, s, 408, 0, "request_header_timeout")
	}
}

// localReplyOnConn sends a local reply outside of the normal stream
// processing (the request could not be parsed) and marks the connection for
// closing.
func (m *Manager) localReplyOnConn(c *network.Conn, hc *http1.Conn, s *httpfilter.Stream, status int, flag streaminfo.ResponseFlags, details string) {
	s.Conn = c
	s.Req.Protocol = headers.HTTP11
	w := &h1Writer{m: m, c: hc, closeConn: true}
	w.reset(s, http1.Head{})
	w.closeConn = true
	s.W = w
	c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	m.stats.rqTotal.Inc()
	m.stats.rqActive.Inc()
	httpfilter.SendLocalReply(s, status, "", flag, details)
	m.finishStream(s)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()
}

// deadlines sets socket deadlines lazily: a deadline is only moved when it
// would change by more than a second, so keep-alive traffic does not pay a
// timer update per request for long timeouts.
type deadlines struct {
	nc           net.Conn
	rd, wd       time.Time
	rdDur, wdDur time.Duration
}

const deadlineSlack = time.Second

func (d *deadlines) read(t time.Duration) {
	now := time.Now()
	want := now.Add(t)
	if t == d.rdDur && t > 10*deadlineSlack && want.Sub(d.rd) < deadlineSlack {
		return
	}
	d.rd, d.rdDur = want, t
	d.nc.SetReadDeadline(want)
}

func (d *deadlines) write(t time.Duration) {
	now := time.Now()
	want := now.Add(t)
	if t == d.wdDur && t > 10*deadlineSlack && want.Sub(d.wd) < deadlineSlack {
		return
	}
	d.wd, d.wdDur = want, t
	d.nc.SetWriteDeadline(want)
}

var schemeHTTP = []byte("http")

// h1Body is the request body of an HTTP/1 stream: the codec's body reader,
// sending "100 Continue" before the first read when the client asked for it
// (Envoy answers 100-continue itself; proxy_100_continue is off).
type h1Body struct {
	c         *http1.Conn
	r         *http1.BodyReader
	continue_ bool
}

func (b *h1Body) reset(r *http1.BodyReader, expectContinue bool) {
	b.r, b.continue_ = r, expectContinue
}

func (b *h1Body) Read(p []byte) (int, error) {
	if b.continue_ {
		b.continue_ = false
		if err := b.c.WriteContinue(); err != nil {
			return 0, err
		}
	}
	return b.r.Read(p)
}

// h1Writer is the ResponseWriter of an HTTP/1 stream.
type h1Writer struct {
	m         *Manager
	c         *http1.Conn
	s         *httpfilter.Stream
	proto     headers.Protocol
	head      bool
	sent      bool
	finished  bool
	closeConn bool
	keepAlive bool
	hijacked  bool
	aborted   bool
	framing   http1.Framing
}

func (w *h1Writer) reset(s *httpfilter.Stream, h http1.Head) {
	w.s = s
	w.proto = s.Req.Protocol
	w.head = string(s.Req.Method) == "HEAD"
	w.sent, w.finished, w.hijacked, w.aborted = false, false, false, false
	w.closeConn = !h.KeepAlive
	w.keepAlive = h.KeepAlive
	s.W = w
}

// WriteHeaders implements httpfilter.ResponseWriter.
func (w *h1Writer) WriteHeaders(h *headers.Response, endStream bool) error {
	if w.sent {
		return errors.New("hcm: response headers already sent")
	}
	w.sent = true
	w.s.Info.ResponseCode = h.Status
	upgrade := h.Status == 101
	w.m.prepareResponse(h, upgrade)
	if w.s.CloseConnection || w.m.draining() {
		w.closeConn = true
	}
	if w.closeConn && !upgrade {
		h.Set(headers.Connection, "close")
	} else if w.proto == headers.HTTP10 && w.keepAlive {
		h.Set(headers.Connection, "keep-alive")
	}
	f := w.responseFraming(h, endStream)
	used, err := w.c.WriteResponseHead(h, f, w.proto)
	if err != nil {
		w.closeConn = true
		return err
	}
	w.framing = used
	if used.Kind == http1.BodyUntilClose {
		w.closeConn = true
	}
	if endStream {
		return w.Finish(nil)
	}
	return nil
}

func (w *h1Writer) responseFraming(h *headers.Response, endStream bool) http1.Framing {
	if h.Status < 200 || h.Status == 204 || h.Status == 304 {
		return http1.Framing{Kind: http1.BodyNone}
	}
	if cl := h.Get(headers.ContentLength); cl != nil {
		if n, err := strconv.ParseInt(string(cl), 10, 64); err == nil && n >= 0 {
			if w.head {
				// HEAD: keep the upstream's content-length, send no body.
				return http1.Framing{Kind: http1.BodyLength, Length: n}
			}
			return http1.Framing{Kind: http1.BodyLength, Length: n}
		}
	}
	if endStream || w.head {
		return http1.Framing{Kind: http1.BodyLength, Length: 0}
	}
	return http1.Framing{Kind: http1.BodyChunked}
}

// Write implements httpfilter.ResponseWriter.
func (w *h1Writer) Write(p []byte) (int, error) {
	if w.head {
		return len(p), nil
	}
	n, err := w.c.Write(p)
	w.s.Info.BytesSent += int64(n)
	if err != nil {
		w.closeConn = true
	}
	return n, err
}

// Flush implements httpfilter.ResponseWriter.
func (w *h1Writer) Flush() error {
	if err := w.c.Flush(); err != nil {
		w.closeConn = true
		return err
	}
	return nil
}

// Finish implements httpfilter.ResponseWriter.
func (w *h1Writer) Finish(t *headers.Map) error {
	if w.finished {
		return nil
	}
	w.finished = true
	if t != nil && t.Len() == 0 {
		t = nil
	}
	if err := w.c.EndBody(t); err != nil {
		w.closeConn = true
		return err
	}
	return w.Flush()
}

// HeadersSent implements httpfilter.ResponseWriter.
func (w *h1Writer) HeadersSent() bool { return w.sent }

// Abort implements httpfilter.ResponseWriter: the connection is closed
// without completing the response.
func (w *h1Writer) Abort() {
	w.aborted, w.closeConn, w.finished = true, true, false
	w.c.Flush()
}

// Hijack implements httpfilter.Hijacker.
func (w *h1Writer) Hijack() (net.Conn, []byte, error) {
	if w.hijacked {
		return nil, nil, errors.New("hcm: connection already hijacked")
	}
	if err := w.c.Flush(); err != nil {
		return nil, nil, err
	}
	w.hijacked = true
	buffered, _ := w.c.Peek(0)
	rest := append([]byte(nil), buffered...)
	nc := w.c.NetConn()
	nc.SetDeadline(time.Time{})
	w.c.Release()
	return nc, rest, nil
}

// Continue sends the "100 Continue" the client asked for, if not yet sent.
// The router calls it before handing the body to another goroutine.
func (b *h1Body) Continue() error {
	if !b.continue_ {
		return nil
	}
	b.continue_ = false
	return b.c.WriteContinue()
}
