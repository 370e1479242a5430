// Package report turns the benchmark's measurements into the summary rows,
// the Markdown table and the raw JSON document.
package report

import (
	"math"
	"sort"

	"github.com/weftmesh/weft/bench/internal/loadgen"
	"github.com/weftmesh/weft/bench/internal/procfs"
)

// Direct is the target name of the baseline run without a proxy.
const Direct = "direct"

// Baseline is the proxy the CPU ratio is taken against.
const Baseline = "nginx"

// Measurement is one load run against one target.
type Measurement struct {
	Protocol loadgen.Protocol `json:"protocol"`
	Rate     int              `json:"rate"`
	Target   string           `json:"target"` // Direct or a proxy name
	Run      int              `json:"run"`    // 1-based repetition
	Load     loadgen.Result   `json:"load"`
	// Proxy side; zero for Direct.
	ProxyCPUNanos   uint64  `json:"proxy_cpu_ns,omitempty"`
	ProxyCPUUSPerRq float64 `json:"proxy_cpu_us_per_req,omitempty"`
	// IdleRSSKiB is VmRSS summed over the proxy's processes after it became
	// ready and before any load.
	IdleRSSKiB uint64 `json:"idle_rss_kib,omitempty"`
	// PeakRSSKiB is VmHWM summed over the proxy's processes after the run.
	PeakRSSKiB uint64          `json:"peak_rss_kib,omitempty"`
	Processes  []procfs.Memory `json:"processes,omitempty"`
	// UpstreamCPUUSPerRq is the upstream server's CPU per request in the same
	// window (for checking that the upstream is not the bottleneck).
	UpstreamCPUUSPerRq float64 `json:"upstream_cpu_us_per_req"`
	// OtherCPUPct is the busy time of the two benchmark CPUs during the
	// measured run that belongs to none of the benchmark's processes, in
	// percent of one CPU: a few percent on a quiet machine.
	OtherCPUPct float64 `json:"other_cpu_pct"`
	// LoadCPUPct is the load generator's and the upstream's CPU time during
	// the run in percent of one CPU: near 100 their CPU is saturated and
	// latencies measure queueing there, not the proxy.
	LoadCPUPct float64 `json:"load_cpu_pct"`
	// PreRunBusyPct is the whole machine's busy share of one CPU in the
	// second before the measurement (the benchmark idle).
	PreRunBusyPct float64 `json:"pre_run_busy_pct"`
	FortioJSON    string  `json:"fortio_json"`
}

// Row is the summary of one target at one protocol and rate: the median
// over the repetitions of each number (errors and requests are summed).
type Row struct {
	Protocol loadgen.Protocol `json:"protocol"`
	Rate     int              `json:"rate"`
	Target   string           `json:"target"`
	Runs     int              `json:"runs"`
	// CPUUSPerReq is the proxy's CPU-µs per request; NaN for Direct.
	CPUUSPerReq float64 `json:"cpu_us_per_req"`
	// RatioToNginx is CPUUSPerReq / nginx's at the same protocol and rate;
	// NaN when either is missing.
	RatioToNginx float64 `json:"ratio_to_nginx"`
	// Latency holds the absolute p50, p90, p99 in µs.
	Latency [3]float64 `json:"latency_us"`
	// Added is Latency minus the direct baseline's at the same protocol and
	// rate; NaN when there is no baseline.
	Added       [3]float64 `json:"added_latency_us"`
	IdleRSSMiB  float64    `json:"idle_rss_mib"`
	PeakRSSMiB  float64    `json:"peak_rss_mib"`
	Requests    int64      `json:"requests"`
	Errors      int64      `json:"errors"`
	ActualQPS   float64    `json:"actual_qps"`
	UpstreamCPU float64    `json:"upstream_cpu_us_per_req"`
	SocketsOpen int64      `json:"sockets_opened,omitempty"`
	OtherCPUPct float64    `json:"other_cpu_pct"` // median over runs
	LoadCPUPct  float64    `json:"load_cpu_pct"`  // median over runs
}

// Percentiles are the latency percentiles in a Row, in order.
var Percentiles = [3]string{"50", "90", "99"}

type key struct {
	proto loadgen.Protocol
	rate  int
}

