package http2

import (
	"bytes"
	"io"
	"net"
	"time"

	xh2 "golang.org/x/net/http2"
)

// Handler serves the request streams of a ServerConn.
type Handler interface {
	// ServeStream serves one request on the stream's own goroutine: it
	// reads the request (TakeRequest, Read) and writes the response
	// (WriteHeaders, Write, Flush, Finish) or resets the stream. It may
	// block; the stream's operations fail once the client resets it or
	// the connection ends. When ServeStream returns, a response that was
	// not finished is reset (RST_STREAM INTERNAL_ERROR) and the stream
	// must no longer be used, by any goroutine: the handler waits for the
	// goroutines it gave the stream to (its storage is reused).
	//
	// Handlers start once the reader has processed every frame a socket
	// read brought. A stream that already ended by then (the client's
	// RST_STREAM, or a body error, came in the same read as its HEADERS)
	// is never served: no goroutine is spent on it, which also keeps a
	// rapid-reset flood (HEADERS then RST_STREAM, CVE-2023-44487) from
	// starting handlers.
	ServeStream(st *ServerStream)
}

// ServerOptions configure a ServerConn. Zero fields take the defaults.
type ServerOptions struct {
	// Handler serves the streams. Required.
	Handler Handler
	// MaxConcurrentStreams is SETTINGS_MAX_CONCURRENT_STREAMS; streams
	// above it are refused (RST_STREAM REFUSED_STREAM). Default 1024.
	MaxConcurrentStreams uint32
	// InitialStreamWindowSize and InitialConnectionWindowSize are the
	// receive windows advertised (Envoy's initial_stream_window_size and
	// initial_connection_window_size); they bound the request body
	// buffered per stream and per connection. Default 1 MiB each; values
	// are clamped to [65535, 2^31-1].
	InitialStreamWindowSize     uint32
	InitialConnectionWindowSize uint32
	// MaxHeaderListSize bounds a request's header block (HPACK size: name
	// + value + 32 per field) and MaxHeaders its number of fields. A
	// request over either is delivered with HeaderListTooLarge set, for
	// the handler to answer 431. Defaults 60 KiB and 100 (Envoy's
	// max_request_headers_kb and max_headers_count).
	MaxHeaderListSize int
	MaxHeaders        int
	// IdleTimeout closes the connection (GOAWAY) after that long without
	// streams; 0 disables it.
	IdleTimeout time.Duration
	// StreamIdleTimeout resets a stream on which nothing moved (no body
	// byte received, read or sent) for that long; 0 disables it. It also
	// bounds a blocked socket write.
	StreamIdleTimeout time.Duration
	// DelayedCloseTimeout is how long a closing connection waits for the
	// peer to close after its last frames. Default 1 s (Envoy's
	// delayed_close_timeout).
	DelayedCloseTimeout time.Duration
}

// CloseReason says why a ServerConn ended.
type CloseReason uint8

const (
	// ClosePeer: the client closed the connection, or it failed.
	ClosePeer CloseReason = iota
	// CloseIdle: the connection idle timeout passed.
	CloseIdle
	// CloseDrained: Shutdown closed it once its streams ended.
	CloseDrained
	// CloseProtocolError: the client broke the protocol (GOAWAY sent).
	CloseProtocolError
)

// ServerConn serves one downstream HTTP/2 connection.
type ServerConn struct {
	c           conn
	h           Handler
	maxStreams  uint32
	maxPeerID   uint32
	starting    []*ServerStream // handlers to start at the end of the batch
	peerGoAway  bool
	closeReason CloseReason
}

