package hcm

import (
	"context"
	"errors"
	"io"
	"log"
	"math"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"

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

// h2Server serves the HTTP/2 connections of one connection manager with
// golang.org/x/net/http2 (HPACK, flow control, stream state machine and
// RFC 9113 conformance), turning each stream into an httpfilter.Stream.
type h2Server struct {
	once sync.Once
	srv  *http2.Server
	base *http.Server
}

func (m *Manager) h2init() {
	m.h2.once.Do(func() {
		maxStreams := m.h2cfg.maxConcurrentStreams
		if maxStreams == 0 {
			maxStreams = defaultMaxConcurrentStreams
		}
		m.h2.srv = &http2.Server{
			MaxConcurrentStreams:         maxStreams,
			MaxUploadBufferPerStream:     int32(min(uint64(m.h2cfg.streamWindow), math.MaxInt32)),
			MaxUploadBufferPerConnection: int32(min(uint64(m.h2cfg.connWindow), math.MaxInt32)),
			IdleTimeout:                  m.idleTimeout,
			// Envoy (nghttp2/oghttp2) advertises the RFC's initial 16 KiB
			// SETTINGS_MAX_FRAME_SIZE; larger frames are a FRAME_SIZE_ERROR.
			MaxReadFrameSize: minMaxFrameSize,
		}
		m.h2.base = &http.Server{
			MaxHeaderBytes: m.maxRequestHeadersBytes,
			// Peers' protocol errors are answered with GOAWAY or
			// RST_STREAM; Envoy logs them at debug level only.
			ErrorLog: log.New(io.Discard, "", 0),
			// Arms every stream's idle timer when it opens; see h2Idle.
			WriteTimeout: m.streamIdleTimeout,
		}
		http2.ConfigureServer(m.h2.base, m.h2.srv)
		m.h2.srv.IdleTimeout = m.idleTimeout // not ConfigureServer's fallback
	})
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
	m.h2init()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	m.h2.base.Shutdown(ctx) // runs the HTTP/2 graceful shutdown hooks
}

func (m *Manager) serveHTTP2(c *network.Conn) {
	m.h2init()
	m.stats.cxHTTP2Total.Inc()
	m.stats.cxHTTP2Active.Inc()
	defer m.stats.cxHTTP2Active.Dec()
	c.SetDeadline(time.Time{})
	if m.draining() {
		return
	}
	h := &h2Handler{m: m, c: c}
	m.h2.srv.ServeConn(&lingerConn{Conn: c}, &http2.ServeConnOpts{BaseConfig: m.h2.base, Handler: h})
}

// minMaxFrameSize is SETTINGS_MAX_FRAME_SIZE's initial value (RFC 9113
// §6.5.2).
const minMaxFrameSize = 16 << 10

// delayedCloseTimeout is Envoy's default delayed_close_timeout: after the
// last frame (a GOAWAY) is written, the proxy half-closes and waits that
// long for the peer's FIN before closing the socket.
const delayedCloseTimeout = time.Second

// lingerConn closes an HTTP/2 connection the way Envoy's delayed close does:
// it half-closes (FIN after the pending frames), then reads and discards
// what the peer still sends until it closes or delayedCloseTimeout passes.
// Closing a socket with unread input makes the kernel send RST, which can
// destroy the GOAWAY (or the last response) before the peer reads it; h2spec
// http2/3.5/2 sees exactly that after an invalid preface.
type lingerConn struct {
	*network.Conn
	once sync.Once
}

// lingerLimit bounds what is read and discarded while lingering.
const lingerLimit = 256 << 10

func (c *lingerConn) Close() error {
	var err error
	c.once.Do(func() {
		if cw, ok := c.Conn.Conn.(interface{ CloseWrite() error }); ok && cw.CloseWrite() == nil {
			c.Conn.SetReadDeadline(time.Now().Add(delayedCloseTimeout))
			io.Copy(io.Discard, io.LimitReader(c.Conn.Conn, lingerLimit))
		}
		err = c.Conn.Close()
	})
	return err
}

type h2Handler struct {
	m *Manager
	c *network.Conn
}

var streamPool = sync.Pool{New: func() any { return &httpfilter.Stream{} }}

// ServeHTTP runs one HTTP/2 stream through the connection manager.
func (h *h2Handler) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	s := streamPool.Get().(*httpfilter.Stream)
	s.Reset()
	defer streamPool.Put(s)
	s.Info.StartTime = time.Now()
	s.Ctx = r.Context()
	s.Conn = h.c
	req := &s.Req
	req.Protocol = headers.HTTP2
	req.Method = []byte(r.Method)
	req.Scheme = schemeOf(h.c)
	req.Authority = []byte(r.Host)
	req.Path = []byte(r.RequestURI)
	if r.Method == http.MethodConnect {
		if p := r.Header.Get(":protocol"); p != "" {
			req.UpgradeProto = []byte(p)
		}
	}
	for k, vs := range r.Header {
		for _, v := range vs {
			req.Add(k, v)
		}
	}
	s.ContentLength = r.ContentLength
	if r.ContentLength > 0 {
		req.Set(headers.ContentLength, strconv.FormatInt(r.ContentLength, 10))
	}
	w := &h2Writer{m: h.m, rw: rw, s: s}
	w.idle.init(rw, h.m.streamIdleTimeout, s.Info.StartTime)
	w.body = h2Body{ReadCloser: r.Body, req: r, idle: &w.idle}
	s.Body = &w.body
	s.W = w
	h.m.stats.rqHTTP2Total.Inc()
	h.m.handle(s, true)
	if w.aborted {
		panic(http.ErrAbortHandler) // the HTTP/2 server resets the stream
	}
}

