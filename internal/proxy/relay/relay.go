// Package relay copies bytes both ways between two connections until both
// directions end, for the TCP proxy and for upgraded HTTP/1 connections
// (WebSocket tunnels). A direction that reaches EOF half-closes its
// destination, so each peer sees the other's FIN; an optional idle timeout
// closes both connections when no byte has moved for that long.
package relay

import (
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Options configure a relay.
type Options struct {
	// IdleTimeout closes both connections when no byte has moved in either
	// direction for this long (0: never).
	IdleTimeout time.Duration
	// PendingA and PendingB are bytes already read from a and from b (a
	// codec's buffered bytes); they are delivered to the other side first.
	PendingA, PendingB []byte
}

// Result says what moved.
type Result struct {
	AToB, BToA int64 // bytes copied from a to b and from b to a
	// IdleTimedOut is set when the idle timeout ended the relay.
	IdleTimedOut bool
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// Run relays between a and b until both directions are done. It does not
// close a or b except on idle timeout; the caller closes them afterwards.
func Run(a, b net.Conn, o Options) Result {
	var idle *idleCloser
	if o.IdleTimeout > 0 {
		idle = newIdleCloser(o.IdleTimeout, a, b)
		defer idle.stop()
	}
	var r Result
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		r.AToB = copyHalf(b, a, o.PendingA, idle)
	}()
	r.BToA = copyHalf(a, b, o.PendingB, idle)
	wg.Wait()
	r.IdleTimedOut = idle.fired()
	return r
}

// copyHalf copies pending, then src, to dst until src ends, then
// half-closes dst (or closes it when it cannot half-close).
func copyHalf(dst, src net.Conn, pending []byte, idle *idleCloser) int64 {
	var total int64
	if len(pending) > 0 {
		n, err := dst.Write(pending)
		total += int64(n)
		if err != nil {
			src.Close()
			return total
		}
	}
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	for {
		n, err := src.Read(buf)
		if n > 0 {
			idle.touch()
			w, werr := dst.Write(buf[:n])
			total += int64(w)
			if werr != nil {
				break
			}
		}
		if err != nil {
			break
		}
	}
	if cw, ok := dst.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	} else {
		dst.Close()
	}
	return total
}

// idleCloser closes two connections when no byte has moved between them
// for its timeout. Reads record activity; one timer re-arms itself for the
// time left instead of moving socket deadlines on every read.
type idleCloser struct {
	timeout time.Duration
	conns   [2]net.Conn
	last    atomic.Int64 // unix nanoseconds of the last activity
	t       *time.Timer
	done    atomic.Bool
	hit     atomic.Bool
}

func newIdleCloser(d time.Duration, a, b net.Conn) *idleCloser {
	w := &idleCloser{timeout: d, conns: [2]net.Conn{a, b}}
	w.last.Store(time.Now().UnixNano())
	w.t = time.AfterFunc(d, w.check)
	return w
}

func (w *idleCloser) touch() {
	if w != nil {
		w.last.Store(time.Now().UnixNano())
	}
}

func (w *idleCloser) check() {
	if w.done.Load() {
		return
	}
	if left := time.Duration(w.last.Load() + int64(w.timeout) - time.Now().UnixNano()); left > 0 {
		w.t.Reset(left)
		return
	}
	w.hit.Store(true)
	for _, c := range w.conns {
		c.Close()
	}
}

func (w *idleCloser) fired() bool { return w != nil && w.hit.Load() }

func (w *idleCloser) stop() {
	w.done.Store(true)
	w.t.Stop()
}
