package lb

import (
	"fmt"
	"sync/atomic"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
)

// testHost is a Host whose weight, key and active requests the test controls.
type testHost struct {
	weight uint32
	key    string
	active atomic.Int64
}

func (h *testHost) Weight() uint32        { return h.weight }
func (h *testHost) ActiveRequests() int64 { return h.active.Load() }
func (h *testHost) HashKey() string       { return h.key }

// weightedHosts returns one host per weight, keyed "10.0.0.<i>:8080".
func weightedHosts(weights ...uint32) []Host {
	hosts := make([]Host, len(weights))
	for i, w := range weights {
		hosts[i] = &testHost{weight: w, key: fmt.Sprintf("10.0.0.%d:8080", i+1)}
	}
	return hosts
}

// equalHosts returns n hosts of weight 1.
func equalHosts(n int) []Host {
	w := make([]uint32, n)
	for i := range w {
		w[i] = 1
	}
	return weightedHosts(w...)
}

// keyedHosts returns weight-1 hosts with the given hash keys.
func keyedHosts(keys ...string) []Host {
	hosts := make([]Host, len(keys))
	for i, k := range keys {
		hosts[i] = &testHost{weight: 1, key: k}
	}
	return hosts
}

// mustPolicy builds the policy of c or fails the test.
func mustPolicy(t testing.TB, c *clusterv3.Cluster) Policy {
	t.Helper()
	p, err := New(c)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return p
}

// policyOf returns the policy for lb_policy with default configuration.
func policyOf(t testing.TB, lp clusterv3.Cluster_LbPolicy) Policy {
	t.Helper()
	return mustPolicy(t, &clusterv3.Cluster{LbPolicy: lp})
}

// shares picks n times and returns each host's fraction of the picks.
func shares(t testing.TB, p Picker, hostCount, n int, ctx func(i int) *Context) []float64 {
	t.Helper()
	counts := make([]int, hostCount)
	for i := range n {
		var c *Context
		if ctx != nil {
			c = ctx(i)
		}
		idx := p.Pick(c)
		if idx < 0 || idx >= hostCount {
			t.Fatalf("Pick returned %d for %d hosts", idx, hostCount)
		}
		counts[idx]++
	}
	out := make([]float64, hostCount)
	for i, c := range counts {
		out[i] = float64(c) / float64(n)
	}
	return out
}

// expectedShares returns weight/total per weight.
func expectedShares(weights ...uint32) []float64 {
	total := 0.0
	for _, w := range weights {
		total += float64(w)
	}
	out := make([]float64, len(weights))
	for i, w := range weights {
		out[i] = float64(w) / total
	}
	return out
}

// assertShares fails unless every got[i] is within tol (absolute) of want[i].
func assertShares(t *testing.T, got, want []float64, tol float64) {
	t.Helper()
	for i := range want {
		if d := got[i] - want[i]; d > tol || d < -tol {
			t.Errorf("host %d: share %.4f, want %.4f ± %.3f (all: got %.4f want %.4f)", i, got[i], want[i], tol, got, want)
		}
	}
}
