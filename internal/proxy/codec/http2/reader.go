package http2

import (
	"encoding/binary"
	"errors"
	"io"
	"time"

	xh2 "golang.org/x/net/http2"
)

// readLoop reads and processes frames until the connection ends, then tears
// it down. It runs on the connection's reader goroutine.
func (c *conn) readLoop() {
	c.teardown(c.readFrames())
}

// readFrames processes frames until an error ends the connection.
func (c *conn) readFrames() error {
	for {
		if !c.frameBuffered() {
			// The next read will block: deliver what this batch
			// produced first.
			c.endBatch()
		}
		fh, err := c.fr.ReadFrameHeader()
		if err != nil {
			return c.readError(err)
		}
		if !c.gotSettings && fh.Type != xh2.FrameSettings {
			// The peer's preface ends with a SETTINGS frame (§3.4).
			return connErr(ErrCodeProtocol, "first frame is not SETTINGS")
		}
		if fh.Type == xh2.FrameHeaders {
			if err := c.readHeaders(fh); err != nil {
				return err
			}
			continue
		}
		f, err := c.fr.ReadFrameForHeader(fh)
		if err != nil {
			var se xh2.StreamError
			if errors.As(err, &se) && fh.Type != xh2.FrameHeaders {
				c.mu.Lock()
				c.streamErrorLocked(se.StreamID, se.Code)
				c.mu.Unlock()
				continue
			}
			// A HEADERS frame that cannot be parsed leaves the HPACK
			// state unknown: a connection error.
			return c.readError(err)
		}
		c.mu.Lock()
		if c.closing {
			c.mu.Unlock()
			io.Copy(io.Discard, io.LimitReader(c.br, lingerLimit))
			return ErrConnClosed
		}
		err = c.processFrameLocked(f)
		c.mu.Unlock()
		if err != nil {
			return err
		}
	}
}

// frameBuffered reports whether a whole frame is already buffered.
func (c *conn) frameBuffered() bool {
	n := c.br.Buffered()
	if n < frameHeaderLen {
		return false
	}
	h, _ := c.br.Peek(frameHeaderLen)
	return n >= frameHeaderLen+(int(h[0])<<16|int(h[1])<<8|int(h[2]))
}

// endBatch runs what a batch of frames deferred: wakes, new request
// handlers (server) and the frames written in reply (flushed once).
func (c *conn) endBatch() {
	c.mu.Lock()
	c.wakePendingLocked()
	if c.srv != nil {
		c.srv.startHandlersLocked()
	}
	c.flushLocked(false)
	c.mu.Unlock()
}

// readError maps an error from the framer to the connection error it
// causes.
func (c *conn) readError(err error) error {
	var ce xh2.ConnectionError
	switch {
	case errors.Is(err, xh2.ErrFrameTooLarge):
		return connErr(ErrCodeFrameSize, "frame larger than SETTINGS_MAX_FRAME_SIZE")
	case errors.As(err, &ce):
		reason := "invalid frame"
		if d := c.fr.ErrorDetail(); d != nil {
			reason = d.Error()
		}
		return connErr(ErrCode(ce), reason)
	}
	var se xh2.StreamError
	if errors.As(err, &se) {
		return connErr(ErrCodeProtocol, "malformed HEADERS frame")
	}
	return &ConnError{Err: err}
}

