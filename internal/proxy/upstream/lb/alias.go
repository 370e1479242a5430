package lb

import "math/rand/v2"

// aliasTable samples index i with probability weights[i]/sum(weights) in
// O(1): Vose's alias method. Built once per Build, read-only afterwards.
type aliasTable struct {
	prob  []float64 // chance of keeping column i rather than taking alias[i]
	alias []uint32
}

func newAliasTable(weights []float64) aliasTable {
	n := len(weights)
	t := aliasTable{prob: make([]float64, n), alias: make([]uint32, n)}
	sum := 0.0
	for _, w := range weights {
		sum += w
	}
	scaled := make([]float64, n)
	var small, large []uint32
	for i, w := range weights {
		scaled[i] = w * float64(n) / sum
		if scaled[i] < 1 {
			small = append(small, uint32(i))
		} else {
			large = append(large, uint32(i))
		}
	}
	for len(small) > 0 && len(large) > 0 {
		s, l := small[len(small)-1], large[len(large)-1]
		small = small[:len(small)-1]
		t.prob[s], t.alias[s] = scaled[s], l
		scaled[l] -= 1 - scaled[s]
		if scaled[l] < 1 {
			large = large[:len(large)-1]
			small = append(small, l)
		}
	}
	// What is left is 1 up to rounding.
	for _, i := range large {
		t.prob[i], t.alias[i] = 1, i
	}
	for _, i := range small {
		t.prob[i], t.alias[i] = 1, i
	}
	return t
}

// sample returns a random index, distributed as the table's weights.
func (t *aliasTable) sample() int {
	i := rand.Uint64N(uint64(len(t.prob)))
	if rand.Float64() < t.prob[i] {
		return int(i)
	}
	return int(t.alias[i])
}