// Summarize groups ms by protocol, rate and target and returns one Row per
// group, ordered by protocol order, rate, then target order (targets not in
// order come last, by name).
func Summarize(ms []Measurement, protoOrder []loadgen.Protocol, targetOrder []string) []Row {
	type gk struct {
		key
		target string
	}
	groups := map[gk][]Measurement{}
	for _, m := range ms {
		k := gk{key{m.Protocol, m.Rate}, m.Target}
		groups[k] = append(groups[k], m)
	}
	rows := make([]Row, 0, len(groups))
	for k, g := range groups {
		rows = append(rows, summarizeGroup(k.proto, k.rate, k.target, g))
	}
	sortRows(rows, protoOrder, targetOrder)
	fillRelative(rows)
	return rows
}

func summarizeGroup(proto loadgen.Protocol, rate int, target string, g []Measurement) Row {
	r := Row{Protocol: proto, Rate: rate, Target: target, Runs: len(g), CPUUSPerReq: math.NaN(),
		RatioToNginx: math.NaN(), Added: [3]float64{math.NaN(), math.NaN(), math.NaN()}}
	pick := func(f func(Measurement) float64) float64 {
		vs := make([]float64, len(g))
		for i, m := range g {
			vs[i] = f(m)
		}
		return Median(vs)
	}
	if target != Direct {
		r.CPUUSPerReq = pick(func(m Measurement) float64 { return m.ProxyCPUUSPerRq })
		r.IdleRSSMiB = pick(func(m Measurement) float64 { return float64(m.IdleRSSKiB) / 1024 })
		r.PeakRSSMiB = pick(func(m Measurement) float64 { return float64(m.PeakRSSKiB) / 1024 })
	}
	for i, p := range Percentiles {
		r.Latency[i] = pick(func(m Measurement) float64 {
			v, ok := m.Load.Percentiles[p]
			if !ok {
				return math.NaN()
			}
			return v
		})
	}
	r.ActualQPS = pick(func(m Measurement) float64 { return m.Load.ActualQPS })
	r.UpstreamCPU = pick(func(m Measurement) float64 { return m.UpstreamCPUUSPerRq })
	r.OtherCPUPct = pick(func(m Measurement) float64 { return m.OtherCPUPct })
	r.LoadCPUPct = pick(func(m Measurement) float64 { return m.LoadCPUPct })
	for _, m := range g {
		r.Requests += m.Load.Served()
		r.Errors += m.Load.Errors
		r.SocketsOpen += m.Load.SocketCount
	}
	return r
}

// fillRelative sets RatioToNginx and Added from the Baseline and Direct rows.
func fillRelative(rows []Row) {
	base := map[key]Row{}
	direct := map[key]Row{}
	for _, r := range rows {
		switch r.Target {
		case Baseline:
			base[key{r.Protocol, r.Rate}] = r
		case Direct:
			direct[key{r.Protocol, r.Rate}] = r
		}
	}
	for i := range rows {
		r := &rows[i]
		k := key{r.Protocol, r.Rate}
		if b, ok := base[k]; ok && r.Target != Direct && b.CPUUSPerReq > 0 {
			r.RatioToNginx = r.CPUUSPerReq / b.CPUUSPerReq
		}
		if d, ok := direct[k]; ok && r.Target != Direct {
			for j := range r.Added {
				r.Added[j] = r.Latency[j] - d.Latency[j]
			}
		}
	}
}

func sortRows(rows []Row, protoOrder []loadgen.Protocol, targetOrder []string) {
	protoRank := map[loadgen.Protocol]int{}
	for i, p := range protoOrder {
		protoRank[p] = i
	}
	targetRank := map[string]int{}
	for i, t := range targetOrder {
		targetRank[t] = i
	}
	rank := func(m map[string]int, s string) int {
		if v, ok := m[s]; ok {
			return v
		}
		return len(m)
	}
	sort.Slice(rows, func(i, j int) bool {
		a, b := rows[i], rows[j]
		pa, oka := protoRank[a.Protocol]
		pb, okb := protoRank[b.Protocol]
		if !oka {
			pa = len(protoRank)
		}
		if !okb {
			pb = len(protoRank)
		}
		if pa != pb {
			return pa < pb
		}
		if a.Rate != b.Rate {
			return a.Rate < b.Rate
		}
		ta, tb := rank(targetRank, a.Target), rank(targetRank, b.Target)
		if ta != tb {
			return ta < tb
		}
		return a.Target < b.Target
	})
}

// Median returns the median of vs (the mean of the middle two for an even
// count); NaN for no values. NaN values sort first, so a median is NaN only
// when at least half of the values are NaN.
func Median(vs []float64) float64 {
	if len(vs) == 0 {
		return math.NaN()
	}
	s := append([]float64(nil), vs...)
	sort.Float64s(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}
