package accesslog

import (
	"bufio"
	"io"
	"sync"
	"time"

	"github.com/weftmesh/weft/internal/proxy/stats"
)

// flushSize is the buffered size that makes the writer flush before its
// interval (Envoy's file_flush_min_size_kb default, 64 KiB).
const flushSize = 64 << 10

// linePool holds the buffers log lines are formatted into; the writer
// goroutine returns them once written.
var linePool = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// maxPooledLine bounds the buffers kept in linePool, so that one huge
// line does not pin its buffer.
const maxPooledLine = 16 << 10

func putLine(b *[]byte) {
	if cap(*b) <= maxPooledLine {
		*b = (*b)[:0]
		linePool.Put(b)
	}
}

// writerStats are one file's counters, Envoy's filesystem.* stats plus
// weft-proxy's drop counter (Envoy's queue is unbounded; weft-proxy's is
// bounded and drops rather than block a request).
type writerStats struct {
	buffered, completed, failed, byTimer, dropped *stats.Counter
}

// fileWriter owns one open log file: the only goroutine that writes it is
// run's. Lines arrive through the bounded queue q.
type fileWriter struct {
	path   string
	out    io.Writer
	closer io.Closer // nil for stdout and stderr, which stay open
	q      chan *[]byte
	every  time.Duration
	st     writerStats

	stop chan struct{}
	done chan struct{}
}

func newFileWriter(path string, out io.Writer, closer io.Closer, queue int, every time.Duration, st writerStats) *fileWriter {
	w := &fileWriter{
		path: path, out: out, closer: closer,
		q: make(chan *[]byte, queue), every: every, st: st,
		stop: make(chan struct{}), done: make(chan struct{}),
	}
	go w.run()
	return w
}

// write queues one line; it never blocks. The writer takes b over (and
// returns it to the pool); a line that does not fit in the queue is
// dropped and counted.
func (w *fileWriter) write(b *[]byte) {
	select {
	case w.q <- b:
		w.st.buffered.Inc()
	default:
		w.st.dropped.Inc()
		putLine(b)
	}
}

// run writes queued lines through a buffer, flushed every interval, when
// it holds flushSize bytes, and when the writer stops (after draining the
// queue).
func (w *fileWriter) run() {
	defer close(w.done)
	bw := bufio.NewWriterSize(w.out, 2*flushSize)
	tick := time.NewTicker(w.every)
	defer tick.Stop()
	for {
		select {
		case b := <-w.q:
			w.put(bw, b)
			if bw.Buffered() >= flushSize {
				w.flush(bw)
			}
		case <-tick.C:
			if bw.Buffered() > 0 {
				w.st.byTimer.Inc()
				w.flush(bw)
			}
		case <-w.stop:
			for {
				select {
				case b := <-w.q:
					w.put(bw, b)
				default:
					w.flush(bw)
					if w.closer != nil {
						w.closer.Close()
					}
					return
				}
			}
		}
	}
}

func (w *fileWriter) put(bw *bufio.Writer, b *[]byte) {
	if _, err := bw.Write(*b); err != nil {
		w.st.failed.Inc()
	}
	putLine(b)
}

func (w *fileWriter) flush(bw *bufio.Writer) {
	if bw.Buffered() == 0 {
		return
	}
	if err := bw.Flush(); err != nil {
		w.st.failed.Inc()
		bw.Reset(w.out) // drop what could not be written; keep going
		return
	}
	w.st.completed.Inc()
}

// close drains the queue, flushes and closes the file, and waits for the
// writer goroutine to end. Lines written after close stay in the queue
// unwritten.
func (w *fileWriter) close() {
	close(w.stop)
	<-w.done
}
