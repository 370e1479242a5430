package main

import (
	"flag"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/weftmesh/weft/bench/internal/harness"
	"github.com/weftmesh/weft/bench/internal/loadgen"
	"github.com/weftmesh/weft/bench/internal/report"
)

// config is the parsed command line.
type config struct {
	benchDir    string
	binDir      string
	outDir      string
	proxies     []string
	protocols   []loadgen.Protocol
	rates       []int
	duration    time.Duration
	warmup      time.Duration
	runs        int
	connections int
	resolution  float64
	loadCPU     int
	proxyCPU    int
	ready       time.Duration
	waitQuiet   time.Duration
	retryNoisy  int
	skipped     []string
	command     string
}

func parseFlags(args []string) (config, error) {
	fs := flag.NewFlagSet("weftbench", flag.ContinueOnError)
	var c config
	var proxies, protocols, rates string
	var quick bool
	fs.StringVar(&c.benchDir, "bench-dir", "bench", "the bench/ directory (templates/ is read from it)")
	fs.StringVar(&c.binDir, "bin-dir", "bench/out/bin", "directory holding fortio and weft-proxy")
	fs.StringVar(&c.outDir, "out", "bench/out", "directory for results-*.md/json and the per-run work dirs")
	fs.StringVar(&proxies, "proxies", "", "comma-separated proxies to test (default: nginx,haproxy and weft-proxy if built)")
	fs.StringVar(&proxies, "only", "", "alias of -proxies")
	fs.StringVar(&protocols, "protocols", "http1,grpc", "comma-separated protocols: http1, grpc")
	fs.StringVar(&rates, "rates", "1000,5000", "comma-separated request rates (req/s)")
	fs.DurationVar(&c.duration, "duration", 15*time.Second, "measured duration of each run")
	fs.DurationVar(&c.warmup, "warmup", 2*time.Second, "load at the same rate before each measured run (0: none)")
	fs.IntVar(&c.runs, "runs", 1, "repetitions of each cell; the table shows the median")
	fs.IntVar(&c.connections, "c", 32, "connections of the load generator")
	fs.Float64Var(&c.resolution, "r", 0.00001, "fortio histogram resolution in seconds")
	fs.IntVar(&c.loadCPU, "load-cpu", 0, "CPU for the load generator and the upstream")
	fs.IntVar(&c.proxyCPU, "proxy-cpu", 1, "CPU for the proxy under test")
	fs.DurationVar(&c.ready, "ready-timeout", 15*time.Second, "deadline for a server to answer after it starts")
	fs.DurationVar(&c.waitQuiet, "wait-quiet", 0, "before each measurement, wait up to this long for the machine to be quiet (other work < 10% of a CPU)")
	fs.IntVar(&c.retryNoisy, "retry-noisy", 2, "re-measure a cell up to N times when other work took > 15% of a CPU during it (0: never)")
	fs.BoolVar(&quick, "quick", false, "smoke run: 3s at 1000 req/s, 1s warm-up (explicit -duration/-rates/-warmup win)")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if quick {
		if !set["duration"] {
			c.duration = 3 * time.Second
		}
		if !set["rates"] {
			rates = "1000"
		}
		if !set["warmup"] {
			c.warmup = time.Second
		}
	}
	var err error
	if c.rates, err = parseRates(rates); err != nil {
		return c, err
	}
	if c.protocols, err = parseProtocols(protocols); err != nil {
		return c, err
	}
	c.proxies, c.skipped, err = c.selectProxies(proxies)
	if err != nil {
		return c, err
	}
	c.command = commandLine()
	return c, nil
}

// commandLine is how the user started the benchmark: run.sh passes its own
// command line in WEFTBENCH_COMMAND.
func commandLine() string {
	if s := os.Getenv("WEFTBENCH_COMMAND"); s != "" {
		return s
	}
	return strings.Join(os.Args, " ")
}

func parseRates(s string) ([]int, error) {
	var out []int
	for _, f := range splitList(s) {
		n, err := strconv.Atoi(f)
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("-rates: %q is not a positive integer", f)
		}
		out = append(out, n)
	}
	return out, nil
}

func parseProtocols(s string) ([]loadgen.Protocol, error) {
	var out []loadgen.Protocol
	for _, f := range splitList(s) {
		switch p := loadgen.Protocol(f); p {
		case loadgen.HTTP1, loadgen.GRPC:
			out = append(out, p)
		default:
			return nil, fmt.Errorf("-protocols: unknown %q (known: http1, grpc)", f)
		}
	}
	return out, nil
}

// selectProxies returns the proxies to test. With no explicit list, a proxy
// whose binary is missing is skipped (weft-proxy before it builds) and named
// in skipped; an explicitly named one that is missing is an error.
func (c config) selectProxies(list string) (proxies, skipped []string, err error) {
	explicit := list != ""
	names := splitList(list)
	if !explicit {
		names = harness.AllProxies
	}
	for _, name := range names {
		_, err := c.binary(name)
		switch {
		case err == nil:
			proxies = append(proxies, name)
		case explicit:
			return nil, nil, err
		default:
			skipped = append(skipped, fmt.Sprintf("%s (%v)", name, err))
		}
	}
	return proxies, skipped, nil
}

