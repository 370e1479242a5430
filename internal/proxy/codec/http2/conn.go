package http2

import (
	"bufio"
	"io"
	"net"
	"sync"
	"time"

	xh2 "golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// Protocol constants (RFC 9113).
const (
	initialWindow   = 65535     // §6.9.2: initial window of streams and the connection
	maxWindow       = 1<<31 - 1 // §6.9.1
	defaultMaxFrame = 16 << 10  // §6.5.2: initial SETTINGS_MAX_FRAME_SIZE
	frameHeaderLen  = 9
	// readBufSize holds a whole frame of the size we accept plus the next
	// frame's header, so one read can bring several frames.
	readBufSize = 32 << 10
	// flushThreshold: a writer that has appended this much flushes before
	// appending more; maxPendingWrite bounds what waits while another
	// goroutine writes.
	flushThreshold  = 32 << 10
	maxPendingWrite = 256 << 10
	// lingerLimit bounds what a closing connection reads and discards.
	lingerLimit = 256 << 10
	// recentClosed is how many closed stream ids a connection remembers to
	// answer late frames correctly (§5.1).
	recentClosed = 32
)

// connOptions are the settings both roles share.
type connOptions struct {
	streamWindow  int64 // receive window advertised for each stream
	connWindow    int64 // connection receive window
	maxHeaderList int   // bound on a received header block (RFC 7541 size)
	maxHeaders    int   // bound on its number of fields
	writeTimeout  time.Duration
	delayedClose  time.Duration
	idleTimeout   time.Duration // connection without streams
	streamIdle    time.Duration // server streams without activity
}

// peerSettings are the peer's SETTINGS values in force.
type peerSettings struct {
	maxFrame   uint32
	initWindow int64
	maxStreams uint32
}

// closedID remembers a stream that closed: whether this endpoint reset it
// (late frames are then ignored, §5.1) or it ended normally.
type closedID struct {
	id    uint32
	reset bool
}

// conn is the state both roles share: the socket, the framer, the write
// buffer, the HPACK contexts, flow control and the stream table. mu guards
// everything but the fields the reader goroutine owns (br, fr reads).
type conn struct {
	nc  net.Conn
	br  *bufio.Reader
	fr  *xh2.Framer
	o   connOptions
	srv *ServerConn // the role: exactly one of srv and cli is set
	cli *ClientConn

	mu       sync.Mutex
	wcond    sync.Cond // writers waiting for the write buffer to drain
	wbuf     []byte
	spare    []byte
	writing  bool // a goroutine is writing to the socket
	werr     error
	wbase    int64     // bytes appended before wbuf's first byte
	written  int64     // bytes written to the socket
	wdl      time.Time // write deadline in force (the writer's)
	wlimit   time.Time // when set, the deadline of every write: the connection is closing
	enc      *henc
	hpayload []byte // HEADERS payload buffer (reader goroutine)
	blk      hblock // header block being decoded (reader goroutine)
	// blkReset, when blkResets is set, is the stream error to send once the
	// block being decoded ends (the block is decoded only for HPACK).
	blkReset  ErrCode
	blkResets bool

	streams     map[uint32]*stream
	closed      [recentClosed]closedID
	closedNext  int
	peer        peerSettings
	gotSettings bool
	outflow     int64     // connection send window
	inflow      int64     // what the peer may still send on the connection
	inUnacked   int64     // consumed, not yet returned with WINDOW_UPDATE
	pending     []*stream // streams to wake at the end of the read batch

	err        error // set once the connection is dead
	goAwaySent bool
	goAwayID   uint32 // last stream id our GOAWAY announced
	closing    bool   // no more frames are processed; the socket is closing

	tick      *time.Timer
	period    time.Duration
	idleTicks int
	// streamEnded: a stream ended since the last tick (the idle timeout
	// counts from the end of the last stream).
	streamEnded bool
	dead        chan struct{} // closed when the connection is fully closed
}

// init sets up the connection around nc.
func (c *conn) init(nc net.Conn, o connOptions) {
	c.nc = nc
	c.o = o
	c.br = bufio.NewReaderSize(nc, readBufSize)
	c.fr = xh2.NewFramer((*wbufWriter)(c), c.br)
	c.fr.SetReuseFrames()
	c.fr.SetMaxReadFrameSize(defaultMaxFrame)
	c.wcond.L = &c.mu
	c.wbuf = make([]byte, 0, 4<<10)
	c.enc = newHenc()
	c.blk.dec = hpack.NewDecoder(4096, c.blk.emit)
	if o.maxHeaderList > 0 {
		c.blk.dec.SetMaxStringLength(maxHeaderString(o.maxHeaderList))
	}
	c.blk.maxSize, c.blk.maxCount = o.maxHeaderList, o.maxHeaders
	c.streams = make(map[uint32]*stream)
	c.peer = peerSettings{maxFrame: defaultMaxFrame, initWindow: initialWindow, maxStreams: ^uint32(0)}
	c.outflow = initialWindow
	c.inflow = initialWindow
	c.dead = make(chan struct{})
}

// maxHeaderString bounds one decoded HPACK string (a field name or value),
// which is what the decoder buffers across fragments. It lies above the
// header list limit, so that a block with one oversized field is still
// decoded to its end and reported as too large (a 431 for a request, not a
// connection error); only a string over twice the limit (at least 64 KiB)
// fails the connection with COMPRESSION_ERROR, as x/net's server does for
// any string over its limit.
func maxHeaderString(maxHeaderList int) int {
	return max(2*maxHeaderList, 64<<10)
}

// wbufWriter is the Framer's writer: frames are appended to the write
// buffer (under c.mu) and reach the socket on flush.
type wbufWriter conn

func (w *wbufWriter) Write(p []byte) (int, error) {
	w.wbuf = append(w.wbuf, p...)
	return len(p), nil
}

// writeSettings appends this endpoint's SETTINGS and, when the connection
// window is larger than the initial one, the WINDOW_UPDATE that opens it.
func (c *conn) writeSettings(s ...xh2.Setting) {
	c.fr.WriteSettings(s...)
	if inc := c.o.connWindow - initialWindow; inc > 0 {
		c.fr.WriteWindowUpdate(0, uint32(inc))
		c.inflow += inc
	}
}

// flush writes the write buffer to the socket. When another goroutine is
// writing, that goroutine writes what was appended (it loops until the
// buffer is empty) and flush returns at once. The error is the write's
// when it failed before what the caller appended reached the socket; an
// error on later bytes is not the caller's.
func (c *conn) flush() error {
	c.mu.Lock()
	err := c.flushLocked(false)
	c.mu.Unlock()
	return err
}

// flushLocked is flush with c.mu held; it releases c.mu during the write.
// With wait set, a caller that finds another goroutine writing waits until
// the buffer is back under maxPendingWrite (back-pressure for bodies).
func (c *conn) flushLocked(wait bool) error {
	target := c.wbase + int64(len(c.wbuf))
	if c.writing {
		for wait && c.writing && len(c.wbuf) >= maxPendingWrite && c.werr == nil {
			c.wcond.Wait()
		}
		return c.errBeforeLocked(target)
	}
	c.writing = true
	for len(c.wbuf) > 0 && c.werr == nil {
		buf := c.wbuf
		c.wbuf = c.spare[:0]
		c.wbase += int64(len(buf))
		limit := c.wlimit
		c.mu.Unlock()
		c.setWriteDeadline(limit)
		n, err := c.nc.Write(buf)
		c.mu.Lock()
		c.written += int64(n)
		if cap(buf) <= 4*maxPendingWrite {
			c.spare = buf[:0]
		} else {
			c.spare = nil
		}
		if err != nil {
			c.werr = err
			// The reader ends on the closed socket and fails the streams.
			c.nc.Close()
		}
		c.wcond.Broadcast()
	}
	c.writing = false
	if c.werr != nil {
		c.wbase += int64(len(c.wbuf))
		c.wbuf = c.wbuf[:0]
	}
	c.wcond.Broadcast()
	return c.errBeforeLocked(target)
}

// errBeforeLocked returns the write error when it struck before the
// first target bytes appended were written.
func (c *conn) errBeforeLocked(target int64) error {
	if c.written >= target {
		return nil
	}
	return c.werr
}

// drainLocked writes everything appended and waits for a write in
// progress on another goroutine to end: what follows closes the socket or
// its write side. limit bounds the writes (the delayed close timeout, as
// Envoy enforces it on a connection whose write buffer is still
// flushing), and interrupts one already blocked.
func (c *conn) drainLocked(limit time.Time) {
	c.wlimit = limit
	if c.writing {
		c.nc.SetWriteDeadline(limit)
	}
	for c.werr == nil && (c.writing || len(c.wbuf) > 0) {
		if c.writing {
			c.wcond.Wait()
			continue
		}
		c.flushLocked(false)
	}
}

// setWriteDeadline moves the socket's write deadline lazily: only when it
// would move by more than a tenth of the timeout, so that steady traffic
// does not pay a timer update per write.
func (c *conn) setWriteDeadline(limit time.Time) {
	if !limit.IsZero() {
		if !c.wdl.Equal(limit) {
			c.wdl = limit
			c.nc.SetWriteDeadline(limit)
		}
		return
	}
	if c.o.writeTimeout <= 0 {
		return
	}
	want := time.Now().Add(c.o.writeTimeout)
	if want.Sub(c.wdl) < c.o.writeTimeout/10 {
		return
	}
	c.wdl = want
	c.nc.SetWriteDeadline(want)
}

// appendData appends one DATA frame. The header is written here rather than
// through the Framer so that the payload is copied once, straight into the
// write buffer.
func (c *conn) appendData(id uint32, end bool, p []byte) {
	var flags byte
	if end {
		flags = byte(xh2.FlagDataEndStream)
	}
	n := len(p)
	c.wbuf = append(c.wbuf, byte(n>>16), byte(n>>8), byte(n), byte(xh2.FrameData), flags,
		byte(id>>24), byte(id>>16), byte(id>>8), byte(id))
	c.wbuf = append(c.wbuf, p...)
}

// appendHeaders appends an encoded header block as HEADERS and, when it is
// larger than the peer's maximum frame size, CONTINUATION frames.
func (c *conn) appendHeaders(id uint32, block []byte, end bool) {
	max := int(c.peer.maxFrame)
	first := block
	if len(first) > max {
		first = first[:max]
	}
	block = block[len(first):]
	c.fr.WriteHeaders(xh2.HeadersFrameParam{StreamID: id, BlockFragment: first, EndStream: end, EndHeaders: len(block) == 0})
	for len(block) > 0 {
		frag := block
		if len(frag) > max {
			frag = frag[:max]
		}
		block = block[len(frag):]
		c.fr.WriteContinuation(id, len(block) == 0, frag)
	}
}

// goAwayLocked appends GOAWAY once, announcing the last stream this
// endpoint processes.
func (c *conn) goAwayLocked(code ErrCode) {
	if c.goAwaySent {
		return
	}
	c.goAwaySent = true
	c.goAwayID = c.lastPeerStream()
	c.fr.WriteGoAway(c.goAwayID, code, nil)
}

// lastPeerStream is the highest stream id the peer opened (server role);
// the client role processes no peer streams.
func (c *conn) lastPeerStream() uint32 {
	if c.srv != nil {
		return c.srv.maxPeerID
	}
	return 0
}

// closeWrite ends a connection gracefully: it writes what is buffered,
// half-closes the socket and lets the reader read (and discard) until the
// peer closes or the delayed close timeout passes. Closing with unread
// input would make the kernel send RST, which can destroy the last frames
// before the peer reads them (Envoy's delayed close does the same).
func (c *conn) closeWrite() {
	c.mu.Lock()
	c.drainLocked(time.Now().Add(c.o.delayedClose))
	c.mu.Unlock()
	if cw, ok := c.nc.(interface{ CloseWrite() error }); ok && cw.CloseWrite() == nil {
		c.nc.SetReadDeadline(time.Now().Add(c.o.delayedClose))
		return
	}
	c.nc.Close()
}

// startCloseLocked marks the connection closing and closes its write side
// on another goroutine (the caller holds c.mu and may be any goroutine).
func (c *conn) startCloseLocked() {
	if c.closing {
		return
	}
	c.closing = true
	go c.closeWrite()
}

// linger reads and discards input after a connection error's GOAWAY, until
// the peer closes, the delayed close timeout passes or lingerLimit bytes.
func (c *conn) linger() {
	cw, ok := c.nc.(interface{ CloseWrite() error })
	if !ok || cw.CloseWrite() != nil {
		return
	}
	c.nc.SetReadDeadline(time.Now().Add(c.o.delayedClose))
	io.Copy(io.Discard, io.LimitReader(c.br, lingerLimit))
}

// rememberClosed records a closed stream id.
func (c *conn) rememberClosed(id uint32, reset bool) {
	c.closed[c.closedNext] = closedID{id: id, reset: reset}
	c.closedNext = (c.closedNext + 1) % recentClosed
}

// recentlyClosed reports whether id closed recently and whether this
// endpoint reset it.
func (c *conn) recentlyClosed(id uint32) (found, reset bool) {
	for _, e := range c.closed {
		if e.id == id {
			return true, e.reset
		}
	}
	return false, false
}

// startTicker starts the connection's timer: every period it counts idle
// ticks for the connection and its streams (see tickLocked).
func (c *conn) startTicker() {
	p := time.Duration(0)
	for _, d := range []time.Duration{c.o.idleTimeout, c.o.streamIdle} {
		if d > 0 && (p == 0 || d/10 < p) {
			p = d / 10
		}
	}
	if p == 0 {
		return
	}
	c.period = max(p, 10*time.Millisecond)
	c.tick = time.AfterFunc(c.period, c.onTick)
}

func (c *conn) onTick() {
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return
	}
	c.tickLocked()
	c.mu.Unlock()
	c.flush()
	c.tick.Reset(c.period)
}

