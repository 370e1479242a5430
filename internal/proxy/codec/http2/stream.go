package http2

import (
	"io"
	"time"
)

// Pending wake bits (stream.wake).
const (
	wakeRecv uint8 = 1 << iota
	wakeSend
)

// stream is the state both roles keep for a stream: flow control in both
// directions, the received body, and how its two sides ended. Fields are
// guarded by c.mu. A stream object is pooled by its role (ServerStream,
// ClientStream embed it); refs counts its holders: the connection's stream
// table, the application, and the reader's pending-wake list. It returns to
// its pool when the last one lets go.
type stream struct {
	c    *conn
	id   uint32
	ss   *ServerStream // the role object embedding this stream
	cs   *ClientStream
	refs int

	inMap   bool
	recvEnd bool  // END_STREAM received
	sentEnd bool  // END_STREAM sent
	err     error // why the stream ended abnormally (reset, connection)

	recv    dataBuf
	inflow  int64 // what the peer may still send
	unacked int64 // consumed bytes not yet returned with WINDOW_UPDATE
	declLen int64 // content-length received, -1 when absent
	recvLen int64 // body bytes received
	outflow int64 // what this endpoint may still send (may be negative)

	recvWaiting, sendWaiting bool
	wake                     uint8 // pending wakes, see conn.queueWakeLocked

	activity, seenActivity uint32 // activity counter and its value at the last tick
	idleTicks              int

	recvWake chan struct{} // one-token signals to the receiving and sending goroutines
	sendWake chan struct{}
}

// initStream prepares a pooled stream for a new use on c.
func (st *stream) initStream(c *conn, id uint32) {
	if st.recvWake == nil {
		st.recvWake = make(chan struct{}, 1)
		st.sendWake = make(chan struct{}, 1)
	}
	drain(st.recvWake)
	drain(st.sendWake)
	st.c, st.id, st.refs = c, id, 0
	st.inMap, st.recvEnd, st.sentEnd, st.err = false, false, false, nil
	st.recv.reset()
	st.inflow, st.unacked = c.o.streamWindow, 0
	st.declLen, st.recvLen = -1, 0
	st.outflow = c.peer.initWindow
	st.recvWaiting, st.sendWaiting, st.wake = false, false, 0
	st.activity, st.seenActivity, st.idleTicks = 0, 0, 0
}

func drain(ch chan struct{}) {
	select {
	case <-ch:
	default:
	}
}

