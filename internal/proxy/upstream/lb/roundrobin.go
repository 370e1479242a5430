package lb

import (
	"container/heap"
	"math/rand/v2"
	"sync/atomic"
)

// maxScheduleLen bounds the weighted round-robin schedule: 64 Ki entries of 4
// bytes. Weights whose reduced sum is larger are scaled down to fit (see
// scheduleWeights).
const maxScheduleLen = 1 << 16

// roundRobinPolicy is ROUND_ROBIN (Envoy's RoundRobinLoadBalancer).
type roundRobinPolicy struct{}

func (roundRobinPolicy) Name() string { return "ROUND_ROBIN" }

// Build returns a picker that rotates over hosts. With equal weights it is a
// plain rotation; otherwise it walks a precomputed weighted schedule. Either
// way the rotation starts at a random offset per build, as Envoy seeds its
// round-robin index and its EDF scheduler with a random number of picks.
func (roundRobinPolicy) Build(hosts []Host) Picker {
	if p := trivialPicker(hosts); p != nil {
		return p
	}
	p := &roundRobinPicker{n: uint64(len(hosts))}
	if !weightsEqual(hosts) {
		p.schedule = edfSchedule(scheduleWeights(hosts))
		p.n = uint64(len(p.schedule))
	}
	p.next.Store(rand.Uint64())
	return p
}

// roundRobinPicker walks either the hosts (schedule == nil) or a weighted
// schedule of host indexes with one atomic counter: lock-free, and every
// pick advances the rotation by exactly one step.
type roundRobinPicker struct {
	next     atomic.Uint64
	n        uint64   // len(hosts), or len(schedule) when weighted
	schedule []uint32 // host index per step; nil when weights are equal
}

func (p *roundRobinPicker) Pick(*Context) int {
	i := p.next.Add(1) % p.n
	if p.schedule == nil {
		return int(i)
	}
	return int(p.schedule[i])
}

// scheduleWeights returns the hosts' weights reduced by their greatest common
// divisor, so that one period of the schedule is as short as the weights
// allow (weights 100 and 200 give a period of 3, not 300).
//
// When the reduced weights still sum to more than maxScheduleLen, each is
// scaled to round(w * maxScheduleLen / sum), at least 1. A host's share of
// picks then differs from its configured share by at most about
// 1/maxScheduleLen (0.0015 %), except that a host whose share is below
// 1/maxScheduleLen still gets one slot per period. Envoy's EDF has no such
// bound because it keeps a priority queue instead of a schedule.
func scheduleWeights(hosts []Host) []uint64 {
	w := make([]uint64, len(hosts))
	var total uint64
	for i, h := range hosts {
		w[i] = hostWeight(h)
		total += w[i]
	}
	if total > maxScheduleLen {
		scaled := uint64(0)
		for i := range w {
			w[i] = max(1, (w[i]*maxScheduleLen+total/2)/total)
			scaled += w[i]
		}
		total = scaled
	}
	g := w[0]
	for _, x := range w[1:] {
		g = gcd(g, x)
	}
	for i := range w {
		w[i] /= g
	}
	return w
}

// edfSchedule returns one period of the earliest-deadline-first schedule that
// Envoy's EdfScheduler produces for static weights (edf_scheduler.h): host i
// has deadlines 1/w[i], 2/w[i], ...; each step picks the earliest deadline,
// and ties go to the entry inserted into the queue first (FIFO), exactly as
// Envoy's order_offset breaks them. Deadlines are compared as exact
// fractions, so no floating-point rounding shifts a tie. The period is
// sum(w) steps, after which every host has been picked w[i] times.
func edfSchedule(w []uint64) []uint32 {
	var total uint64
	q := make(edfQueue, len(w))
	for i, x := range w {
		total += x
		q[i] = edfEntry{host: uint32(i), k: 1, w: x, seq: uint64(i)}
	}
	heap.Init(&q)
	seq := uint64(len(w))
	schedule := make([]uint32, total)
	for step := range schedule {
		e := &q[0]
		schedule[step] = e.host
		e.k++
		e.seq = seq
		seq++
		heap.Fix(&q, 0)
	}
	return schedule
}

// edfEntry is one host in the EDF queue; its next deadline is k/w.
type edfEntry struct {
	host uint32
	k, w uint64
	seq  uint64 // insertion order, for FIFO tie-breaking
}

type edfQueue []edfEntry

func (q edfQueue) Len() int { return len(q) }

func (q edfQueue) Less(i, j int) bool {
	// k_i/w_i < k_j/w_j without division; k <= w <= maxScheduleLen+len(w)
	// after scaling, so the products fit in 64 bits.
	a, b := q[i].k*q[j].w, q[j].k*q[i].w
	if a != b {
		return a < b
	}
	return q[i].seq < q[j].seq
}

func (q edfQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }

func (q *edfQueue) Push(x any) { *q = append(*q, x.(edfEntry)) }

func (q *edfQueue) Pop() any {
	old := *q
	e := old[len(old)-1]
	*q = old[:len(old)-1]
	return e
}