// NewServerConn prepares a connection whose client preface is still to be
// read from nc. The server's SETTINGS are queued at once, so that they are
// the first frame even if Shutdown comes before Serve. If nc has a
// CloseWrite method (a TCP connection), it is used for the delayed close.
func NewServerConn(nc net.Conn, o ServerOptions) *ServerConn {
	sc := &ServerConn{h: o.Handler, maxStreams: o.MaxConcurrentStreams}
	if sc.maxStreams == 0 {
		sc.maxStreams = 1024
	}
	co := connOptions{
		streamWindow:  window(o.InitialStreamWindowSize, 1<<20),
		connWindow:    window(o.InitialConnectionWindowSize, 1<<20),
		maxHeaderList: o.MaxHeaderListSize,
		maxHeaders:    o.MaxHeaders,
		writeTimeout:  o.StreamIdleTimeout,
		delayedClose:  o.DelayedCloseTimeout,
		idleTimeout:   o.IdleTimeout,
		streamIdle:    o.StreamIdleTimeout,
	}
	if co.maxHeaderList <= 0 {
		co.maxHeaderList = 60 << 10
	}
	if co.maxHeaders <= 0 {
		co.maxHeaders = 100
	}
	if co.delayedClose <= 0 {
		co.delayedClose = time.Second
	}
	c := &sc.c
	c.srv = sc
	c.init(nc, co)
	c.writeSettings(
		xh2.Setting{ID: xh2.SettingMaxConcurrentStreams, Val: sc.maxStreams},
		xh2.Setting{ID: xh2.SettingInitialWindowSize, Val: uint32(co.streamWindow)},
		xh2.Setting{ID: xh2.SettingMaxHeaderListSize, Val: uint32(co.maxHeaderList)},
	)
	return sc
}

// window clamps a configured window to [65535, 2^31-1], def when unset.
func window(v uint32, def int64) int64 {
	if v == 0 {
		return def
	}
	return min(max(int64(v), initialWindow), maxWindow)
}

// Serve reads the client preface and serves the connection until it ends,
// then closes it. Handlers still running see their streams fail; Serve does
// not wait for them.
func (sc *ServerConn) Serve() CloseReason {
	c := &sc.c
	c.flush()
	c.startTicker()
	if err := sc.readPreface(); err != nil {
		c.teardown(err)
		return sc.closeReason
	}
	c.readLoop()
	return sc.closeReason
}

// readPreface reads the client connection preface (§3.4); the SETTINGS
// frame that ends it is checked by the read loop.
func (sc *ServerConn) readPreface() error {
	var buf [len(xh2.ClientPreface)]byte
	if _, err := io.ReadFull(sc.c.br, buf[:]); err != nil {
		return &ConnError{Err: err}
	}
	if !bytes.Equal(buf[:], []byte(xh2.ClientPreface)) {
		return connErr(ErrCodeProtocol, "invalid client preface")
	}
	return nil
}

// Shutdown drains the connection: GOAWAY with the last stream received
// (NO_ERROR); streams in flight go on, new ones are refused, and the
// connection closes once none is left. Safe from any goroutine.
func (sc *ServerConn) Shutdown() {
	c := &sc.c
	c.mu.Lock()
	if !c.closing && c.err == nil {
		sc.closeReason = CloseDrained
		c.goAwayLocked(ErrCodeNo)
		if len(c.streams) == 0 {
			c.startCloseLocked()
		}
	}
	c.mu.Unlock()
	c.flush()
}

// Close closes the connection at once; its streams fail.
func (sc *ServerConn) Close() { sc.c.nc.Close() }

// ActiveStreams returns the number of open streams.
func (sc *ServerConn) ActiveStreams() int {
	sc.c.mu.Lock()
	defer sc.c.mu.Unlock()
	return len(sc.c.streams)
}

// streamClosedLocked closes a draining connection once its last stream
// ended.
func (sc *ServerConn) streamClosedLocked() {
	c := &sc.c
	if (c.goAwaySent || sc.peerGoAway) && len(c.streams) == 0 {
		c.startCloseLocked()
	}
}

// onGoAwayLocked: the client opens no more streams; the connection closes
// once the open ones end.
func (sc *ServerConn) onGoAwayLocked() {
	sc.peerGoAway = true
	if len(sc.c.streams) == 0 {
		sc.c.startCloseLocked()
	}
}

