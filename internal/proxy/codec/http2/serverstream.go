package http2

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/weftmesh/weft/internal/proxy/headers"
)

// ServerStream is one request stream of a ServerConn, handed to the
// Handler. Its receive side (TakeRequest, Read, Trailers) is used by one
// goroutine and its send side (WriteHeaders, Write, Flush, Finish) by one
// goroutine; Reset and the context methods may be called from any.
//
// A ServerStream is also the request's context.Context: it is canceled when
// the stream is reset (by the client, for its idle timeout, or because the
// response ended before the request) or the connection ends.
type ServerStream struct {
	stream
	sc            *ServerConn
	req           headers.Request
	trailers      headers.Map
	contentLength int64
	hasTrailers   bool
	tooLarge      bool
	idleTimedOut  bool
	wroteHeaders  bool
	rw, sw        waiter // zero: server streams wait without deadline
	resetSig      chan struct{}
	done          chan struct{} // made on the first Done call
}

var serverStreamPool = sync.Pool{New: func() any {
	ss := &ServerStream{resetSig: make(chan struct{}, 1)}
	ss.ss = ss
	return ss
}}

// closedChan is a closed channel, for Done on a stream already canceled.
var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

func newServerStream(sc *ServerConn, id uint32) *ServerStream {
	ss := serverStreamPool.Get().(*ServerStream)
	ss.initStream(&sc.c, id)
	ss.sc = sc
	ss.req.Reset()
	ss.trailers.Reset()
	ss.contentLength = -1
	ss.hasTrailers, ss.tooLarge, ss.idleTimedOut, ss.wroteHeaders = false, false, false, false
	drain(ss.resetSig)
	ss.done = nil
	return ss
}

// recycle returns the stream to its pool (every reference is gone).
func (ss *ServerStream) recycle() {
	ss.sc = nil
	ss.c = nil
	ss.done = nil
	if cap(ss.req.Fields) > 256 {
		ss.req = headers.Request{} // do not keep an outsized arena
	}
	serverStreamPool.Put(ss)
}

// signalReset tells the handler's goroutines that the stream ended
// abnormally (c.mu held).
func (ss *ServerStream) signalReset() {
	notify(ss.resetSig)
	if ss.done != nil && ss.done != closedChan {
		close(ss.done)
		ss.done = closedChan
	}
}

// ID returns the stream identifier.
func (ss *ServerStream) ID() uint32 { return ss.id }

// Request returns the request headers (valid until TakeRequest).
func (ss *ServerStream) Request() *headers.Request { return &ss.req }

// TakeRequest exchanges dst with the decoded request headers: dst receives
// them, and its previous storage is reused by the stream. No header byte is
// copied.
func (ss *ServerStream) TakeRequest(dst *headers.Request) {
	*dst, ss.req = ss.req, *dst
}

// ContentLength is the request body's declared length: the content-length
// field, 0 when the HEADERS frame ended the stream, -1 when unknown.
func (ss *ServerStream) ContentLength() int64 { return ss.contentLength }

// HeaderListTooLarge reports a request whose header block exceeded
// MaxHeaderListSize or MaxHeaders: its headers are incomplete, and the
// handler should answer 431.
func (ss *ServerStream) HeaderListTooLarge() bool { return ss.tooLarge }

// Read reads the request body; io.EOF at its end.
func (ss *ServerStream) Read(p []byte) (int, error) { return ss.read(p, &ss.rw) }

// Complete reports whether the whole request has been received: reads no
// longer block.
func (ss *ServerStream) Complete() bool {
	ss.c.mu.Lock()
	defer ss.c.mu.Unlock()
	return ss.recvEnd || ss.err != nil
}

// Buffered returns the number of body bytes received and not yet read.
func (ss *ServerStream) Buffered() int {
	ss.c.mu.Lock()
	defer ss.c.mu.Unlock()
	return ss.recv.Len()
}

// Trailers returns the request trailers once Read has returned io.EOF, or
// nil when the request had none.
func (ss *ServerStream) Trailers() *headers.Map {
	ss.c.mu.Lock()
	defer ss.c.mu.Unlock()
	if !ss.hasTrailers || !ss.recvEnd || ss.recv.Len() > 0 {
		return nil
	}
	return &ss.trailers
}

