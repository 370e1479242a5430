package stats

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// goldenStore builds the small store every golden test renders: counters
// with and without tags, a tag-extracted response-code counter, a gauge
// function, a used and an unused histogram, a zero counter for usedonly,
// and a cluster whose name needs escaping in every format.
func goldenStore() *Store {
	s := NewStore()
	root := s.Root()
	server := root.Scope("server")
	server.Gauge("live").Set(1)
	server.GaugeFunc("uptime", func() int64 { return 42 })
	server.Counter("debug_assertion_failures") // stays 0

	backend := root.Tagged("cluster", "envoy_cluster_name", "backend")
	backend.Counter("upstream_rq_total").Add(7)
	backend.CounterTagged("upstream_rq_200", "upstream_rq", Tag{Name: "envoy_response_code", Value: "200"}).Add(6)
	backend.CounterTagged("upstream_rq_503", "upstream_rq", Tag{Name: "envoy_response_code", Value: "503"}).Add(1)
	backend.Gauge("upstream_cx_active").Set(2)
	h := backend.Histogram("upstream_rq_time")
	for _, v := range []float64{3, 7, 40, 2000} {
		h.Record(v)
	}
	backend.Histogram("upstream_cx_length_ms") // no observations

	odd := root.Tagged("cluster", "envoy_cluster_name", "we\"ird\\na\nme")
	odd.Counter("upstream_rq_total").Inc()
	return s
}

// TestRenderGolden renders the golden store in each format and option set
// and compares with testdata/<name>.golden (go test -update rewrites them).
func TestRenderGolden(t *testing.T) {
	s := goldenStore()
	cases := []struct {
		name   string
		render func([]byte, []*Metric, RenderOptions) []byte
		opts   RenderOptions
	}{
		{"text", AppendText, RenderOptions{}},
		{"text_usedonly_filter", AppendText, RenderOptions{UsedOnly: true, Filter: regexp.MustCompile(`^cluster\.backend\.`)}},
		{"text_cumulative", AppendText, RenderOptions{Type: TypeHistograms, Histograms: HistogramCumulative}},
		{"text_disjoint", AppendText, RenderOptions{Type: TypeHistograms, Histograms: HistogramDisjoint, UsedOnly: true}},
		{"text_gauges", AppendText, RenderOptions{Type: TypeGauges}},
		{"json", AppendJSON, RenderOptions{}},
		{"json_cumulative", AppendJSON, RenderOptions{Filter: regexp.MustCompile(`rq_time`), Histograms: HistogramCumulative}},
		{"prometheus", AppendPrometheus, RenderOptions{}},
		{"prometheus_usedonly", AppendPrometheus, RenderOptions{UsedOnly: true, Type: TypeCounters}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := c.render(nil, s.Snapshot(), c.opts)
			if strings.HasPrefix(c.name, "json") && !json.Valid(got) {
				t.Fatalf("invalid JSON:\n%s", got)
			}
			compareGolden(t, filepath.Join("testdata", c.name+".golden"), got)
		})
	}
}

func compareGolden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the rendering\n--- got ---\n%s\n--- want ---\n%s", path, got, want)
	}
}

func TestRenderEmptyStore(t *testing.T) {
	ms := NewStore().Snapshot()
	if got := AppendText(nil, ms, RenderOptions{}); len(got) != 0 {
		t.Errorf("text = %q, want empty", got)
	}
	if got := string(AppendJSON(nil, ms, RenderOptions{})); got != `{"stats":[]}` {
		t.Errorf("json = %q", got)
	}
	if got := AppendPrometheus(nil, ms, RenderOptions{}); len(got) != 0 {
		t.Errorf("prometheus = %q, want empty", got)
	}
}

func TestQuantile(t *testing.T) {
	// One observation per value in buckets (0,0.5], (0.5,1], (1,5], (5,10]
	// and +Inf.
	mk := func(vals ...float64) HistogramSnapshot {
		h := newHistogram()
		for _, v := range vals {
			h.Record(v)
		}
		return h.Snapshot()
	}
	cases := []struct {
		name string
		s    HistogramSnapshot
		q    float64
		want float64
	}{
		{"empty is NaN", mk(), 0.5, math.NaN()},
		{"p0 is the lower edge of the first used bucket", mk(3, 7), 0, 1},
		{"p100 is the upper edge of the last used bucket", mk(3, 7), 1, 10},
		{"median of two is the first bucket's upper edge", mk(3, 7), 0.5, 5},
		{"interpolates inside a bucket", mk(2, 2, 2, 2), 0.25, 2},
		{"first bucket starts at zero", mk(0.1, 0.2), 0.5, 0.25},
		{"+Inf bucket reports the last bound", mk(1e9), 0.99, 3600000},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := quantile(&c.s, c.q)
			if math.IsNaN(c.want) != math.IsNaN(got) || (!math.IsNaN(c.want) && math.Abs(got-c.want) > 1e-9) {
				t.Errorf("quantile(%v) = %v, want %v", c.q, got, c.want)
			}
		})
	}
}

