package report

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/bench/internal/loadgen"
)

func TestMedian(t *testing.T) {
	tests := []struct {
		in   []float64
		want float64
	}{
		{[]float64{3}, 3},
		{[]float64{5, 1, 3}, 3},
		{[]float64{4, 1, 3, 2}, 2.5},
		{[]float64{math.NaN(), 1, 2}, 1},
	}
	for _, tt := range tests {
		if got := Median(tt.in); got != tt.want {
			t.Errorf("Median(%v) = %v, want %v", tt.in, got, tt.want)
		}
	}
	if got := Median(nil); !math.IsNaN(got) {
		t.Errorf("Median(nil) = %v, want NaN", got)
	}
}

func meas(proto loadgen.Protocol, rate int, target string, run int, cpu, p50, p90, p99 float64, idle, peak uint64, errs int64) Measurement {
	return Measurement{
		Protocol: proto, Rate: rate, Target: target, Run: run,
		Load: loadgen.Result{Requests: 1000, Warmup: 32, Errors: errs, ActualQPS: float64(rate),
			Percentiles: map[string]float64{"50": p50, "90": p90, "99": p99}},
		ProxyCPUUSPerRq: cpu, IdleRSSKiB: idle, PeakRSSKiB: peak,
	}
}

func TestSummarize(t *testing.T) {
	h, g := loadgen.HTTP1, loadgen.GRPC
	ms := []Measurement{
		// Given out of order on purpose.
		meas(g, 1000, "nginx", 1, 70, 300, 400, 900, 12<<10, 13<<10, 0),
		meas(h, 1000, "haproxy", 1, 60, 200, 250, 400, 14<<10, 15<<10, 1),
		meas(h, 1000, Direct, 1, 0, 50, 80, 120, 0, 0, 0),
		meas(h, 1000, Direct, 2, 0, 70, 100, 140, 0, 0, 0),
		meas(h, 1000, "nginx", 1, 50, 150, 200, 300, 12<<10, 14<<10, 0),
		meas(h, 1000, "nginx", 2, 58, 170, 220, 320, 12<<10, 14<<10, 0),
		meas(h, 1000, "haproxy", 2, 62, 210, 260, 420, 14<<10, 15<<10, 2),
		meas(h, 5000, "nginx", 1, 22, 100, 120, 200, 12<<10, 14<<10, 0),
		meas(g, 1000, Direct, 1, 0, 150, 250, 600, 0, 0, 0),
	}
	rows := Summarize(ms, []loadgen.Protocol{h, g}, []string{Direct, "nginx", "haproxy", "weft-proxy"})
	type want struct {
		proto   loadgen.Protocol
		rate    int
		target  string
		cpu     float64
		ratio   float64
		added   [3]float64
		errors  int64
		reqs    int64
		peakMiB float64
	}
	nan := math.NaN()
	wants := []want{
		{h, 1000, Direct, nan, nan, [3]float64{nan, nan, nan}, 0, 2064, 0},
		{h, 1000, "nginx", 54, 1, [3]float64{100, 120, 180}, 0, 2064, 14},
		{h, 1000, "haproxy", 61, 61.0 / 54, [3]float64{145, 165, 280}, 3, 2064, 15},
		// No direct baseline at 5,000: added latency stays empty.
		{h, 5000, "nginx", 22, 1, [3]float64{nan, nan, nan}, 0, 1032, 14},
		{g, 1000, Direct, nan, nan, [3]float64{nan, nan, nan}, 0, 1032, 0},
		{g, 1000, "nginx", 70, 1, [3]float64{150, 150, 300}, 0, 1032, 13},
	}
	if len(rows) != len(wants) {
		t.Fatalf("got %d rows, want %d: %+v", len(rows), len(wants), rows)
	}
	same := func(a, b float64) bool { return (math.IsNaN(a) && math.IsNaN(b)) || math.Abs(a-b) < 1e-9 }
	for i, w := range wants {
		r := rows[i]
		if r.Protocol != w.proto || r.Rate != w.rate || r.Target != w.target {
			t.Fatalf("row %d is %s/%d/%s, want %s/%d/%s", i, r.Protocol, r.Rate, r.Target, w.proto, w.rate, w.target)
		}
		if !same(r.CPUUSPerReq, w.cpu) || !same(r.RatioToNginx, w.ratio) {
			t.Errorf("row %d (%s): cpu %v ratio %v, want %v %v", i, r.Target, r.CPUUSPerReq, r.RatioToNginx, w.cpu, w.ratio)
		}
		for j := range w.added {
			if !same(r.Added[j], w.added[j]) {
				t.Errorf("row %d (%s): added %v, want %v", i, r.Target, r.Added, w.added)
				break
			}
		}
		if r.Errors != w.errors || r.Requests != w.reqs || !same(r.PeakRSSMiB, w.peakMiB) {
			t.Errorf("row %d (%s): errors %d requests %d peak %v; want %d %d %v",
				i, r.Target, r.Errors, r.Requests, r.PeakRSSMiB, w.errors, w.reqs, w.peakMiB)
		}
	}
}

