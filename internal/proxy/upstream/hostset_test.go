package upstream

import (
	"fmt"
	"slices"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"

	"github.com/weftmesh/weft/internal/proxy/upstream/lb"
)

// level spec for tests: hosts per priority, of which healthy are healthy.
type lvl struct{ total, healthy int }

func testHosts(levels ...lvl) []*Host {
	var hosts []*Host
	for p, l := range levels {
		for i := range l.total {
			h := &Host{}
			h.meta.Store(&hostMeta{priority: uint32(p), weight: 1})
			addr := fmt.Sprintf("10.0.%d.%d:80", p, i)
			h.addr.Store(&addr)
			if i >= l.healthy {
				h.health.Store(uint32(HealthUnhealthy))
			}
			hosts = append(hosts, h)
		}
	}
	return hosts
}

func rrPolicy(t testing.TB) lb.Policy {
	p, err := lb.New(&clusterv3.Cluster{LbPolicy: clusterv3.Cluster_ROUND_ROBIN})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestHostSetPriorityLoadAndPanic(t *testing.T) {
	for _, tc := range []struct {
		name      string
		levels    []lvl
		threshold float64
		cumLoad   []uint32
		panic     []bool
	}{
		{"one_level_healthy", []lvl{{2, 2}}, 50, []uint32{100}, []bool{false}},
		// Health is 1.4 × healthy/total, capped at 100.
		{"p0_half", []lvl{{2, 1}, {1, 1}}, 50, []uint32{70, 100}, []bool{false, false}},
		{"p0_down", []lvl{{2, 0}, {1, 1}}, 50, []uint32{0, 100}, []bool{false, false}},
		// P0 alone is below the threshold, but the normalized total health
		// is 100 %: no level panics (recalculatePerPriorityPanic).
		{"p0_quarter_total_100", []lvl{{4, 1}, {1, 1}}, 50, []uint32{35, 100}, []bool{false, false}},
		{"p0_quarter_p1_half", []lvl{{4, 1}, {2, 1}}, 50, []uint32{35, 100}, []bool{false, false}},
		// Total health 35 + 46 = 81 < 100 and both levels under 50 %:
		// total panic splits by host count, 4/7 and 3/7, the rounding
		// remainder to the first level (57+1, 42).
		{"total_panic_by_hosts", []lvl{{4, 1}, {3, 1}}, 50, []uint32{58, 100}, []bool{true, true}},
		{"all_down_panic", []lvl{{2, 0}, {2, 0}}, 50, []uint32{50, 100}, []bool{true, true}},
		// Panic disabled and nothing healthy: everything to P0, no host.
		{"all_down_no_panic", []lvl{{2, 0}, {2, 0}}, 0, []uint32{100, 100}, []bool{false, false}},
		// One level at 25 % healthy: in panic under 50, not under 20; its
		// 35 % health is normalized to all of the traffic.
		{"one_level_panic", []lvl{{4, 1}}, 50, []uint32{100}, []bool{true}},
		{"one_level_threshold_20", []lvl{{4, 1}}, 20, []uint32{100}, []bool{false}},
		// Total 35 + 56 = 91 < 100: loads normalized to 38 and 61, the
		// remainder to the first level; P0 (25 %) panics under 30, P1
		// (40 %) does not.
		{"partial_panic", []lvl{{4, 1}, {5, 2}}, 30, []uint32{39, 100}, []bool{true, false}},
		// Every level in panic: by host count 4/9, 4/9, 1/9 = 44, 44, 11,
		// plus the remainder 1 to P0.
		{"total_panic_three_levels", []lvl{{4, 1}, {4, 1}, {1, 0}}, 60, []uint32{45, 89, 100}, []bool{true, true, true}},
		{"normalized_no_panic", []lvl{{4, 1}, {4, 1}}, 20, []uint32{50, 100}, []bool{false, false}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := buildHostSet(testHosts(tc.levels...), hostSetOptions{policy: rrPolicy(t), panicThreshold: tc.threshold})
			if !slices.Equal(s.cumLoad, tc.cumLoad) {
				t.Errorf("cumulative load %v, want %v", s.cumLoad, tc.cumLoad)
			}
			var panics []bool
			for _, l := range s.levels {
				panics = append(panics, l.panic)
			}
			if !slices.Equal(panics, tc.panic) {
				t.Errorf("panic %v, want %v", panics, tc.panic)
			}
		})
	}
}

