// Package filtertest has test helpers for HTTP filters: a ResponseWriter
// that records what a filter answers, and a ready-made Stream.
package filtertest

import (
	"context"

	"github.com/weftmesh/weft/internal/proxy/headers"
	"github.com/weftmesh/weft/internal/proxy/httpfilter"
)

// Recorder is an httpfilter.ResponseWriter that keeps the response head
// and body a filter writes.
type Recorder struct {
	Status  int
	Header  headers.Response
	Body    []byte
	Sent    bool // WriteHeaders was called
	Aborted bool // Abort was called
}

var _ httpfilter.ResponseWriter = (*Recorder)(nil)

// WriteHeaders implements httpfilter.ResponseWriter.
func (r *Recorder) WriteHeaders(h *headers.Response, _ bool) error {
	r.Status, r.Sent = h.Status, true
	r.Header.Reset()
	r.Header.Status = h.Status
	r.Header.Map.CopyFrom(&h.Map)
	return nil
}

// Write implements httpfilter.ResponseWriter.
func (r *Recorder) Write(p []byte) (int, error) { r.Body = append(r.Body, p...); return len(p), nil }

// Flush implements httpfilter.ResponseWriter.
func (r *Recorder) Flush() error { return nil }

// Finish implements httpfilter.ResponseWriter.
func (r *Recorder) Finish(*headers.Map) error { return nil }

// HeadersSent implements httpfilter.ResponseWriter.
func (r *Recorder) HeadersSent() bool { return r.Sent }

// Abort implements httpfilter.ResponseWriter.
func (r *Recorder) Abort() { r.Aborted = true }

// Reset forgets everything recorded.
func (r *Recorder) Reset() { *r = Recorder{} }

// NewStream returns a stream for GET / on authority "h" that writes to w,
// with the given request header name/value pairs.
func NewStream(w httpfilter.ResponseWriter, hdr ...string) *httpfilter.Stream {
	s := &httpfilter.Stream{Ctx: context.Background(), W: w}
	s.Req.Method = []byte("GET")
	s.Req.Path = []byte("/")
	s.Req.Authority = []byte("h")
	for i := 0; i+1 < len(hdr); i += 2 {
		s.Req.Add(hdr[i], hdr[i+1])
	}
	return s
}
