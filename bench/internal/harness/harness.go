// Package harness runs the side-by-side proxy benchmark: it starts the
// upstream, then for each protocol, rate and repetition measures the direct
// (no proxy) baseline and each proxy under test, started fresh, under
// fortio's open-loop load, and returns every measurement.
package harness

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/weftmesh/weft/bench/internal/loadgen"
	"github.com/weftmesh/weft/bench/internal/procfs"
	"github.com/weftmesh/weft/bench/internal/report"
	"github.com/weftmesh/weft/bench/internal/supervise"
)

// Options is one benchmark run.
type Options struct {
	TemplatesDir string            // bench/templates
	RunDir       string            // where configs, logs and fortio JSON go; created
	Fortio       string            // fortio binary
	Binaries     map[string]string // proxy name -> binary; nginx also serves the HTTP/1.1 upstream
	Proxies      []string          // proxies under test, in report order
	Protocols    []loadgen.Protocol
	Rates        []int
	Duration     time.Duration // measured run
	Warmup       time.Duration // load at the same rate before each measured run; 0 for none
	Runs         int           // repetitions of each cell
	Connections  int
	Resolution   float64       // fortio -r, seconds
	LoadCPU      int           // CPU of the load generator and upstream
	ProxyCPU     int           // CPU of the proxy under test
	ReadyTimeout time.Duration // deadline for a server to answer after start
	// WaitQuiet is how long to wait before each measurement for the machine
	// to be quiet (see waitQuiet); 0 measures at once (after one 1 s sample).
	WaitQuiet time.Duration
	// RetryNoisy re-measures a cell up to this many times when other work
	// took more than NoisyOtherPct of a CPU during it, and keeps the least
	// disturbed measurement.
	RetryNoisy int
	Progress   io.Writer // one line per measurement; nil for none
}

func (o Options) validate() error {
	switch {
	case len(o.Protocols) == 0:
		return errors.New("no protocols selected (-protocols)")
	case len(o.Rates) == 0:
		return errors.New("no rates selected (-rates)")
	case o.Duration <= 0:
		return errors.New("-duration must be positive")
	case o.Runs < 1:
		return errors.New("-runs must be at least 1")
	case o.Connections < 1:
		return errors.New("-c must be at least 1")
	}
	for _, p := range o.Proxies {
		if _, ok := kinds[p]; !ok {
			return fmt.Errorf("unknown proxy %q (known: %v and %v)", p, AllProxies, HopProxies)
		}
		if o.Binaries[p] == "" {
			return fmt.Errorf("no binary for proxy %q", p)
		}
	}
	if o.Binaries[Nginx] == "" {
		return errors.New("no nginx binary: nginx also serves the HTTP/1.1 upstream")
	}
	return nil
}

// bench is the state of one Run.
type bench struct {
	opts Options
	sup  *supervise.Supervisor
	fs   procfs.FS
	res  Result
}

// Result is what a Run measured, and what failed.
type Result struct {
	Measurements []report.Measurement
	// Failures names each cell (or protocol) that could not be measured and
	// why. A failing proxy does not stop the run: the other proxies are
	// still measured, as Envoy-style "errors per object".
	Failures []string
}

// Run measures every selected cell. It returns what was measured also when
// it stops early on an error or when ctx is cancelled (Ctrl-C); the error
// is then non-nil. Every process it started has exited when it returns.
func Run(ctx context.Context, opts Options) (res Result, err error) {
	if err := opts.validate(); err != nil {
		return Result{}, err
	}
	if err := os.MkdirAll(opts.RunDir, 0o755); err != nil {
		return Result{}, fmt.Errorf("create run dir: %w", err)
	}
	b := &bench{opts: opts, sup: supervise.New(3 * time.Second), fs: procfs.New("/proc")}
	defer func() {
		if stopErr := b.sup.StopAll(); stopErr != nil {
			err = errors.Join(err, stopErr)
		}
		res = b.res
	}()
	for _, proto := range opts.Protocols {
		if err := b.protocol(ctx, proto); err != nil {
			if ctx.Err() != nil {
				return b.res, fmt.Errorf("interrupted (%v) during %w", ctx.Err(), err)
			}
			b.fail(err)
		}
	}
	return b.res, nil
}

func (b *bench) fail(err error) {
	b.res.Failures = append(b.res.Failures, err.Error())
	if b.opts.Progress != nil {
		fmt.Fprintf(b.opts.Progress, "FAILED: %v\n", err)
	}
}

// protocol runs every rate, repetition and target of one protocol against
// one upstream instance. A failing proxy cell is recorded and the run goes
// on; a failing upstream or direct baseline ends the protocol (nothing else
// can be measured against it).
func (b *bench) protocol(ctx context.Context, proto loadgen.Protocol) error {
	up, err := b.startUpstream(ctx, proto)
	if err != nil {
		return fmt.Errorf("%s: %w", proto, err)
	}
	defer b.sup.Stop(up.proc)
	targets := append([]string{report.Direct}, b.opts.Proxies...)
	for _, rate := range b.opts.Rates {
		for run := 1; run <= b.opts.Runs; run++ {
			// Targets interleave within a repetition, so slow drift of the
			// machine spreads over all of them.
			for _, target := range targets {
				if err := ctx.Err(); err != nil {
					return fmt.Errorf("interrupted: %w", err)
				}
				c := cell{proto: proto, rate: rate, run: run, target: target, up: up}
				m, err := b.measureQuietest(ctx, c)
				if err != nil {
					err = fmt.Errorf("%s at %d req/s, run %d, %s: %w", proto, rate, run, target, err)
					if target == report.Direct || ctx.Err() != nil {
						return err
					}
					b.fail(err)
					continue
				}
				b.res.Measurements = append(b.res.Measurements, m)
				b.progress(m)
			}
		}
	}
	return nil
}