// binary finds a proxy's binary: weft-proxy in the bin dir, the others on
// PATH (installed from Debian by run.sh).
func (c config) binary(name string) (string, error) {
	switch name {
	case harness.WeftProxy, harness.WeftProxyHop, harness.WeftProxyMTLS, harness.WeftProxyStats:
		p := filepath.Join(c.binDir, "weft-proxy")
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("no %s: build it with `go build -o %s ./cmd/weft-proxy`", p, p)
		}
		return p, nil
	case harness.Nginx, harness.HAProxy:
		p, err := exec.LookPath(name)
		if err != nil {
			return "", fmt.Errorf("%s not on PATH: install it with `apt-get install -y %s`", name, name)
		}
		return p, nil
	default:
		return "", fmt.Errorf("unknown proxy %q (known: %s)", name, strings.Join(append(harness.AllProxies, harness.HopProxies...), ", "))
	}
}

func (c config) harnessOptions(stamp time.Time) harness.Options {
	bins := map[string]string{}
	for _, name := range append(harness.AllProxies, harness.HopProxies...) {
		if p, err := c.binary(name); err == nil {
			bins[name] = p
		}
	}
	return harness.Options{
		TemplatesDir: filepath.Join(c.benchDir, "templates"),
		RunDir:       absPath(filepath.Join(c.outDir, "run-"+stamp.Format("20060102-150405"))),
		Fortio:       filepath.Join(c.binDir, "fortio"),
		Binaries:     bins,
		Proxies:      c.proxies,
		Protocols:    c.protocols,
		Rates:        c.rates,
		Duration:     c.duration,
		Warmup:       c.warmup,
		Runs:         c.runs,
		Connections:  c.connections,
		Resolution:   c.resolution,
		LoadCPU:      c.loadCPU,
		ProxyCPU:     c.proxyCPU,
		ReadyTimeout: c.ready,
		WaitQuiet:    c.waitQuiet,
		RetryNoisy:   c.retryNoisy,
		Progress:     os.Stderr,
	}
}

// absPath makes p absolute: nginx resolves relative paths against its prefix.
func absPath(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}

func (c config) meta(stamp time.Time, o harness.Options) report.Meta {
	v := map[string]string{
		"fortio": harness.ToolVersion(o.Fortio, "version"),
		"go":     runtime.Version(),
	}
	if b := o.Binaries[harness.Nginx]; b != "" {
		v["nginx"] = strings.TrimPrefix(harness.ToolVersion(b, "-v"), "nginx version: nginx/")
	}
	if b := o.Binaries[harness.HAProxy]; b != "" {
		v["haproxy"] = firstFields(strings.TrimPrefix(harness.ToolVersion(b, "-v"), "HAProxy version "), 1)
	}
	if slices.ContainsFunc(o.Proxies, harness.IsWeft) {
		v["weft-proxy"] = gitVersion()
	}
	return report.Meta{
		Date: stamp, Command: c.command, Kernel: readTrim("/proc/sys/kernel/osrelease"), CPUModel: cpuModel(),
		NumCPU: onlineCPUs(), Versions: v, Duration: o.Duration, Warmup: o.Warmup, Connections: o.Connections,
		Resolution: o.Resolution, Runs: o.Runs, LoadCPU: o.LoadCPU, ProxyCPU: o.ProxyCPU, Skipped: c.skipped,
		WaitQuiet: o.WaitQuiet, RetryNoisy: o.RetryNoisy,
	}
}

func gitVersion() string {
	out, err := exec.Command("git", "describe", "--always", "--dirty").Output()
	if err != nil {
		return "(git commit unknown)"
	}
	return "git " + strings.TrimSpace(string(out))
}

func firstFields(s string, n int) string {
	f := strings.Fields(s)
	if len(f) > n {
		f = f[:n]
	}
	return strings.Join(f, " ")
}

func readTrim(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(string(b))
}

// onlineCPUs counts the machine's CPUs; runtime.NumCPU would count only
// those in this process's affinity mask (run.sh pins it to one).
func onlineCPUs() int {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return runtime.NumCPU()
	}
	n := 0
	for _, line := range strings.Split(string(b), "\n") {
		if k, _, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "processor" {
			n++
		}
	}
	return n
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "?"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "?"
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// jsonSafe replaces NaN (no value) with nil in the rows: encoding/json
// cannot encode NaN.
func jsonSafe(d report.Document) any {
	type row struct {
		report.Row
		CPUUSPerReq  *float64   `json:"cpu_us_per_req"`
		RatioToNginx *float64   `json:"ratio_to_nginx"`
		Added        []*float64 `json:"added_latency_us"`
	}
	opt := func(v float64) *float64 {
		if math.IsNaN(v) {
			return nil
		}
		return &v
	}
	rows := make([]row, len(d.Rows))
	for i, r := range d.Rows {
		rows[i] = row{Row: r, CPUUSPerReq: opt(r.CPUUSPerReq), RatioToNginx: opt(r.RatioToNginx)}
		for _, a := range r.Added {
			rows[i].Added = append(rows[i].Added, opt(a))
		}
	}
	return struct {
		Meta         report.Meta          `json:"meta"`
		Failures     []string             `json:"failures,omitempty"`
		Rows         []row                `json:"rows"`
		Measurements []report.Measurement `json:"measurements"`
	}{d.Meta, d.Failures, rows, d.Measurements}
}
