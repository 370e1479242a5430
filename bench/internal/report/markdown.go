package report

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/weftmesh/weft/bench/internal/loadgen"
)

// Meta describes the run: what was measured, how, and on what.
type Meta struct {
	Date        time.Time         `json:"date"`
	Command     string            `json:"command"`
	Kernel      string            `json:"kernel"`
	CPUModel    string            `json:"cpu_model"`
	NumCPU      int               `json:"num_cpu"`
	Versions    map[string]string `json:"versions"`
	Duration    time.Duration     `json:"duration_ns"`
	Warmup      time.Duration     `json:"warmup_ns"`
	Connections int               `json:"connections"`
	Resolution  float64           `json:"resolution_s"`
	Runs        int               `json:"runs"`
	LoadCPU     int               `json:"load_cpu"`
	ProxyCPU    int               `json:"proxy_cpu"`
	WaitQuiet   time.Duration     `json:"wait_quiet_ns"`
	RetryNoisy  int               `json:"retry_noisy"`
	Skipped     []string          `json:"skipped,omitempty"` // targets left out, with the reason
}

// Document is the raw JSON output: the settings, every measurement and the
// summary rows.
type Document struct {
	Meta Meta `json:"meta"`
	// Failures names the cells that could not be measured, with the reason.
	Failures     []string      `json:"failures,omitempty"`
	Rows         []Row         `json:"rows"`
	Measurements []Measurement `json:"measurements"`
}

var protoTitle = map[loadgen.Protocol]string{
	loadgen.HTTP1: "HTTP/1.1 keep-alive (upstream: nginx serving a 1 KiB static file)",
	loadgen.GRPC:  "gRPC unary over h2c (upstream: fortio's gRPC ping server)",
}

