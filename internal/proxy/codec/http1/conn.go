package http1

import (
	"bufio"
	"bytes"
	"io"
	"net"
)

// Defaults and fixed limits.
const (
	defaultMaxHeaderBytes = 60 << 10 // Envoy's max_request_headers_kb default
	defaultMaxHeaders     = 100      // Envoy's max_headers_count default
	defaultBufferSize     = 16 << 10
	minBufferSize         = 4 << 10

	// minTail is the room a body needs after its head in the read buffer;
	// when a head leaves less, the unread bytes move to a fresh buffer.
	minTail = 1 << 10
	// maxChunkLine bounds a chunk-size line (size plus extensions).
	maxChunkLine = 4 << 10
	// directReadMin: a body Read into a slice at least this large, with
	// nothing buffered, reads from the socket straight into the slice.
	directReadMin = 4 << 10
	// tunnelBufSize is the size of the bufio.Reader handed out by Reader.
	tunnelBufSize = 4 << 10
)

// connState is the implementation of Conn.
//
// Read buffer layout: rbuf[r:w] holds bytes read and not yet consumed. The
// current message head occupies rbuf[hstart:base] and stays untouched until
// the next ReadRequest/ReadResponse, because the parsed fields point into
// it. Body reads reuse rbuf[base:] once it is drained. When a head needs
// more room than the buffer has, or leaves too little room behind it, the
// live bytes move to a new buffer and the old one is "retired": it keeps
// the head's bytes alive and goes back to its pool at the next message.
type connState struct {
	nc          net.Conn
	maxHead     int
	maxHeaders  int
	bufSize     int
	allowCustom bool

	// read side
	rbufp   *[]byte
	rbuf    []byte
	r, w    int
	scan    int // rbuf[r:scan] is known to hold no '\n'
	hstart  int // start of the current head
	base    int // body reads restart here once the buffer is drained
	retired *[]byte
	rerr    error // sticky error of the underlying Read
	broken  error // a protocol error ended the read side

	br         BodyReader
	reqHead    bool // the last request read was HEAD
	reqConnect bool // the last request read was CONNECT
	tsrc       tunnelSource
	tunnel     *bufio.Reader

	// write side
	wbufp       *[]byte
	wbuf        []byte // len = bytes buffered
	werr        error  // sticky write error
	headFlushed bool   // part of the head being written was already sent
	out         outState
	iovArr      [2][]byte
	iov         net.Buffers
}

func newConn(nc net.Conn, o Options) *Conn {
	cn := &Conn{}
	c := &cn.impl
	c.nc = nc
	c.maxHead = o.MaxHeaderBytes
	if c.maxHead <= 0 {
		c.maxHead = defaultMaxHeaderBytes
	}
	c.maxHeaders = o.MaxHeaders
	if c.maxHeaders <= 0 {
		c.maxHeaders = defaultMaxHeaders
	}
	c.bufSize = o.BufferSize
	switch {
	case c.bufSize <= 0:
		c.bufSize = defaultBufferSize
	case c.bufSize < minBufferSize:
		c.bufSize = minBufferSize
	case c.bufSize > maxClassSize:
		c.bufSize = maxClassSize
	}
	c.allowCustom = o.AllowCustomMethods
	c.rbufp = getBuf(c.bufSize)
	c.rbuf = *c.rbufp
	c.wbufp = getBuf(c.bufSize)
	c.wbuf = (*c.wbufp)[:0]
	c.br.impl.c = c
	c.br.impl.done = true
	c.tsrc.c = c
	return cn
}

func (c *connState) netConn() net.Conn { return c.nc }

func (c *connState) buffered() int { return c.w - c.r }

func (c *connState) bodyReader() *BodyReader { return &c.br }

func (c *connState) release() {
	putBuf(c.rbufp)
	putBuf(c.retired)
	putBuf(c.wbufp)
	c.rbufp, c.retired, c.wbufp = nil, nil, nil
	c.rbuf, c.wbuf = nil, nil
	c.r, c.w = 0, 0
}

// reader returns the tunnel reader: it yields the bytes already buffered,
// then reads the socket.
func (c *connState) reader() *bufio.Reader {
	if c.tunnel == nil {
		c.tunnel = bufio.NewReaderSize(&c.tsrc, tunnelBufSize)
	}
	return c.tunnel
}

// tunnelSource is the io.Reader under the tunnel bufio.Reader.
type tunnelSource struct{ c *connState }

func (t *tunnelSource) Read(p []byte) (int, error) {
	c := t.c
	if c.r < c.w {
		n := copy(p, c.rbuf[c.r:c.w])
		c.r += n
		return n, nil
	}
	if c.rerr != nil {
		return 0, c.rerr
	}
	return c.nc.Read(p)
}

// WriteTo hands the buffered bytes to w, then lets w read the socket
// directly (splice between TCP sockets on Linux).
func (t *tunnelSource) WriteTo(w io.Writer) (int64, error) {
	c := t.c
	var total int64
	if c.r < c.w {
		n, err := w.Write(c.rbuf[c.r:c.w])
		c.r += n
		total += int64(n)
		if err != nil {
			return total, err
		}
	}
	if c.rerr != nil {
		if c.rerr == io.EOF {
			return total, nil
		}
		return total, c.rerr
	}
	n, err := io.Copy(w, c.nc)
	return total + n, err
}

// fill reads once into rbuf[w:]. It needs w < len(rbuf). It returns an
// error only when no byte was read.
func (c *connState) fill() error {
	if c.rerr != nil {
		return c.rerr
	}
	n, err := c.nc.Read(c.rbuf[c.w:])
	c.w += n
	if err != nil {
		c.rerr = err
		if n > 0 {
			return nil
		}
		return err
	}
	if n == 0 {
		return io.ErrNoProgress
	}
	return nil
}

