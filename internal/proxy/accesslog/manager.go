package accesslog

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"

	"github.com/weftmesh/weft/internal/proxy/stats"
)

// Options configure a Manager. Zero values select the defaults.
type Options struct {
	// Stats receives the access_logs.* and filesystem.* counters.
	Stats *stats.Store
	// Hostname is %HOSTNAME% (default: os.Hostname()).
	Hostname string
	// FlushInterval is how often buffered lines are written out (default
	// 1 s; Envoy's --file-flush-interval-msec defaults to 10 s, shorter
	// here so that `kubectl logs` shows requests promptly). Lines are also
	// written whenever 64 KiB are buffered, and on Close.
	FlushInterval time.Duration
	// QueueSize is the number of lines one file may have waiting for its
	// writer before new lines are dropped (default 8192).
	QueueSize int
	// Stdout and Stderr receive the /dev/stdout and /dev/stderr files and
	// the stdout and stderr loggers (default: the process's). They are
	// never closed.
	Stdout, Stderr io.Writer
	// OpenFile opens a log file for appending (default: os.OpenFile with
	// O_APPEND|O_CREATE|O_WRONLY, mode 0644).
	OpenFile func(path string) (io.WriteCloser, error)
}

// Manager builds access loggers and owns the files they write: one writer
// goroutine per path, shared by every logger writing there. Its methods
// are safe for concurrent use.
type Manager struct {
	o       Options
	st      *stats.Store
	mu      sync.Mutex
	writers map[string]*fileWriter
	closed  bool
}

// NewManager returns a Manager; Close releases its files.
func NewManager(o Options) *Manager {
	if o.Stats == nil {
		o.Stats = stats.NewStore()
	}
	if o.Hostname == "" {
		o.Hostname, _ = os.Hostname()
	}
	if o.FlushInterval <= 0 {
		o.FlushInterval = time.Second
	}
	if o.QueueSize <= 0 {
		o.QueueSize = 8192
	}
	if o.Stdout == nil {
		o.Stdout = os.Stdout
	}
	if o.Stderr == nil {
		o.Stderr = os.Stderr
	}
	if o.OpenFile == nil {
		o.OpenFile = func(path string) (io.WriteCloser, error) {
			return os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		}
	}
	return &Manager{o: o, st: o.Stats, writers: map[string]*fileWriter{}}
}

// Close writes out every buffered line and closes the files (not stdout
// or stderr). Loggers built by m drop their lines afterwards. Close may be
// called more than once; a nil Manager has nothing to close.
func (m *Manager) Close() {
	if m == nil {
		return
	}
	m.mu.Lock()
	ws := m.writers
	m.writers, m.closed = map[string]*fileWriter{}, true
	m.mu.Unlock()
	for _, w := range ws {
		w.close()
	}
}

// writer returns the writer of path, opening the file on first use.
func (m *Manager) writer(path string) (*fileWriter, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if w, ok := m.writers[path]; ok {
		return w, nil
	}
	if m.closed {
		return nil, fmt.Errorf("the access log manager is closed")
	}
	var out io.Writer
	var closer io.Closer
	switch path {
	case "/dev/stdout":
		out = m.o.Stdout
	case "/dev/stderr":
		out = m.o.Stderr
	default:
		f, err := m.o.OpenFile(path)
		if err != nil {
			return nil, fmt.Errorf("cannot open %q for appending: %w", path, err)
		}
		out, closer = f, f
	}
	root := m.st.Root()
	fs := root.Scope("filesystem")
	w := newFileWriter(path, out, closer, m.o.QueueSize, m.o.FlushInterval, writerStats{
		buffered:  fs.Counter("write_buffered"),
		completed: fs.Counter("write_completed"),
		failed:    fs.Counter("write_failed"),
		byTimer:   fs.Counter("flushed_by_timer"),
		dropped:   root.Scope("access_logs").Counter("dropped"),
	})
	m.writers[path] = w
	return w, nil
}

// Logger is one configured access log: an optional filter, a format and
// the file it writes. It is immutable and safe for concurrent use.
type Logger struct {
	name   string
	filter *filter
	format *Formatter
	w      *fileWriter
}

// Log formats e and queues the line, unless the filter rejects e. It
// never blocks and keeps nothing of e.
func (l *Logger) Log(e *Entry) {
	if l.filter != nil && !l.filter.match(e) {
		return
	}
	b := linePool.Get().(*[]byte)
	sp := linePool.Get().(*[]byte)
	*b, *sp = l.format.AppendTo((*b)[:0], (*sp)[:0], e)
	putLine(sp)
	l.w.write(b)
}

// Loggers are the access logs of one connection manager or TCP proxy, in
// configuration order. A nil Loggers logs nothing.
type Loggers []*Logger

// Log hands e to every logger.
func (ls Loggers) Log(e *Entry) {
	for _, l := range ls {
		l.Log(e)
	}
}

// Build compiles the access_log list of an http_connection_manager,
// tcp_proxy or listener. path is the field's path for errors, such as
// "access_log". A nil m accepts only an empty list.
func (m *Manager) Build(cfgs []*accesslogv3.AccessLog, path string) (Loggers, error) {
	if len(cfgs) == 0 {
		return nil, nil
	}
	if m == nil {
		return nil, fmt.Errorf("%s: access logs are not available here", path)
	}
	out := make(Loggers, 0, len(cfgs))
	for i, c := range cfgs {
		p := fmt.Sprintf("%s[%d]", path, i)
		l, err := m.build(c, p)
		if err != nil {
			return nil, err
		}
		out = append(out, l)
	}
	return out, nil
}

func (m *Manager) build(c *accesslogv3.AccessLog, path string) (*Logger, error) {
	l := &Logger{name: c.GetName()}
	if c.GetFilter() != nil {
		f, err := compileFilter(c.GetFilter(), path+".filter")
		if err != nil {
			return nil, err
		}
		l.filter = &f
	}
	tc := c.GetTypedConfig()
	if tc == nil {
		return nil, fmt.Errorf("%s (%s).typed_config: required (envoy.extensions.access_loggers.file.v3.FileAccessLog, stream.v3.StdoutAccessLog or StderrAccessLog)", path, c.GetName())
	}
	sink, err := decodeSink(tc, m.o.Hostname)
	if err != nil {
		return nil, fmt.Errorf("%s (%s).typed_config.%w", path, c.GetName(), err)
	}
	w, err := m.writer(sink.path)
	if err != nil {
		return nil, fmt.Errorf("%s (%s).typed_config.path: %w", path, c.GetName(), err)
	}
	l.format, l.w = sink.format, w
	return l, nil
}
