package hcm

import (
	"context"
	"errors"
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	"golang.org/x/net/http2"

	"github.com/weftmesh/weft/internal/proxy/headers"
	"github.com/weftmesh/weft/internal/proxy/httpfilter"
	"github.com/weftmesh/weft/internal/proxy/network"
)

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
			maxStreams = math.MaxInt32 // Envoy's default: 2^31-1
		}
		m.h2.srv = &http2.Server{
			MaxConcurrentStreams:         maxStreams,
			MaxUploadBufferPerStream:     int32(min(uint64(m.h2cfg.streamWindow), math.MaxInt32)),
			MaxUploadBufferPerConnection: int32(min(uint64(m.h2cfg.connWindow), math.MaxInt32)),
			IdleTimeout:                  m.idleTimeout,
		}
		m.h2.base = &http.Server{
			MaxHeaderBytes: m.maxRequestHeadersBytes,
			ErrorLog:       nil,
		}
		http2.ConfigureServer(m.h2.base, m.h2.srv)
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
	m.h2.srv.ServeConn(c, &http2.ServeConnOpts{BaseConfig: m.h2.base, Handler: h})
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
	req.Scheme = schemeHTTP
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
	s.Body = r.Body
	w := &h2Writer{m: h.m, rw: rw, s: s}
	s.W = w
	h.m.stats.rqHTTP2Total.Inc()
	h.m.handle(s, true)
	if w.aborted {
		panic(http.ErrAbortHandler) // the HTTP/2 server resets the stream
	}
}

// h2Writer is the ResponseWriter of an HTTP/2 stream.
type h2Writer struct {
	m        *Manager
	rw       http.ResponseWriter
	s        *httpfilter.Stream
	sent     bool
	finished bool
	aborted  bool
}

// WriteHeaders implements httpfilter.ResponseWriter.
func (w *h2Writer) WriteHeaders(h *headers.Response, endStream bool) error {
	if w.sent {
		return errors.New("hcm: response headers already sent")
	}
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
	return n, err
}

// Flush implements httpfilter.ResponseWriter.
func (w *h2Writer) Flush() error {
	if f, ok := w.rw.(http.Flusher); ok {
		f.Flush()
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
