package hcm

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"strconv"
	"sync/atomic"
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
	body := &h1Body{}
	var dl deadlines
	dl.nc = st.nc
	for {
		// Wait for the next request under the idle timeout. The order
		// matters for draining: the deadline is set before the connection
		// is marked idle, so a drain that starts after the check below
		// finds it idle and interrupts the wait (connSet.wakeIdle).
		dl.read(m.idleTimeout)
		st.idle.Store(true)
		if m.draining() {
			m.stats.cxDrainClose.Inc()
			return
		}
		if _, err := hc.Peek(1); err != nil {
			if isTimeout(err) && !m.draining() {
				m.stats.cxIdleTimeout.Inc()
			}
			return
		}
		st.idle.Store(false)
		headTimer := m.headReadTimer()
		dl.read(headTimer.d)
		s.Reset()
		s.Info.StartTime = time.Now()
		head, err := hc.ReadRequest(&s.Req)
		if err != nil {
			m.http1ReadError(c, hc, s, err, headTimer)
			return
		}
		bodyTimer := m.bodyReadTimer(s.Info.StartTime)
		if head.Framing.Kind != http1.BodyNone && bodyTimer != headTimer {
			// request_headers_timeout only covers the head.
			dl.read(bodyTimer.d)
		}
		s.Ctx = ctx
		s.Conn = c
		s.Req.Scheme = schemeOf(c)
		s.ContentLength = 0
		switch head.Framing.Kind {
		case http1.BodyLength:
			s.ContentLength = head.Framing.Length
		case http1.BodyChunked:
			s.ContentLength = -1
		}
		if head.ExpectContinue && head.Framing.Kind != http1.BodyNone {
			// Envoy with proxy_100_continue off (its default and the only
			// mode here) answers "100 Continue" as soon as the request
			// head is decoded, before the filter chain runs, and strips
			// Expect (checkRequest). Sending it at once, rather than on
			// the first body read, also means a request answered locally
			// (404, 403, ...) finds the client sending its body, which the
			// loop below drains, instead of waiting for a 100 that never
			// comes while its next request would be read as the body.
			if err := hc.WriteContinue(); err != nil {
				return
			}
		}
		body.reset(hc.Body(), bodyTimer)
		body.info = &s.Info
		s.Body = body
		w.reset(s, head)
		dl.write(m.streamIdleTimeout)
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

// readTimer is the timer that bounds a read: its duration and what Envoy
// answers when it fires (408 with a body and details; stream idle timeouts
// also set the SI flag).
type readTimer struct {
	d       time.Duration
	body    string
	details string
	flag    streaminfo.ResponseFlags
}

var (
	idleTimer    = readTimer{body: "stream timeout", details: "stream_idle_timeout", flag: streaminfo.StreamIdleTimeout}
	headerTimer  = readTimer{body: "request header timeout", details: "request_header_timeout"}
	overallTimer = readTimer{body: "request timeout", details: "request_overall_timeout"}
)

// headReadTimer is the read deadline while a request head is read: the
// shortest of request_headers_timeout, request_timeout and
// stream_idle_timeout (Envoy starts all three when a request begins).
func (m *Manager) headReadTimer() readTimer {
	t := idleTimer
	t.d = m.streamIdleTimeout
	if d := m.requestTimeout; d > 0 && (t.d == 0 || d < t.d) {
		t = overallTimer
		t.d = d
	}
	if d := m.requestHeadersTimeout; d > 0 && (t.d == 0 || d < t.d) {
		t = headerTimer
		t.d = d
	}
	return t
}

// bodyReadTimer is the read deadline while the request body is read: what
// is left of request_timeout since start, or stream_idle_timeout when it
// is shorter. The idle timeout is not extended as the body arrives (the
// router may interrupt a body read by moving the deadline itself), so an
// upload must end within it.
func (m *Manager) bodyReadTimer(start time.Time) readTimer {
	t := idleTimer
	t.d = m.streamIdleTimeout
	if m.requestTimeout > 0 {
		left := max(m.requestTimeout-time.Since(start), time.Millisecond)
		if t.d == 0 || left < t.d {
			t = overallTimer
			t.d = left
		}
	}
	return t
}

// http1ReadError answers a request that could not be parsed, as Envoy does:
// the codec's status with connection: close, or a 408 when the head did not
// arrive before timer fired, or nothing when the client went away or timed
// out before sending a request.
func (m *Manager) http1ReadError(c *network.Conn, hc *http1.Conn, s *httpfilter.Stream, err error, timer readTimer) {
	var perr *http1.Error
	switch {
	case errors.As(err, &perr):
		m.stats.cxProtocolError.Inc()
		if perr.Status == 431 || perr.Status == 413 {
			m.stats.rqTooLarge.Inc()
		}
		m.localReplyOnConn(c, hc, s, perr.Status, "", streaminfo.DownstreamProtocolError, perr.Details)
	case isTimeout(err):
		// The request had started (a byte was peeked) but did not arrive
		// in time.
		m.countTimeout(timer)
		m.localReplyOnConn(c, hc, s, 408, timer.body, timer.flag, timer.details)
	}
}

// countTimeout counts a fired request timer in Envoy's stats.
func (m *Manager) countTimeout(t readTimer) {
	switch t.details {
	case headerTimer.details:
		m.stats.rqHeadersTimeout.Inc()
	case overallTimer.details:
		m.stats.rqTimeout.Inc()
	default:
		m.stats.rqIdleTimeout.Inc()
	}
}

// localReplyOnConn sends a local reply outside of the normal stream
// processing (the request could not be parsed) and marks the connection for
// closing.
func (m *Manager) localReplyOnConn(c *network.Conn, hc *http1.Conn, s *httpfilter.Stream, status int, body string, flag streaminfo.ResponseFlags, details string) {
	s.Conn = c
	s.Req.Protocol = headers.HTTP11
	w := &h1Writer{m: m, c: hc, closeConn: true}
	w.reset(s, http1.Head{})
	w.closeConn = true
	s.W = w
	c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	m.stats.rqTotal.Inc()
	m.stats.rqActive.Inc()
	httpfilter.SendLocalReply(s, status, body, flag, details)
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

// read sets the read deadline t from now; 0 clears it.
func (d *deadlines) read(t time.Duration) {
	if t <= 0 {
		if !d.rd.IsZero() {
			d.rd, d.rdDur = time.Time{}, 0
			d.nc.SetReadDeadline(time.Time{})
		}
		return
	}
	now := time.Now()
	want := now.Add(t)
	if t == d.rdDur && t > 10*deadlineSlack && want.Sub(d.rd) < deadlineSlack {
		return
	}
	d.rd, d.rdDur = want, t
	d.nc.SetReadDeadline(want)
}

// write sets the write deadline t from now; 0 clears it.
func (d *deadlines) write(t time.Duration) {
	if t <= 0 {
		if !d.wd.IsZero() {
			d.wd, d.wdDur = time.Time{}, 0
			d.nc.SetWriteDeadline(time.Time{})
		}
		return
	}
	now := time.Now()
	want := now.Add(t)
	if t == d.wdDur && t > 10*deadlineSlack && want.Sub(d.wd) < deadlineSlack {
		return
	}
	d.wd, d.wdDur = want, t
	d.nc.SetWriteDeadline(want)
}

var schemeHTTP = []byte("http")

// h1Body is the request body of an HTTP/1 stream: the codec's body
// reader. "100 Continue" has already been sent when the client asked for it
// (serveHTTP1), so Continue is a no-op kept for the router's interface. It
// remembers whether a read hit the request's read deadline or malformed
// framing, so that the connection manager can answer as Envoy does (408
// when a request timer fires, the codec's 400 for a bad chunked body) when
// the router could not respond.
type h1Body struct {
	r        *http1.BodyReader
	info     *streaminfo.Info // records the last byte's time (access logs)
	timer    readTimer
	timedOut atomic.Bool                 // set by whichever goroutine reads the body
	perr     atomic.Pointer[http1.Error] // likewise
}

func (b *h1Body) reset(r *http1.BodyReader, t readTimer) {
	b.r, b.timer = r, t
	b.timedOut.Store(false)
	b.perr.Store(nil)
}

func (b *h1Body) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if b.info != nil {
		b.info.RequestMessages.Inspect(p[:n])
		if err == io.EOF {
			b.info.MarkRequestDone()
		}
	}
	if err != nil && err != io.EOF {
		var perr *http1.Error
		switch {
		case errors.As(err, &perr):
			b.perr.Store(perr)
		case isTimeout(err):
			b.timedOut.Store(true)
		}
	}
	return n, err
}

// ReadTimeout implements readTimeouter.
func (b *h1Body) ReadTimeout() (readTimer, bool) { return b.timer, b.timedOut.Load() }

// ProtocolError implements bodyProtocolErrorer.
func (b *h1Body) ProtocolError() *http1.Error { return b.perr.Load() }

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
	if w.s.CloseConnection || w.m.closeAfterResponse() {
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
	w.s.Info.ResponseMessages.Inspect(p[:n])
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

// Aborted reports whether the stream was reset by Abort.
func (w *h1Writer) Aborted() bool { return w.aborted }

// StreamIdleTimeout is the connection manager's stream_idle_timeout: the
// router applies it to an upgraded (hijacked) connection, whose deadlines
// the connection manager no longer manages.
func (w *h1Writer) StreamIdleTimeout() time.Duration { return w.m.streamIdleTimeout }

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

// Continue implements the router's continuer: the 100 was sent when the
// request head arrived, so there is nothing left to do.
func (b *h1Body) Continue() error { return nil }