// measureQuietest measures c, and again up to RetryNoisy times while other
// work on the machine disturbed the measurement; it returns the measurement
// with the least other CPU.
func (b *bench) measureQuietest(ctx context.Context, c cell) (report.Measurement, error) {
	best, err := b.measure(ctx, c)
	for try := 0; err == nil && try < b.opts.RetryNoisy && best.OtherCPUPct > report.NoisyOtherPct; try++ {
		if b.opts.Progress != nil {
			fmt.Fprintf(b.opts.Progress, "%s %d/s %s: other work took %.0f%% of a CPU during the run; measuring again\n",
				c.proto, c.rate, c.target, best.OtherCPUPct)
		}
		var m report.Measurement
		if m, err = b.measure(ctx, c); err == nil && m.OtherCPUPct < best.OtherCPUPct {
			best = m
		}
	}
	return best, err
}

func (b *bench) progress(m report.Measurement) {
	if b.opts.Progress == nil {
		return
	}
	l := m.Load
	cpu := "      -"
	if m.Target != report.Direct {
		cpu = fmt.Sprintf("%7.1f", m.ProxyCPUUSPerRq)
	}
	fmt.Fprintf(b.opts.Progress, "%-5s %5d/s run %d %-10s cpu-µs/req %s  p50/p90/p99 %5.0f/%5.0f/%5.0f µs  peak %5.1f MiB  %6d req  %d err  (%.0f qps; load cpu %.0f%%, other cpu %.0f%%, before %.0f%%)\n",
		m.Protocol, m.Rate, m.Run, m.Target, cpu, l.Percentiles["50"], l.Percentiles["90"], l.Percentiles["99"],
		float64(m.PeakRSSKiB)/1024, l.Served(), l.Errors, l.ActualQPS, m.LoadCPUPct, m.OtherCPUPct, m.PreRunBusyPct)
}

// upstream is a running upstream server.
type upstream struct {
	proc *supervise.Proc
	port int
}

// startUpstream starts the protocol's upstream on the load CPU and waits
// until it answers a real request.
func (b *bench) startUpstream(ctx context.Context, proto loadgen.Protocol) (upstream, error) {
	port, err := freePort()
	if err != nil {
		return upstream{}, err
	}
	dir := filepath.Join(b.opts.RunDir, "upstream-"+string(proto))
	if err := makeDirs(dir); err != nil {
		return upstream{}, err
	}
	spec := supervise.Spec{Name: "upstream " + string(proto), CPU: b.opts.LoadCPU, LogPath: filepath.Join(dir, "stdout.log")}
	var ready probe
	switch proto {
	case loadgen.HTTP1:
		d := ConfigData{Dir: dir, Port: port, DocRoot: filepath.Join(dir, "www")}
		if err := writeStaticFile(d.DocRoot); err != nil {
			return upstream{}, err
		}
		cfg := filepath.Join(dir, "nginx.conf")
		if err := Render(b.opts.TemplatesDir, "upstream-nginx.conf.tmpl", cfg, d); err != nil {
			return upstream{}, err
		}
		spec.Path, spec.Args = b.opts.Binaries[Nginx], nginxArgs(cfg, d)
		ready = httpProbe(httpURL(port), staticFileSize)
	case loadgen.GRPC:
		spec.Path = b.opts.Fortio
		spec.Args = []string{"server", "-quiet", "-http-port", "disabled", "-redirect-port", "disabled",
			"-tcp-port", "disabled", "-udp-port", "disabled", "-grpc-port", hostPort(port)}
		ready = grpcProbe(hostPort(port))
	default:
		return upstream{}, fmt.Errorf("unknown protocol %q", proto)
	}
	proc, err := b.sup.Start(spec)
	if err != nil {
		return upstream{}, err
	}
	if err := waitReady(ctx, spec.Name, b.opts.ReadyTimeout, proc, ready); err != nil {
		return upstream{}, err
	}
	return upstream{proc: proc, port: port}, nil
}

// staticFileSize is the size of the file the HTTP/1.1 upstream serves.
const staticFileSize = 1024

// staticPath is the URL path of that file.
const staticPath = "/1k.bin"

func writeStaticFile(root string) error {
	if err := os.MkdirAll(root, 0o755); err != nil {
		return fmt.Errorf("create doc root: %w", err)
	}
	body := make([]byte, staticFileSize)
	for i := range body {
		body[i] = 'a' + byte(i%26)
	}
	return os.WriteFile(filepath.Join(root, staticPath), body, 0o644)
}

func httpURL(port int) string {
	return "http://" + hostPort(port) + staticPath
}

// ToolVersion runs bin with args and returns the first line of its output
// (stdout and stderr), or "" if it fails.
func ToolVersion(bin string, args ...string) string {
	out, err := exec.Command(bin, args...).CombinedOutput()
	if err != nil && len(out) == 0 {
		return ""
	}
	for i, c := range out {
		if c == '\n' {
			return string(out[:i])
		}
	}
	return string(out)
}