func TestAppendFloat(t *testing.T) {
	cases := []struct {
		v    float64
		want string
	}{
		{0, "0"}, {1, "1"}, {207.5, "207.5"}, {3600000, "3600000"}, {1e16, "1e+16"},
		{1e-6, "1e-06"}, {-2.25, "-2.25"}, {math.NaN(), "nan"}, {math.Inf(1), "inf"},
	}
	for _, c := range cases {
		if got := string(appendFloat(nil, c.v)); got != c.want {
			t.Errorf("appendFloat(%v) = %q, want %q", c.v, got, c.want)
		}
	}
}

func TestAppendPromLabelValue(t *testing.T) {
	cases := []struct{ in, want string }{
		{"plain", "plain"},
		{`a"b`, `a\"b`},
		{`a\b`, `a\\b`},
		{"a\nb", `a\nb`},
		{"\\\"\n", `\\\"\n`},
		{"", ""},
	}
	for _, c := range cases {
		if got := string(appendPromLabelValue(nil, c.in)); got != c.want {
			t.Errorf("escape(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestUsed(t *testing.T) {
	s := NewStore()
	root := s.Root()
	c := root.Counter("c")
	g := root.Gauge("g")
	h := root.Histogram("h")
	for _, name := range []string{"c", "g", "h"} {
		if Used(s.Get(name)) {
			t.Errorf("%s used before any write", name)
		}
	}
	c.Inc()
	g.Set(-1)
	h.Record(1)
	for _, name := range []string{"c", "g", "h"} {
		if !Used(s.Get(name)) {
			t.Errorf("%s unused after a write", name)
		}
	}
}

// FuzzRenderNames checks that any stat name or tag value renders to valid
// JSON and to Prometheus text whose lines are exactly the expected ones (no
// raw newline or unescaped quote leaks out of a label value).
func FuzzRenderNames(f *testing.F) {
	f.Add("backend", "upstream_rq_total")
	f.Add("we\"ird\\na\nme", "x")
	f.Add("\xff\x00", "\u2028")
	f.Fuzz(func(t *testing.T, tagValue, name string) {
		s := NewStore()
		sc := s.Root().Tagged("cluster", "envoy_cluster_name", tagValue)
		sc.Counter(name).Inc()
		sc.Histogram(name + "_h").Record(1)
		ms := s.Snapshot()
		if js := AppendJSON(nil, ms, RenderOptions{}); !json.Valid(js) {
			t.Fatalf("invalid JSON: %q", js)
		}
		prom := string(AppendPrometheus(nil, ms, RenderOptions{}))
		// counter: TYPE + series + blank; histogram: TYPE + 20 buckets + sum + count + blank.
		if n := strings.Count(prom, "\n"); n != 3+len(DefaultBuckets)+5 {
			t.Fatalf("prometheus output has %d lines:\n%s", n, prom)
		}
		for _, line := range strings.Split(strings.TrimSpace(prom), "\n") {
			if line == "" || strings.HasPrefix(line, "# TYPE ") {
				continue
			}
			if err := checkPromSample(line); err != nil {
				t.Fatalf("%v in %q", err, line)
			}
		}
	})
}

// checkPromSample parses one exposition-format sample line,
// name{label="value",...} number, accepting only the escapes \\, \" and \n.
func checkPromSample(line string) error {
	i := strings.IndexByte(line, '{')
	if i <= 0 {
		return errors.New("no label set")
	}
	i++
	for i < len(line) && line[i] != '}' {
		j := i
		for j < len(line) && (line[j] == '_' || ('a' <= line[j] && line[j] <= 'z') || ('A' <= line[j] && line[j] <= 'Z') || ('0' <= line[j] && line[j] <= '9')) {
			j++
		}
		if j == i || !strings.HasPrefix(line[j:], `="`) {
			return fmt.Errorf("bad label name at %d", i)
		}
		j += 2
		for ; j < len(line) && line[j] != '"'; j++ {
			if line[j] == '\\' {
				if j+1 >= len(line) || !strings.ContainsRune(`\\"n`, rune(line[j+1])) {
					return fmt.Errorf("bad escape at %d", j)
				}
				j++
			}
		}
		if j >= len(line) {
			return errors.New("unterminated label value")
		}
		i = j + 1
		if i < len(line) && line[i] == ',' {
			i++
		}
	}
	if i >= len(line) {
		return errors.New("unterminated label set")
	}
	if _, err := strconv.ParseFloat(strings.TrimPrefix(line[i:], "} "), 64); err != nil {
		return fmt.Errorf("bad value: %v", err)
	}
	return nil
}

func BenchmarkAppendPrometheus(b *testing.B) {
	ms := goldenStore().Snapshot()
	buf := make([]byte, 0, 16<<10)
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendPrometheus(buf[:0], ms, RenderOptions{})
	}
}

func BenchmarkAppendText(b *testing.B) {
	ms := goldenStore().Snapshot()
	buf := make([]byte, 0, 16<<10)
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendText(buf[:0], ms, RenderOptions{})
	}
}
