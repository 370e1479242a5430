package main

import (
	"encoding/json"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/bench/internal/loadgen"
	"github.com/weftmesh/weft/bench/internal/report"
)

func TestParseFlags(t *testing.T) {
	binDir := t.TempDir() // holds no weft-proxy
	tests := []struct {
		name      string
		args      []string
		rates     []int
		duration  time.Duration
		warmup    time.Duration
		protocols []loadgen.Protocol
		proxies   []string
		skipped   string
	}{
		{"defaults", nil, []int{1000, 5000}, 15 * time.Second, 2 * time.Second,
			[]loadgen.Protocol{loadgen.HTTP1, loadgen.GRPC}, []string{"nginx", "haproxy"}, "weft-proxy"},
		{"quick", []string{"-quick"}, []int{1000}, 3 * time.Second, time.Second,
			[]loadgen.Protocol{loadgen.HTTP1, loadgen.GRPC}, []string{"nginx", "haproxy"}, "weft-proxy"},
		{"explicit flags win over quick", []string{"--quick", "--rates", "5000", "--duration", "7s", "--warmup", "0"}, []int{5000},
			7 * time.Second, 0, []loadgen.Protocol{loadgen.HTTP1, loadgen.GRPC}, []string{"nginx", "haproxy"}, "weft-proxy"},
		{"only and protocols", []string{"--only", "haproxy", "--protocols", "grpc"}, []int{1000, 5000}, 15 * time.Second,
			2 * time.Second, []loadgen.Protocol{loadgen.GRPC}, []string{"haproxy"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := parseFlags(append([]string{"-bin-dir", binDir}, tt.args...))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(c.rates, tt.rates) || c.duration != tt.duration || c.warmup != tt.warmup ||
				!reflect.DeepEqual(c.protocols, tt.protocols) || !reflect.DeepEqual(c.proxies, tt.proxies) {
				t.Fatalf("got rates %v duration %s warmup %s protocols %v proxies %v", c.rates, c.duration, c.warmup, c.protocols, c.proxies)
			}
			if got := strings.Join(c.skipped, ";"); !strings.Contains(got, tt.skipped) || (tt.skipped == "" && got != "") {
				t.Fatalf("skipped = %q, want it to name %q", got, tt.skipped)
			}
		})
	}
}

func TestParseFlagsErrors(t *testing.T) {
	binDir := t.TempDir()
	for _, args := range [][]string{
		{"-rates", "1000,fast"},
		{"-rates", "0"},
		{"-protocols", "http3"},
		{"-only", "envoy"},
		{"-only", "weft-proxy"}, // named explicitly but not built
		{"extra-arg"},
	} {
		if _, err := parseFlags(append([]string{"-bin-dir", binDir}, args...)); err == nil {
			t.Errorf("parseFlags(%q) succeeded, want an error", args)
		}
	}
}

func TestJSONSafe(t *testing.T) {
	nan := math.NaN()
	doc := report.Document{Rows: []report.Row{{Target: report.Direct, CPUUSPerReq: nan, RatioToNginx: nan,
		Added: [3]float64{nan, nan, nan}, Latency: [3]float64{50, 80, 120}}}}
	data, err := json.Marshal(jsonSafe(doc))
	if err != nil {
		t.Fatalf("NaN rows do not encode: %v", err)
	}
	for _, want := range []string{`"cpu_us_per_req":null`, `"ratio_to_nginx":null`, `"added_latency_us":[null,null,null]`, `"latency_us":[50,80,120]`} {
		if !strings.Contains(string(data), want) {
			t.Errorf("JSON lacks %s: %s", want, data)
		}
	}
}
