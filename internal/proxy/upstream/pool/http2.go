package pool

import (
	"sync"
	"time"

	h2codec "github.com/weftmesh/weft/internal/proxy/codec/http2"
)

// H2Options are the HTTP/2 settings of a cluster's upstream connections
// (Envoy's http2_protocol_options).
type H2Options struct {
	// MaxConcurrentStreams caps streams per connection on our side; the
	// server's SETTINGS_MAX_CONCURRENT_STREAMS also applies. 0: no own cap.
	MaxConcurrentStreams uint32
	// InitialStreamWindowSize and InitialConnectionWindowSize are the flow
	// control windows we advertise (0 keeps the codec's defaults, 4 MiB
	// and 1 GiB; Envoy's are 256 MiB).
	InitialStreamWindowSize     uint32
	InitialConnectionWindowSize uint32
}

// H2 is the HTTP/2 connection pool of one host: streams are multiplexed
// over as few connections as the streams limits allow, on weft's own
// HTTP/2 client (codec/http2). Safe for concurrent use.
//
// As Envoy's HTTP/2 pool does, a connection that is still being
// established counts as capacity: requests that arrive meanwhile wait for
// it instead of dialing connections of their own, so a burst on a cold pool
// opens one connection, not one per request. A connection is established
// once the server's SETTINGS arrived, so its stream limit is known: the
// cluster's max_concurrent_streams, lowered to the server's
// SETTINGS_MAX_CONCURRENT_STREAMS. Past it a new connection is opened.
type H2 struct {
	o   Options
	opt H2Options

	mu      sync.Mutex
	conns   []*H2Conn
	dialing *h2Dial // the connection being established, if any
	closed  bool
	// draining: connections shut down gracefully once they carry no
	// stream (see Drain).
	draining bool
}

// h2Dial is a connection being established and the requests waiting for
// it.
type h2Dial struct {
	done    chan struct{} // closed when the dial ended
	err     error         // the dial's error, once done
	waiters int           // requests attached, besides the dialer's own
}

// H2Conn is one pooled HTTP/2 connection.
type H2Conn struct {
	*h2codec.ClientConn
	// Identity is what the connection's TLS handshake proved (read-only).
	Identity Identity
	pool     *H2
	streams  int // in flight or reserved, under pool.mu
	dead     bool
	retired  bool // shut down by a drain, under pool.mu
}

// NewH2 returns an empty pool.
func NewH2(o Options, opt H2Options) *H2 {
	return &H2{o: o, opt: opt}
}

// Acquire reserves a stream on a connection, waiting for the connection
// being established or dialing a new one when every existing connection is
// at its stream limit. deadline bounds the wait and the connect (zero: the
// connect timeout only). The caller must call Done on the returned
// connection when the stream ends.
func (p *H2) Acquire(deadline time.Time) (*H2Conn, error) {
	for {
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			return nil, ErrClosed
		}
		if c := p.pickLocked(); c != nil {
			p.mu.Unlock()
			return c, nil
		}
		if d := p.dialing; d != nil && (p.opt.MaxConcurrentStreams == 0 || d.waiters+1 < int(p.opt.MaxConcurrentStreams)) {
			d.waiters++
			p.mu.Unlock()
			if err := d.wait(deadline); err != nil {
				return nil, err
			}
			continue // the new connection is in p.conns now
		}
		if !p.o.Breakers.TryConnection() {
			p.mu.Unlock()
			p.o.Stats.CxOverflow.Inc()
			return nil, ErrOverflow
		}
		d := &h2Dial{done: make(chan struct{})}
		p.dialing = d
		p.mu.Unlock()
		c, err := p.connect(deadline)
		p.mu.Lock()
		if p.dialing == d {
			p.dialing = nil
		}
		d.err = err
		close(d.done)
		p.mu.Unlock()
		return c, err
	}
}

// wait waits for the dial to end. A failed dial fails every request that
// waited for it, as Envoy fails the pending requests of a connection that
// could not be established.
func (d *h2Dial) wait(deadline time.Time) error {
	if deadline.IsZero() {
		<-d.done
		return d.err
	}
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	select {
	case <-d.done:
		return d.err
	case <-t.C:
		return ErrTimeout
	}
}

// pickLocked reserves a stream on the first connection with room, dropping
// connections that can take no more streams.
func (p *H2) pickLocked() *H2Conn {
	for i := 0; i < len(p.conns); i++ {
		c := p.conns[i]
		if c.dead || !c.CanOpen() {
			p.removeLocked(i)
			i--
			continue
		}
		if limit := p.streamLimit(c); limit > 0 && c.streams >= limit {
			continue
		}
		c.streams++
		return c
	}
	return nil
}