// processFrameLocked dispatches one frame.
func (c *conn) processFrameLocked(f xh2.Frame) error {
	switch f := f.(type) {
	case *xh2.DataFrame:
		return c.onDataLocked(f)
	case *xh2.ContinuationFrame:
		return c.onBlockFragmentLocked(f.HeaderBlockFragment(), f.HeadersEnded())
	case *xh2.SettingsFrame:
		return c.onSettingsLocked(f)
	case *xh2.WindowUpdateFrame:
		return c.onWindowUpdateLocked(f)
	case *xh2.PingFrame:
		if !f.IsAck() {
			c.fr.WritePing(true, f.Data)
		}
	case *xh2.RSTStreamFrame:
		return c.onResetLocked(f)
	case *xh2.PriorityFrame:
		// Priorities are ignored (§5.3.2); a stream cannot depend on
		// itself (§5.3.1).
		if f.StreamDep == f.StreamID {
			c.streamErrorLocked(f.StreamID, ErrCodeProtocol)
		}
	case *xh2.GoAwayFrame:
		return c.onGoAwayLocked(f)
	case *xh2.PushPromiseFrame:
		// A server must not push (§8.4), and a client is told not to
		// (SETTINGS_ENABLE_PUSH 0).
		return connErr(ErrCodeProtocol, "PUSH_PROMISE")
	}
	return nil // unknown frame types are ignored (§5.5)
}

// isIdleLocked reports whether id names a stream that was never opened:
// frames other than HEADERS and PRIORITY on it are a connection error
// (§5.1).
func (c *conn) isIdleLocked(id uint32) bool {
	if c.srv != nil {
		return id%2 == 0 || id > c.srv.maxPeerID
	}
	return id%2 == 0 || id >= c.cli.nextID
}

// streamErrorLocked answers a stream error on stream id.
func (c *conn) streamErrorLocked(id uint32, code ErrCode) {
	if st := c.streams[id]; st != nil {
		c.resetStreamLocked(st, code, nil)
		return
	}
	c.resetIDLocked(id, code)
}

func (c *conn) onDataLocked(f *xh2.DataFrame) error {
	n := int64(f.Length) // padding included: it counts against the windows
	if n > c.inflow {
		return connErr(ErrCodeFlowControl, "DATA beyond the connection window")
	}
	c.inflow -= n
	st := c.streams[f.StreamID]
	if st == nil || st.recvEnd || st.cs != nil && !st.cs.headersDone {
		c.returnConnLocked(n)
		return c.dataOnClosedLocked(f.StreamID, st)
	}
	if n > st.inflow {
		c.returnConnLocked(n)
		c.resetStreamLocked(st, ErrCodeFlowControl, nil)
		return nil
	}
	st.inflow -= n
	data := f.Data()
	if pad := n - int64(len(data)); pad > 0 {
		c.returnConnLocked(pad)
		c.returnStreamLocked(st, pad)
	}
	st.recvLen += int64(len(data))
	end := f.StreamEnded()
	if st.declLen >= 0 && (st.recvLen > st.declLen || end && st.recvLen != st.declLen) {
		// content-length disagrees with the body (§8.1.1).
		c.returnConnLocked(int64(len(data)))
		c.resetStreamLocked(st, ErrCodeProtocol, nil)
		return nil
	}
	if len(data) > 0 {
		st.recv.write(data)
		st.activity++
	}
	if end {
		c.recvEndLocked(st)
	}
	c.queueWakeLocked(st, wakeRecv)
	return nil
}

// dataOnClosedLocked answers DATA on a stream that cannot receive it.
func (c *conn) dataOnClosedLocked(id uint32, st *stream) error {
	switch {
	case st != nil && st.cs != nil && !st.recvEnd:
		// DATA before the response's HEADERS.
		c.resetStreamLocked(st, ErrCodeProtocol, nil)
	case st != nil:
		// Half-closed (remote): §5.1 wants STREAM_CLOSED.
		c.resetStreamLocked(st, ErrCodeStreamClosed, nil)
	case c.isIdleLocked(id):
		return connErr(ErrCodeProtocol, "DATA on an idle stream")
	default:
		if _, reset := c.recentlyClosed(id); !reset {
			c.resetIDLocked(id, ErrCodeStreamClosed)
		}
	}
	return nil
}

// recvEndLocked records END_STREAM from the peer.
func (c *conn) recvEndLocked(st *stream) {
	st.recvEnd = true
	c.closeIfDoneLocked(st)
}

