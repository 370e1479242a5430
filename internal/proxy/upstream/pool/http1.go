package pool

import (
	"errors"
	"net"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"github.com/weftmesh/weft/internal/proxy/codec/http1"
)

// staleCheckAfter is how long a connection may sit idle before Acquire
// checks, with one non-blocking peek (a system call), that the upstream has
// not closed it meanwhile. Envoy's event loop sees an idle connection's FIN
// at once and never sends on it; weft looks when it reuses the connection.
// Upstreams close idle connections after their keep-alive timeout (seconds
// in common servers), so a connection reused sooner than this is almost
// always alive, and busy pools pay nothing. A close that races with the
// reuse is still possible: the router replays a bodiless request then (see
// H1Conn.Reused); a request whose body was sent fails with 503 UC, as it
// would with Envoy when the FIN arrives after the request left.
const staleCheckAfter = 100 * time.Millisecond

// H1 is the HTTP/1.1 connection pool of one host. Safe for concurrent use.
type H1 struct {
	o     Options
	codec http1.Options

	mu      sync.Mutex
	idle    []*H1Conn // LIFO: the most recently used is reused first
	waiters []chan grant
	closed  bool
	// draining: no connection goes back to the idle list (see Drain).
	draining bool
}

// grant is what a pending request receives: a connection to use, or the
// right (a connection slot already reserved) to dial one.
type grant struct {
	c    *H1Conn
	slot bool
}

// NewH1 returns an empty pool.
func NewH1(o Options, codec http1.Options) *H1 {
	return &H1{o: o, codec: codec}
}

// H1Conn is one pooled HTTP/1.1 connection. It embeds the codec; the router
// writes the request and reads the response through it, then calls Release.
type H1Conn struct {
	*http1.Conn
	nc       net.Conn
	pool     *H1
	rc       syscall.RawConn
	peek     func(fd uintptr)
	peekN    int
	peekErr  error
	peekBuf  [1]byte
	lastUsed time.Time
	requests int
	// Identity is what the connection's TLS handshake proved (read-only).
	Identity Identity
	// Reused is true when the connection served an earlier request. A
	// request on a reused connection that fails before any response byte
	// arrived may be replayed on a new connection if it had no body.
	Reused bool
}

// NetConn returns the socket.
func (c *H1Conn) NetConn() net.Conn { return c.nc }

// Acquire returns a connection for one request, reusing an idle one when it
// can. deadline bounds the wait and the connect (zero: the connect timeout
// only).
func (p *H1) Acquire(deadline time.Time) (*H1Conn, error) {
	now := time.Now()
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, ErrClosed
	}
	for len(p.idle) > 0 {
		c := p.idle[len(p.idle)-1]
		p.idle[len(p.idle)-1] = nil
		p.idle = p.idle[:len(p.idle)-1]
		idleFor := now.Sub(c.lastUsed)
		if p.o.IdleTimeout > 0 && idleFor > p.o.IdleTimeout || idleFor > staleCheckAfter && !c.alive() {
			p.mu.Unlock()
			c.destroy()
			p.mu.Lock()
			continue
		}
		p.mu.Unlock()
		return c, nil
	}
	if p.o.Breakers.TryConnection() {
		p.mu.Unlock()
		return p.dial(deadline)
	}
	// At max_connections: wait as a pending request if allowed.
	if !p.o.Breakers.TryPending() {
		p.mu.Unlock()
		p.o.Stats.CxOverflow.Inc()
		p.o.Stats.RqPendingOverflw.Inc()
		return nil, ErrOverflow
	}
	p.o.Stats.CxOverflow.Inc()
	p.o.Stats.RqPendingTotal.Inc()
	p.o.Stats.RqPendingActive.Inc()
	ch := make(chan grant, 1)
	p.waiters = append(p.waiters, ch)
	p.mu.Unlock()
	defer func() {
		p.o.Breakers.ReleasePending()
		p.o.Stats.RqPendingActive.Dec()
	}()
	var timeout <-chan time.Time
	if !deadline.IsZero() {
		t := time.NewTimer(time.Until(deadline))
		defer t.Stop()
		timeout = t.C
	}
	select {
	case g := <-ch:
		return p.take(g, deadline)
	case <-timeout:
		p.mu.Lock()
		for i, w := range p.waiters {
			if w == ch {
				p.waiters = append(p.waiters[:i], p.waiters[i+1:]...)
				p.mu.Unlock()
				return nil, ErrTimeout
			}
		}
		p.mu.Unlock()
		// A grant raced with the timeout: hand it back.
		g := <-ch
		if g.c != nil {
			g.c.Release(true)
		} else {
			p.o.Breakers.ReleaseConnection()
			p.wakeForSlot()
		}
		return nil, ErrTimeout
	}
}

func (p *H1) take(g grant, deadline time.Time) (*H1Conn, error) {
	if g.c != nil {
		return g.c, nil
	}
	if g.slot {
		return p.dial(deadline)
	}
	return nil, ErrClosed
}

