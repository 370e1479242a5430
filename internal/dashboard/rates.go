package dashboard

import (
	"math"
	"time"
)

// point is one scrape of one target.
type point struct {
	at time.Time
	s  sample
}

// history is the recent scrapes of one target, oldest first. It spans at
// least the window once enough scrapes were taken: the oldest point kept is
// the newest one at or before the window's start.
type history struct {
	points []point
}

// add appends a scrape and forgets the points the window no longer needs.
func (h *history) add(p point, window time.Duration) {
	h.points = append(h.points, p)
	start := p.at.Add(-window)
	drop := 0
	for drop+1 < len(h.points)-1 && !h.points[drop+1].at.After(start) {
		drop++
	}
	if drop > 0 {
		h.points = append(h.points[:0], h.points[drop:]...)
	}
}

// flow is the traffic of one flow as rates per second.
type flow struct {
	rps float64 // requests
	eps float64 // failed requests (see isError)
	// buckets are per-second increments of the duration histogram's
	// cumulative buckets by upper bound.
	buckets map[float64]float64
}

// add sums o into f (the same flow seen by several proxies, or several
// flows folded into one graph edge).
func (f *flow) add(o *flow) {
	f.rps += o.rps
	f.eps += o.eps
	if len(o.buckets) > 0 && f.buckets == nil {
		f.buckets = make(map[float64]float64, len(o.buckets))
	}
	for le, v := range o.buckets {
		f.buckets[le] += v
	}
}

// rates returns each flow's rates between the oldest and the newest point
// (nil with fewer than two points: a rate needs two scrapes). A flow
// absent from the oldest point was born in between and counts from zero,
// so the first requests of a new flow are not lost. A counter lower than
// before means the proxy restarted (its counters reset), and the new value
// is the increase, as Prometheus' rate() treats a reset.
func (h *history) rates() map[flowKey]*flow {
	if len(h.points) < 2 {
		return nil
	}
	old, cur := h.points[0], h.points[len(h.points)-1]
	secs := cur.at.Sub(old.at).Seconds()
	if secs <= 0 {
		return nil
	}
	out := make(map[flowKey]*flow, len(cur.s))
	for k, c := range cur.s {
		prev := old.s[k]
		if prev == nil {
			prev = &counts{}
		}
		f := &flow{
			rps: increase(prev.requests, c.requests) / secs,
			eps: increase(prev.errors, c.errors) / secs,
		}
		if len(c.buckets) > 0 {
			f.buckets = make(map[float64]float64, len(c.buckets))
			reset := c.buckets[math.Inf(1)] < prev.buckets[math.Inf(1)]
			for le, n := range c.buckets {
				if reset {
					f.buckets[le] = n / secs
				} else {
					f.buckets[le] = increase(prev.buckets[le], n) / secs
				}
			}
		}
		out[k] = f
	}
	return out
}

// increase is the growth of a counter from a to b, reset-aware.
func increase(a, b float64) float64 {
	if b < a {
		return b
	}
	return b - a
}
