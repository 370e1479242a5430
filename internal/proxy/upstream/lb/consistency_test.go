package lb

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
)

var hashPolicies = []clusterv3.Cluster_LbPolicy{clusterv3.Cluster_RING_HASH, clusterv3.Cluster_MAGLEV}

// The same hash always selects the same host, across picks and across
// builds over the same hosts.
func TestConsistentHashSameHashSameHost(t *testing.T) {
	for _, lp := range hashPolicies {
		t.Run(lp.String(), func(t *testing.T) {
			hosts := weightedHosts(1, 2, 3, 1, 5)
			a := policyOf(t, lp).Build(hosts)
			b := policyOf(t, lp).Build(hosts)
			r := rand.New(rand.NewPCG(1, 2))
			seen := map[int]bool{}
			for range 10_000 {
				ctx := &Context{Hash: r.Uint64(), HasHash: true}
				first := a.Pick(ctx)
				seen[first] = true
				if again, other := a.Pick(ctx), b.Pick(ctx); again != first || other != first {
					t.Fatalf("hash %d: picks %d, %d and (new build) %d", ctx.Hash, first, again, other)
				}
			}
			if len(seen) != len(hosts) {
				t.Errorf("10,000 hashes reached %d of %d hosts", len(seen), len(hosts))
			}
		})
	}
}

// Removing one host of N moves the keys that host owned (1/N of them) plus
// some keys between surviving hosts. Envoy documents "only 1/N" for a ring
// and "approximately double" for Maglev; in fact Envoy's ring is rebuilt to
// minimum_ring_size for the new host count, so with N = 10 equal hosts each
// survivor goes from 103 to 114 entries: 99 new entries in a ring of 1026
// claim up to about 10 % of the circle (6.8 % measured).
// Tolerances, on 100,000 random keys over N = 10 equal hosts:
//   - the removed host owned 1/N ± 2 % of the keys, and all of them move;
//   - at most 10 % of all keys move between surviving hosts, for ring hash
//     and for Maglev (0.3 % measured);
//   - so at most 22 % of keys move, against about 90 % for modulo hashing,
//     which the bounds would catch.
func TestConsistentHashRemovingOneHostMovesFewKeys(t *testing.T) {
	const n, keys = 10, 100_000
	tests := []struct {
		policy   clusterv3.Cluster_LbPolicy
		maxExtra float64 // moved keys that were not on the removed host
	}{
		{clusterv3.Cluster_RING_HASH, 0.10},
		{clusterv3.Cluster_MAGLEV, 0.10},
	}
	for _, tt := range tests {
		t.Run(tt.policy.String(), func(t *testing.T) {
			hosts := equalHosts(n)
			const removed = 4
			fewer := append(append([]Host{}, hosts[:removed]...), hosts[removed+1:]...)
			before := policyOf(t, tt.policy).Build(hosts)
			after := policyOf(t, tt.policy).Build(fewer)
			r := rand.New(rand.NewPCG(3, 4))
			onRemoved, extra := 0, 0
			for range keys {
				ctx := &Context{Hash: r.Uint64(), HasHash: true}
				was := hosts[before.Pick(ctx)]
				now := fewer[after.Pick(ctx)]
				switch {
				case was == hosts[removed]:
					onRemoved++
				case was != now:
					extra++
				}
			}
			removedShare := float64(onRemoved) / keys
			extraShare := float64(extra) / keys
			t.Logf("removed host owned %.4f of keys; %.4f more moved", removedShare, extraShare)
			if d := removedShare - 1.0/n; d > 0.02 || d < -0.02 {
				t.Errorf("removed host owned %.4f of keys, want %.2f ± 0.02", removedShare, 1.0/n)
			}
			if extraShare > tt.maxExtra {
				t.Errorf("%.4f of keys moved between surviving hosts, want <= %.2f", extraShare, tt.maxExtra)
			}
		})
	}
}