// beginHeadersLocked picks where a HEADERS frame's block goes: a new
// request, the trailers of an open one, or nowhere (decoded for HPACK only)
// with a stream error or nothing to answer once it is decoded.
func (sc *ServerConn) beginHeadersLocked(f *headersFrame) error {
	c := &sc.c
	id := f.id
	if id%2 == 0 {
		return connErr(ErrCodeProtocol, "HEADERS on an even stream id")
	}
	if st := c.streams[id]; st != nil {
		switch {
		case st.recvEnd:
			sc.discardLocked(f, true, ErrCodeStreamClosed) // half-closed (remote), §5.1
		case !f.endStream:
			sc.discardLocked(f, true, ErrCodeProtocol) // trailers must end the stream, §8.1
		default:
			st.ss.trailers.Reset()
			c.blk.start(blockTrailers, id, true)
			c.blk.tr = &st.ss.trailers
		}
		return nil
	}
	if id <= sc.maxPeerID {
		found, reset := c.recentlyClosed(id)
		switch {
		case reset:
			sc.discardLocked(f, false, 0) // late frames on a stream we reset
		case found:
			return connErr(ErrCodeStreamClosed, "HEADERS on a closed stream")
		default:
			return connErr(ErrCodeProtocol, "stream id not increasing")
		}
		return nil
	}
	sc.maxPeerID = id
	if c.goAwaySent || uint32(len(c.streams)) >= sc.maxStreams {
		sc.discardLocked(f, true, ErrCodeRefusedStream)
		return nil
	}
	ss := newServerStream(sc, id)
	c.addStreamLocked(&ss.stream)
	c.blk.start(blockRequest, id, f.endStream)
	c.blk.req = &ss.req
	return nil
}

// discardLocked decodes a block for the HPACK state only, answering
// RST_STREAM code at its end when reset is set.
func (sc *ServerConn) discardLocked(f *headersFrame, reset bool, code ErrCode) {
	sc.c.blk.start(blockDiscard, f.id, f.endStream)
	sc.c.blkResets, sc.c.blkReset = reset, code
}

// endHeadersLocked acts on a decoded block: the request stream is queued
// for its handler, trailers end the request body.
func (sc *ServerConn) endHeadersLocked() {
	c := &sc.c
	b := &c.blk
	st := c.streams[b.streamID]
	if c.blkResets {
		c.streamErrorLocked(b.streamID, c.blkReset)
		return
	}
	if b.kind == blockDiscard || st == nil {
		return
	}
	if !b.finish() {
		c.resetStreamLocked(st, ErrCodeProtocol, nil)
		return
	}
	if b.kind == blockTrailers {
		if st.declLen >= 0 && st.recvLen != st.declLen {
			c.resetStreamLocked(st, ErrCodeProtocol, nil)
			return
		}
		st.ss.hasTrailers = true
		c.recvEndLocked(st)
		c.queueWakeLocked(st, wakeRecv)
		return
	}
	ss := st.ss
	ss.tooLarge = b.tooLarge
	st.declLen = b.contentLength
	ss.contentLength = b.contentLength
	if b.endStream {
		if st.declLen > 0 {
			c.resetStreamLocked(st, ErrCodeProtocol, nil) // content-length without a body, §8.1.1
			return
		}
		ss.contentLength = 0
		st.recvEnd = true
	}
	st.refs++ // the handler's reference
	sc.starting = append(sc.starting, ss)
}

// startHandlersLocked starts the handlers of the streams the batch opened,
// unless they already failed.
func (sc *ServerConn) startHandlersLocked() {
	c := &sc.c
	for i, ss := range sc.starting {
		sc.starting[i] = nil
		if ss.err != nil || c.err != nil {
			c.releaseLocked(&ss.stream)
			continue
		}
		go sc.serve(ss)
	}
	sc.starting = sc.starting[:0]
}

// serve runs the handler of one stream.
func (sc *ServerConn) serve(ss *ServerStream) {
	sc.h.ServeStream(ss)
	c := &sc.c
	c.mu.Lock()
	reset := ss.inMap && !ss.sentEnd
	if reset {
		c.resetStreamLocked(&ss.stream, ErrCodeInternal, nil)
	}
	c.releaseLocked(&ss.stream)
	c.mu.Unlock()
	if reset {
		c.flush()
	}
}
