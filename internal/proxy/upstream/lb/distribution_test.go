package lb

import (
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// Statistical tolerance for the random policies: 100,000 picks, and each
// host's share must be within ±2 % (absolute) of the expected share. A share
// p estimated from n picks has standard deviation sqrt(p(1-p)/n) <= 0.0016,
// so 2 % is more than 12 standard deviations (a false failure is less likely
// than 1 in 10^30), while a broken weighting (uniform instead of 1:2:3, say)
// misses by at least 16 %.
const (
	picks    = 100_000
	shareTol = 0.02
)

// randomHash gives each pick a fresh random request hash.
func randomHash(int) *Context { return &Context{Hash: rand.Uint64(), HasHash: true} }

func leastRequestPolicyOf(t testing.TB, choices uint32, bias *float64) Policy {
	t.Helper()
	cfg := &clusterv3.Cluster_LeastRequestLbConfig{}
	if choices != 0 {
		cfg.ChoiceCount = wrapperspb.UInt32(choices)
	}
	if bias != nil {
		cfg.ActiveRequestBias = &corev3.RuntimeDouble{DefaultValue: *bias}
	}
	return mustPolicy(t, &clusterv3.Cluster{LbPolicy: clusterv3.Cluster_LEAST_REQUEST,
		LbConfig: &clusterv3.Cluster_LeastRequestLbConfig_{LeastRequestLbConfig: cfg}})
}

// Every policy follows the weights as Envoy does: all but RANDOM in
// proportion to them, RANDOM (which ignores weights in Envoy) uniformly.
func TestDistributionByWeight(t *testing.T) {
	// The default ring (about 1024 entries) splits the circle unevenly: a
	// host with k entries owns a share whose relative error is about
	// 1/sqrt(k), 5 % of 1/3 for k = 341. The ring's keys are fixed, so this
	// error is deterministic, not flaky; ring hash gets ±5 % absolute here,
	// still far below the 16 % a broken weighting would show, and
	// TestRingHashLargeRingAccuracy checks ±2 % on a large ring.
	const ringTol = 0.05
	policies := []struct {
		policy        clusterv3.Cluster_LbPolicy
		ignoresWeight bool
		ctx           func(int) *Context
		tol           float64
	}{
		{clusterv3.Cluster_ROUND_ROBIN, false, nil, shareTol},
		{clusterv3.Cluster_RANDOM, true, nil, shareTol},
		{clusterv3.Cluster_LEAST_REQUEST, false, nil, shareTol},
		{clusterv3.Cluster_RING_HASH, false, randomHash, ringTol},
		{clusterv3.Cluster_RING_HASH, false, nil, ringTol}, // no hash: random, as Envoy
		{clusterv3.Cluster_MAGLEV, false, randomHash, shareTol},
		{clusterv3.Cluster_MAGLEV, false, nil, shareTol},
	}
	weightSets := [][]uint32{{1, 1, 1}, {1, 2, 3}, {5, 1, 1, 1}, {10, 10, 1, 30, 1, 10}}
	for _, pc := range policies {
		name := pc.policy.String()
		if pc.ctx == nil && (pc.policy == clusterv3.Cluster_RING_HASH || pc.policy == clusterv3.Cluster_MAGLEV) {
			name += "/no-hash"
		}
		t.Run(name, func(t *testing.T) {
			for _, weights := range weightSets {
				p := policyOf(t, pc.policy).Build(weightedHosts(weights...))
				got := shares(t, p, len(weights), picks, pc.ctx)
				want := expectedShares(weights...)
				if pc.ignoresWeight {
					for i := range want {
						want[i] = 1 / float64(len(weights))
					}
				}
				assertShares(t, got, want, pc.tol)
			}
		})
	}
}

// Round robin is deterministic: over whole periods every host gets exactly
// its weight's share, from any starting offset.
func TestRoundRobinExactCounts(t *testing.T) {
	tests := []struct {
		weights []uint32
		period  int
	}{
		{[]uint32{1, 1, 1}, 3},
		{[]uint32{7, 7}, 2},
		{[]uint32{1, 2, 3}, 6},
		{[]uint32{100, 200, 300}, 6}, // reduced by the gcd
		{[]uint32{5, 1, 1}, 7},
	}
	for _, tt := range tests {
		p := policyOf(t, clusterv3.Cluster_ROUND_ROBIN).Build(weightedHosts(tt.weights...))
		counts := make([]int, len(tt.weights))
		const periods = 1000
		for range tt.period * periods {
			counts[p.Pick(nil)]++
		}
		var sum uint32
		for _, w := range tt.weights {
			sum += w
		}
		for i, w := range tt.weights {
			if want := int(w) * tt.period * periods / int(sum); counts[i] != want {
				t.Errorf("weights %v: host %d picked %d times, want %d", tt.weights, i, counts[i], want)
			}
		}
	}
}

// envoyEDF replays Envoy's EdfScheduler (edf_scheduler.h) with float
// deadlines: deadline = current_time + 1/weight, ties broken by insertion
// order. Weights are powers of two so the float sums are exact.
func envoyEDF(weights []uint32, n int) []int {
	type entry struct {
		deadline float64
		order    int
		host     int
	}
	var queue []entry
	order := 0
	now := 0.0
	add := func(h int) {
		queue = append(queue, entry{now + 1/float64(weights[h]), order, h})
		order++
	}
	for h := range weights {
		add(h)
	}
	out := make([]int, 0, n)
	for range n {
		best := 0
		for i, e := range queue {
			b := queue[best]
			if e.deadline < b.deadline || (e.deadline == b.deadline && e.order < b.order) {
				best = i
			}
		}
		e := queue[best]
		queue = slices.Delete(queue, best, best+1)
		now = e.deadline
		out = append(out, e.host)
		add(e.host)
	}
	return out
}

// The weighted schedule interleaves hosts exactly as Envoy's EDF does, and
// the picker walks it as a rotation from a random start.
func TestRoundRobinInterleavingMatchesEnvoyEDF(t *testing.T) {
	for _, weights := range [][]uint32{{4, 2, 1, 1}, {1, 8}, {2, 2, 4, 8, 1}} {
		hosts := weightedHosts(weights...)
		schedule := edfSchedule(scheduleWeights(hosts))
		want := envoyEDF(weights, len(schedule))
		for i := range schedule {
			if int(schedule[i]) != want[i] {
				t.Fatalf("weights %v: schedule %v, Envoy EDF %v", weights, schedule, want)
			}
		}

		p := policyOf(t, clusterv3.Cluster_ROUND_ROBIN).Build(hosts).(*roundRobinPicker)
		start := p.next.Load() + 1
		for i := range 3 * len(schedule) {
			got := p.Pick(nil)
			if w := int(schedule[(start+uint64(i))%uint64(len(schedule))]); got != w {
				t.Fatalf("weights %v: pick %d = %d, want %d", weights, i, got, w)
			}
		}
	}
}

// Two builds start at different offsets (Envoy seeds each build randomly).
func TestRoundRobinRandomStart(t *testing.T) {
	hosts := equalHosts(1000)
	seen := map[int]bool{}
	for range 10 {
		seen[policyOf(t, clusterv3.Cluster_ROUND_ROBIN).Build(hosts).Pick(nil)] = true
	}
	// 10 builds landing on at most 2 distinct first hosts out of 1000 has
	// probability below 1e-20 if the starts are random.
	if len(seen) <= 2 {
		t.Errorf("10 builds started at only %d distinct hosts", len(seen))
	}
}

// Weights whose reduced sum exceeds maxScheduleLen are scaled, not dropped:
// the schedule stays bounded and shares stay within 1/maxScheduleLen.
func TestRoundRobinScheduleBounded(t *testing.T) {
	weights := []uint32{1_000_003, 999_983, 7, 1 << 31}
	hosts := weightedHosts(weights...)
	w := scheduleWeights(hosts)
	var total uint64
	for _, x := range w {
		total += x
	}
	if total > maxScheduleLen+uint64(len(w)) {
		t.Fatalf("schedule length %d exceeds %d", total, maxScheduleLen+len(w))
	}
	want := expectedShares(weights...)
	for i, x := range w {
		share := float64(x) / float64(total)
		// Host 2 (weight 7 of ~2.15e9) keeps its minimum of one slot.
		tol := 1.0 / maxScheduleLen
		if d := share - want[i]; d > tol || d < -tol {
			t.Errorf("host %d: scheduled share %.7f, want %.7f ± %.7f", i, share, want[i], tol)
		}
	}
	if w[2] != 1 {
		t.Errorf("lightest host has %d slots, want 1", w[2])
	}
}

// Concurrent picks share one rotation: across all goroutines, each host is
// picked exactly as often as the others.
func TestRoundRobinConcurrent(t *testing.T) {
	const goroutines, each = 8, 3000
	p := policyOf(t, clusterv3.Cluster_ROUND_ROBIN).Build(equalHosts(3))
	var mu sync.Mutex
	counts := make([]int, 3)
	var wg sync.WaitGroup
	for range goroutines {
		wg.Go(func() {
			local := make([]int, 3)
			for range each {
				local[p.Pick(nil)]++
			}
			mu.Lock()
			for i, c := range local {
				counts[i] += c
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	for i, c := range counts {
		if c != goroutines*each/3 {
			t.Errorf("host %d picked %d times, want %d", i, c, goroutines*each/3)
		}
	}
}

func setActive(hosts []Host, active ...int64) {
	for i, a := range active {
		hosts[i].(*testHost).active.Store(a)
	}
}

// With equal weights LEAST_REQUEST is P2C: an idle host among busy ones wins
// whenever it is one of the choice_count draws (with replacement), so its
// share is 1 - ((n-1)/n)^choices.
func TestLeastRequestPrefersIdleHost(t *testing.T) {
	tests := []struct {
		choices uint32
		want    float64
	}{
		{0, 1 - 0.9*0.9},       // default choice_count 2: 0.19
		{3, 1 - 0.9*0.9*0.9},   // 0.271
		{10, 1 - 0.3486784401}, // 1 - 0.9^10 = 0.651
	}
	for _, tt := range tests {
		hosts := equalHosts(10)
		setActive(hosts, 0, 10, 10, 10, 10, 10, 10, 10, 10, 10)
		p := leastRequestPolicyOf(t, tt.choices, nil).Build(hosts)
		got := shares(t, p, 10, picks, nil)
		want := make([]float64, 10)
		want[0] = tt.want
		for i := 1; i < 10; i++ {
			want[i] = (1 - tt.want) / 9
		}
		assertShares(t, got, want, shareTol)
	}
	// Two hosts, one busier: the idle one wins unless both draws hit the busy
	// one (probability 1/4).
	hosts := equalHosts(2)
	setActive(hosts, 5, 1)
	assertShares(t, shares(t, leastRequestPolicyOf(t, 0, nil).Build(hosts), 2, picks, nil), []float64{0.25, 0.75}, shareTol)
}

// With unequal weights each host's share follows
// weight / (active+1)^active_request_bias (Envoy's weighted least request).
func TestLeastRequestWeightedByActiveRequests(t *testing.T) {
	f := func(v float64) *float64 { return &v }
	tests := []struct {
		name    string
		bias    *float64
		weights []uint32
		active  []int64
		want    []float64
	}{
		// Effective weights 1/1 and 2/4: shares 2/3, 1/3.
		{"default bias 1", nil, []uint32{1, 2}, []int64{0, 3}, []float64{2.0 / 3, 1.0 / 3}},
		// Bias 0 ignores load: shares follow weights.
		{"bias 0", f(0), []uint32{1, 2}, []int64{0, 3}, []float64{1.0 / 3, 2.0 / 3}},
		// Effective weights 1 and 2/16: shares 8/9, 1/9.
		{"bias 2", f(2), []uint32{1, 2}, []int64{0, 3}, []float64{8.0 / 9, 1.0 / 9}},
		// Bias 0.5, active beyond the pow cache: 3/sqrt(1000) vs 1.
		{"bias 0.5 busy", f(0.5), []uint32{1, 3}, []int64{0, 999}, []float64{1 / (1 + 3/31.6227766), (3 / 31.6227766) / (1 + 3/31.6227766)}},
		// All idle: shares follow weights.
		{"idle", nil, []uint32{1, 2, 3}, []int64{0, 0, 0}, expectedShares(1, 2, 3)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hosts := weightedHosts(tt.weights...)
			setActive(hosts, tt.active...)
			p := leastRequestPolicyOf(t, 0, tt.bias).Build(hosts)
			assertShares(t, shares(t, p, len(hosts), picks, nil), tt.want, shareTol)
		})
	}
}

// Clusters larger than the stack buffer take the two-pass path; the
// weighting must be the same.
func TestLeastRequestWeightedLargeCluster(t *testing.T) {
	weights := make([]uint32, 3*stackWeights)
	for i := range weights {
		weights[i] = uint32(1 + 2*(i%2)) // 1, 3, 1, 3, ...
	}
	hosts := weightedHosts(weights...)
	for i := 0; i < len(hosts); i += 4 {
		hosts[i].(*testHost).active.Store(1) // every other weight-1 host is half as attractive
	}
	got := shares(t, leastRequestPolicyOf(t, 0, nil).Build(hosts), len(hosts), picks, nil)
	// Per block of 4 hosts: effective weights 0.5, 3, 1, 3 out of 7.5.
	var heavy, busy float64
	for i, s := range got {
		switch i % 4 {
		case 1, 3:
			heavy += s
		case 0:
			busy += s
		}
	}
	assertShares(t, []float64{heavy, busy}, []float64{6 / 7.5, 0.5 / 7.5}, shareTol)
}

// The ring's default size (1024 entries for 3 hosts) partitions the circle
// only roughly; Envoy's docs advise large rings for accurate weighting. With
// minimum_ring_size 65536 the shares are within the usual ±2 %.
func TestRingHashLargeRingAccuracy(t *testing.T) {
	weights := []uint32{1, 2, 3, 4}
	p := ringPolicy(t, 1<<16, 0, clusterv3.Cluster_RingHashLbConfig_XX_HASH).Build(weightedHosts(weights...))
	assertShares(t, shares(t, p, len(weights), picks, randomHash), expectedShares(weights...), shareTol)
}

// Maglev gives every host a share of the table proportional to its weight,
// to within a slot or so per host.
func TestMaglevTableShares(t *testing.T) {
	weights := []uint32{1, 2, 3, 4}
	m := maglevPolicyOf(t, 65537).Build(weightedHosts(weights...)).(*maglevPicker)
	counts := make([]float64, len(weights))
	for _, h := range m.table16 {
		counts[h]++
	}
	want := expectedShares(weights...)
	for i := range counts {
		// Deterministic: the fill gives each host ceil/floor of its share.
		if d := counts[i]/65537 - want[i]; d > 0.0001 || d < -0.0001 {
			t.Errorf("host %d owns %.5f of the table, want %.5f", i, counts[i]/65537, want[i])
		}
	}
}

// Every path of the weighted least-request picker (direct scan, rejection
// sampling, scan fallback, two-pass scan) draws in proportion to
// weight/(active+1)^bias. Each host's share is checked to ±2 % as above;
// the idle hosts' total share to ±2 % too.
func TestLeastRequestWeightedAllPaths(t *testing.T) {
	f := func(v float64) *float64 { return &v }
	tests := []struct {
		name  string
		hosts int
		bias  *float64
		// active returns host i's requests in flight.
		active func(i int) int64
		// twoPass calls the scan used above stackWeights hosts directly, on a
		// smaller cluster, to keep the test fast under -race.
		twoPass bool
	}{
		{"direct scan, light load", 10, nil, func(i int) int64 { return int64(i % 3) }, false},
		{"rejection, light load", 40, nil, func(i int) int64 { return int64(i % 3) }, false},
		{"rejection then scan, heavy load", 40, nil, func(i int) int64 {
			if i%10 == 0 {
				return 0
			}
			return 50 + int64(i)
		}, false},
		{"all busy, bias 2", 40, f(2), func(i int) int64 { return 20 + int64(i%4) }, false},
		{"two-pass scan, heavy load", 40, f(0.5), func(i int) int64 {
			if i%10 == 0 {
				return 0
			}
			return 400 // beyond the pow cache
		}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			weights := make([]uint32, tt.hosts)
			for i := range weights {
				weights[i] = uint32(1 + 2*(i%2))
			}
			hosts := weightedHosts(weights...)
			bias := 1.0
			if tt.bias != nil {
				bias = *tt.bias
			}
			eff := make([]float64, tt.hosts)
			total := 0.0
			for i, h := range hosts {
				a := tt.active(i)
				h.(*testHost).active.Store(a)
				eff[i] = float64(weights[i]) / math.Pow(float64(a+1), bias)
				total += eff[i]
			}
			want := make([]float64, tt.hosts)
			for i := range eff {
				want[i] = eff[i] / total
			}
			var p Picker = leastRequestPolicyOf(t, 0, tt.bias).Build(hosts)
			if tt.twoPass {
				p = twoPassPicker{p.(*weightedLeastRequestPicker)}
			}
			got := shares(t, p, tt.hosts, picks, nil)
			assertShares(t, got, want, shareTol)
			var gotIdle, wantIdle float64
			for i := range hosts {
				if tt.active(i) == 0 {
					gotIdle += got[i]
					wantIdle += want[i]
				}
			}
			assertShares(t, []float64{gotIdle}, []float64{wantIdle}, shareTol)
		})
	}
}

// The alias table samples in proportion to its weights (same tolerance).
func TestAliasTable(t *testing.T) {
	for _, weights := range [][]float64{{1}, {1, 1}, {1, 2, 3, 4}, {1000, 1, 1, 0.5}, {0.1, 0.2, 0.7}} {
		at := newAliasTable(weights)
		counts := make([]float64, len(weights))
		for range picks {
			counts[at.sample()]++
		}
		sum := 0.0
		for _, w := range weights {
			sum += w
		}
		want := make([]float64, len(weights))
		for i := range weights {
			counts[i] /= picks
			want[i] = weights[i] / sum
		}
		assertShares(t, counts, want, shareTol)
	}
}

// twoPassPicker forces the two-pass scan of a weighted least-request picker.
type twoPassPicker struct{ p *weightedLeastRequestPicker }

func (t twoPassPicker) Pick(*Context) int { return t.p.pickTwoPass() }