// Keys move only between hosts when one is added, too: no key moves from one
// old host to another old host beyond the stated tolerance.
func TestConsistentHashAddingOneHost(t *testing.T) {
	for _, lp := range hashPolicies {
		t.Run(lp.String(), func(t *testing.T) {
			hosts := equalHosts(11)
			before := policyOf(t, lp).Build(hosts[:10])
			after := policyOf(t, lp).Build(hosts)
			r := rand.New(rand.NewPCG(5, 6))
			toNew, between := 0, 0
			const keys = 100_000
			for range keys {
				ctx := &Context{Hash: r.Uint64(), HasHash: true}
				was, now := before.Pick(ctx), after.Pick(ctx)
				switch {
				case now == 10:
					toNew++
				case was != now:
					between++
				}
			}
			// Same tolerances as for removal: the new host takes 1/11 ± 2 %,
			// at most 10 % of keys move between old hosts.
			if s := float64(toNew) / keys; s < 1.0/11-0.02 || s > 1.0/11+0.02 {
				t.Errorf("new host took %.4f of keys, want %.3f ± 0.02", s, 1.0/11)
			}
			if s := float64(between) / keys; s > 0.10 {
				t.Errorf("%.4f of keys moved between old hosts, want <= 0.10", s)
			}
		})
	}
}

// Hash-based pickers ignore a nil context and still answer (randomly).
func TestConsistentHashNilContext(t *testing.T) {
	for _, lp := range hashPolicies {
		p := policyOf(t, lp).Build(equalHosts(4))
		for range 100 {
			if i := p.Pick(nil); i < 0 || i >= 4 {
				t.Fatalf("%s: Pick(nil) = %d", lp, i)
			}
		}
	}
}

// Every policy returns -1 without hosts and 0 with a single host.
func TestEmptyAndSingleHost(t *testing.T) {
	for _, lp := range []clusterv3.Cluster_LbPolicy{
		clusterv3.Cluster_ROUND_ROBIN, clusterv3.Cluster_RANDOM, clusterv3.Cluster_LEAST_REQUEST,
		clusterv3.Cluster_RING_HASH, clusterv3.Cluster_MAGLEV,
	} {
		p := policyOf(t, lp)
		if got := p.Build(nil).Pick(&Context{}); got != -1 {
			t.Errorf("%s: Pick over no hosts = %d, want -1", lp, got)
		}
		one := p.Build(weightedHosts(7))
		for i := range 10 {
			if got := one.Pick(&Context{Hash: uint64(i), HasHash: true}); got != 0 {
				t.Errorf("%s: Pick over one host = %d, want 0", lp, got)
			}
		}
	}
}

// More hosts than Maglev slots: the table still fills, every slot names a
// valid host, and indexes beyond 16 bits are kept.
func TestMaglevManyHosts(t *testing.T) {
	keys := make([]string, 70_000)
	for i := range keys {
		keys[i] = fmt.Sprintf("10.%d.%d.%d:80", i>>16, (i>>8)&255, i&255)
	}
	p := maglevPolicyOf(t, 65537).Build(keyedHosts(keys...)).(*maglevPicker)
	if p.table32 == nil {
		t.Fatal("70,000 hosts should use 32-bit slots")
	}
	maxIdx := uint32(0)
	for _, h := range p.table32 {
		if int(h) >= len(keys) {
			t.Fatalf("slot holds host %d of %d", h, len(keys))
		}
		maxIdx = max(maxIdx, h)
	}
	if maxIdx <= 65535 {
		t.Errorf("largest host index in the table is %d; hosts above 65535 were lost", maxIdx)
	}
}

// Pickers are shared by all requests: concurrent picks, while requests start
// and finish on the hosts, always return a valid index (run with -race).
func TestPickConcurrentWithLoadChanges(t *testing.T) {
	for _, c := range pickerCases {
		t.Run(c.name, func(t *testing.T) {
			hosts := weightedHosts(c.weights(40)...)
			p := c.policy(t).Build(hosts)
			done := make(chan struct{})
			var wg sync.WaitGroup
			wg.Go(func() { // requests starting and finishing
				r := rand.New(rand.NewPCG(7, 8))
				for {
					select {
					case <-done:
						return
					default:
						hosts[r.IntN(len(hosts))].(*testHost).active.Add(r.Int64N(3) - 1)
					}
				}
			})
			var bad atomic.Int64
			var pickers sync.WaitGroup
			for g := range 4 {
				pickers.Go(func() {
					ctx := &Context{HasHash: c.hash}
					for i := range 5000 {
						ctx.Hash = mix(uint64(g*5000 + i))
						if idx := p.Pick(ctx); idx < 0 || idx >= len(hosts) {
							bad.Add(1)
						}
					}
				})
			}
			pickers.Wait()
			close(done)
			wg.Wait()
			if n := bad.Load(); n != 0 {
				t.Errorf("%d picks returned an invalid index", n)
			}
		})
	}
}
