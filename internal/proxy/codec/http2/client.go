package http2

import (
	"errors"
	"fmt"
	"net"
	"time"

	xh2 "golang.org/x/net/http2"

	"github.com/weftmesh/weft/internal/proxy/headers"
)

// ClientOptions configure a ClientConn. Zero fields take the defaults.
type ClientOptions struct {
	// InitialStreamWindowSize and InitialConnectionWindowSize are the
	// receive windows advertised: they bound the response body buffered
	// per stream and per connection. Defaults 4 MiB and 1 GiB (the
	// windows of x/net's transport); clamped to [65535, 2^31-1].
	InitialStreamWindowSize     uint32
	InitialConnectionWindowSize uint32
	// MaxHeaderListSize bounds a response header block (HPACK size);
	// larger responses fail with PROTOCOL_ERROR. Default 60 KiB (Envoy's
	// max_response_headers_kb).
	MaxHeaderListSize int
	// IdleTimeout closes the connection after that long without streams;
	// 0 disables it.
	IdleTimeout time.Duration
	// WriteTimeout bounds a blocked socket write; the connection fails
	// when it passes. Default 30 s.
	WriteTimeout time.Duration
	// HandshakeDeadline bounds the wait for the server's SETTINGS in
	// NewClientConn (zero: 10 s from now).
	HandshakeDeadline time.Time
}

// ClientConn is one upstream HTTP/2 connection multiplexing client
// streams. Its methods are safe for concurrent use.
type ClientConn struct {
	c        conn
	nextID   uint32
	goAway   bool   // the server sent GOAWAY: no new streams
	goAwayID uint32 // its last stream id
	shutdown bool   // Shutdown was called
}

// NewClientConn starts HTTP/2 on nc (prior knowledge): it sends the
// connection preface and SETTINGS and waits for the server's SETTINGS, so
// that the server's limits are known before the first stream. The
// connection's reader goroutine runs until it ends.
func NewClientConn(nc net.Conn, o ClientOptions) (*ClientConn, error) {
	cc := &ClientConn{nextID: 1}
	co := connOptions{
		streamWindow:  window(o.InitialStreamWindowSize, 4<<20),
		connWindow:    window(o.InitialConnectionWindowSize, 1<<30),
		maxHeaderList: o.MaxHeaderListSize,
		writeTimeout:  o.WriteTimeout,
		delayedClose:  time.Second,
		idleTimeout:   o.IdleTimeout,
	}
	if co.maxHeaderList <= 0 {
		co.maxHeaderList = 60 << 10
	}
	if co.writeTimeout <= 0 {
		co.writeTimeout = 30 * time.Second
	}
	c := &cc.c
	c.cli = cc
	c.init(nc, co)
	c.wbuf = append(c.wbuf, xh2.ClientPreface...)
	c.writeSettings(
		xh2.Setting{ID: xh2.SettingEnablePush, Val: 0},
		xh2.Setting{ID: xh2.SettingInitialWindowSize, Val: uint32(co.streamWindow)},
		xh2.Setting{ID: xh2.SettingMaxHeaderListSize, Val: uint32(co.maxHeaderList)},
	)
	if err := cc.handshake(o.HandshakeDeadline); err != nil {
		nc.Close()
		return nil, err
	}
	c.startTicker()
	go c.readLoop()
	return cc, nil
}

// handshake writes the preface and processes the server's first frame,
// which must be SETTINGS (§3.4).
func (cc *ClientConn) handshake(deadline time.Time) error {
	c := &cc.c
	if deadline.IsZero() {
		deadline = time.Now().Add(10 * time.Second)
	}
	c.nc.SetDeadline(deadline)
	defer c.nc.SetDeadline(time.Time{})
	if err := c.flush(); err != nil {
		return fmt.Errorf("http2 handshake: %w", err)
	}
	fh, err := c.fr.ReadFrameHeader()
	if err != nil {
		return fmt.Errorf("http2 handshake: %w", err)
	}
	if fh.Type != xh2.FrameSettings {
		return fmt.Errorf("http2 handshake: first frame from the server is %v, not SETTINGS", fh.Type)
	}
	f, err := c.fr.ReadFrameForHeader(fh)
	if err != nil {
		return fmt.Errorf("http2 handshake: %w", err)
	}
	c.mu.Lock()
	err = c.onSettingsLocked(f.(*xh2.SettingsFrame))
	c.mu.Unlock()
	if err != nil {
		return fmt.Errorf("http2 handshake: %w", err)
	}
	return nil
}