// WriteHeaders sends the response head; endStream means no body follows
// (the stream ends and is flushed). Otherwise the HEADERS frame is only
// buffered: Write, Flush or Finish send it. h.Map must hold lower-case
// names; connection-specific fields are left out. Informational (1xx)
// heads are not supported.
func (ss *ServerStream) WriteHeaders(h *headers.Response, endStream bool) error {
	c := ss.c
	c.mu.Lock()
	err := ss.sendErrLocked()
	if err == nil && ss.wroteHeaders {
		err = errors.New("http2: response headers already sent")
	}
	if err != nil {
		c.mu.Unlock()
		return err
	}
	c.enc.response(h.Status, &h.Map)
	c.appendHeaders(ss.id, c.enc.block(), endStream)
	ss.wroteHeaders = true
	ss.activity++
	if endStream {
		c.sentEndLocked(&ss.stream)
		err = c.flushLocked(false)
	}
	c.mu.Unlock()
	return err
}

// Write sends response body bytes as DATA frames, waiting for the client's
// flow-control window; frames are buffered until Flush or Finish (or until
// enough is buffered to be worth a write).
func (ss *ServerStream) Write(p []byte) (int, error) {
	if !ss.wroteHeaders {
		return 0, errors.New("http2: response body before headers")
	}
	return ss.writeData(p, false, &ss.sw)
}

// Flush writes what is buffered to the connection.
func (ss *ServerStream) Flush() error {
	if err := ss.c.flush(); err != nil {
		return err
	}
	ss.c.mu.Lock()
	defer ss.c.mu.Unlock()
	if ss.err != nil && !ss.sentEnd {
		return ss.err
	}
	return nil
}

// Finish ends the response, with trailers when t is non-nil and not empty,
// and flushes. A request body not entirely received by then is refused
// with RST_STREAM NO_ERROR (RFC 9113 §8.1).
func (ss *ServerStream) Finish(t *headers.Map) error {
	if !ss.wroteHeaders {
		return errors.New("http2: response end before headers")
	}
	if t == nil || t.Len() == 0 {
		if _, err := ss.writeData(nil, true, &ss.sw); err != nil {
			return err
		}
		return ss.c.flush()
	}
	c := ss.c
	c.mu.Lock()
	if err := ss.sendErrLocked(); err != nil {
		c.mu.Unlock()
		return err
	}
	c.enc.trailers(t)
	c.appendHeaders(ss.id, c.enc.block(), true)
	ss.activity++
	c.sentEndLocked(&ss.stream)
	err := c.flushLocked(false)
	c.mu.Unlock()
	return err
}

// Reset ends the stream with RST_STREAM code (if it is still open).
func (ss *ServerStream) Reset(code ErrCode) {
	c := ss.c
	c.mu.Lock()
	c.resetStreamLocked(&ss.stream, code, nil)
	c.mu.Unlock()
	c.flush()
}

// ResetSignal returns a channel that receives a token when the stream is
// reset or its connection ends: one waiter may select on it (a proxy
// waiting for its upstream) instead of on Done, which allocates.
func (ss *ServerStream) ResetSignal() <-chan struct{} { return ss.resetSig }

// IdleTimedOut reports whether the stream was reset for its idle timeout.
func (ss *ServerStream) IdleTimedOut() bool {
	ss.c.mu.Lock()
	defer ss.c.mu.Unlock()
	return ss.idleTimedOut
}

// Deadline implements context.Context: no deadline.
func (ss *ServerStream) Deadline() (time.Time, bool) { return time.Time{}, false }

// Done implements context.Context.
func (ss *ServerStream) Done() <-chan struct{} {
	ss.c.mu.Lock()
	defer ss.c.mu.Unlock()
	if ss.done == nil {
		if ss.err != nil {
			ss.done = closedChan
		} else {
			ss.done = make(chan struct{})
		}
	}
	return ss.done
}

// Err implements context.Context: context.Canceled once the stream ended
// abnormally.
func (ss *ServerStream) Err() error {
	ss.c.mu.Lock()
	defer ss.c.mu.Unlock()
	if ss.err != nil {
		return context.Canceled
	}
	return nil
}

// Value implements context.Context: no values.
func (ss *ServerStream) Value(any) any { return nil }

var _ context.Context = (*ServerStream)(nil)
