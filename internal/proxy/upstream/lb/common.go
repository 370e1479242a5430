package lb

// Pickers shared by every policy, and weight helpers.

// emptyPicker is the picker over no hosts.
type emptyPicker struct{}

func (emptyPicker) Pick(*Context) int { return -1 }

// singlePicker is the picker over exactly one host: every Envoy policy picks
// the only host (Envoy skips its EDF and tables in that case too).
type singlePicker struct{}

func (singlePicker) Pick(*Context) int { return 0 }

// trivialPicker returns the picker for zero or one host, or nil when hosts
// has two or more entries and the policy must build its own.
func trivialPicker(hosts []Host) Picker {
	switch len(hosts) {
	case 0:
		return emptyPicker{}
	case 1:
		return singlePicker{}
	}
	return nil
}

// hostWeight returns h's weight, at least 1 as the Host contract promises
// (a zero weight is treated as 1 rather than dividing by it).
func hostWeight(h Host) uint64 {
	if w := h.Weight(); w > 0 {
		return uint64(w)
	}
	return 1
}

// weightsEqual reports whether every host has the same weight, the test
// Envoy's EDF-based policies use to choose their unweighted fast path
// (hostWeightsAreEqual in load_balancer_impl.cc).
func weightsEqual(hosts []Host) bool {
	for _, h := range hosts[1:] {
		if hostWeight(h) != hostWeight(hosts[0]) {
			return false
		}
	}
	return true
}

// normalizedWeights returns each host's weight divided by the sum of weights,
// with the minimum and maximum, computed in the same order and precision as
// Envoy's normalizeHostWeights (thread_aware_lb_impl.cc) so that rings and
// tables match Envoy's entry for entry.
func normalizedWeights(hosts []Host) (w []float64, minW, maxW float64) {
	var sum uint64
	for _, h := range hosts {
		sum += hostWeight(h)
	}
	w = make([]float64, len(hosts))
	minW, maxW = 1.0, 0.0
	for i, h := range hosts {
		w[i] = float64(hostWeight(h)) * 1.0 / float64(sum)
		minW = min(minW, w[i])
		maxW = max(maxW, w[i])
	}
	return w, minW, maxW
}

func gcd(a, b uint64) uint64 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}