func (c *conn) onResetLocked(f *xh2.RSTStreamFrame) error {
	st := c.streams[f.StreamID]
	if st == nil {
		if c.isIdleLocked(f.StreamID) {
			return connErr(ErrCodeProtocol, "RST_STREAM on an idle stream")
		}
		return nil
	}
	c.endStreamLocked(st, &StreamError{StreamID: st.id, Code: f.ErrCode, Remote: true}, false)
	return nil
}

func (c *conn) onWindowUpdateLocked(f *xh2.WindowUpdateFrame) error {
	inc := int64(f.Increment)
	if f.StreamID == 0 {
		if c.outflow+inc > maxWindow {
			return connErr(ErrCodeFlowControl, "connection window above 2^31-1")
		}
		c.outflow += inc
		for _, st := range c.streams {
			c.queueWakeLocked(st, wakeSend)
		}
		return nil
	}
	st := c.streams[f.StreamID]
	if st == nil {
		if c.isIdleLocked(f.StreamID) {
			return connErr(ErrCodeProtocol, "WINDOW_UPDATE on an idle stream")
		}
		return nil // a closed stream: allowed (§6.9)
	}
	if st.outflow+inc > maxWindow {
		c.resetStreamLocked(st, ErrCodeFlowControl, nil)
		return nil
	}
	st.outflow += inc
	c.queueWakeLocked(st, wakeSend)
	return nil
}

func (c *conn) onSettingsLocked(f *xh2.SettingsFrame) error {
	if f.IsAck() {
		return nil
	}
	c.gotSettings = true
	// Values apply in order (§6.5.3), repeated ones included.
	for i := 0; i < f.NumSettings(); i++ {
		if err := c.applySettingLocked(f.Setting(i)); err != nil {
			return err
		}
	}
	c.fr.WriteSettingsAck()
	return nil
}

func (c *conn) applySettingLocked(s xh2.Setting) error {
	if err := s.Valid(); err != nil {
		var ce xh2.ConnectionError
		errors.As(err, &ce)
		return connErr(ErrCode(ce), "invalid "+s.ID.String())
	}
	switch s.ID {
	case xh2.SettingHeaderTableSize:
		c.enc.enc.SetMaxDynamicTableSizeLimit(s.Val)
	case xh2.SettingMaxConcurrentStreams:
		c.peer.maxStreams = s.Val
	case xh2.SettingMaxFrameSize:
		c.peer.maxFrame = s.Val
	case xh2.SettingInitialWindowSize:
		return c.setPeerWindowLocked(int64(s.Val))
	}
	return nil
}

// setPeerWindowLocked applies a new SETTINGS_INITIAL_WINDOW_SIZE: every
// stream's send window moves by the difference, possibly below zero
// (§6.9.2).
func (c *conn) setPeerWindowLocked(v int64) error {
	delta := v - c.peer.initWindow
	c.peer.initWindow = v
	for _, st := range c.streams {
		st.outflow += delta
		if st.outflow > maxWindow {
			return connErr(ErrCodeFlowControl, "stream window above 2^31-1")
		}
		if delta > 0 {
			c.queueWakeLocked(st, wakeSend)
		}
	}
	return nil
}

func (c *conn) onGoAwayLocked(f *xh2.GoAwayFrame) error {
	if c.srv != nil {
		c.srv.onGoAwayLocked()
		return nil
	}
	return c.cli.onGoAwayLocked(f)
}

// headersFrame is a HEADERS frame. It is parsed here rather than by the
// Framer, which allocates a frame object for every HEADERS frame.
type headersFrame struct {
	id        uint32
	endStream bool
	endBlock  bool
	dep       uint32 // stream dependency, when hasPrio
	hasPrio   bool
	frag      []byte
}

