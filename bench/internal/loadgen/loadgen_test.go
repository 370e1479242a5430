package loadgen

import (
	"math"
	"os"
	"reflect"
	"testing"
	"time"
)

func TestArgs(t *testing.T) {
	base := Options{QPS: 5000, Connections: 32, Duration: 15 * time.Second, Resolution: 0.00001, JSONPath: "/tmp/r.json"}
	common := []string{"load", "-quiet", "-qps", "5000", "-uniform", "-c", "32", "-t", "15s", "-r", "0.00001",
		"-p", "50,90,99,99.9", "-json", "/tmp/r.json"}
	tests := []struct {
		name  string
		proto Protocol
		dest  string
		want  []string
	}{
		{"http1", HTTP1, "http://127.0.0.1:8080/1k.bin", append(append([]string{}, common...), "http://127.0.0.1:8080/1k.bin")},
		{"grpc", GRPC, "127.0.0.1:8079", append(append([]string{}, common...), "-grpc", "-ping", "127.0.0.1:8079")},
	}
	for _, tt := range tests {
		o := base
		o.Protocol, o.Target = tt.proto, tt.dest
		if got := o.Args(); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s: Args =\n%q\nwant\n%q", tt.name, got, tt.want)
		}
	}
}

// The fixtures are real fortio 1.68.2 results (2 s at 1,000 req/s, -c 32).
func TestParseFortioResults(t *testing.T) {
	tests := []struct {
		file      string
		requests  int64
		retCodes  map[string]int64
		sockets   int64
		p50, p99  float64 // µs
		actualQPS float64
	}{
		{"testdata/http1.json", 1984, map[string]int64{"200": 1984}, 32, 172.5377, 286.2857, 984.37},
		{"testdata/grpc.json", 1984, map[string]int64{"SERVING": 1984}, 0, 315.0281, 1938.6667, 984.41},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			data, err := os.ReadFile(tt.file)
			if err != nil {
				t.Fatal(err)
			}
			r, err := Parse(data)
			if err != nil {
				t.Fatal(err)
			}
			if r.Requests != tt.requests || r.Warmup != 32 || r.Served() != tt.requests+32 || r.Errors != 0 {
				t.Fatalf("requests/warmup/served/errors = %d/%d/%d/%d, want %d/32/%d/0",
					r.Requests, r.Warmup, r.Served(), r.Errors, tt.requests, tt.requests+32)
			}
			if !reflect.DeepEqual(r.RetCodes, tt.retCodes) || r.SocketCount != tt.sockets {
				t.Fatalf("ret codes %v, sockets %d; want %v, %d", r.RetCodes, r.SocketCount, tt.retCodes, tt.sockets)
			}
			// Values are converted from seconds to µs; compare to 0.001 µs.
			for p, want := range map[string]float64{"50": tt.p50, "99": tt.p99} {
				if got := r.Percentiles[p]; math.Abs(got-want) > 0.001 {
					t.Errorf("p%s = %.4f µs, want %.4f", p, got, want)
				}
			}
			if _, ok := r.Percentiles["99.9"]; !ok {
				t.Error("p99.9 missing")
			}
			if math.Abs(r.ActualQPS-tt.actualQPS) > 0.01 {
				t.Errorf("actual qps %.2f, want %.2f", r.ActualQPS, tt.actualQPS)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		json string
	}{
		{"not JSON", "{"},
		{"fortio error", `{"Error": "warmup error", "DurationHistogram": {"Count": 5}}`},
		{"no requests", `{"DurationHistogram": {"Count": 0}}`},
	}
	for _, tt := range tests {
		if _, err := Parse([]byte(tt.json)); err == nil {
			t.Errorf("%s: Parse succeeded, want an error", tt.name)
		}
	}
}

func TestParseExactlyHasNoWarmup(t *testing.T) {
	r, err := Parse([]byte(`{"NumThreads": 4, "Exactly": 100, "DurationHistogram": {"Count": 100},
		"ErrorsDurationHistogram": {"Count": 3}}`))
	if err != nil {
		t.Fatal(err)
	}
	if r.Warmup != 0 || r.Served() != 100 || r.Errors != 3 {
		t.Fatalf("warmup %d, served %d, errors %d; want 0, 100, 3", r.Warmup, r.Served(), r.Errors)
	}
}
