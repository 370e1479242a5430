package http1

import (
	"strconv"

	"github.com/weftmesh/weft/internal/proxy/headers"
)

// Output primitives. The write buffer never grows past its capacity (it is
// pooled): anything that does not fit is flushed first, and large bodies go
// out with one writev of the buffer plus the caller's slice.

// put appends b to the write buffer, flushing as needed.
func (c *connState) put(b []byte) {
	if len(c.wbuf)+len(b) <= cap(c.wbuf) {
		c.wbuf = append(c.wbuf, b...)
		return
	}
	for len(b) > 0 && c.werr == nil {
		if len(c.wbuf) == cap(c.wbuf) {
			c.flushBuf()
			c.headFlushed = true
		}
		n := copy(c.wbuf[len(c.wbuf):cap(c.wbuf)], b)
		c.wbuf = c.wbuf[:len(c.wbuf)+n]
		b = b[n:]
	}
}

// putString is put for a string.
func (c *connState) putString(s string) {
	if len(c.wbuf)+len(s) <= cap(c.wbuf) {
		c.wbuf = append(c.wbuf, s...)
		return
	}
	for len(s) > 0 && c.werr == nil {
		if len(c.wbuf) == cap(c.wbuf) {
			c.flushBuf()
			c.headFlushed = true
		}
		n := copy(c.wbuf[len(c.wbuf):cap(c.wbuf)], s)
		c.wbuf = c.wbuf[:len(c.wbuf)+n]
		s = s[n:]
	}
}

// putField writes "name: value\r\n".
func (c *connState) putField(name, value []byte) {
	if len(c.wbuf)+len(name)+len(value)+4 <= cap(c.wbuf) {
		c.wbuf = append(c.wbuf, name...)
		c.wbuf = append(c.wbuf, ':', ' ')
		c.wbuf = append(c.wbuf, value...)
		c.wbuf = append(c.wbuf, '\r', '\n')
		return
	}
	c.put(name)
	c.putString(": ")
	c.put(value)
	c.putString("\r\n")
}

// putInt formats n in base without allocating (strconv.AppendInt into the
// buffer's spare capacity).
func (c *connState) putInt(n int64, base int) {
	if cap(c.wbuf)-len(c.wbuf) < 24 {
		c.flushBuf()
		c.headFlushed = true
	}
	c.wbuf = strconv.AppendInt(c.wbuf, n, base)
}

func (c *connState) putLength(n int64) {
	c.putString("content-length: ")
	c.putInt(n, 10)
	c.putString("\r\n")
}

// flushBuf writes the buffer out. After a write error the buffer is
// discarded and the error is sticky.
func (c *connState) flushBuf() {
	if c.werr == nil && len(c.wbuf) > 0 {
		if _, err := c.nc.Write(c.wbuf); err != nil {
			c.werr = err
		}
	}
	c.wbuf = c.wbuf[:0]
}

// writev sends the buffer and p with one vectored write where the socket
// supports it.
func (c *connState) writev(p []byte) {
	if c.werr != nil {
		c.wbuf = c.wbuf[:0]
		return
	}
	var err error
	if len(c.wbuf) == 0 {
		_, err = c.nc.Write(p)
	} else {
		c.iov = append(c.iovArr[:0], c.wbuf, p)
		_, err = c.iov.WriteTo(c.nc)
		c.iovArr = [2][]byte{}
	}
	if err != nil {
		c.werr = err
	}
	c.wbuf = c.wbuf[:0]
}

func (c *connState) flush() error {
	c.flushBuf()
	return c.werr
}

// write implements Conn.Write.
func (c *connState) write(p []byte) (int, error) {
	if c.werr != nil {
		return 0, c.werr
	}
	o := &c.out
	switch {
	case !o.active:
		return 0, ErrNoMessage
	case o.suppress:
		return len(p), nil
	case o.raw:
		return c.writeRaw(p)
	}
	switch o.kind {
	case BodyLength:
		if int64(len(p)) > o.remaining {
			return 0, ErrBodyTooLong
		}
		o.remaining -= int64(len(p))
		return c.writeRaw(p)
	case BodyChunked:
		if len(p) == 0 {
			return 0, nil // an empty chunk would end the body
		}
		return c.writeChunk(p)
	case BodyUntilClose:
		return c.writeRaw(p)
	}
	if len(p) == 0 {
		return 0, nil
	}
	return 0, ErrBodyNotAllowed
}

func (c *connState) writeRaw(p []byte) (int, error) {
	switch {
	case len(c.wbuf)+len(p) <= cap(c.wbuf):
		c.wbuf = append(c.wbuf, p...)
	case len(p) < cap(c.wbuf)/2:
		c.flushBuf()
		c.wbuf = append(c.wbuf, p...)
	default:
		c.writev(p)
	}
	if c.werr != nil {
		return 0, c.werr
	}
	return len(p), nil
}

// chunkOverhead bounds the framing around one chunk: 16 hex digits and two
// CRLFs.
const chunkOverhead = 16 + 4

func (c *connState) writeChunk(p []byte) (int, error) {
	fits := len(c.wbuf)+len(p)+chunkOverhead <= cap(c.wbuf)
	if !fits && len(p) >= cap(c.wbuf)/2 {
		c.putChunkHeader(len(p))
		c.writev(p)
		c.wbuf = append(c.wbuf, '\r', '\n')
	} else {
		if !fits {
			c.flushBuf()
		}
		c.putChunkHeader(len(p))
		c.wbuf = append(c.wbuf, p...)
		c.wbuf = append(c.wbuf, '\r', '\n')
	}
	if c.werr != nil {
		return 0, c.werr
	}
	return len(p), nil
}

func (c *connState) putChunkHeader(n int) {
	if cap(c.wbuf)-len(c.wbuf) < chunkOverhead {
		c.flushBuf()
	}
	c.wbuf = strconv.AppendInt(c.wbuf, int64(n), 16)
	c.wbuf = append(c.wbuf, '\r', '\n')
}

// endBody implements Conn.EndBody. Trailers are sent only with a chunked
// body (elsewhere HTTP/1.1 has no place for them, and Envoy drops them too).
func (c *connState) endBody(trailers *headers.Map) error {
	if c.werr != nil {
		return c.werr
	}
	o := &c.out
	if !o.active {
		return ErrNoMessage
	}
	switch {
	case o.suppress || o.raw:
	case o.kind == BodyLength && o.remaining != 0:
		c.werr = ErrBodyIncomplete
		o.active = false
		return c.werr
	case o.kind == BodyChunked:
		start := len(c.wbuf)
		c.headFlushed = false
		c.putString("0\r\n")
		if trailers != nil {
			if err := c.putFields(trailers, false); err != nil {
				return c.abortHead(start, err)
			}
		}
		c.putString("\r\n")
	}
	o.active = false
	return c.werr
}

// writeContinue implements Conn.WriteContinue.
func (c *connState) writeContinue() error {
	if c.werr != nil {
		return c.werr
	}
	c.putString(continueResponse)
	return c.flush()
}
