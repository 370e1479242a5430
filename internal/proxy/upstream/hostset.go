package upstream

import (
	"math/rand/v2"

	"github.com/weftmesh/weft/internal/proxy/upstream/lb"
)

// Envoy's default overprovisioning factor (1.4, expressed in percent).
const overprovisioning = 140

// hostSet is an immutable view of a cluster's hosts with the pickers built
// over them. A new one replaces the old whenever membership or health
// changes; requests in flight keep the one they loaded.
type hostSet struct {
	hosts  []*Host
	levels []*level
	// cumLoad[i] is the cumulative percentage of traffic for levels[0..i]
	// (Envoy's per-priority load with overprovisioning).
	cumLoad []uint32
}

// level is one priority level.
type level struct {
	healthy []*Host
	all     []*Host
	// panic is set when too few hosts are healthy (Envoy's
	// healthy_panic_threshold): picks then spread over all hosts.
	panic      bool
	localities []*localityHosts // when locality weighting is on
	healthyPk  lb.Picker
	allPk      lb.Picker
	locWeights []uint64 // cumulative effective locality weights
}

type localityHosts struct {
	hosts  []*Host // the healthy hosts of the locality
	picker lb.Picker
}

type hostSetOptions struct {
	policy           lb.Policy
	panicThreshold   float64 // percent; 0 disables panic mode
	localityWeighted bool
	// localityWeight returns the load_balancing_weight of a host's
	// locality (only with localityWeighted).
	localityWeight func(*Host) uint32
}

func buildHostSet(hosts []*Host, o hostSetOptions) *hostSet {
	s := &hostSet{hosts: hosts}
	if len(hosts) == 0 {
		return s
	}
	// Each host's priority is read once: an EDS update may store new
	// metadata on a host while this set is built for it.
	prios := make([]uint32, len(hosts))
	var maxPrio uint32
	for i, h := range hosts {
		prios[i] = h.Priority()
		maxPrio = max(maxPrio, prios[i])
	}
	s.levels = make([]*level, maxPrio+1)
	for i := range s.levels {
		s.levels[i] = &level{}
	}
	for i, h := range hosts {
		l := s.levels[prios[i]]
		l.all = append(l.all, h)
		if h.healthy() {
			l.healthy = append(l.healthy, h)
		}
	}
	health := make([]uint32, len(s.levels))
	var total uint32
	for i, l := range s.levels {
		if len(l.all) > 0 {
			health[i] = min(100, uint32(overprovisioning*len(l.healthy)/len(l.all)))
		}
		total += health[i]
	}
	norm := min(100, total) // Envoy's normalized total availability
	totalPanic := s.markPanic(norm, o.panicThreshold)
	for _, l := range s.levels {
		l.healthyPk = o.policy.Build(asLB(l.healthy))
		l.allPk = o.policy.Build(asLB(l.all))
		if o.localityWeighted && !l.panic {
			l.buildLocalities(o)
		}
	}
	var loads []uint32
	switch {
	case norm == 0 && o.panicThreshold <= 0:
		// No healthy host anywhere and panic disabled: Envoy assigns the
		// load to P0, where no host will be found.
		loads = make([]uint32, len(s.levels))
		loads[0] = 100
	case totalPanic:
		loads = s.panicLoads()
	default:
		loads = distributeLoad(health, norm)
	}
	s.cumLoad = make([]uint32, len(loads))
	var acc uint32
	for i, v := range loads {
		acc += v
		s.cumLoad[i] = acc
	}
	s.cumLoad[len(s.cumLoad)-1] = 100
	return s
}

// markPanic sets each level's panic mode as Envoy's
// recalculatePerPriorityPanic does: never while the normalized total
// availability is 100 %, otherwise for each level whose healthy percentage
// is below the threshold (an empty level counts as 0 % healthy). It reports
// whether every level is in panic.
func (s *hostSet) markPanic(norm uint32, threshold float64) (totalPanic bool) {
	totalPanic = true
	for _, l := range s.levels {
		if norm < 100 && threshold > 0 {
			pct := 0.0
			if len(l.all) > 0 {
				pct = 100 * float64(len(l.healthy)) / float64(len(l.all))
			}
			l.panic = pct < threshold
		}
		totalPanic = totalPanic && l.panic
	}
	return totalPanic
}

