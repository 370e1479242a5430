package accesslog

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	filev3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/file/v3"
	streamv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/stream/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/weftmesh/weft/internal/proxy/stats"
	"github.com/weftmesh/weft/internal/syncbuf"
)

func anyOf(t testing.TB, m proto.Message) *anypb.Any {
	t.Helper()
	a, err := anypb.New(m)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func textLog(t testing.TB, path, format string) *accesslogv3.AccessLog {
	return &accesslogv3.AccessLog{
		Name: "envoy.access_loggers.file",
		ConfigType: &accesslogv3.AccessLog_TypedConfig{TypedConfig: anyOf(t, &filev3.FileAccessLog{
			Path: path,
			AccessLogFormat: &filev3.FileAccessLog_LogFormat{LogFormat: &corev3.SubstitutionFormatString{
				Format: &corev3.SubstitutionFormatString_TextFormatSource{TextFormatSource: &corev3.DataSource{
					Specifier: &corev3.DataSource_InlineString{InlineString: format},
				}},
			}},
		})},
	}
}

// TestBuildAndWrite: loggers of every kind write their lines, filters
// apply, Close writes out what is buffered and closes the file.
func TestBuildAndWrite(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "access.log")
	var stdout, stderr syncbuf.Buffer
	st := stats.NewStore()
	m := NewManager(Options{Stats: st, Stdout: &stdout, Stderr: &stderr, FlushInterval: time.Hour})
	jsonFmt, _ := structpb.NewStruct(map[string]any{"code": "%RESPONSE_CODE%"})
	cfgs := []*accesslogv3.AccessLog{
		textLog(t, file, "%REQ(:METHOD)% %RESPONSE_CODE%\n"),
		{Name: "stdout", ConfigType: &accesslogv3.AccessLog_TypedConfig{TypedConfig: anyOf(t, &streamv3.StdoutAccessLog{})}},
		{Name: "stderr-errors", Filter: &accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_StatusCodeFilter{
			StatusCodeFilter: &accesslogv3.StatusCodeFilter{Comparison: &accesslogv3.ComparisonFilter{
				Op: accesslogv3.ComparisonFilter_GE, Value: &corev3.RuntimeUInt32{DefaultValue: 500},
			}},
		}}, ConfigType: &accesslogv3.AccessLog_TypedConfig{TypedConfig: anyOf(t, &streamv3.StderrAccessLog{
			AccessLogFormat: &streamv3.StderrAccessLog_LogFormat{LogFormat: &corev3.SubstitutionFormatString{
				Format: &corev3.SubstitutionFormatString_JsonFormat{JsonFormat: jsonFmt},
			}},
		})}},
		{Name: "deprecated", ConfigType: &accesslogv3.AccessLog_TypedConfig{TypedConfig: anyOf(t, &filev3.FileAccessLog{
			Path: file, AccessLogFormat: &filev3.FileAccessLog_JsonFormat{JsonFormat: jsonFmt},
		})}},
	}
	ls, err := m.Build(cfgs, "access_log")
	if err != nil {
		t.Fatal(err)
	}
	ok, bad := httpEntry(), httpEntry()
	bad.Info.ResponseCode = 503
	ls.Log(ok)
	ls.Log(bad)
	m.Close()

	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	// The two loggers on the same path share one writer: lines keep the
	// order they were logged in.
	if want := "GET 201\n{\"code\":\"201\"}\nGET 503\n{\"code\":\"503\"}\n"; string(b) != want {
		t.Errorf("file:\n%s\nwant:\n%s", b, want)
	}
	if got := stdout.String(); strings.Count(got, "\n") != 2 || !strings.HasPrefix(got, `[2026-03-07T09:05:02.123Z] "GET /api?x=1 HTTP/1.1" 201 UH,URX 11 22 25 7 "10.1.1.1" "curl/8" "rid-1" "svc.local" "10.0.0.3:9080"`) {
		t.Errorf("stdout (Envoy's default format):\n%s", got)
	}
	if got := stderr.String(); got != "{\"code\":503}\n" {
		t.Errorf("stderr (filtered, typed JSON): %q", got)
	}
	if n := st.CounterValue("filesystem.write_buffered"); n != 7 {
		t.Errorf("filesystem.write_buffered = %d, want 7", n)
	}
	// After Close, lines are dropped, never written or blocked on.
	ls.Log(ok)
}

// blockingWriter blocks every Write until release is closed.
type blockingWriter struct {
	release chan struct{}
	started chan struct{}
	once    sync.Once
	n       int
}

func (w *blockingWriter) Write(p []byte) (int, error) {
	w.once.Do(func() { close(w.started) })
	<-w.release
	w.n += len(p)
	return len(p), nil
}