// Markdown renders the document as the results file: a header with the
// method, then one table per protocol.
func Markdown(d Document) string {
	var b strings.Builder
	m := d.Meta
	fmt.Fprintf(&b, "# weft benchmark: reverse proxies side by side, %s\n\n", m.Date.Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(&b, "Command: `%s`\n\n", m.Command)
	fmt.Fprintf(&b, "Machine: %s, %d CPUs, Linux %s. ", m.CPUModel, m.NumCPU, m.Kernel)
	fmt.Fprintf(&b, "Versions: %s.\n\n", versions(m.Versions))
	fmt.Fprintf(&b, "Method: fortio `load -qps R -uniform -c %d -t %s -r %s` (open loop; %s warm-up at the same rate before each measured run, "+
		"not counted); load generator and upstream pinned to CPU %d, the proxy under test to CPU %d, one worker per proxy "+
		"(nginx worker_processes 1, HAProxy nbthread 1, weft-proxy GOMAXPROCS=1). Each proxy is started fresh for each run. "+
		"CPU-µs/req = the proxy's on-CPU time (/proc/PID/task/*/schedstat, summed over all its processes and threads, "+
		"delta over the measured run) / requests served (timed + fortio's one warm-up request per connection). "+
		"RSS is summed over all the proxy's processes (nginx: master + worker); idle = VmRSS after start-up, before load; "+
		"peak = VmHWM after the run. Added latency = the proxy's percentile minus the direct (no proxy) percentile at the same rate. "+
		"Median of %d run(s) per cell; run-to-run spread on this kind of machine is ±15–25 %%, so gaps under ~15 %% are noise.\n\n",
		m.Connections, m.Duration, strconv.FormatFloat(m.Resolution, 'f', -1, 64), m.Warmup, m.LoadCPU, m.ProxyCPU, m.Runs)
	b.WriteString("Load CPU % = the load generator's and the upstream's CPU time during the measured run, in % of one CPU " +
		"(their CPU is shared; near 100 it saturates).\n")
	fmt.Fprintf(&b, "Other CPU %% = busy time of the two benchmark CPUs during the measured run that belongs to none of the "+
		"benchmark's processes (kernel interrupt time, the harness, or other work on the machine), in %% of one CPU; "+
		"a cell with more than %d %% was measured again up to %d time(s), keeping the least disturbed run "+
		"(each measurement also waited up to %s for the machine to be quiet).\n\n", NoisyOtherPct, m.RetryNoisy, m.WaitQuiet)
	for _, s := range m.Skipped {
		fmt.Fprintf(&b, "Skipped: %s\n\n", s)
	}
	for _, f := range d.Failures {
		fmt.Fprintf(&b, "**Failed**: %s\n\n", f)
	}
	if sat := saturated(d.Rows); len(sat) > 0 {
		fmt.Fprintf(&b, "**Warning: the load CPU was near saturation** (load CPU %% ≥ %d) at %s: the load generator and the "+
			"upstream queue on their CPU, so latencies there measure that queueing more than the proxy, and added latency "+
			"can even be negative. CPU-µs/req of the proxy is still valid.\n\n", saturatedLoadPct, strings.Join(sat, ", "))
	}
	if worst := maxOther(d.Rows); worst > NoisyOtherPct {
		fmt.Fprintf(&b, "**Warning: the machine was not quiet** (other CPU up to %.0f %% of a CPU): other work shared the "+
			"benchmark's CPUs, so latencies and CPU numbers are disturbed. Re-run on a quiet machine (-wait-quiet helps).\n\n", worst)
	}
	var proto loadgen.Protocol
	for _, r := range d.Rows {
		if r.Protocol != proto {
			proto = r.Protocol
			title := protoTitle[proto]
			if title == "" {
				title = string(proto)
			}
			fmt.Fprintf(&b, "\n## %s\n\n", title)
			b.WriteString("| req/s | proxy | CPU-µs/req | × nginx | added p50 / p90 / p99 µs | p50 / p90 / p99 µs | idle RSS MiB | peak RSS MiB | requests | errors | load CPU % | other CPU % |\n")
			b.WriteString("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
		}
		fmt.Fprintf(&b, "| %d | %s | %s | %s | %s | %s | %s | %s | %d | %d | %.0f | %.0f |\n",
			r.Rate, r.Target, num(r.CPUUSPerReq, 1), ratio(r.RatioToNginx), triple(r.Added), triple(r.Latency),
			mib(r, r.IdleRSSMiB), mib(r, r.PeakRSSMiB), r.Requests, r.Errors, r.LoadCPUPct, r.OtherCPUPct)
	}
	return b.String()
}

// NoisyOtherPct is the other-CPU share (Measurement.OtherCPUPct) above
// which a measurement counts as disturbed and the table is flagged: on a
// quiet machine interrupt time and the harness stay well below it.
const NoisyOtherPct = 15

// saturatedLoadPct is the load CPU share (Row.LoadCPUPct) from which the
// load side counts as saturated.
const saturatedLoadPct = 80

// saturated names the protocol/rate cells whose load CPU was saturated.
func saturated(rows []Row) []string {
	var out []string
	seen := map[string]bool{}
	for _, r := range rows {
		k := fmt.Sprintf("%s %d req/s", r.Protocol, r.Rate)
		if r.LoadCPUPct >= saturatedLoadPct && !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
	}
	return out
}

func maxOther(rows []Row) float64 {
	worst := 0.0
	for _, r := range rows {
		worst = math.Max(worst, r.OtherCPUPct)
	}
	return worst
}

func versions(v map[string]string) string {
	order := []string{"nginx", "haproxy", "fortio", "weft-proxy", "go"}
	var parts []string
	for _, k := range order {
		if s, ok := v[k]; ok && s != "" {
			parts = append(parts, k+" "+s)
		}
	}
	return strings.Join(parts, ", ")
}

func num(v float64, prec int) string {
	if math.IsNaN(v) {
		return "—"
	}
	return fmt.Sprintf("%.*f", prec, v)
}

func ratio(v float64) string {
	if math.IsNaN(v) {
		return "—"
	}
	return fmt.Sprintf("%.2f×", v)
}

func triple(v [3]float64) string {
	if math.IsNaN(v[0]) {
		return "—"
	}
	return fmt.Sprintf("%.0f / %.0f / %.0f", v[0], v[1], v[2])
}

func mib(r Row, v float64) string {
	if r.Target == Direct {
		return "—"
	}
	return fmt.Sprintf("%.1f", v)
}