// h2Body is the request body of an HTTP/2 stream. Reading it counts as
// stream activity. Trailer returns the request's trailers: x/net keeps only
// trailers the request declared (a "trailer" field), with their values once
// the body has reached EOF; the router forwards them to HTTP/2 upstreams, as
// Envoy does (HTTP/1 upstreams drop them, Envoy's default without
// enable_trailers).
type h2Body struct {
	io.ReadCloser
	req  *http.Request
	idle *h2Idle
}

func (b *h2Body) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if n > 0 {
		b.idle.touch()
	}
	return n, err
}

// Trailer returns the request trailers (keys from the declaration, values
// after EOF).
func (b *h2Body) Trailer() http.Header { return b.req.Trailer }

// h2Idle is an HTTP/2 stream's idle timeout (Envoy's stream_idle_timeout:
// no activity in either direction for that long ends the stream). x/net arms
// a per-stream write deadline of the timeout when the stream opens
// (http.Server.WriteTimeout); request body bytes read and response bytes
// written push it back. A push costs a message to the connection's serve
// loop, so it happens at most once per tenth of the timeout: the effective
// timeout is between 0.9 and 1 times the configured one. When the deadline
// passes, x/net resets the stream (RST_STREAM INTERNAL_ERROR): the stream
// is reset even before its response started, where Envoy would answer 408.
type h2Idle struct {
	rw      http.ResponseWriter
	timeout time.Duration
	last    atomic.Int64 // UnixNano of the deadline's last push
	flagged bool
}

func (d *h2Idle) init(rw http.ResponseWriter, timeout time.Duration, start time.Time) {
	d.rw, d.timeout = rw, timeout
	d.last.Store(start.UnixNano())
}

// touch records activity.
func (d *h2Idle) touch() {
	if d.timeout <= 0 {
		return
	}
	now := time.Now()
	if time.Duration(now.UnixNano()-d.last.Load()) < d.timeout/10 {
		return
	}
	d.last.Store(now.UnixNano())
	if dl, ok := d.rw.(interface{ SetWriteDeadline(time.Time) error }); ok {
		dl.SetWriteDeadline(now.Add(d.timeout))
	}
}

// expired reports whether the stream's deadline has passed.
func (d *h2Idle) expired() bool {
	return d.timeout > 0 && time.Duration(time.Now().UnixNano()-d.last.Load()) >= d.timeout
}

