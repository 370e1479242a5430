package http1

import (
	"io"
	"math"

	"github.com/weftmesh/weft/internal/proxy/headers"
)

// chunkState is where a chunked body reader stands.
type chunkState uint8

const (
	csSize    chunkState = iota // expecting a chunk-size line
	csData                      // inside chunk data (remaining bytes left)
	csDataEnd                   // expecting the CRLF after chunk data
	csTrailer                   // reading the trailer section
)

// bodyState is the implementation of BodyReader.
type bodyState struct {
	c         *connState
	kind      BodyKind
	remaining int64 // BodyLength: bytes left; BodyChunked: bytes left in the chunk
	cs        chunkState
	done      bool
	resp      bool // a response body: protocol errors map to 503
	trailers  *headers.Map
	tbytes    int
	tcount    int
	err       error // sticky
}

// reset starts a new message body.
func (b *bodyState) reset(f Framing, resp bool) {
	b.kind, b.remaining, b.cs = f.Kind, f.Length, csSize
	b.done = f.Kind == BodyNone || f.Kind == BodyLength && f.Length <= 0
	b.resp, b.trailers, b.tbytes, b.tcount, b.err = resp, nil, 0, 0, nil
}

func (b *bodyState) setTrailers(m *headers.Map) { b.trailers = m }

func (b *bodyState) remainingBytes() int64 {
	if b.kind == BodyLength {
		return b.remaining
	}
	return -1
}

// fail records a sticky error, mapping protocol errors of responses to 503.
func (b *bodyState) fail(err error) error {
	if e, ok := err.(*Error); ok && b.resp {
		err = forResponse(e)
	}
	b.err = err
	if e, ok := err.(*Error); ok {
		b.c.broken = e
	}
	return err
}

// inData reports whether the next body bytes are payload (not framing).
func (b *bodyState) inData() bool {
	return b.kind != BodyChunked || b.cs == csData
}

// read implements BodyReader.Read. It may return n > 0 with io.EOF when the
// body ends within the bytes already received.
func (b *bodyState) read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	if b.done {
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	var n int
	c := b.c
	if b.inData() && c.r == c.w && len(p) >= directReadMin {
		var err error
		if n, err = b.readDirect(p); err != nil {
			return n, err
		}
	} else {
		s, err := b.span(len(p), true)
		if err != nil {
			return 0, err
		}
		n = copy(p, s)
	}
	b.settle()
	if b.done {
		return n, io.EOF
	}
	return n, nil
}

// readDirect reads payload from the socket into p, bypassing the buffer.
func (b *bodyState) readDirect(p []byte) (int, error) {
	if b.kind != BodyUntilClose && int64(len(p)) > b.remaining {
		p = p[:b.remaining]
	}
	n, err := b.c.readDirect(p)
	if err != nil {
		return 0, b.eof(err)
	}
	b.consumed(n)
	return n, nil
}

// eof maps a read error: the end of an until-close body is its EOF; any
// other body cut short is io.ErrUnexpectedEOF.
func (b *bodyState) eof(err error) error {
	if err == io.EOF {
		if b.kind == BodyUntilClose {
			b.done = true
			return io.EOF
		}
		err = io.ErrUnexpectedEOF
	}
	return b.fail(err)
}

// consumed accounts for n payload bytes.
func (b *bodyState) consumed(n int) {
	if b.kind == BodyUntilClose {
		return
	}
	b.remaining -= int64(n)
	if b.remaining > 0 {
		return
	}
	if b.kind == BodyLength {
		b.done = true
	} else {
		b.cs = csDataEnd
	}
}

// span returns up to max payload bytes from the read buffer and consumes
// them; the slice stays valid until the next read call. When block is
// false it returns (nil, nil) instead of reading the socket. It returns
// io.EOF at the end of the body.
func (b *bodyState) span(max int, block bool) ([]byte, error) {
	for {
		if b.err != nil {
			return nil, b.err
		}
		if b.done {
			return nil, io.EOF
		}
		if b.inData() {
			return b.dataSpan(max, block)
		}
		progressed, err := b.chunkStep(block)
		if err != nil {
			return nil, b.fail(err)
		}
		if !progressed {
			return nil, nil
		}
	}
}

func (b *bodyState) dataSpan(max int, block bool) ([]byte, error) {
	c := b.c
	if c.r == c.w {
		if !block {
			return nil, nil
		}
		if err := c.fillBody(); err != nil {
			return nil, b.eof(err)
		}
	}
	n := c.w - c.r
	if n > max {
		n = max
	}
	if b.kind != BodyUntilClose && int64(n) > b.remaining {
		n = int(b.remaining)
	}
	s := c.rbuf[c.r : c.r+n]
	c.r += n
	b.consumed(n)
	return s, nil
}

// settle moves a chunked body past framing already buffered, so that the
// end of the body is seen (Done, io.EOF) without another read call.
func (b *bodyState) settle() {
	for b.err == nil && !b.done && !b.inData() {
		progressed, err := b.chunkStep(false)
		if err != nil {
			b.fail(err)
			return
		}
		if !progressed {
			return
		}
	}
}

// writeTo implements BodyReader.WriteTo: payload goes to w straight from
// the read buffer.
func (b *bodyState) writeTo(w io.Writer) (int64, error) {
	var total int64
	for {
		s, err := b.span(math.MaxInt, true)
		if len(s) > 0 {
			n, werr := w.Write(s)
			total += int64(n)
			if werr != nil {
				return total, werr
			}
		}
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}

// drain implements BodyReader.Drain.
func (b *bodyState) drain(max int64) bool {
	for !b.done {
		if max <= 0 || b.err != nil {
			return false
		}
		lim := math.MaxInt
		if max < int64(lim) {
			lim = int(max)
		}
		s, err := b.span(lim, true)
		max -= int64(len(s))
		if err != nil && err != io.EOF {
			return false
		}
	}
	return true
}
