package stats

import (
	"math"
	"slices"
	"sync/atomic"
)

// DefaultBuckets are Envoy's default histogram bucket bounds, in
// milliseconds.
var DefaultBuckets = []float64{0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000, 3600000}

// Histogram counts observations in fixed buckets. Recording is a few atomic
// adds.
type Histogram struct {
	bounds []float64
	counts []atomic.Uint64 // len(bounds)+1; the last is +Inf
	sum    atomic.Uint64   // float64 bits
	count  atomic.Uint64
}

func newHistogram() *Histogram {
	return &Histogram{bounds: DefaultBuckets, counts: make([]atomic.Uint64, len(DefaultBuckets)+1)}
}

// Record adds one observation of v (milliseconds).
func (h *Histogram) Record(v float64) {
	i := 0
	for i < len(h.bounds) && v > h.bounds[i] {
		i++
	}
	h.counts[i].Add(1)
	h.count.Add(1)
	for {
		old := h.sum.Load()
		if h.sum.CompareAndSwap(old, math.Float64bits(math.Float64frombits(old)+v)) {
			return
		}
	}
}

// HistogramSnapshot is a histogram's state at one moment.
type HistogramSnapshot struct {
	Bounds []float64
	// Cumulative counts per bound, as Prometheus wants them; the last entry
	// is the +Inf bucket and equals Count.
	Cumulative []uint64
	Sum        float64
	Count      uint64
}

// Snapshot returns the current state.
func (h *Histogram) Snapshot() HistogramSnapshot {
	s := HistogramSnapshot{Bounds: slices.Clone(h.bounds), Cumulative: make([]uint64, len(h.counts))}
	var acc uint64
	for i := range h.counts {
		acc += h.counts[i].Load()
		s.Cumulative[i] = acc
	}
	s.Count = acc
	s.Sum = math.Float64frombits(h.sum.Load())
	return s
}