// readDirect reads from the socket into p, bypassing the buffer.
func (c *connState) readDirect(p []byte) (int, error) {
	if c.rerr != nil {
		return 0, c.rerr
	}
	n, err := c.nc.Read(p)
	if err != nil {
		c.rerr = err
		if n > 0 {
			err = nil
		}
	}
	return n, err
}

// bufferedLine returns the next line, LF included, if the buffer holds a
// complete one, and consumes it.
func (c *connState) bufferedLine() ([]byte, bool) {
	if c.scan < c.r {
		c.scan = c.r
	}
	i := bytes.IndexByte(c.rbuf[c.scan:c.w], '\n')
	if i < 0 {
		c.scan = c.w
		return nil, false
	}
	end := c.scan + i + 1
	line := c.rbuf[c.r:end]
	c.r, c.scan = end, end
	return line, true
}

// beginMessage prepares the read buffer for a new head. The previous head's
// bytes are no longer referenced (the caller's contract), so a retired
// buffer goes back to its pool and leftover bytes may move.
func (c *connState) beginMessage() {
	if c.retired != nil {
		putBuf(c.retired)
		c.retired = nil
	}
	switch {
	case c.r == c.w:
		c.r, c.w = 0, 0
	case c.r >= len(c.rbuf)/2:
		n := copy(c.rbuf, c.rbuf[c.r:c.w])
		c.r, c.w = 0, n
	}
	c.scan, c.hstart, c.base = c.r, c.r, c.r
}

// headLine returns the next line of a head without its CRLF, reading as
// needed. The whole head may not exceed maxHead bytes.
func (c *connState) headLine() ([]byte, error) {
	for {
		if line, ok := c.bufferedLine(); ok {
			if c.r-c.hstart > c.maxHead {
				return nil, errHeadTooLarge
			}
			n := len(line)
			if n < 2 || line[n-2] != '\r' {
				return nil, errBareLF
			}
			return line[:n-2], nil
		}
		if c.w-c.hstart > c.maxHead {
			return nil, errHeadTooLarge
		}
		if c.w == len(c.rbuf) {
			c.growHead()
		}
		if err := c.fill(); err != nil {
			return nil, err
		}
	}
}

// growHead moves the current head and the bytes after it to a larger
// buffer. Fields already parsed keep pointing into the old buffer, which is
// retired rather than reused.
func (c *connState) growHead() {
	live := c.w - c.hstart
	n := 2 * len(c.rbuf)
	if lim := c.maxHead + minTail; n > lim {
		n = lim
	}
	if n < live+minTail {
		n = live + minTail
	}
	c.moveTo(getBuf(n), c.hstart)
	c.hstart = 0
}

// moveTo copies rbuf[from:w] to the start of the buffer np, which becomes
// the read buffer; the old one is retired. Indexes shift by from.
func (c *connState) moveTo(np *[]byte, from int) {
	nb := *np
	copy(nb, c.rbuf[from:c.w])
	c.retire()
	c.rbufp, c.rbuf = np, nb
	c.r -= from
	c.w -= from
	c.scan -= from
	if c.scan < c.r {
		c.scan = c.r
	}
	c.base -= from
	if c.base < 0 {
		c.base = 0
	}
}

// retire keeps the current read buffer alive until the next message. A
// buffer retired earlier in the same message may still hold live fields, so
// it is left to the GC instead of the pool.
func (c *connState) retire() {
	c.retired = c.rbufp
	c.rbufp, c.rbuf = nil, nil
}

// endHead is called once a head is parsed: the body starts at r. If the
// head left less than minTail bytes of room, the unread bytes move to a
// fresh buffer of the normal size (the head stays in the retired one).
func (c *connState) endHead() {
	if len(c.rbuf)-c.r < minTail {
		c.moveTo(getBuf(c.bufSize), c.r)
	}
	c.base = c.r
}

// fillBody reads more body bytes without touching rbuf[:base].
func (c *connState) fillBody() error {
	if c.r == c.w {
		c.r, c.w, c.scan = c.base, c.base, c.base
	} else if c.w == len(c.rbuf) {
		c.makeRoom()
	}
	return c.fill()
}

// makeRoom frees space at the end of the buffer for a partial line of body
// framing: it slides the unread bytes down to base, or, when they already
// start there, moves them to a buffer twice as large.
func (c *connState) makeRoom() {
	if c.r > c.base {
		n := copy(c.rbuf[c.base:], c.rbuf[c.r:c.w])
		shift := c.r - c.base
		c.r, c.w = c.base, c.base+n
		c.scan -= shift
		if c.scan < c.r {
			c.scan = c.r
		}
		return
	}
	c.moveTo(getBuf(2*len(c.rbuf)), c.r)
}

// peek returns the unread buffered bytes once at least n are buffered,
// reading the socket as needed; it consumes nothing. It is for use between
// messages (waiting for the next request, sniffing a protocol preface).
func (c *connState) peek(n int) ([]byte, error) {
	if c.w-c.r >= n {
		return c.rbuf[c.r:c.w], nil
	}
	c.beginMessage()
	for c.w-c.r < n {
		if c.w == len(c.rbuf) {
			return c.rbuf[c.r:c.w], errPeekTooLarge
		}
		if err := c.fill(); err != nil {
			return c.rbuf[c.r:c.w], err
		}
	}
	return c.rbuf[c.r:c.w], nil
}
