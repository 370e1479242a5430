package lb

import "math/rand/v2"

// randomPolicy is RANDOM (Envoy's RandomLoadBalancer).
//
// Envoy's random policy ignores endpoint weights: it returns
// hosts[random % hosts.size()] (random_lb.cc, peekOrChoose), and the
// "Supported load balancers" page describes it as selecting "a random
// available host". weft does the same, so a cluster splits traffic the same
// way under weft and Envoy.
type randomPolicy struct{}

func (randomPolicy) Name() string { return "RANDOM" }

// Build returns a picker choosing uniformly among hosts.
func (randomPolicy) Build(hosts []Host) Picker {
	if p := trivialPicker(hosts); p != nil {
		return p
	}
	return randomPicker{n: uint64(len(hosts))}
}

// randomPicker picks uniformly with math/rand/v2's lock-free global source.
type randomPicker struct{ n uint64 }

func (p randomPicker) Pick(*Context) int { return int(rand.Uint64N(p.n)) }