// readHeaders reads and processes a HEADERS frame (RFC 9113 §6.2). Any
// error is a connection error: the HPACK state would be lost otherwise.
func (c *conn) readHeaders(fh xh2.FrameHeader) error {
	if fh.StreamID == 0 {
		return connErr(ErrCodeProtocol, "HEADERS on stream 0")
	}
	if cap(c.hpayload) < int(fh.Length) {
		c.hpayload = make([]byte, fh.Length)
	}
	p := c.hpayload[:fh.Length]
	if _, err := io.ReadFull(c.br, p); err != nil {
		return &ConnError{Err: err}
	}
	f := headersFrame{
		id:        fh.StreamID,
		endStream: fh.Flags.Has(xh2.FlagHeadersEndStream),
		endBlock:  fh.Flags.Has(xh2.FlagHeadersEndHeaders),
		hasPrio:   fh.Flags.Has(xh2.FlagHeadersPriority),
	}
	pad := 0
	if fh.Flags.Has(xh2.FlagHeadersPadded) {
		if len(p) < 1 {
			return connErr(ErrCodeFrameSize, "HEADERS too short for its pad length")
		}
		pad, p = int(p[0]), p[1:]
	}
	if f.hasPrio {
		if len(p) < 5 {
			return connErr(ErrCodeFrameSize, "HEADERS too short for its priority")
		}
		f.dep, p = binary.BigEndian.Uint32(p)&(1<<31-1), p[5:]
	}
	if pad > len(p) {
		return connErr(ErrCodeProtocol, "HEADERS padding exceeds the payload")
	}
	f.frag = p[:len(p)-pad]
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing {
		return nil
	}
	return c.onHeadersLocked(&f)
}

// onHeadersLocked starts a header block: the role picks where it goes.
func (c *conn) onHeadersLocked(f *headersFrame) error {
	c.blkResets = false
	var err error
	if c.srv != nil {
		err = c.srv.beginHeadersLocked(f)
	} else {
		err = c.cli.beginHeadersLocked(f)
	}
	if err != nil {
		return err
	}
	if f.hasPrio && f.dep == f.id && !c.blkResets {
		// A stream cannot depend on itself (§5.3.1).
		c.blkResets, c.blkReset = true, ErrCodeProtocol
	}
	return c.onBlockFragmentLocked(f.frag, f.endBlock)
}

// onBlockFragmentLocked decodes a fragment of the header block and, at its
// end, hands the block to the role.
func (c *conn) onBlockFragmentLocked(frag []byte, end bool) error {
	if _, err := c.blk.dec.Write(frag); err != nil {
		return connErr(ErrCodeCompression, "invalid header block: "+err.Error())
	}
	if !end {
		return nil
	}
	if err := c.blk.dec.Close(); err != nil {
		return connErr(ErrCodeCompression, "truncated header block")
	}
	if c.srv != nil {
		c.srv.endHeadersLocked()
	} else {
		c.cli.endHeadersLocked()
	}
	return nil
}

// teardown ends the connection: a protocol error is answered with GOAWAY
// (then the delayed close), every stream fails and the socket closes.
func (c *conn) teardown(err error) {
	c.mu.Lock()
	var ce *ConnError
	local := errors.As(err, &ce) && ce.Err == nil && !ce.Remote
	if local && !c.closing {
		c.goAwayID = c.lastPeerStream()
		c.goAwaySent = true
		c.fr.WriteGoAway(c.goAwayID, ce.Code, nil)
		if c.srv != nil {
			c.srv.closeReason = CloseProtocolError
		}
	}
	c.closing = true
	if c.err == nil {
		c.err = err
	}
	for _, st := range c.streams {
		c.endStreamLocked(st, err, false)
	}
	c.wakePendingLocked()
	if c.srv != nil {
		c.srv.startHandlersLocked() // handlers of failed streams are dropped
	}
	// The GOAWAY and what streams appended must reach the socket before
	// it (or its write side) closes, even when another goroutine is
	// writing now.
	c.drainLocked(time.Now().Add(c.o.delayedClose))
	c.mu.Unlock()
	if local {
		c.linger()
	}
	c.nc.Close()
	if c.tick != nil {
		c.tick.Stop()
	}
	close(c.dead)
}
