package lb

import (
	"fmt"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
)

// pickerCase is one picker under test: a policy, its host weights, and
// whether requests carry a hash.
type pickerCase struct {
	name    string
	policy  func(testing.TB) Policy
	weights func(n int) []uint32
	hash    bool
}

func equalWeights(n int) []uint32 {
	w := make([]uint32, n)
	for i := range w {
		w[i] = 1
	}
	return w
}

func mixedWeights(n int) []uint32 {
	w := make([]uint32, n)
	for i := range w {
		w[i] = uint32(1 + i%5)
	}
	return w
}

func byPolicy(lp clusterv3.Cluster_LbPolicy) func(testing.TB) Policy {
	return func(t testing.TB) Policy { return policyOf(t, lp) }
}

var pickerCases = []pickerCase{
	{"ROUND_ROBIN/equal", byPolicy(clusterv3.Cluster_ROUND_ROBIN), equalWeights, false},
	{"ROUND_ROBIN/weighted", byPolicy(clusterv3.Cluster_ROUND_ROBIN), mixedWeights, false},
	{"RANDOM", byPolicy(clusterv3.Cluster_RANDOM), equalWeights, false},
	{"LEAST_REQUEST/equal", byPolicy(clusterv3.Cluster_LEAST_REQUEST), equalWeights, false},
	{"LEAST_REQUEST/weighted", byPolicy(clusterv3.Cluster_LEAST_REQUEST), mixedWeights, false},
	{"LEAST_REQUEST/weighted-bias0.5", func(t testing.TB) Policy {
		b := 0.5
		return leastRequestPolicyOf(t, 0, &b)
	}, mixedWeights, false},
	{"RING_HASH/hash", byPolicy(clusterv3.Cluster_RING_HASH), mixedWeights, true},
	{"RING_HASH/no-hash", byPolicy(clusterv3.Cluster_RING_HASH), mixedWeights, false},
	{"MAGLEV/hash", byPolicy(clusterv3.Cluster_MAGLEV), mixedWeights, true},
	{"MAGLEV/no-hash", byPolicy(clusterv3.Cluster_MAGLEV), mixedWeights, false},
}

// mix is splitmix64's finalizer: request hashes that look random, so the
// ring's binary search does not follow a predictable path.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	return x ^ x>>31
}

// buildCase builds the picker of c over n hosts with a few requests in
// flight on each.
func buildCase(t testing.TB, c pickerCase, n int) Picker {
	hosts := weightedHosts(c.weights(n)...)
	for i, h := range hosts {
		h.(*testHost).active.Store(int64(i % 7))
	}
	return c.policy(t).Build(hosts)
}

// Pick never allocates, for any policy, with or without a hash.
func TestPickDoesNotAllocate(t *testing.T) {
	for _, c := range pickerCases {
		for _, n := range []int{3, 100, 3 * stackWeights} {
			p := buildCase(t, c, n)
			ctx := &Context{HasHash: c.hash}
			var i uint64
			allocs := testing.AllocsPerRun(1000, func() {
				i++
				ctx.Hash = mix(i)
				p.Pick(ctx)
			})
			if allocs != 0 {
				t.Errorf("%s with %d hosts: %.1f allocations per Pick, want 0", c.name, n, allocs)
			}
		}
	}
}

func BenchmarkPick(b *testing.B) {
	for _, c := range pickerCases {
		for _, n := range []int{3, 100} {
			b.Run(fmt.Sprintf("%s/hosts=%d", c.name, n), func(b *testing.B) {
				p := buildCase(b, c, n)
				ctx := &Context{HasHash: c.hash}
				b.ReportAllocs()
				var i uint64
				for b.Loop() {
					i++
					ctx.Hash = mix(i)
					p.Pick(ctx)
				}
			})
		}
	}
}

// BenchmarkPickParallel shows contention on the shared round-robin counter
// and on the hosts' active-request counters.
func BenchmarkPickParallel(b *testing.B) {
	for _, c := range pickerCases[:5] {
		b.Run(c.name+"/hosts=100", func(b *testing.B) {
			p := buildCase(b, c, 100)
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				ctx := &Context{}
				for pb.Next() {
					p.Pick(ctx)
				}
			})
		})
	}
}

func BenchmarkBuild(b *testing.B) {
	for _, c := range []pickerCase{pickerCases[1], pickerCases[6], pickerCases[8]} {
		b.Run(c.name+"/hosts=100", func(b *testing.B) {
			hosts := weightedHosts(c.weights(100)...)
			p := c.policy(b)
			b.ReportAllocs()
			for b.Loop() {
				p.Build(hosts)
			}
		})
	}
}
