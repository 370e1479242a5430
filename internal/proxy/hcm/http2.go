package hcm

import (
	"context"
	"errors"
	"io"
	"sync"
	"time"

	h2codec "github.com/weftmesh/weft/internal/proxy/codec/http2"
	"github.com/weftmesh/weft/internal/proxy/headers"
	"github.com/weftmesh/weft/internal/proxy/httpfilter"
	"github.com/weftmesh/weft/internal/proxy/network"
	"github.com/weftmesh/weft/internal/proxy/streaminfo"
)

// defaultMaxConcurrentStreams is SETTINGS_MAX_CONCURRENT_STREAMS when
// http2_protocol_options.max_concurrent_streams is not set. Envoy's default
// is 2^31-1, but every stream costs weft-proxy a goroutine and its buffers,
// so an unbounded limit lets one client that opens streams and never reads
// the responses (INITIAL_WINDOW_SIZE 0) pin unbounded memory; h2spec's case
// http2/5.1.2 does exactly that. Envoy's edge-proxy best practices also
// bound it (they suggest 100); 1024 keeps headroom for busy gRPC clients,
// which queue streams above the limit. An explicit setting is honoured.
const defaultMaxConcurrentStreams = 1024

// delayedCloseTimeout is Envoy's default delayed_close_timeout: after the
// last frame (a GOAWAY) is written, the proxy half-closes and waits that
// long for the peer's FIN before closing the socket.
const delayedCloseTimeout = time.Second

// h2Server tracks the HTTP/2 connections of one connection manager, so
// that draining sends GOAWAY on each (weft's own codec, codec/http2).
type h2Server struct {
	mu       sync.Mutex
	conns    map[*h2codec.ServerConn]struct{}
	draining bool
}

// add registers a connection; false means draining has begun and the
// connection must be shut down at once.
func (s *h2Server) add(sc *h2codec.ServerConn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conns == nil {
		s.conns = map[*h2codec.ServerConn]struct{}{}
	}
	s.conns[sc] = struct{}{}
	return !s.draining
}

func (s *h2Server) remove(sc *h2codec.ServerConn) {
	s.mu.Lock()
	delete(s.conns, sc)
	s.mu.Unlock()
}

// shutdownAll sends GOAWAY on every connection; each closes once its
// streams are done.
func (s *h2Server) shutdownAll() {
	s.mu.Lock()
	s.draining = true
	conns := make([]*h2codec.ServerConn, 0, len(s.conns))
	for sc := range s.conns {
		conns = append(conns, sc)
	}
	s.mu.Unlock()
	for _, sc := range conns {
		sc.Shutdown()
	}
}

// drainLoop waits for the proxy to start draining, then stops keeping
// connections alive: idle HTTP/1 connections close, HTTP/2 connections get
// a GOAWAY and close once their streams end.
func (m *Manager) drainLoop() {
	if m.o.Drain == nil {
		return
	}
	select {
	case <-m.o.Drain.DrainStarted():
	case <-m.done:
		return
	}
	m.conns.wakeIdle()
	m.h2.shutdownAll()
}

// h2Options are the codec settings from http2_protocol_options and the
// connection manager's limits and timeouts.
func (m *Manager) h2Options(h h2codec.Handler) h2codec.ServerOptions {
	maxStreams := m.h2cfg.maxConcurrentStreams
	if maxStreams == 0 {
		maxStreams = defaultMaxConcurrentStreams
	}
	return h2codec.ServerOptions{
		Handler:                     h,
		MaxConcurrentStreams:        maxStreams,
		InitialStreamWindowSize:     m.h2cfg.streamWindow,
		InitialConnectionWindowSize: m.h2cfg.connWindow,
		MaxHeaderListSize:           m.maxRequestHeadersBytes,
		MaxHeaders:                  m.maxHeaders,
		IdleTimeout:                 m.idleTimeout,
		StreamIdleTimeout:           m.streamIdleTimeout,
		DelayedCloseTimeout:         delayedCloseTimeout,
	}
}