// notify gives ch its token without blocking.
func notify(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// addStreamLocked enters st in the stream table.
func (c *conn) addStreamLocked(st *stream) {
	c.streams[st.id] = st
	st.inMap = true
	st.refs++
}

// removeStreamLocked takes st out of the stream table. Body bytes still
// buffered will never be read: they are returned to the connection window.
func (c *conn) removeStreamLocked(st *stream, reset bool) {
	if !st.inMap {
		return
	}
	delete(c.streams, st.id)
	st.inMap = false
	c.streamEnded = true
	c.rememberClosed(st.id, reset)
	if n := st.recv.Len(); n > 0 && st.err != nil {
		st.recv.reset()
		c.returnConnLocked(int64(n))
	}
	if c.srv != nil {
		c.srv.streamClosedLocked()
	} else {
		c.cli.streamClosedLocked()
	}
	c.releaseLocked(st)
}

// releaseLocked drops one reference to st.
func (c *conn) releaseLocked(st *stream) {
	if st.refs--; st.refs > 0 {
		return
	}
	if st.ss != nil {
		st.ss.recycle()
	} else {
		st.cs.recycle()
	}
}

// closeIfDoneLocked removes a stream whose both sides ended.
func (c *conn) closeIfDoneLocked(st *stream) {
	if st.recvEnd && st.sentEnd && st.err == nil {
		c.removeStreamLocked(st, false)
	}
}

// resetStreamLocked ends st with RST_STREAM code; err (or a *StreamError
// when nil) is what its operations return from now on.
func (c *conn) resetStreamLocked(st *stream, code ErrCode, err error) {
	if !st.inMap {
		return
	}
	if c.err == nil {
		c.fr.WriteRSTStream(st.id, code)
	}
	if err == nil {
		err = &StreamError{StreamID: st.id, Code: code}
	}
	c.endStreamLocked(st, err, true)
}

// endStreamLocked fails st with err, wakes its goroutines and removes it.
func (c *conn) endStreamLocked(st *stream, err error, reset bool) {
	if st.err == nil {
		st.err = err
	}
	notify(st.recvWake)
	notify(st.sendWake)
	if st.ss != nil {
		st.ss.signalReset()
	}
	c.removeStreamLocked(st, reset)
}

// resetIDLocked sends RST_STREAM for a stream that is not in the table.
func (c *conn) resetIDLocked(id uint32, code ErrCode) {
	c.fr.WriteRSTStream(id, code)
	c.rememberClosed(id, true)
}

// queueWakeLocked records that st's receiving or sending goroutine must be
// woken at the end of the read batch (reader goroutine only). Wakes are
// batched so that a goroutine woken by a read finds everything that read
// brought (a response's HEADERS, DATA and trailers at once).
func (c *conn) queueWakeLocked(st *stream, bit uint8) {
	if bit == wakeRecv && !st.recvWaiting || bit == wakeSend && !st.sendWaiting {
		return
	}
	if st.wake == 0 {
		c.pending = append(c.pending, st)
		st.refs++
	}
	st.wake |= bit
}

// wakePendingLocked delivers the batched wakes.
func (c *conn) wakePendingLocked() {
	for i, st := range c.pending {
		if st.wake&wakeRecv != 0 {
			notify(st.recvWake)
		}
		if st.wake&wakeSend != 0 {
			notify(st.sendWake)
		}
		st.wake = 0
		c.pending[i] = nil
		c.releaseLocked(st)
	}
	c.pending = c.pending[:0]
}

// returnConnLocked returns n consumed bytes to the connection window,
// sending WINDOW_UPDATE once half of it is consumed.
func (c *conn) returnConnLocked(n int64) bool {
	c.inUnacked += n
	if c.inUnacked < c.o.connWindow/2 || c.err != nil {
		return false
	}
	c.fr.WriteWindowUpdate(0, uint32(c.inUnacked))
	c.inflow += c.inUnacked
	c.inUnacked = 0
	return true
}

// returnStreamLocked returns n consumed bytes to st's window (while the
// peer may still send), sending WINDOW_UPDATE once half of it is consumed.
func (c *conn) returnStreamLocked(st *stream, n int64) bool {
	if st.recvEnd || !st.inMap {
		return false
	}
	st.unacked += n
	if st.unacked < c.o.streamWindow/2 || c.err != nil {
		return false
	}
	c.fr.WriteWindowUpdate(st.id, uint32(st.unacked))
	st.inflow += st.unacked
	st.unacked = 0
	return true
}

// waiter waits for a stream's token with an optional deadline and cancel
// signal. Only client streams set them; server streams end through resets.
type waiter struct {
	deadline time.Time
	timer    *time.Timer
	cancel   <-chan struct{}
}

func (w *waiter) wait(ch chan struct{}) error {
	if w.deadline.IsZero() && w.cancel == nil {
		<-ch
		return nil
	}
	var expired <-chan time.Time
	if !w.deadline.IsZero() {
		d := time.Until(w.deadline)
		if d <= 0 {
			return ErrTimeout
		}
		if w.timer == nil {
			w.timer = time.NewTimer(d)
		} else {
			w.timer.Reset(d)
		}
		defer w.timer.Stop()
		expired = w.timer.C
	}
	select {
	case <-ch:
		return nil
	case <-expired:
		return ErrTimeout
	case <-w.cancel:
		return ErrCanceled
	}
}

// read copies received body bytes into p, waiting for them; io.EOF once the
// body ended and was read. A stream that failed reports its error, except
// that a body the peer completed is still delivered.
func (st *stream) read(p []byte, w *waiter) (int, error) {
	c := st.c
	c.mu.Lock()
	for {
		if st.err != nil && !st.recvEnd {
			err := st.err
			c.mu.Unlock()
			return 0, err
		}
		if st.recv.Len() > 0 {
			n := st.recv.read(p)
			st.activity++
			more := c.returnStreamLocked(st, int64(n))
			more = c.returnConnLocked(int64(n)) || more
			c.mu.Unlock()
			if more {
				c.flush()
			}
			return n, nil
		}
		if st.recvEnd {
			c.mu.Unlock()
			return 0, io.EOF
		}
		if err := c.err; err != nil {
			c.mu.Unlock()
			return 0, err
		}
		st.recvWaiting = true
		c.mu.Unlock()
		err := w.wait(st.recvWake)
		c.mu.Lock()
		st.recvWaiting = false
		if err != nil {
			c.mu.Unlock()
			return 0, err
		}
	}
}

// sendErrLocked returns why st can send nothing more, or nil.
func (st *stream) sendErrLocked() error {
	switch {
	case st.err != nil:
		return st.err
	case st.sentEnd:
		return ErrStreamClosed
	case st.c.err != nil:
		return st.c.err
	}
	return nil
}

// writeData sends p as DATA frames, as the flow-control windows allow,
// waiting for WINDOW_UPDATEs when they are closed (what is buffered is
// flushed first, so the peer can answer). end marks the last frame
// END_STREAM. Frames are only buffered: the caller flushes.
func (st *stream) writeData(p []byte, end bool, w *waiter) (int, error) {
	c := st.c
	n := 0
	c.mu.Lock()
	for {
		if err := st.sendErrLocked(); err != nil {
			c.mu.Unlock()
			return n, err
		}
		if len(p) == 0 {
			if end {
				c.appendData(st.id, true, nil)
				c.sentEndLocked(st)
			}
			c.mu.Unlock()
			return n, nil
		}
		avail := min(st.outflow, c.outflow, int64(c.peer.maxFrame), int64(len(p)))
		if avail <= 0 {
			st.sendWaiting = true
			c.flushLocked(false)
			c.mu.Unlock()
			err := w.wait(st.sendWake)
			c.mu.Lock()
			st.sendWaiting = false
			if err != nil {
				c.mu.Unlock()
				return n, err
			}
			continue
		}
		k := int(avail)
		last := end && k == len(p)
		c.appendData(st.id, last, p[:k])
		st.outflow -= avail
		c.outflow -= avail
		st.activity++
		n += k
		p = p[k:]
		if last {
			c.sentEndLocked(st)
			c.mu.Unlock()
			return n, nil
		}
		if len(c.wbuf) >= flushThreshold {
			c.flushLocked(true)
		}
	}
}

// sentEndLocked records that END_STREAM went out on st.
func (c *conn) sentEndLocked(st *stream) {
	st.sentEnd = true
	if st.ss != nil && !st.recvEnd {
		// The response is complete while the request is not: ask the
		// client to stop sending (RFC 9113 §8.1, RST_STREAM NO_ERROR).
		c.resetStreamLocked(st, ErrCodeNo, ErrStreamClosed)
		return
	}
	c.closeIfDoneLocked(st)
}
