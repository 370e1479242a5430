// Package loadgen runs fortio's open-loop load generator and reads the
// numbers the benchmark needs from its JSON result.
package loadgen

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Protocol is what the load generator speaks.
type Protocol string

// The benchmark's protocols.
const (
	HTTP1 Protocol = "http1" // HTTP/1.1 keep-alive GET
	GRPC  Protocol = "grpc"  // gRPC unary (fortio's ping service) over h2c
)

// Options is one fortio run.
type Options struct {
	Fortio      string        // path to the fortio binary
	Protocol    Protocol      //
	Target      string        // URL for HTTP1, host:port for GRPC
	QPS         int           // fixed request rate (open loop, -uniform)
	Connections int           // -c
	Duration    time.Duration // -t
	Resolution  float64       // -r, histogram resolution in seconds
	CPU         int           // taskset CPU for fortio; negative: inherited
	JSONPath    string        // where fortio writes its JSON result
	LogPath     string        // fortio's stdout+stderr
}

// Args returns fortio's command line (without the binary) for o.
func (o Options) Args() []string {
	args := []string{"load",
		"-quiet",
		"-qps", strconv.Itoa(o.QPS),
		"-uniform",
		"-c", strconv.Itoa(o.Connections),
		"-t", o.Duration.String(),
		"-r", strconv.FormatFloat(o.Resolution, 'f', -1, 64),
		"-p", "50,90,99,99.9",
		"-json", o.JSONPath,
	}
	if o.Protocol == GRPC {
		args = append(args, "-grpc", "-ping")
	}
	return append(args, o.Target)
}

// Run runs fortio to completion (or until ctx is cancelled, which kills it)
// and returns its parsed result. fortio runs in its own process group, so a
// Ctrl-C on the terminal reaches only the benchmark, which then ends fortio.
func Run(ctx context.Context, o Options) (Result, error) {
	path, args := o.Fortio, o.Args()
	if o.CPU >= 0 {
		args = append([]string{"-c", strconv.Itoa(o.CPU), path}, args...)
		path = "taskset"
	}
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.WaitDelay = 5 * time.Second
	if o.LogPath != "" {
		f, err := os.Create(o.LogPath)
		if err != nil {
			return Result{}, fmt.Errorf("fortio log: %w", err)
		}
		defer f.Close()
		cmd.Stdout, cmd.Stderr = f, f
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Run(); err != nil {
		return Result{}, fmt.Errorf("fortio %s (log %s): %w", strings.Join(o.Args(), " "), o.LogPath, err)
	}
	data, err := os.ReadFile(o.JSONPath)
	if err != nil {
		return Result{}, fmt.Errorf("fortio result: %w", err)
	}
	r, err := Parse(data)
	if err != nil {
		return r, err
	}
	st := cmd.ProcessState
	r.LoadGenCPUNanos = uint64(st.UserTime() + st.SystemTime())
	return r, nil
}

// Result is what the benchmark takes from one fortio run.
type Result struct {
	ActualQPS float64 `json:"actual_qps"`
	// Requests is the number of timed requests (the histogram's count).
	Requests int64 `json:"requests"`
	// Warmup is the number of untimed warm-up requests fortio sends before
	// timing starts: one per connection. They reach the proxy too.
	Warmup int64 `json:"warmup"`
	// Errors is the number of timed requests that failed: non-2xx HTTP
	// status, gRPC error, or a socket error.
	Errors int64 `json:"errors"`
	// Percentiles maps "50", "90", "99", "99.9" to a latency in µs.
	Percentiles map[string]float64 `json:"percentiles_us"`
	AvgUS       float64            `json:"avg_us"`
	MaxUS       float64            `json:"max_us"`
	RetCodes    map[string]int64   `json:"ret_codes"`
	// SocketCount is the number of connections fortio opened (HTTP only):
	// more than the -c value means the server closed connections.
	SocketCount int64 `json:"socket_count,omitempty"`
	// LoadGenCPUNanos is fortio's own CPU time (user + system) over its
	// whole life; set by Run, not by Parse.
	LoadGenCPUNanos uint64 `json:"loadgen_cpu_ns"`
}

// Served is the number of requests the server side answered in the run:
// timed plus warm-up requests.
func (r Result) Served() int64 { return r.Requests + r.Warmup }

// fortioJSON is the subset of fortio's HTTPRunnerResults / GRPCRunnerResults
// the benchmark reads. Field names are fortio's (periodic.RunnerResults).
type fortioJSON struct {
	ActualQPS         float64
	NumThreads        int64
	Exactly           int64
	DurationHistogram struct {
		Count       int64
		Avg         float64
		Max         float64
		Percentiles []struct {
			Percentile float64
			Value      float64
		}
	}
	ErrorsDurationHistogram struct {
		Count int64
	}
	RetCodes    map[string]int64
	SocketCount int64
	Error       string
}

// Parse reads fortio's JSON result.
func Parse(data []byte) (Result, error) {
	var f fortioJSON
	if err := json.Unmarshal(data, &f); err != nil {
		return Result{}, fmt.Errorf("fortio JSON: %w", err)
	}
	if f.Error != "" {
		return Result{}, fmt.Errorf("fortio reported: %s", f.Error)
	}
	r := Result{
		ActualQPS:   f.ActualQPS,
		Requests:    f.DurationHistogram.Count,
		Errors:      f.ErrorsDurationHistogram.Count,
		AvgUS:       f.DurationHistogram.Avg * 1e6,
		MaxUS:       f.DurationHistogram.Max * 1e6,
		RetCodes:    f.RetCodes,
		SocketCount: f.SocketCount,
		Percentiles: make(map[string]float64, len(f.DurationHistogram.Percentiles)),
	}
	if f.Exactly <= 0 {
		r.Warmup = f.NumThreads
	}
	for _, p := range f.DurationHistogram.Percentiles {
		r.Percentiles[strconv.FormatFloat(p.Percentile, 'f', -1, 64)] = p.Value * 1e6
	}
	if r.Requests == 0 {
		return Result{}, fmt.Errorf("fortio JSON: no requests in the duration histogram")
	}
	return r, nil
}