func (m *Manager) serveHTTP2(c *network.Conn) {
	m.stats.cxHTTP2Total.Inc()
	m.stats.cxHTTP2Active.Inc()
	defer m.stats.cxHTTP2Active.Dec()
	c.SetDeadline(time.Time{})
	if m.draining() {
		return
	}
	sc := h2codec.NewServerConn(h2NetConn{c}, m.h2Options(&h2Handler{m: m, c: c}))
	if !m.h2.add(sc) {
		sc.Shutdown()
	}
	defer m.h2.remove(sc)
	switch sc.Serve() {
	case h2codec.CloseIdle:
		m.stats.cxIdleTimeout.Inc()
	case h2codec.CloseDrained:
		m.stats.cxDrainClose.Inc()
	case h2codec.CloseProtocolError:
		m.stats.cxProtocolError.Inc()
	}
}

// h2NetConn is the downstream connection as the codec sees it: reads go
// through network.Conn (bytes peeked while sniffing the preface come
// first) and CloseWrite reaches the socket, for the delayed close.
type h2NetConn struct{ *network.Conn }

var errNoCloseWrite = errors.New("hcm: connection cannot half-close")

// CloseWrite half-closes the socket.
func (c h2NetConn) CloseWrite() error {
	if cw, ok := c.Conn.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errNoCloseWrite
}

// h2Handler runs the streams of one HTTP/2 connection through the
// connection manager.
type h2Handler struct {
	m *Manager
	c *network.Conn
}

// h2Stream is the per-stream state, pooled: the filter stream, its
// response writer and request body.
type h2Stream struct {
	s    httpfilter.Stream
	w    h2Writer
	body h2Body
}

var h2StreamPool = sync.Pool{New: func() any { return &h2Stream{} }}

// ServeStream implements h2codec.Handler: one HTTP/2 stream through the
// connection manager. The request headers move from the codec into the
// filter stream without a copy.
func (h *h2Handler) ServeStream(st *h2codec.ServerStream) {
	hs := h2StreamPool.Get().(*h2Stream)
	defer func() {
		hs.w, hs.body = h2Writer{}, h2Body{}
		hs.s.Ctx, hs.s.Body, hs.s.W, hs.s.Conn = nil, nil, nil, nil
		h2StreamPool.Put(hs)
	}()
	s := &hs.s
	s.Reset()
	s.Info.StartTime = time.Now()
	s.Ctx = st
	s.Conn = h.c
	hs.w = h2Writer{m: h.m, st: st, s: s}
	hs.body = h2Body{st: st, info: &s.Info}
	s.Body, s.W = &hs.body, &hs.w
	if st.HeaderListTooLarge() {
		h.m.headersTooLarge(s)
		return
	}
	st.TakeRequest(&s.Req)
	s.Req.Protocol = headers.HTTP2
	s.Req.Scheme = schemeOf(h.c)
	s.ContentLength = st.ContentLength()
	h.m.stats.rqHTTP2Total.Inc()
	h.m.handle(s, true)
}

// headersTooLarge answers a request whose header block exceeded
// max_request_headers_kb or max_headers_count with 431, as for HTTP/1 (the
// request's headers are incomplete: it is not routed).
func (m *Manager) headersTooLarge(s *httpfilter.Stream) {
	s.Req.Protocol = headers.HTTP2
	m.stats.rqTooLarge.Inc()
	m.stats.rqHTTP2Total.Inc()
	m.stats.rqTotal.Inc()
	m.stats.rqActive.Inc()
	httpfilter.SendLocalReply(s, 431, "", streaminfo.DownstreamProtocolError, "http2.headers_too_large")
	m.finishStream(s)
}

// h2Body is the request body of an HTTP/2 stream, read from the codec's
// per-stream buffer.
type h2Body struct {
	st   *h2codec.ServerStream
	info *streaminfo.Info // records the last byte's time (access logs)
}

func (b *h2Body) Read(p []byte) (int, error) {
	n, err := b.st.Read(p)
	if b.info != nil {
		b.info.RequestMessages.Inspect(p[:n])
		if err == io.EOF {
			b.info.MarkRequestDone()
		}
	}
	return n, err
}

