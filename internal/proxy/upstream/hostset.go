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
	// (Envoy's priority load with overprovisioning).
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
	hosts  []*Host
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
	var maxPrio uint32
	for _, h := range hosts {
		maxPrio = max(maxPrio, h.priority)
	}
	if len(hosts) == 0 {
		return s
	}
	s.levels = make([]*level, maxPrio+1)
	for i := range s.levels {
		s.levels[i] = &level{}
	}
	for _, h := range hosts {
		l := s.levels[h.priority]
		l.all = append(l.all, h)
		if h.Health().healthy() {
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
		if o.panicThreshold > 0 && len(l.all) > 0 && 100*float64(len(l.healthy))/float64(len(l.all)) < o.panicThreshold {
			l.panic = true
		}
		l.healthyPk = o.policy.Build(asLB(l.healthy))
		l.allPk = o.policy.Build(asLB(l.all))
		if o.localityWeighted {
			l.buildLocalities(o)
		}
	}
	// Priority load: each level takes its health share of the remaining
	// traffic, normalized when the total health is below 100 %.
	s.cumLoad = make([]uint32, len(s.levels))
	norm := min(100, total)
	var acc uint32
	for i := range s.levels {
		if norm == 0 {
			if i == 0 {
				acc = 100 // total panic: everything to the first level
			}
		} else {
			acc += min(100-acc, health[i]*100/norm)
		}
		s.cumLoad[i] = acc
	}
	s.cumLoad[len(s.cumLoad)-1] = 100
	return s
}

func (l *level) buildLocalities(o hostSetOptions) {
	byLoc := map[Locality]*localityHosts{}
	var order []*localityHosts
	weights := map[*localityHosts]uint64{}
	healthyCount := map[*localityHosts]int{}
	for _, h := range l.all {
		lh := byLoc[h.locality]
		if lh == nil {
			lh = &localityHosts{}
			byLoc[h.locality] = lh
			order = append(order, lh)
			weights[lh] = uint64(o.localityWeight(h))
		}
		if h.Health().healthy() || l.panic {
			lh.hosts = append(lh.hosts, h)
			healthyCount[lh]++
		}
	}
	var acc uint64
	for _, lh := range order {
		lh.picker = o.policy.Build(asLB(lh.hosts))
		// Effective weight: locality weight × its available share
		// (Envoy: weight × min(1, overprovisioning × healthy/total)).
		eff := weights[lh] * uint64(min(100, overprovisioning*healthyCount[lh]/max(1, len(lh.hosts)+0))) / 100
		if len(lh.hosts) == 0 {
			eff = 0
		}
		acc += eff
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
	if l.locWeights != nil && l.locWeights[len(l.locWeights)-1] > 0 {
		r := rand.Uint64N(l.locWeights[len(l.locWeights)-1])
		for i, c := range l.locWeights {
			if r < c {
				lh := l.localities[i]
				if idx := lh.picker.Pick(ctx); idx >= 0 {
					return lh.hosts[idx], l.panic
				}
				break
			}
		}
	}
	if l.panic {
		if idx := l.allPk.Pick(ctx); idx >= 0 {
			return l.all[idx], true
		}
		return nil, false
	}
	if idx := l.healthyPk.Pick(ctx); idx >= 0 {
		return l.healthy[idx], false
	}
	return nil, false
}
