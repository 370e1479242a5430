package http1

import "io"

// chunkStep advances a chunked body through one piece of framing: a
// chunk-size line, the CRLF after chunk data, or one trailer line (RFC 9112
// §7.1). With block false it reads nothing and reports no progress when the
// piece is not fully buffered.
func (b *bodyState) chunkStep(block bool) (bool, error) {
	switch b.cs {
	case csSize:
		line, ok, err := b.line(block, maxChunkLine, errBadChunkSize)
		if !ok {
			return false, err
		}
		size, perr := parseChunkSize(line)
		if perr != nil {
			return false, perr
		}
		if size == 0 {
			b.cs = csTrailer
		} else {
			b.cs, b.remaining = csData, size
		}
	case csDataEnd:
		c := b.c
		for c.w-c.r < 2 {
			if !block {
				return false, nil
			}
			if err := c.fillBody(); err != nil {
				return false, unexpected(err)
			}
		}
		if c.rbuf[c.r] != '\r' || c.rbuf[c.r+1] != '\n' {
			return false, errBadChunkEnd
		}
		c.r += 2
		b.cs = csSize
	case csTrailer:
		return b.trailerStep(block)
	}
	return true, nil
}

// trailerStep reads one trailer line; the empty line ends the body. Trailer
// fields get the same checks as header fields and are copied into the map
// given to SetTrailers, within the head limits (Envoy applies its header
// limits to trailers too).
func (b *bodyState) trailerStep(block bool) (bool, error) {
	c := b.c
	budget := c.maxHead - b.tbytes
	line, ok, err := b.line(block, budget, errTrailerTooLarge)
	if !ok {
		return false, err
	}
	b.tbytes += len(line) + 2
	if b.tbytes > c.maxHead {
		return false, errTrailerTooLarge
	}
	if len(line) == 0 {
		b.done = true
		return true, nil
	}
	b.tcount++
	if b.tcount > c.maxHeaders {
		return false, errTooManyTrailers
	}
	name, value, perr := splitField(line)
	if perr != nil {
		return false, perr
	}
	if b.trailers != nil {
		b.trailers.AddBytes(name, value)
	}
	return true, nil
}

// line returns the next CRLF-terminated line of body framing without its
// CRLF. A line longer than max is tooLong. With block false, ok is false
// when no complete line is buffered.
func (b *bodyState) line(block bool, max int, tooLong *Error) ([]byte, bool, error) {
	c := b.c
	for {
		if l, ok := c.bufferedLine(); ok {
			n := len(l)
			if n-2 > max {
				return nil, false, tooLong
			}
			if n < 2 || l[n-2] != '\r' {
				return nil, false, errBareLF
			}
			return l[:n-2], true, nil
		}
		if c.w-c.r > max+1 {
			return nil, false, tooLong
		}
		if !block {
			return nil, false, nil
		}
		if err := c.fillBody(); err != nil {
			return nil, false, unexpected(err)
		}
	}
}

// unexpected maps io.EOF inside a body to io.ErrUnexpectedEOF.
func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// parseChunkSize parses "chunk-size [ chunk-ext ]": 1*HEXDIG, then
// optional extensions, which are ignored but must start with ';' (after
// optional whitespace) and hold no control characters (Envoy refuses a lone
// CR in extensions). Sizes above 2^63-1 are refused.
func parseChunkSize(line []byte) (int64, *Error) {
	var size int64
	i := 0
	for ; i < len(line); i++ {
		d := unhex(line[i])
		if d < 0 {
			break
		}
		if size > (1<<63-1)>>4 {
			return 0, errBadChunkSize
		}
		size = size<<4 | int64(d)
	}
	if i == 0 {
		return 0, errBadChunkSize
	}
	ext := trimOWS(line[i:])
	if len(ext) > 0 && (ext[0] != ';' || !validValue(ext)) {
		return 0, errBadChunkSize
	}
	return size, nil
}
