package harness

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/weftmesh/weft/bench/internal/procfs"
)

// quietThreshold is the busy share of one CPU, summed over the machine,
// below which the machine counts as quiet while the benchmark is idle
// (its upstream waiting, no proxy running).
const quietThreshold = 10.0

// quietWindow is how long one quiet check samples /proc/stat.
const quietWindow = time.Second

// busyPercent samples the whole machine's busy time over window and returns
// it as a percentage of one CPU.
func busyPercent(ctx context.Context, fs procfs.FS, window time.Duration) (float64, error) {
	start, err := fs.SystemCPU()
	if err != nil {
		return 0, err
	}
	t0 := time.Now()
	select {
	case <-ctx.Done():
		return 0, ctx.Err()
	case <-time.After(window): // the sampling window itself
	}
	end, err := fs.SystemCPU()
	if err != nil {
		return 0, err
	}
	return pct(procfs.BusyDelta(start, end, "cpu"), time.Since(t0)), nil
}

// waitQuiet samples the machine until it is quiet or maxWait has passed,
// and returns the last busy percentage. Other work on the machine (builds,
// tests, fuzzers) inflates latency and disturbs CPU numbers; this lets a
// run on a shared machine wait for a gap. maxWait 0 takes one sample only.
func (b *bench) waitQuiet(ctx context.Context) (float64, error) {
	deadline := time.Now().Add(b.opts.WaitQuiet)
	warned := false
	for {
		busy, err := busyPercent(ctx, b.fs, quietWindow)
		if err != nil || busy < quietThreshold || !time.Now().Before(deadline) {
			return busy, err
		}
		if !warned && b.opts.Progress != nil {
			fmt.Fprintf(b.opts.Progress, "machine busy (%.0f%% of a CPU outside the benchmark); waiting up to %s for it to be quiet\n",
				busy, time.Until(deadline).Round(time.Second))
			warned = true
		}
	}
}

// pct returns ns as a percentage of one CPU over wall.
func pct(ns uint64, wall time.Duration) float64 {
	if wall <= 0 {
		return 0
	}
	return float64(ns) / float64(wall.Nanoseconds()) * 100
}

func cpuName(n int) string {
	return "cpu" + strconv.Itoa(n)
}
