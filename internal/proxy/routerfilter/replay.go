package routerfilter

import (
	"io"

	"github.com/weftmesh/weft/internal/proxy/headers"
)

// defaultBufferLimit is Envoy's default per_connection_buffer_limit_bytes,
// the request buffer limit when neither the route nor the listener sets
// one.
const defaultBufferLimit = 1 << 20

// maxKeptReplay bounds the buffer capacity a pooled request keeps between
// requests.
const maxKeptReplay = 64 << 10

// replayBody is a request body buffered in memory so that every try can
// send it again. It implements the interfaces the forwarding code reads
// from downstream bodies: a complete body (completeBody, bufferedBody) and
// its trailers (trailerSource).
type replayBody struct {
	data     []byte
	off      int
	trailers *headers.Map
}

func (b *replayBody) Read(p []byte) (int, error) {
	if b.off >= len(b.data) {
		return 0, io.EOF
	}
	n := copy(p, b.data[b.off:])
	b.off += n
	return n, nil
}

// rewind starts the body over for the next try.
func (b *replayBody) rewind() { b.off = 0 }

// Complete implements completeBody: the whole body is here.
func (b *replayBody) Complete() bool { return true }

// Buffered implements bufferedBody.
func (b *replayBody) Buffered() int { return len(b.data) - b.off }

// Trailers implements trailerSource.
func (b *replayBody) Trailers() *headers.Map { return b.trailers }

// bufferLimit is the largest request body buffered for replay: the route's
// (or virtual host's) per_request_buffer_limit_bytes, else the listener's
// per_connection_buffer_limit_bytes, else 1 MiB (Envoy's rule).
func (rq *request) bufferLimit() int64 {
	if n, ok := rq.route.BufferLimit(); ok {
		return int64(n)
	}
	if c := rq.s.Conn; c != nil && c.BufferLimit > 0 {
		return int64(c.BufferLimit)
	}
	return defaultBufferLimit
}

// bufferBody reads the request body into memory for retries and shadow
// requests when its whole length is known and fits the buffer limit:
// a content-length, or an HTTP/2 body whose END_STREAM has arrived. A body
// that does not qualify is left to stream (retry_or_shadow_abandoned counts
// it). It returns false when reading the body failed downstream, after
// answering as a failed request body is answered.
func (rq *request) bufferBody() bool {
	s := rq.s
	n := s.ContentLength
	if n == 0 {
		return true
	}
	limit := rq.bufferLimit()
	if n < 0 {
		cb, ok1 := s.Body.(completeBody)
		bb, ok2 := s.Body.(bufferedBody)
		if !ok1 || !ok2 || !cb.Complete() || int64(bb.Buffered()) > limit {
			rq.cluster.Stats.Retry.Abandoned.Inc()
			return true
		}
		n = int64(bb.Buffered())
	} else if n > limit {
		rq.cluster.Stats.Retry.Abandoned.Inc()
		return true
	}
	if ct, ok := s.Body.(continuer); ok {
		ct.Continue()
	}
	b := &rq.replayBuf
	data, err := readBody(s.Body, b.data[:0], n)
	if err != nil {
		rq.requestBodyFailed(&downstreamError{err})
		return false
	}
	b.data, b.off = data, 0
	b.trailers = nil
	if ts, ok := s.Body.(trailerSource); ok {
		b.trailers = ts.Trailers()
	}
	s.Body = b
	s.ContentLength = int64(len(data))
	rq.replay = b
	return true
}

// readBody reads a body of about n bytes (exactly n for a content-length)
// to its end.
func readBody(r io.Reader, dst []byte, n int64) ([]byte, error) {
	if int64(cap(dst)) < n {
		dst = make([]byte, 0, n)
	}
	for {
		if len(dst) == cap(dst) {
			dst = append(dst, 0)[:len(dst)] // grow: the body was longer than announced
		}
		k, err := r.Read(dst[len(dst):cap(dst)])
		dst = dst[:len(dst)+k]
		if err == io.EOF {
			return dst, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// countReplayedBody sets the bytes received to the body's length once the
// request is over: the tries read the buffered body again, each adding its
// length.
func (rq *request) countReplayedBody() {
	rq.s.Info.BytesReceived = int64(len(rq.replay.data))
}

// resetRetry clears the retry and replay state before the request goes
// back to the pool.
func (rq *request) resetRetry() {
	rq.retry = nil
	rq.rs.reset()
	rq.replay = nil
	rq.tryDeadline, rq.perTryIdle, rq.bodyStarted = rq.deadline, 0, false
	b := &rq.replayBuf
	if cap(b.data) > maxKeptReplay {
		b.data = nil
	}
	b.data, b.off, b.trailers = b.data[:0], 0, nil
}
