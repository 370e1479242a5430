package http2

import (
	"sync"
	"time"

	"github.com/weftmesh/weft/internal/proxy/headers"
)

// ClientStream is one request/response exchange of a ClientConn. Its
// receive side (ReadHeaders, Read, TakeTrailers) is used by one goroutine
// and its send side (Write, Flush, CloseSend) by one goroutine; Cancel may
// be called from any. Close releases it.
type ClientStream struct {
	stream
	cc          *ClientConn
	resp        headers.Response
	trailers    headers.Map
	head        bool // a HEAD request: content-length describes no body
	headersDone bool // the final response head arrived
	headersEnd  bool // ... with END_STREAM
	rw, sw      waiter
	closed      bool
}

var clientStreamPool = sync.Pool{New: func() any {
	cs := &ClientStream{}
	cs.cs = cs
	return cs
}}

func newClientStream(cc *ClientConn, id uint32) *ClientStream {
	cs := clientStreamPool.Get().(*ClientStream)
	cs.initStream(&cc.c, id)
	cs.cc = cc
	cs.resp.Reset()
	cs.trailers.Reset()
	cs.head, cs.headersDone, cs.headersEnd, cs.closed = false, false, false, false
	cs.rw.deadline, cs.rw.cancel = time.Time{}, nil
	cs.sw.deadline, cs.sw.cancel = time.Time{}, nil
	cs.refs++ // the caller's, until Close
	return cs
}

// recycle returns the stream to its pool (every reference is gone).
func (cs *ClientStream) recycle() {
	cs.cc = nil
	cs.c = nil
	cs.rw.cancel, cs.sw.cancel = nil, nil
	clientStreamPool.Put(cs)
}

// ID returns the stream identifier.
func (cs *ClientStream) ID() uint32 { return cs.id }

// SetReadDeadline bounds ReadHeaders and Read: past t they fail with
// ErrTimeout and the stream is reset (RST_STREAM CANCEL). Zero: none.
func (cs *ClientStream) SetReadDeadline(t time.Time) { cs.rw.deadline = t }

// SetWriteDeadline bounds the waits of Write and CloseSend for the
// server's flow-control window, like SetReadDeadline.
func (cs *ClientStream) SetWriteDeadline(t time.Time) { cs.sw.deadline = t }

// CancelOn makes the receive side's waits also end, with ErrCanceled and a
// reset of the stream, when sig receives a value (the reset signal of the
// downstream stream a proxy serves). Set it before reading.
func (cs *ClientStream) CancelOn(sig <-chan struct{}) { cs.rw.cancel = sig }

// ReadHeaders waits for the final response head and exchanges dst with it
// (dst's previous storage is reused by the stream; no header byte is
// copied). endStream reports a response without body (HEADERS with
// END_STREAM, e.g. a gRPC trailers-only response).
func (cs *ClientStream) ReadHeaders(dst *headers.Response) (endStream bool, err error) {
	c := cs.c
	c.mu.Lock()
	for !cs.headersDone {
		if err := cs.recvErrLocked(); err != nil {
			c.mu.Unlock()
			return false, err
		}
		cs.recvWaiting = true
		c.mu.Unlock()
		err := cs.rw.wait(cs.recvWake)
		c.mu.Lock()
		cs.recvWaiting = false
		if err != nil {
			c.mu.Unlock()
			cs.abort(err)
			return false, err
		}
	}
	*dst, cs.resp = cs.resp, *dst
	end := cs.headersEnd
	c.mu.Unlock()
	return end, nil
}

// recvErrLocked returns why no response will come.
func (cs *ClientStream) recvErrLocked() error {
	if cs.err != nil {
		return cs.err
	}
	return cs.c.err
}

// Read reads the response body; io.EOF at its end (trailers are then
// available with TakeTrailers).
func (cs *ClientStream) Read(p []byte) (int, error) {
	if !cs.headersDone {
		return 0, errNotHeaders
	}
	n, err := cs.read(p, &cs.rw)
	if err == ErrTimeout || err == ErrCanceled {
		cs.abort(err)
	}
	return n, err
}

// Buffered returns the body bytes received and not yet read, and whether
// the body has ended (Read returns them, then io.EOF, without blocking).
func (cs *ClientStream) Buffered() (n int, ended bool) {
	cs.c.mu.Lock()
	defer cs.c.mu.Unlock()
	return cs.recv.Len(), cs.recvEnd
}

// TakeTrailers exchanges dst with the response trailers once Read returned
// io.EOF (dst is left empty when there were none).
func (cs *ClientStream) TakeTrailers(dst *headers.Map) {
	cs.c.mu.Lock()
	defer cs.c.mu.Unlock()
	if !cs.recvEnd {
		return
	}
	*dst, cs.trailers = cs.trailers, *dst
	cs.trailers.Reset()
}

// Write sends request body bytes, waiting for the server's flow-control
// window; frames are buffered until Flush (or enough is buffered).
func (cs *ClientStream) Write(p []byte) (int, error) {
	n, err := cs.writeData(p, false, &cs.sw)
	if err == ErrTimeout || err == ErrCanceled {
		cs.abort(err)
	}
	return n, err
}

// Flush writes what is buffered to the connection.
func (cs *ClientStream) Flush() error { return cs.c.flush() }

// CloseSend ends the request, with trailers when t is non-nil and not
// empty, and flushes.
func (cs *ClientStream) CloseSend(t *headers.Map) error {
	var err error
	if t != nil && t.Len() > 0 {
		err = cs.writeTrailers(t)
	} else {
		_, err = cs.writeData(nil, true, &cs.sw)
	}
	if err != nil {
		return err
	}
	return cs.c.flush()
}

// writeTrailers appends the request trailers, ending the stream.
func (cs *ClientStream) writeTrailers(t *headers.Map) error {
	c := cs.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := cs.sendErrLocked(); err != nil {
		return err
	}
	c.enc.trailers(t)
	c.appendHeaders(cs.id, c.enc.block(), true)
	c.sentEndLocked(&cs.stream)
	return nil
}

// abort resets the stream with CANCEL after a timeout or cancellation;
// err is what its operations return from now on.
func (cs *ClientStream) abort(err error) {
	c := cs.c
	c.mu.Lock()
	c.resetStreamLocked(&cs.stream, ErrCodeCancel, err)
	c.mu.Unlock()
	c.flush()
}

// Cancel resets the stream (RST_STREAM CANCEL) unless both sides already
// ended; operations in progress return ErrCanceled.
func (cs *ClientStream) Cancel() { cs.abort(ErrCanceled) }

// Close releases the stream, resetting it first when it is still open.
// The stream must not be used afterwards.
func (cs *ClientStream) Close() {
	c := cs.c
	c.mu.Lock()
	if cs.closed {
		c.mu.Unlock()
		return
	}
	cs.closed = true
	open := cs.inMap
	if open {
		c.resetStreamLocked(&cs.stream, ErrCodeCancel, ErrCanceled)
	}
	c.releaseLocked(&cs.stream)
	c.mu.Unlock()
	if open {
		c.flush()
	}
}