// OpenOptions describe how a request starts.
type OpenOptions struct {
	// Body, when set, is sent after the HEADERS frame (as the windows
	// allow; Open waits for them).
	Body []byte
	// Trailers, when non-nil and not empty, are sent after Body and end
	// the stream.
	Trailers *headers.Map
	// EndStream ends the request after Body (or Trailers): nothing more
	// will be written.
	EndStream bool
}

// Open starts a request stream: the HEADERS frame (with Body and Trailers
// when given) is written in one write. An error wrapping ErrUnprocessed
// means nothing was sent and the request may go to another connection.
// The caller must Close the stream.
func (cc *ClientConn) Open(req *headers.Request, o OpenOptions) (*ClientStream, error) {
	c := &cc.c
	c.mu.Lock()
	if err := cc.openErrLocked(); err != nil {
		c.mu.Unlock()
		return nil, err
	}
	cs := newClientStream(cc, cc.nextID)
	cc.nextID += 2
	c.addStreamLocked(&cs.stream)
	cs.head = string(req.Method) == "HEAD"
	hasTrailers := o.Trailers != nil && o.Trailers.Len() > 0
	end := o.EndStream && len(o.Body) == 0 && !hasTrailers
	c.enc.request(req)
	c.appendHeaders(cs.id, c.enc.block(), end)
	cs.activity++
	if end {
		cs.sentEnd = true
	}
	c.mu.Unlock()
	err := cs.sendRest(o.Body, o.Trailers, o.EndStream && !hasTrailers)
	if err == nil {
		err = c.flush()
	}
	if err != nil {
		err = cs.openErr(err)
		cs.Close()
		return nil, err
	}
	return cs, nil
}

// openErr is what Open reports when sending failed with err: the stream's
// own end when it came first (a GOAWAY or REFUSED_STREAM that makes it
// unprocessed, which the caller may retry elsewhere), else err.
func (cs *ClientStream) openErr(err error) error {
	cs.c.mu.Lock()
	defer cs.c.mu.Unlock()
	if errors.Is(cs.err, ErrUnprocessed) {
		return cs.err
	}
	return err
}

// sendRest sends the body and trailers given to Open.
func (cs *ClientStream) sendRest(body []byte, t *headers.Map, end bool) error {
	if len(body) > 0 {
		if _, err := cs.writeData(body, end, &cs.sw); err != nil {
			return err
		}
	}
	if t != nil && t.Len() > 0 {
		return cs.writeTrailers(t)
	}
	return nil
}

// openErrLocked says why no stream can be opened now.
func (cc *ClientConn) openErrLocked() error {
	c := &cc.c
	switch {
	case c.err != nil, c.closing:
		return fmt.Errorf("%w: connection closed", ErrUnprocessed)
	case cc.goAway, cc.shutdown:
		return fmt.Errorf("%w: connection going away", ErrUnprocessed)
	case cc.nextID > maxWindow:
		cc.goAway = true // stream ids exhausted: the pool opens another connection
		return fmt.Errorf("%w: stream ids exhausted", ErrUnprocessed)
	case uint32(len(c.streams)) >= c.peer.maxStreams:
		return fmt.Errorf("%w: server's SETTINGS_MAX_CONCURRENT_STREAMS reached", ErrUnprocessed)
	}
	return nil
}

// CanOpen reports whether a new stream may be opened (the connection is
// not closed, closing or going away).
func (cc *ClientConn) CanOpen() bool {
	cc.c.mu.Lock()
	defer cc.c.mu.Unlock()
	return !cc.goAway && !cc.shutdown && !cc.c.closing && cc.c.err == nil && cc.nextID <= maxWindow
}

// PeerMaxConcurrentStreams is the server's SETTINGS_MAX_CONCURRENT_STREAMS
// (2^32-1 when it set none).
func (cc *ClientConn) PeerMaxConcurrentStreams() uint32 {
	cc.c.mu.Lock()
	defer cc.c.mu.Unlock()
	return cc.c.peer.maxStreams
}

// ActiveStreams returns the number of open streams.
func (cc *ClientConn) ActiveStreams() int {
	cc.c.mu.Lock()
	defer cc.c.mu.Unlock()
	return len(cc.c.streams)
}

// Done returns a channel closed once the connection has ended and its
// socket is closed.
func (cc *ClientConn) Done() <-chan struct{} { return cc.c.dead }

