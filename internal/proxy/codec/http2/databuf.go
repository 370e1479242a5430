package http2

import "sync"

// chunkSize is the size of the pooled chunks body buffers are made of: one
// DATA frame of the default maximum size.
const chunkSize = 16 << 10

// chunkPool holds body buffer chunks. Items are *[chunkSize]byte so that
// Put does not allocate.
var chunkPool = sync.Pool{New: func() any { return new([chunkSize]byte) }}

// dataBuf is a FIFO of bytes stored in pooled chunks: a stream's received
// body, between the connection's reader (write) and the stream's consumer
// (read). Chunks return to the pool as soon as they are read, so an idle
// stream holds no buffer. Not safe for concurrent use (the connection's lock
// guards it).
type dataBuf struct {
	chunks []*[chunkSize]byte
	r      int // read offset in chunks[0]
	w      int // write offset in the last chunk
	n      int // bytes buffered
}

// Len returns the number of bytes buffered.
func (b *dataBuf) Len() int { return b.n }

// write appends p.
func (b *dataBuf) write(p []byte) {
	for len(p) > 0 {
		if len(b.chunks) == 0 || b.w == chunkSize {
			b.chunks = append(b.chunks, chunkPool.Get().(*[chunkSize]byte))
			b.w = 0
		}
		c := b.chunks[len(b.chunks)-1]
		k := copy(c[b.w:], p)
		b.w += k
		b.n += k
		p = p[k:]
	}
}

// read moves up to len(p) bytes into p and returns how many.
func (b *dataBuf) read(p []byte) int {
	n := 0
	for len(p) > 0 && b.n > 0 {
		c := b.chunks[0]
		end := chunkSize
		if len(b.chunks) == 1 {
			end = b.w
		}
		k := copy(p, c[b.r:end])
		b.r += k
		b.n -= k
		n += k
		p = p[k:]
		if b.r == end {
			b.dropFirst()
		}
	}
	return n
}

// dropFirst returns the first chunk to the pool.
func (b *dataBuf) dropFirst() {
	chunkPool.Put(b.chunks[0])
	copy(b.chunks, b.chunks[1:])
	b.chunks[len(b.chunks)-1] = nil
	b.chunks = b.chunks[:len(b.chunks)-1]
	b.r = 0
	if len(b.chunks) == 0 {
		b.w = 0
	}
}

// reset discards the content and returns every chunk to the pool.
func (b *dataBuf) reset() {
	for i, c := range b.chunks {
		chunkPool.Put(c)
		b.chunks[i] = nil
	}
	b.chunks = b.chunks[:0]
	b.r, b.w, b.n = 0, 0, 0
}