// checkIdle records an idle timeout once the stream was reset for it: flag SI
// and downstream_rq_idle_timeout, as Envoy does. It is called on the
// stream's goroutine whenever the response writer is used.
func (w *h2Writer) checkIdle() {
	if w.idle.flagged || !w.idle.expired() || w.s.Ctx == nil || w.s.Ctx.Err() == nil {
		return
	}
	w.idle.flagged = true
	w.s.Info.SetFlag(streaminfo.StreamIdleTimeout)
	w.m.stats.rqIdleTimeout.Inc()
}

// h2Writer is the ResponseWriter of an HTTP/2 stream.
type h2Writer struct {
	m        *Manager
	rw       http.ResponseWriter
	s        *httpfilter.Stream
	sent     bool
	finished bool
	aborted  bool
	idle     h2Idle
	body     h2Body
}

// WriteHeaders implements httpfilter.ResponseWriter.
func (w *h2Writer) WriteHeaders(h *headers.Response, endStream bool) error {
	if w.sent {
		return errors.New("hcm: response headers already sent")
	}
	w.checkIdle()
	w.sent = true
	w.s.Info.ResponseCode = h.Status
	w.m.prepareResponse(h, false)
	hdr := w.rw.Header()
	for _, f := range h.Fields {
		k := canonicalKey(f.Name)
		hdr[k] = append(hdr[k], string(f.Value))
	}
	if _, ok := hdr["Content-Type"]; !ok {
		hdr["Content-Type"] = nil // no sniffing: Envoy adds no content-type
	}
	if h.Status < 200 {
		// Informational responses are not forwarded over HTTP/2.
		return nil
	}
	w.rw.WriteHeader(h.Status)
	if endStream {
		w.finished = true
	}
	return nil
}

// Write implements httpfilter.ResponseWriter.
func (w *h2Writer) Write(p []byte) (int, error) {
	n, err := w.rw.Write(p)
	w.s.Info.BytesSent += int64(n)
	if err != nil {
		w.checkIdle()
	} else if n > 0 {
		w.idle.touch()
	}
	return n, err
}

// Flush implements httpfilter.ResponseWriter.
func (w *h2Writer) Flush() error {
	if f, ok := w.rw.(interface{ FlushError() error }); ok {
		if err := f.FlushError(); err != nil {
			w.checkIdle()
			return err
		}
	}
	return nil
}

// Finish implements httpfilter.ResponseWriter. Trailers are sent with
// net/http's TrailerPrefix convention, which the HTTP/2 server turns into a
// trailing HEADERS frame.
func (w *h2Writer) Finish(t *headers.Map) error {
	if w.finished {
		return nil
	}
	w.finished = true
	w.checkIdle()
	if t != nil {
		hdr := w.rw.Header()
		for _, f := range t.Fields {
			k := http.TrailerPrefix + canonicalKey(f.Name)
			hdr[k] = append(hdr[k], string(f.Value))
		}
	}
	return w.Flush()
}

// HeadersSent implements httpfilter.ResponseWriter.
func (w *h2Writer) HeadersSent() bool { return w.sent }

// Abort implements httpfilter.ResponseWriter.
func (w *h2Writer) Abort() { w.aborted = true }

// commonKeys maps frequent lower-case header names to net/http's canonical
// form, so that converting them costs no allocation.
var commonKeys = func() map[string]string {
	m := map[string]string{}
	for _, k := range []string{
		"accept", "accept-encoding", "accept-language", "accept-ranges", "age", "cache-control",
		"content-encoding", "content-language", "content-length", "content-type", "cookie",
		"date", "etag", "expires", "grpc-encoding", "grpc-message", "grpc-status",
		"grpc-status-details-bin", "last-modified", "location", "server", "set-cookie", "vary",
		"x-envoy-upstream-service-time", "x-request-id",
	} {
		m[k] = http.CanonicalHeaderKey(k)
	}
	return m
}()

func canonicalKey(name []byte) string {
	if k, ok := commonKeys[string(name)]; ok {
		return k
	}
	return http.CanonicalHeaderKey(string(name))
}