// streamLimit is a connection's stream limit: the cluster's
// max_concurrent_streams and the server's SETTINGS_MAX_CONCURRENT_STREAMS,
// whichever is lower; 0 means no limit.
func (p *H2) streamLimit(c *H2Conn) int {
	limit := int64(p.opt.MaxConcurrentStreams)
	if peer := int64(c.PeerMaxConcurrentStreams()); peer < 1<<31 && (limit == 0 || peer < limit) {
		limit = peer
	}
	return int(limit)
}

// connect dials a new connection (its connection slot is already taken),
// runs the HTTP/2 handshake, adds it to the pool and reserves the caller's
// stream on it.
func (p *H2) connect(deadline time.Time) (*H2Conn, error) {
	nc, err := p.o.dial(deadline)
	if err != nil {
		p.o.Breakers.ReleaseConnection()
		return nil, err
	}
	timeout := p.o.ConnectTimeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	hd := time.Now().Add(timeout)
	if !deadline.IsZero() && deadline.Before(hd) {
		hd = deadline
	}
	cc, err := h2codec.NewClientConn(nc, h2codec.ClientOptions{
		InitialStreamWindowSize:     p.opt.InitialStreamWindowSize,
		InitialConnectionWindowSize: p.opt.InitialConnectionWindowSize,
		IdleTimeout:                 p.o.IdleTimeout,
		HandshakeDeadline:           hd,
	})
	if err != nil {
		p.o.closed()
		return nil, &ConnectError{Addr: nc.RemoteAddr().String(), Err: err}
	}
	p.o.Stats.CxHTTP2Total.Inc()
	c := &H2Conn{ClientConn: cc, Identity: p.o.identityOf(nc), pool: p, streams: 1}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		cc.Close()
		<-cc.Done()
		p.o.closed()
		return nil, ErrClosed
	}
	p.conns = append(p.conns, c)
	p.mu.Unlock()
	go c.watch()
	return c, nil
}

// watch releases the connection slot when the connection ends.
func (c *H2Conn) watch() {
	<-c.ClientConn.Done()
	p := c.pool
	p.mu.Lock()
	for i, x := range p.conns {
		if x == c {
			p.removeLocked(i)
			break
		}
	}
	p.mu.Unlock()
	p.o.closed()
}

// Done ends a stream started on the connection.
func (c *H2Conn) Done() {
	p := c.pool
	p.mu.Lock()
	c.streams--
	retire := p.draining && c.streams == 0 && !c.retired
	c.retired = c.retired || retire
	p.mu.Unlock()
	if retire {
		go c.shutdown()
	}
}

// drainBound bounds how long a draining connection waits for its streams
// before it is closed (their route timeouts normally end them sooner).
const drainBound = 5 * time.Minute

// shutdown closes the connection gracefully: no new stream, GOAWAY and
// close once its streams are done (or after drainBound).
func (c *H2Conn) shutdown() {
	c.Shutdown()
	t := time.NewTimer(drainBound)
	defer t.Stop()
	select {
	case <-c.ClientConn.Done():
	case <-t.C:
		c.Close()
	}
}

// Drain retires the pool without failing a request: every connection is
// shut down gracefully (streams in flight finish, then it closes). A
// request that acquires after Drain (its host was picked just before it was
// removed) gets a new connection, shut down once its streams are done.
// Envoy drains the pools of removed hosts and clusters the same way.
func (p *H2) Drain() {
	p.mu.Lock()
	p.draining = true
	conns := p.conns
	p.conns = nil
	for _, c := range conns {
		c.retired = true
	}
	p.mu.Unlock()
	for _, c := range conns {
		go c.shutdown()
	}
}

// MarkDead stops new streams from using the connection (after a protocol
// error).
func (c *H2Conn) MarkDead() {
	c.pool.mu.Lock()
	c.dead = true
	c.pool.mu.Unlock()
}

func (p *H2) removeLocked(i int) {
	copy(p.conns[i:], p.conns[i+1:])
	p.conns[len(p.conns)-1] = nil
	p.conns = p.conns[:len(p.conns)-1]
}

// Close closes every connection at once; streams in flight on them fail.
// Drain is the graceful way.
func (p *H2) Close() {
	p.mu.Lock()
	p.closed = true
	conns := p.conns
	p.conns = nil
	p.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
}