// distributeLoad gives each level its health share of the traffic, scaled
// by the normalized total availability, in priority order; what rounding
// leaves goes to the first level with healthy hosts (Envoy's
// distributeLoad).
func distributeLoad(health []uint32, norm uint32) []uint32 {
	loads := make([]uint32, len(health))
	remaining := uint32(100)
	first := -1
	for i, h := range health {
		if h > 0 && first < 0 {
			first = i
		}
		loads[i] = min(remaining, h*100/norm)
		remaining -= loads[i]
	}
	if remaining > 0 && first >= 0 {
		loads[first] += remaining
	}
	return loads
}

// panicLoads splits the traffic by host count when every level is in panic
// (Envoy's recalculateLoadInTotalPanic); the rounding remainder goes to the
// first non-empty level.
func (s *hostSet) panicLoads() []uint32 {
	loads := make([]uint32, len(s.levels))
	remaining := uint32(100)
	first := -1
	for i, l := range s.levels {
		if len(l.all) > 0 && first < 0 {
			first = i
		}
		loads[i] = uint32(100 * len(l.all) / len(s.hosts))
		remaining -= loads[i]
	}
	loads[first] += remaining
	return loads
}

// buildLocalities prepares Envoy's locality-weighted pick over the level's
// healthy hosts: a locality's effective weight is its load_balancing_weight
// times its availability, min(100 %, 1.4 × healthy / total hosts of the
// locality) (Envoy's effectiveLocalityWeight; see "Locality weighted load
// balancing" in the architecture overview). Weights are kept in percent
// units so that no precision is lost to integer division.
func (l *level) buildLocalities(o hostSetOptions) {
	byLoc := map[Locality]*localityHosts{}
	var order []*localityHosts
	weights := map[*localityHosts]uint64{}
	totals := map[*localityHosts]int{}
	for _, h := range l.all {
		loc := h.Locality()
		lh := byLoc[loc]
		if lh == nil {
			lh = &localityHosts{}
			byLoc[loc] = lh
			order = append(order, lh)
			weights[lh] = uint64(o.localityWeight(h))
		}
		totals[lh]++
		if h.healthy() {
			lh.hosts = append(lh.hosts, h)
		}
	}
	var acc uint64
	for _, lh := range order {
		lh.picker = o.policy.Build(asLB(lh.hosts))
		availability := min(100, uint64(overprovisioning*len(lh.hosts)/totals[lh]))
		acc += weights[lh] * availability
		l.localities = append(l.localities, lh)
		l.locWeights = append(l.locWeights, acc)
	}
}

func asLB(hosts []*Host) []lb.Host {
	out := make([]lb.Host, len(hosts))
	for i, h := range hosts {
		out[i] = h
	}
	return out
}

// choose picks a host, or returns nil when there is none to pick. panicked
// reports that the pick ignored health (panic mode).
func (s *hostSet) choose(ctx *lb.Context) (h *Host, panicked bool) {
	if len(s.levels) == 0 {
		return nil, false
	}
	l := s.levels[0]
	if len(s.levels) > 1 {
		r := rand.Uint32N(100)
		for i, c := range s.cumLoad {
			if r < c {
				l = s.levels[i]
				break
			}
		}
	}
	if l.panic {
		// Envoy: a level in panic balances over all its hosts, without
		// locality weighting.
		if idx := l.allPk.Pick(ctx); idx >= 0 {
			return l.all[idx], true
		}
		return nil, false
	}
	if n := len(l.locWeights); n > 0 && l.locWeights[n-1] > 0 {
		r := rand.Uint64N(l.locWeights[n-1])
		for i, c := range l.locWeights {
			if r < c {
				lh := l.localities[i]
				if idx := lh.picker.Pick(ctx); idx >= 0 {
					return lh.hosts[idx], false
				}
				break
			}
		}
	}
	if idx := l.healthyPk.Pick(ctx); idx >= 0 {
		return l.healthy[idx], false
	}
	return nil, false
}