// TestQueueFullDrops: a stalled file never blocks Log; lines beyond the
// queue are dropped and counted.
func TestQueueFullDrops(t *testing.T) {
	w := &blockingWriter{release: make(chan struct{}), started: make(chan struct{})}
	st := stats.NewStore()
	m := NewManager(Options{Stats: st, Stdout: w, QueueSize: 4, FlushInterval: time.Millisecond})
	ls, err := m.Build([]*accesslogv3.AccessLog{{Name: "stdout", ConfigType: &accesslogv3.AccessLog_TypedConfig{
		TypedConfig: anyOf(t, &streamv3.StdoutAccessLog{}),
	}}}, "access_log")
	if err != nil {
		t.Fatal(err)
	}
	e := httpEntry()
	ls.Log(e)
	// The writer takes the first line and blocks in its flush.
	<-w.started
	done := make(chan struct{})
	go func() {
		for i := 0; i < 20; i++ {
			ls.Log(e)
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Log blocked on a stalled writer")
	}
	// 20 lines against a queue of 4 (the writer is stalled): 16 dropped.
	if n := st.CounterValue("access_logs.dropped"); n != 16 {
		t.Errorf("access_logs.dropped = %d, want 16", n)
	}
	close(w.release)
	m.Close()
}

func TestBuildErrors(t *testing.T) {
	m := NewManager(Options{Stdout: io.Discard})
	defer m.Close()
	cases := []struct {
		cfg  *accesslogv3.AccessLog
		want string
	}{
		{textLog(t, "/dev/stdout", "%BAD%"), "access_log[0] (envoy.access_loggers.file).typed_config.log_format.text_format_source: position 0: command operator %BAD% is not supported"},
		{textLog(t, "", "x"), "typed_config.path: required"},
		{textLog(t, "/nonexistent-dir/x.log", "x"), "cannot open"},
		{&accesslogv3.AccessLog{Name: "x"}, "typed_config: required"},
		{&accesslogv3.AccessLog{Name: "x", ConfigType: &accesslogv3.AccessLog_TypedConfig{TypedConfig: anyOf(t, &corev3.Node{})}}, "@type: envoy.config.core.v3.Node is not supported"},
		{&accesslogv3.AccessLog{Name: "f", Filter: &accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_ResponseFlagFilter{
			ResponseFlagFilter: &accesslogv3.ResponseFlagFilter{Flags: []string{"UH", "XX"}},
		}}, ConfigType: &accesslogv3.AccessLog_TypedConfig{TypedConfig: anyOf(t, &streamv3.StdoutAccessLog{})}}, "access_log[0].filter.response_flag_filter.flags[1]: \"XX\""},
		{&accesslogv3.AccessLog{Name: "f", Filter: &accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_TraceableFilter{}},
			ConfigType: &accesslogv3.AccessLog_TypedConfig{TypedConfig: anyOf(t, &streamv3.StdoutAccessLog{})}}, "filter: this filter is not supported"},
	}
	for _, c := range cases {
		_, err := m.Build([]*accesslogv3.AccessLog{c.cfg}, "access_log")
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("error %v, want one containing %q", err, c.want)
		}
	}
}

func TestFilters(t *testing.T) {
	cmp := func(op accesslogv3.ComparisonFilter_Op, v uint32) *accesslogv3.ComparisonFilter {
		return &accesslogv3.ComparisonFilter{Op: op, Value: &corev3.RuntimeUInt32{DefaultValue: v}}
	}
	status := func(op accesslogv3.ComparisonFilter_Op, v uint32) *accesslogv3.AccessLogFilter {
		return &accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_StatusCodeFilter{StatusCodeFilter: &accesslogv3.StatusCodeFilter{Comparison: cmp(op, v)}}}
	}
	dur := func(op accesslogv3.ComparisonFilter_Op, v uint32) *accesslogv3.AccessLogFilter {
		return &accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_DurationFilter{DurationFilter: &accesslogv3.DurationFilter{Comparison: cmp(op, v)}}}
	}
	flags := func(f ...string) *accesslogv3.AccessLogFilter {
		return &accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_ResponseFlagFilter{ResponseFlagFilter: &accesslogv3.ResponseFlagFilter{Flags: f}}}
	}
	and := func(fs ...*accesslogv3.AccessLogFilter) *accesslogv3.AccessLogFilter {
		return &accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_AndFilter{AndFilter: &accesslogv3.AndFilter{Filters: fs}}}
	}
	or := func(fs ...*accesslogv3.AccessLogFilter) *accesslogv3.AccessLogFilter {
		return &accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_OrFilter{OrFilter: &accesslogv3.OrFilter{Filters: fs}}}
	}
	nhc := &accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_NotHealthCheckFilter{NotHealthCheckFilter: &accesslogv3.NotHealthCheckFilter{}}}
	e := httpEntry() // 201, 25 ms, flags UH,URX
	clean := httpEntry()
	clean.Info.Flags = 0
	cases := []struct {
		name string
		f    *accesslogv3.AccessLogFilter
		e    *Entry
		want bool
	}{
		{"status eq", status(accesslogv3.ComparisonFilter_EQ, 201), e, true},
		{"status ge", status(accesslogv3.ComparisonFilter_GE, 400), e, false},
		{"status le", status(accesslogv3.ComparisonFilter_LE, 201), e, true},
		{"status ne", status(accesslogv3.ComparisonFilter_NE, 201), e, false},
		{"duration ge", dur(accesslogv3.ComparisonFilter_GE, 25), e, true},
		{"duration ge more", dur(accesslogv3.ComparisonFilter_GE, 26), e, false},
		{"flags any", flags(), e, true},
		{"flags any, none set", flags(), clean, false},
		{"flags NR", flags("NR"), e, false},
		{"flags NR or UH", flags("NR", "UH"), e, true},
		{"not health check", nhc, e, true},
		{"and", and(status(accesslogv3.ComparisonFilter_EQ, 201), flags("NR")), e, false},
		{"or", or(status(accesslogv3.ComparisonFilter_EQ, 500), flags("URX")), e, true},
	}
	for _, c := range cases {
		f, err := compileFilter(c.f, "filter")
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if got := f.match(c.e); got != c.want {
			t.Errorf("%s: match = %v, want %v", c.name, got, c.want)
		}
	}
	if _, err := compileFilter(and(nhc), "filter"); err == nil || !strings.Contains(err.Error(), "filter.and_filter.filters: at least two") {
		t.Errorf("and with one filter: %v", err)
	}
}