// Shutdown closes the connection gracefully: no new streams; once the open
// ones end it sends GOAWAY and closes.
func (cc *ClientConn) Shutdown() {
	c := &cc.c
	c.mu.Lock()
	cc.shutdown = true
	if len(c.streams) == 0 && c.err == nil {
		c.goAwayLocked(ErrCodeNo)
		c.startCloseLocked()
	}
	c.mu.Unlock()
}

// Close closes the connection at once; open streams fail.
func (cc *ClientConn) Close() error {
	c := &cc.c
	c.mu.Lock()
	if c.err == nil {
		c.err = &ConnError{Err: ErrConnClosed}
	}
	c.mu.Unlock()
	return c.nc.Close()
}

// streamClosedLocked closes a connection going away once its last stream
// ended.
func (cc *ClientConn) streamClosedLocked() {
	c := &cc.c
	if (cc.goAway || cc.shutdown) && len(c.streams) == 0 && c.err == nil {
		c.goAwayLocked(ErrCodeNo)
		c.startCloseLocked()
	}
}

// onGoAwayLocked: streams above the server's last stream id were not
// processed and fail with ErrUnprocessed; the others go on.
func (cc *ClientConn) onGoAwayLocked(f *xh2.GoAwayFrame) error {
	c := &cc.c
	cc.goAway, cc.goAwayID = true, f.LastStreamID
	for id, st := range c.streams {
		if id > f.LastStreamID {
			c.endStreamLocked(st, fmt.Errorf("%w: above GOAWAY's last stream %d", ErrUnprocessed, f.LastStreamID), false)
		}
	}
	// With an error code the server is about to close: the other
	// streams fail then, unless they complete first.
	cc.streamClosedLocked()
	return nil
}

// beginHeadersLocked picks where a HEADERS frame's block goes: the
// response head, its trailers, or nowhere.
func (cc *ClientConn) beginHeadersLocked(f *headersFrame) error {
	c := &cc.c
	st := c.streams[f.id]
	if st == nil {
		if c.isIdleLocked(f.id) {
			return connErr(ErrCodeProtocol, "HEADERS on an idle stream")
		}
		c.blk.start(blockDiscard, f.id, f.endStream) // a stream we closed
		return nil
	}
	cs := st.cs
	switch {
	case st.recvEnd:
		c.blk.start(blockDiscard, f.id, true)
		c.blkResets, c.blkReset = true, ErrCodeStreamClosed
	case !cs.headersDone:
		cs.resp.Reset()
		c.blk.start(blockResponse, f.id, f.endStream)
		c.blk.resp = &cs.resp
	case !f.endStream:
		c.blk.start(blockDiscard, f.id, false)
		c.blkResets, c.blkReset = true, ErrCodeProtocol // trailers must end the stream
	default:
		cs.trailers.Reset()
		c.blk.start(blockTrailers, f.id, true)
		c.blk.tr = &cs.trailers
	}
	return nil
}

// endHeadersLocked acts on a decoded response block.
func (cc *ClientConn) endHeadersLocked() {
	c := &cc.c
	b := &c.blk
	st := c.streams[b.streamID]
	if c.blkResets {
		c.streamErrorLocked(b.streamID, c.blkReset)
		return
	}
	if b.kind == blockDiscard || st == nil {
		return
	}
	if !b.finish() || b.tooLarge {
		c.resetStreamLocked(st, ErrCodeProtocol, nil)
		return
	}
	cs := st.cs
	if b.kind == blockResponse {
		if s := cs.resp.Status; s < 200 && s != 101 {
			if b.endStream {
				c.resetStreamLocked(st, ErrCodeProtocol, nil)
			}
			return // informational: the final head follows
		}
		cs.headersDone, cs.headersEnd = true, b.endStream
		st.declLen = b.contentLength
		if cs.head || cs.resp.Status == 204 || cs.resp.Status == 304 {
			st.declLen = -1 // content-length describes a body not sent
		}
	} else if st.declLen >= 0 && st.recvLen != st.declLen {
		c.resetStreamLocked(st, ErrCodeProtocol, nil)
		return
	}
	if b.endStream {
		if st.declLen > 0 && st.recvLen != st.declLen {
			c.resetStreamLocked(st, ErrCodeProtocol, nil)
			return
		}
		c.recvEndLocked(st)
	}
	c.queueWakeLocked(st, wakeRecv)
}

// errNotHeaders is returned by reads of the body before ReadHeaders.
var errNotHeaders = errors.New("http2: response body read before its headers")