// tickLocked applies the idle timeouts, in ticks of a tenth of the
// timeout: a stream on which nothing moved for ten ticks is reset (its
// effective timeout lies between 1 and 1.1 times the configured one), and a
// connection without streams for its idle timeout is closed with GOAWAY.
// The connection's count restarts at the first tick after a stream ended,
// even one that began and ended between two ticks: as Envoy's idle_timeout,
// it runs from the end of the last stream (between 1 and 1.1 times it).
func (c *conn) tickLocked() {
	if c.o.streamIdle > 0 {
		limit := int(c.o.streamIdle / c.period)
		for _, st := range c.streams {
			if st.activity != st.seenActivity {
				st.seenActivity, st.idleTicks = st.activity, 0
				continue
			}
			if st.idleTicks++; st.idleTicks >= limit && st.ss != nil {
				st.ss.idleTimedOut = true
				c.resetStreamLocked(st, ErrCodeInternal, ErrIdleTimeout)
			}
		}
	}
	if c.o.idleTimeout <= 0 || len(c.streams) > 0 || c.streamEnded {
		c.idleTicks, c.streamEnded = 0, false
		return
	}
	if c.idleTicks++; time.Duration(c.idleTicks)*c.period >= c.o.idleTimeout {
		if c.srv != nil {
			c.srv.closeReason = CloseIdle
		}
		c.goAwayLocked(ErrCodeNo)
		c.startCloseLocked()
	}
}