// Trailers returns the request trailers once the body reached EOF (nil
// when there are none). The router forwards them to HTTP/2 upstreams, as
// Envoy does (HTTP/1 upstreams drop them, Envoy's default without
// enable_trailers).
func (b *h2Body) Trailers() *headers.Map { return b.st.Trailers() }

// Complete reports whether the whole request body has arrived, so that
// reading it will not block.
func (b *h2Body) Complete() bool { return b.st.Complete() }

// Buffered returns the body bytes received and not yet read.
func (b *h2Body) Buffered() int { return b.st.Buffered() }

// ResetSignal receives a token when the downstream stream is reset (see
// h2codec.ServerStream.ResetSignal): the router cancels its upstream
// request on it.
func (b *h2Body) ResetSignal() <-chan struct{} { return b.st.ResetSignal() }

// h2Writer is the ResponseWriter of an HTTP/2 stream. Frames are buffered
// in the connection's write buffer until Flush or Finish, so that a small
// response (headers, body, trailers) leaves in one write.
//
// stream_idle_timeout is the codec's: a stream on which nothing moved for
// that long is reset (RST_STREAM INTERNAL_ERROR), even before its response
// started, where Envoy would answer 408; the writer then records flag SI
// and downstream_rq_idle_timeout.
type h2Writer struct {
	m        *Manager
	st       *h2codec.ServerStream
	s        *httpfilter.Stream
	sent     bool
	finished bool
	aborted  bool
	flagged  bool
}

// failed records why a write failed: the stream's idle timeout.
func (w *h2Writer) failed(err error) error {
	if err != nil && !w.flagged && w.st.IdleTimedOut() {
		w.flagged = true
		w.s.Info.SetFlag(streaminfo.StreamIdleTimeout)
		w.m.stats.rqIdleTimeout.Inc()
	}
	return err
}

// WriteHeaders implements httpfilter.ResponseWriter. Informational
// responses are not forwarded over HTTP/2.
func (w *h2Writer) WriteHeaders(h *headers.Response, endStream bool) error {
	if w.sent {
		return errors.New("hcm: response headers already sent")
	}
	w.s.Info.ResponseCode = h.Status
	w.m.prepareResponse(h, false)
	if h.Status < 200 {
		return nil
	}
	w.sent = true
	w.finished = endStream
	return w.failed(w.st.WriteHeaders(h, endStream))
}

// Write implements httpfilter.ResponseWriter.
func (w *h2Writer) Write(p []byte) (int, error) {
	n, err := w.st.Write(p)
	w.s.Info.BytesSent += int64(n)
	w.s.Info.ResponseMessages.Inspect(p[:n])
	return n, w.failed(err)
}

// Flush implements httpfilter.ResponseWriter.
func (w *h2Writer) Flush() error { return w.failed(w.st.Flush()) }

// Finish implements httpfilter.ResponseWriter: trailers go in a final
// HEADERS frame.
func (w *h2Writer) Finish(t *headers.Map) error {
	if w.finished {
		return nil
	}
	w.finished = true
	return w.failed(w.st.Finish(t))
}

// HeadersSent implements httpfilter.ResponseWriter.
func (w *h2Writer) HeadersSent() bool { return w.sent }

// Abort implements httpfilter.ResponseWriter: RST_STREAM INTERNAL_ERROR.
func (w *h2Writer) Abort() {
	w.aborted = true
	w.st.Reset(h2codec.ErrCodeInternal)
	w.failed(errors.New("aborted"))
}

// Aborted reports whether the stream was reset by Abort.
func (w *h2Writer) Aborted() bool { return w.aborted }

// StreamIdleTimeout is the connection manager's stream_idle_timeout: the
// router applies it to its upstream waits when the route sets none.
func (w *h2Writer) StreamIdleTimeout() time.Duration { return w.m.streamIdleTimeout }

var _ context.Context = (*h2codec.ServerStream)(nil)
