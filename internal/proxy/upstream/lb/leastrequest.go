package lb

import (
	"math"
	"math/rand/v2"
)

// stackWeights is how many hosts the weighted least-request pick handles with
// its effective weights in a stack array (one pass over the hosts); larger
// clusters take a second pass instead.
const stackWeights = 128

// powCacheLen is how many values of (active+1)^bias a weighted picker
// precomputes, so that a bias other than 0 or 1 costs no math.Pow for hosts
// with fewer than powCacheLen requests in flight.
const powCacheLen = 256

// leastRequestPolicy is LEAST_REQUEST (Envoy's LeastRequestLoadBalancer).
type leastRequestPolicy struct {
	choiceCount int     // least_request_lb_config.choice_count, >= 2
	bias        float64 // least_request_lb_config.active_request_bias, >= 0
}

func (leastRequestPolicy) Name() string { return "LEAST_REQUEST" }

// Build returns a picker over hosts. As in Envoy, equal weights select
// choiceCount random hosts and take the one with the fewest active requests
// (P2C); unequal weights select by the dynamic weight
// weight / (active_requests + 1)^active_request_bias, evaluated at pick time.
//
// Envoy's main branch has started to use the weighted mode with equal
// weights too when active_request_bias is set explicitly (runtime guard
// least_request_lb_active_request_bias_forces_weighted); weft follows the
// released behaviour, where equal weights always mean P2C.
func (p leastRequestPolicy) Build(hosts []Host) Picker {
	if t := trivialPicker(hosts); t != nil {
		return t
	}
	if weightsEqual(hosts) {
		return &p2cPicker{hosts: hosts, choices: p.choiceCount}
	}
	w := &weightedLeastRequestPicker{hosts: hosts, bias: p.bias, weights: make([]float64, len(hosts))}
	for i, h := range hosts {
		w.weights[i] = float64(hostWeight(h))
	}
	if len(hosts) > directScanHosts {
		w.alias = newAliasTable(w.weights)
	}
	if p.bias != 0 && p.bias != 1 {
		w.pow = make([]float64, powCacheLen)
		for a := range w.pow {
			w.pow[a] = math.Pow(float64(a+1), p.bias)
		}
	}
	return w
}

// p2cPicker is Envoy's N_CHOICES selection (unweightedHostPickNChoices):
// choices uniform draws with replacement; a later draw replaces the
// candidate only with strictly fewer active requests.
type p2cPicker struct {
	hosts   []Host
	choices int
}

func (p *p2cPicker) Pick(*Context) int {
	n := uint64(len(p.hosts))
	best := int(rand.Uint64N(n))
	bestActive := p.hosts[best].ActiveRequests()
	for range p.choices - 1 {
		i := int(rand.Uint64N(n))
		if a := p.hosts[i].ActiveRequests(); a < bestActive {
			best, bestActive = i, a
		}
	}
	return best
}

// weightedLeastRequestPicker approximates Envoy's weighted mode without a
// lock. Envoy keeps an EDF queue per worker and re-inserts a picked host with
// its dynamic weight weight/(active+1)^bias, so in steady state each host is
// picked at a rate proportional to that weight. This picker draws a host
// with probability exactly proportional to the same dynamic weights, read at
// pick time: the same long-run shares and the same response to load, but
// random instead of interleaved. It never blocks or allocates.
//
// Small clusters compute every dynamic weight and draw from them. Larger ones
// first try rejection sampling: draw a host by static weight (alias table,
// O(1)) and keep it with probability 1/(active+1)^bias, which is exactly
// dynamic weight / static weight; an idle host is always kept. After
// rejectTries rejections (every host busy) it falls back to the full scan.
// Either way the result is distributed exactly as the dynamic weights.
type weightedLeastRequestPicker struct {
	hosts   []Host
	weights []float64 // static load_balancing_weight per host
	bias    float64
	pow     []float64  // pow[a] = (a+1)^bias; nil when bias is 0 or 1
	alias   aliasTable // static weights; built when len(hosts) > directScanHosts
}

// directScanHosts is the cluster size up to which a weighted least-request
// pick always scans every host: below it a scan costs about as much as a few
// rejection rounds.
const directScanHosts = 16

// rejectTries bounds the rejection rounds before the full scan. Each round
// costs about a tenth of a 100-host scan; with every host at 10 requests in
// flight, 8 rounds succeed about half the time.
const rejectTries = 8

func (p *weightedLeastRequestPicker) Pick(*Context) int {
	n := len(p.hosts)
	if n > directScanHosts {
		for range rejectTries {
			i := p.alias.sample()
			if p.keep(i) {
				return i
			}
		}
	}
	if n <= stackWeights {
		return p.pickOnePass()
	}
	return p.pickTwoPass()
}

// keep accepts host i, drawn by static weight, with probability
// 1/(active+1)^bias.
func (p *weightedLeastRequestPicker) keep(i int) bool {
	if p.bias == 0 {
		return true
	}
	a := p.hosts[i].ActiveRequests()
	return a <= 0 || rand.Float64()*p.loadDivisor(a) < 1
}

// pickOnePass keeps the effective weights on the stack and draws from them.
func (p *weightedLeastRequestPicker) pickOnePass() int {
	var eff [stackWeights]float64
	total := 0.0
	for i := range p.hosts {
		eff[i] = p.effectiveWeight(i)
		total += eff[i]
	}
	if !(total > 0) || math.IsInf(total, 0) {
		return int(rand.Uint64N(uint64(len(p.hosts))))
	}
	r := rand.Float64() * total
	for i := range p.hosts {
		r -= eff[i]
		if r < 0 {
			return i
		}
	}
	return len(p.hosts) - 1 // rounding left r at or just above 0
}

// pickTwoPass sums the effective weights, draws, then walks them again.
// Active counts may move between the passes; the draw then lands on a
// neighbour or the last host, a negligible skew.
func (p *weightedLeastRequestPicker) pickTwoPass() int {
	total := 0.0
	for i := range p.hosts {
		total += p.effectiveWeight(i)
	}
	if !(total > 0) || math.IsInf(total, 0) {
		return int(rand.Uint64N(uint64(len(p.hosts))))
	}
	r := rand.Float64() * total
	for i := range p.hosts {
		r -= p.effectiveWeight(i)
		if r < 0 {
			return i
		}
	}
	return len(p.hosts) - 1
}

// effectiveWeight is Envoy's LeastRequestLoadBalancer::hostWeight:
// weight / (active + 1)^bias, with bias 0 meaning the static weight.
func (p *weightedLeastRequestPicker) effectiveWeight(i int) float64 {
	if p.bias == 0 {
		return p.weights[i]
	}
	return p.weights[i] / p.loadDivisor(p.hosts[i].ActiveRequests())
}

// loadDivisor returns (active+1)^bias for bias > 0, treating a negative
// count as 0.
func (p *weightedLeastRequestPicker) loadDivisor(active int64) float64 {
	a := max(active, 0)
	switch {
	case p.bias == 1:
		return float64(a) + 1
	case a < int64(len(p.pow)):
		return p.pow[a]
	}
	return math.Pow(float64(a)+1, p.bias)
}