func TestMarkdown(t *testing.T) {
	h := loadgen.HTTP1
	ms := []Measurement{
		meas(h, 1000, Direct, 1, 0, 50, 80, 120, 0, 0, 0),
		meas(h, 1000, "nginx", 1, 54, 150, 200, 300, 12<<10, 14<<10, 0),
		meas(h, 1000, "haproxy", 1, 81, 160, 210, 330, 14<<10, 15<<10, 4),
	}
	doc := Document{
		Meta: Meta{Date: time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC), Command: "./bench/run.sh --only nginx,haproxy",
			Duration: 15 * time.Second, Warmup: 2 * time.Second, Connections: 32, Resolution: 0.00001, Runs: 1,
			ProxyCPU: 1, Versions: map[string]string{"nginx": "1.22.1"}, Skipped: []string{"weft-proxy (not built)"}},
		Rows:     Summarize(ms, []loadgen.Protocol{h}, []string{Direct, "nginx", "haproxy"}),
		Failures: []string{"http1 at 5000 req/s, run 1, weft-proxy: exited"},
	}
	md := Markdown(doc)
	for _, want := range []string{
		"Command: `./bench/run.sh --only nginx,haproxy`",
		"-c 32 -t 15s -r 0.00001",
		"Skipped: weft-proxy (not built)",
		"**Failed**: http1 at 5000 req/s, run 1, weft-proxy: exited",
		"## HTTP/1.1 keep-alive",
		"| 1000 | direct | — | — | — | 50 / 80 / 120 | — | — | 1032 | 0 | 0 | 0 |",
		"| 1000 | nginx | 54.0 | 1.00× | 100 / 120 / 180 | 150 / 200 / 300 | 12.0 | 14.0 | 1032 | 0 | 0 | 0 |",
		"| 1000 | haproxy | 81.0 | 1.50× | 110 / 130 / 210 | 160 / 210 / 330 | 14.0 | 15.0 | 1032 | 4 | 0 | 0 |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("Markdown lacks %q:\n%s", want, md)
		}
	}
	if strings.Contains(md, "not quiet") || strings.Contains(md, "saturation") {
		t.Errorf("quiet run flagged as noisy:\n%s", md)
	}
	// A run that shared its CPUs with other work is flagged, and so is a
	// saturated load CPU.
	ms[1].OtherCPUPct = 40
	ms[2].LoadCPUPct = 91
	doc.Rows = Summarize(ms, []loadgen.Protocol{h}, []string{Direct, "nginx", "haproxy"})
	if md := Markdown(doc); !strings.Contains(md, "**Warning: the machine was not quiet** (other CPU up to 40 %") {
		t.Errorf("noisy run not flagged:\n%s", md)
	}
	if md := Markdown(doc); !strings.Contains(md, "**Warning: the load CPU was near saturation** (load CPU % ≥ 80) at http1 1000 req/s:") {
		t.Errorf("saturated load CPU not flagged:\n%s", md)
	}
}