// dial makes a new connection; the caller holds a connection slot.
func (p *H1) dial(deadline time.Time) (*H1Conn, error) {
	nc, err := p.o.dial(deadline)
	if err != nil {
		p.o.Breakers.ReleaseConnection()
		p.wakeForSlot()
		return nil, err
	}
	p.o.Stats.CxHTTP1Total.Inc()
	c := &H1Conn{Conn: http1.NewConn(nc, p.codec), nc: nc, pool: p, Identity: p.o.identityOf(nc)}
	raw := nc
	if tc, ok := nc.(interface{ NetConn() net.Conn }); ok {
		// TLS: the liveness peek looks at the socket under the TLS
		// connection (a close_notify or FIN shows there as well).
		raw = tc.NetConn()
	}
	if sc, ok := raw.(syscall.Conn); ok {
		if rc, err := sc.SyscallConn(); err == nil {
			c.rc = rc
			c.peek = c.peekFn
		}
	}
	return c, nil
}

// peekFn runs on the raw socket: a non-blocking MSG_PEEK of one byte,
// as a bare recvfrom(2) (syscall.Recvfrom would also decode a source
// address a connected socket does not have).
func (c *H1Conn) peekFn(fd uintptr) {
	n, _, errno := syscall.RawSyscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&c.peekBuf[0])), 1,
		syscall.MSG_PEEK|syscall.MSG_DONTWAIT, 0, 0)
	c.peekN, c.peekErr = int(n), nil
	if errno != 0 {
		c.peekN, c.peekErr = -1, errno
	}
}

// alive reports whether an idle connection is still open and has no
// unsolicited bytes waiting: the peek must find nothing to read (EAGAIN).
func (c *H1Conn) alive() bool {
	if c.Buffered() > 0 {
		return false
	}
	if c.rc == nil {
		return true
	}
	// Control, not Read: the peek never blocks, so it needs no poller
	// wait, only the descriptor kept open while it runs.
	if err := c.rc.Control(c.peek); err != nil {
		return false
	}
	return c.peekN < 0 && errors.Is(c.peekErr, syscall.EAGAIN)
}

// Release gives the connection back after a request. reuse says whether
// the exchange ended cleanly (response fully read, request fully written,
// keep-alive on both sides); otherwise the connection is closed.
func (c *H1Conn) Release(reuse bool) {
	p := c.pool
	c.requests++
	c.Reused = true
	if max := p.o.MaxRequestsPerConnection; max > 0 && c.requests >= max {
		reuse = false
	}
	if !reuse {
		c.destroy()
		return
	}
	c.lastUsed = time.Now()
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		c.destroy()
		return
	}
	if len(p.waiters) > 0 {
		w := p.waiters[0]
		p.waiters = p.waiters[1:]
		p.mu.Unlock()
		w <- grant{c: c}
		return
	}
	if p.draining {
		p.mu.Unlock()
		c.destroy()
		return
	}
	p.idle = append(p.idle, c)
	p.mu.Unlock()
}

// destroy closes the connection and frees its slot, passing the slot to a
// pending request of this pool if there is one.
func (c *H1Conn) destroy() {
	c.nc.Close()
	c.Conn.Release()
	p := c.pool
	p.o.Stats.CxActive.Dec()
	p.o.Stats.HostCxActive.Dec()
	p.o.Stats.CxDestroy.Inc()
	p.mu.Lock()
	if len(p.waiters) > 0 && !p.closed {
		w := p.waiters[0]
		p.waiters = p.waiters[1:]
		p.mu.Unlock()
		w <- grant{slot: true} // the slot moves to the waiter
		return
	}
	p.mu.Unlock()
	p.o.Breakers.ReleaseConnection()
}

// wakeForSlot gives a freed connection slot to a pending request, if any
// (and if the breaker grants it).
func (p *H1) wakeForSlot() {
	p.mu.Lock()
	if len(p.waiters) == 0 || p.closed {
		p.mu.Unlock()
		return
	}
	if !p.o.Breakers.TryConnection() {
		p.mu.Unlock()
		return
	}
	w := p.waiters[0]
	p.waiters = p.waiters[1:]
	p.mu.Unlock()
	w <- grant{slot: true}
}

// IdleCount returns the number of idle connections.
func (p *H1) IdleCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.idle)
}

// Drain retires the pool without failing a request: idle connections
// close now and connections in use close when released, except that a
// pending request still gets the connection released to it. A request that
// acquires after Drain (its host was picked just before it was removed)
// gets a new connection, closed after its request. Envoy drains the pools
// of removed hosts and clusters the same way.
func (p *H1) Drain() {
	p.mu.Lock()
	p.draining = true
	idle := p.idle
	p.idle = nil
	p.mu.Unlock()
	for _, c := range idle {
		c.destroy()
	}
}

// Close closes idle connections and fails pending requests; connections in
// use close when released.
func (p *H1) Close() {
	p.mu.Lock()
	p.closed = true
	idle := p.idle
	p.idle = nil
	waiters := p.waiters
	p.waiters = nil
	p.mu.Unlock()
	for _, c := range idle {
		c.destroy()
	}
	for _, w := range waiters {
		w <- grant{}
	}
}