func TestHostSetChoose(t *testing.T) {
	var ctx lb.Context
	t.Run("empty", func(t *testing.T) {
		s := buildHostSet(nil, hostSetOptions{policy: rrPolicy(t), panicThreshold: 50})
		if h, _ := s.choose(&ctx); h != nil {
			t.Errorf("chose %v from no hosts", h.Address())
		}
	})
	t.Run("no_panic_skips_unhealthy", func(t *testing.T) {
		s := buildHostSet(testHosts(lvl{4, 1}), hostSetOptions{policy: rrPolicy(t), panicThreshold: 0})
		for range 20 {
			h, panicked := s.choose(&ctx)
			if h == nil || !h.Health().healthy() || panicked {
				t.Fatalf("chose %v (panicked %v), want the healthy host", h, panicked)
			}
		}
	})
	t.Run("panic_uses_all", func(t *testing.T) {
		s := buildHostSet(testHosts(lvl{4, 1}), hostSetOptions{policy: rrPolicy(t), panicThreshold: 50})
		seen := map[string]bool{}
		for range 8 {
			h, panicked := s.choose(&ctx)
			if !panicked {
				t.Fatal("a pick in panic mode did not report it")
			}
			seen[h.Address()] = true
		}
		if len(seen) != 4 {
			t.Errorf("panic picks reached %d hosts, want all 4 (round robin)", len(seen))
		}
	})
	t.Run("none_healthy_no_panic", func(t *testing.T) {
		s := buildHostSet(testHosts(lvl{2, 0}), hostSetOptions{policy: rrPolicy(t), panicThreshold: 0})
		if h, _ := s.choose(&ctx); h != nil {
			t.Errorf("chose unhealthy %s with panic disabled", h.Address())
		}
	})
}

func TestHostSetLocalityWeights(t *testing.T) {
	// Locality a: weight 1, one healthy host. Locality b: weight 1, one of
	// four healthy: availability min(100, 140·1/4) = 35.
	hosts := testHosts(lvl{5, 5})
	for i, h := range hosts {
		m := *h.meta.Load()
		m.locality = Locality{Zone: "a"}
		if i > 0 {
			m.locality = Locality{Zone: "b"}
		}
		h.meta.Store(&m)
		if i > 1 {
			h.health.Store(uint32(HealthUnhealthy))
		}
	}
	s := buildHostSet(hosts, hostSetOptions{
		policy: rrPolicy(t), localityWeighted: true,
		localityWeight: func(*Host) uint32 { return 1 },
	})
	l := s.levels[0]
	if !slices.Equal(l.locWeights, []uint64{100, 135}) {
		t.Errorf("cumulative effective locality weights %v, want [100 135]", l.locWeights)
	}
	if len(l.localities[1].hosts) != 1 {
		t.Errorf("locality b picks among %d hosts, want its 1 healthy host", len(l.localities[1].hosts))
	}
}

func BenchmarkHostSetChoose(b *testing.B) {
	for _, bc := range []struct {
		name   string
		levels []lvl
		lw     bool
	}{
		{"one_level", []lvl{{8, 8}}, false},
		{"two_levels", []lvl{{4, 2}, {4, 4}}, false},
		{"localities", []lvl{{8, 8}}, true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			hosts := testHosts(bc.levels...)
			for i, h := range hosts {
				m := *h.meta.Load()
				m.locality = Locality{Zone: fmt.Sprint(i % 3)}
				h.meta.Store(&m)
			}
			s := buildHostSet(hosts, hostSetOptions{policy: rrPolicy(b), panicThreshold: 50,
				localityWeighted: bc.lw, localityWeight: func(*Host) uint32 { return 2 }})
			var ctx lb.Context
			b.ReportAllocs()
			for b.Loop() {
				if h, _ := s.choose(&ctx); h == nil {
					b.Fatal("no host")
				}
			}
		})
	}
}
