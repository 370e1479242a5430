package outlier

import (
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/weftmesh/weft/internal/proxy/stats"
)

// t0 is the fake clock's start; tests pass explicit times to Process and
// Tick.
var t0 = time.Unix(1_000_000, 0)

type fixture struct {
	d     *Detector
	store *stats.Store
	hosts []*Monitor
	woken int
}

// newFixture builds a detector over n hosts. Its random source returns 0,
// so every enforcing percentage above 0 ejects and the jitter is 0 unless
// a test sets rnd.
func newFixture(t *testing.T, n int, cfg Config, rnd func(uint64) uint64) *fixture {
	t.Helper()
	f := &fixture{store: stats.NewStore()}
	if rnd == nil {
		rnd = func(uint64) uint64 { return 0 }
	}
	f.d = New(Options{Config: cfg, Scope: f.store.Root().Tagged("cluster", "envoy_cluster_name", "c"),
		Notify: func() { f.woken++ }, Rand: rnd})
	for range n {
		f.hosts = append(f.hosts, f.d.NewMonitor())
	}
	return f
}

func (f *fixture) stat(name string) int64 {
	return f.store.CounterValue("cluster.c.outlier_detection." + name)
}

func defaults(t *testing.T, od *clusterv3.OutlierDetection) Config {
	t.Helper()
	c, err := ParseConfig(od)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func record(m *Monitor, n int, r Result, status int) {
	for range n {
		m.Record(r, status)
	}
}

func TestParseConfigDefaults(t *testing.T) {
	c := defaults(t, &clusterv3.OutlierDetection{})
	want := Config{
		Interval: 10 * time.Second, BaseEjectionTime: 30 * time.Second, MaxEjectionTime: 300 * time.Second,
		MaxEjectionPercent: 10, Consecutive5xx: 5, ConsecutiveGatewayFailure: 5, ConsecutiveLocalOriginFailure: 5,
		EnforcingConsecutive5xx: 100, EnforcingConsecutiveLocalOriginFailure: 100, EnforcingSuccessRate: 100,
		EnforcingLocalOriginSuccessRate: 100, SuccessRateMinimumHosts: 5, SuccessRateRequestVolume: 100,
		SuccessRateStdevFactor: 1900, FailurePercentageThreshold: 85, FailurePercentageMinimumHosts: 5,
		FailurePercentageRequestVolume: 50, SuccessfulActiveHealthCheckUnejectHost: true,
	}
	if c != want {
		t.Fatalf("defaults:\n got %+v\nwant %+v", c, want)
	}
	// max_ejection_time defaults to base_ejection_time when that is larger.
	c = defaults(t, &clusterv3.OutlierDetection{BaseEjectionTime: durationpb.New(400 * time.Second)})
	if c.MaxEjectionTime != 400*time.Second {
		t.Errorf("MaxEjectionTime = %v, want 400s", c.MaxEjectionTime)
	}
	_, err := ParseConfig(&clusterv3.OutlierDetection{BaseEjectionTime: durationpb.New(time.Minute), MaxEjectionTime: durationpb.New(time.Second)})
	if err == nil {
		t.Error("max_ejection_time < base_ejection_time: no error")
	}
}

func TestConsecutive5xx(t *testing.T) {
	for _, tc := range []struct {
		name    string
		results func(m *Monitor)
		ejected bool
	}{
		{"five 500s", func(m *Monitor) { record(m, 5, Response, 500) }, true},
		{"four 500s", func(m *Monitor) { record(m, 4, Response, 500) }, false},
		{"a 200 breaks the run", func(m *Monitor) {
			record(m, 4, Response, 500)
			m.Record(Response, 200)
			record(m, 4, Response, 500)
		}, false},
		{"4xx breaks the run", func(m *Monitor) {
			record(m, 3, Response, 503)
			m.Record(Response, 404)
			record(m, 3, Response, 503)
		}, false},
		{"connect failures count as 503", func(m *Monitor) { record(m, 5, ConnectFailed, 0) }, true},
		{"timeouts count as 504", func(m *Monitor) { record(m, 5, Timeout, 0) }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, 10, defaults(t, &clusterv3.OutlierDetection{}), nil)
			tc.results(f.hosts[0])
			changed := f.d.Process(f.hosts, t0)
			if changed != tc.ejected || f.hosts[0].Ejected() != tc.ejected {
				t.Fatalf("changed %v ejected %v, want %v", changed, f.hosts[0].Ejected(), tc.ejected)
			}
			want := int64(0)
			if tc.ejected {
				want = 1
			}
			for _, s := range []string{"ejections_detected_consecutive_5xx", "ejections_enforced_consecutive_5xx", "ejections_enforced_total", "ejections_active"} {
				if got := f.stat(s); got != want {
					t.Errorf("%s = %d, want %d", s, got, want)
				}
			}
		})
	}
}

func TestGatewayFailureEnforcement(t *testing.T) {
	// enforcing_consecutive_gateway_failure defaults to 0: detected, not
	// ejected; the 5xx detector (same threshold) then ejects.
	f := newFixture(t, 10, defaults(t, &clusterv3.OutlierDetection{Consecutive_5Xx: wrapperspb.UInt32(10)}), nil)
	record(f.hosts[0], 5, Response, 502)
	f.d.Process(f.hosts, t0)
	if f.hosts[0].Ejected() || f.stat("ejections_detected_consecutive_gateway_failure") != 1 || f.stat("ejections_enforced_consecutive_gateway_failure") != 0 {
		t.Fatalf("default enforcement: ejected %v detected %d", f.hosts[0].Ejected(), f.stat("ejections_detected_consecutive_gateway_failure"))
	}
	// The counter was reset by the detection: five more are needed.
	f = newFixture(t, 10, defaults(t, &clusterv3.OutlierDetection{
		Consecutive_5Xx: wrapperspb.UInt32(10), EnforcingConsecutiveGatewayFailure: wrapperspb.UInt32(100)}), nil)
	record(f.hosts[0], 4, Response, 503)
	f.hosts[0].Record(Response, 500) // a 5xx that is not a gateway error breaks the run
	record(f.hosts[0], 4, Response, 504)
	f.d.Process(f.hosts, t0)
	if f.hosts[0].Ejected() {
		t.Fatal("ejected after a 500 broke the gateway run")
	}
	f.hosts[0].Record(Response, 504)
	f.d.Process(f.hosts, t0)
	if !f.hosts[0].Ejected() || f.stat("ejections_enforced_consecutive_gateway_failure") != 1 {
		t.Fatal("five gateway errors with enforcing 100: not ejected")
	}
}

func TestSplitLocalOrigin(t *testing.T) {
	cfg := defaults(t, &clusterv3.OutlierDetection{SplitExternalLocalOriginErrors: true})
	f := newFixture(t, 10, cfg, nil)
	// Local-origin failures do not count as 5xx in split mode...
	record(f.hosts[0], 4, ConnectFailed, 0)
	record(f.hosts[1], 5, Response, 503)
	f.d.Process(f.hosts, t0)
	if f.hosts[0].Ejected() || !f.hosts[1].Ejected() {
		t.Fatalf("ejected: h0 %v (want false) h1 %v (want true)", f.hosts[0].Ejected(), f.hosts[1].Ejected())
	}
	// ...they count on their own, and a response resets them.
	f.hosts[0].Record(Response, 200)
	record(f.hosts[0], 4, ConnectFailed, 0)
	f.d.Process(f.hosts, t0)
	if f.hosts[0].Ejected() {
		t.Fatal("a response did not reset the local-origin run")
	}
	f2 := newFixture(t, 10, cfg, nil)
	record(f2.hosts[0], 5, ConnectFailed, 0)
	f2.d.Process(f2.hosts, t0)
	if !f2.hosts[0].Ejected() || f2.stat("ejections_enforced_consecutive_local_origin_failure") != 1 {
		t.Fatal("five connect failures: not ejected as local origin")
	}
	// A timeout after a successful connect reports the connect's success
	// first (Envoy), so timeouts alone never make a run longer than one.
	f3 := newFixture(t, 10, cfg, nil)
	record(f3.hosts[0], 10, Timeout, 0)
	f3.d.Process(f3.hosts, t0)
	if f3.hosts[0].Ejected() {
		t.Fatal("timeouts after successful connects ejected the host")
	}
}

func TestMaxEjectionPercent(t *testing.T) {
	for _, tc := range []struct {
		name    string
		hosts   int
		od      *clusterv3.OutlierDetection
		ejected int // hosts ejected when every host fails
	}{
		{"default 10 % of 3 hosts ejects none", 3, &clusterv3.OutlierDetection{}, 0},
		{"always_eject_one_host", 3, &clusterv3.OutlierDetection{AlwaysEjectOneHost: wrapperspb.Bool(true)}, 1},
		{"10 % of 10 hosts", 10, &clusterv3.OutlierDetection{}, 1},
		{"50 % of 4 hosts", 4, &clusterv3.OutlierDetection{MaxEjectionPercent: wrapperspb.UInt32(50)}, 2},
		{"100 %", 3, &clusterv3.OutlierDetection{MaxEjectionPercent: wrapperspb.UInt32(100)}, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, tc.hosts, defaults(t, tc.od), nil)
			for _, m := range f.hosts {
				record(m, 5, Response, 500)
			}
			f.d.Process(f.hosts, t0)
			if got := countEjected(f.hosts); got != tc.ejected {
				t.Fatalf("ejected %d hosts, want %d", got, tc.ejected)
			}
			if got := f.stat("ejections_overflow"); got != int64(tc.hosts-tc.ejected) {
				t.Errorf("ejections_overflow = %d, want %d", got, tc.hosts-tc.ejected)
			}
			if got := f.stat("ejections_active"); got != int64(tc.ejected) {
				t.Errorf("ejections_active = %d, want %d", got, tc.ejected)
			}
		})
	}
}

func TestEjectionTimeGrowsAndDecays(t *testing.T) {
	cfg := defaults(t, &clusterv3.OutlierDetection{MaxEjectionPercent: wrapperspb.UInt32(100),
		BaseEjectionTime: durationpb.New(30 * time.Second), MaxEjectionTime: durationpb.New(100 * time.Second)})
	f := newFixture(t, 1, cfg, nil)
	m := f.hosts[0]
	now := t0
	// Ejection n lasts min(30 s × n, 100 s) while the host keeps failing
	// as soon as it is back.
	for i, want := range []time.Duration{30 * time.Second, 60 * time.Second, 90 * time.Second, 100 * time.Second, 100 * time.Second} {
		record(m, 5, Response, 500)
		f.d.Process(f.hosts, now)
		if !m.Ejected() {
			t.Fatalf("ejection %d: not ejected", i+1)
		}
		if f.d.Tick(f.hosts, now.Add(want-time.Millisecond)); !m.Ejected() {
			t.Fatalf("ejection %d: back before %v", i+1, want)
		}
		now = now.Add(want)
		if !f.d.Tick(f.hosts, now) || m.Ejected() {
			t.Fatalf("ejection %d: still ejected after %v", i+1, want)
		}
	}
	// Staying in service for an interval decreases the multiplier by one
	// per interval: after two quiet intervals the next ejection is 30 s
	// shorter per interval than the cap.
	b := m.backoff
	for i := 1; i <= 2; i++ {
		f.d.Tick(f.hosts, now.Add(time.Duration(i)*cfg.Interval))
	}
	if m.backoff != b-2 {
		t.Fatalf("back-off after two healthy intervals = %d, want %d", m.backoff, b-2)
	}
	if f.stat("ejections_enforced_total") != 5 {
		t.Errorf("ejections_enforced_total = %d, want 5", f.stat("ejections_enforced_total"))
	}
}

func TestEjectionJitter(t *testing.T) {
	cfg := defaults(t, &clusterv3.OutlierDetection{MaxEjectionPercent: wrapperspb.UInt32(100),
		MaxEjectionTimeJitter: durationpb.New(5 * time.Second)})
	// The random source returns its maximum: jitter = 5 s.
	f := newFixture(t, 1, cfg, func(n uint64) uint64 { return n - 1 })
	f.d.cfg.EnforcingConsecutive5xx = 100 // rand(100) = 99 < 100: enforced
	record(f.hosts[0], 5, Response, 500)
	f.d.Process(f.hosts, t0)
	if f.d.Tick(f.hosts, t0.Add(34*time.Second)); !f.hosts[0].Ejected() {
		t.Fatal("back before base + jitter")
	}
	if f.d.Tick(f.hosts, t0.Add(35*time.Second)); f.hosts[0].Ejected() {
		t.Fatal("still ejected after base + jitter")
	}
}

// rates records volume requests on each host with the given success
// percentages, then turns the interval over.
func rates(f *fixture, volume int, pcts ...int) {
	for i, p := range pcts {
		ok := volume * p / 100
		record(f.hosts[i], ok, Response, 200)
		// Spread the failures so that no consecutive-5xx run forms.
		for j := range volume - ok {
			f.hosts[i].Record(Response, 500)
			if j%2 == 0 {
				f.hosts[i].consec5xx.Store(0)
			}
		}
	}
}

func TestSuccessRate(t *testing.T) {
	cfg := defaults(t, &clusterv3.OutlierDetection{MaxEjectionPercent: wrapperspb.UInt32(100), Consecutive_5Xx: wrapperspb.UInt32(0)})
	for _, tc := range []struct {
		name    string
		volume  int
		pcts    []int
		ejected []bool
	}{
		// Envoy's worked example: mean 90, stdev 20, threshold 52.
		{"one outlier", 100, []int{50, 100, 100, 100, 100}, []bool{true, false, false, false, false}},
		// One low host among equal ones is always below mean − 1.9 stdev;
		// two at 80: mean 92, stdev 9.8, threshold 73.4.
		{"above the threshold", 100, []int{80, 80, 100, 100, 100}, []bool{false, false, false, false, false}},
		{"too few requests", 99, []int{50, 100, 100, 100, 100}, []bool{false, false, false, false, false}},
		{"too few hosts", 100, []int{10, 100, 100, 100}, []bool{false, false, false, false}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, len(tc.pcts), cfg, nil)
			rates(f, tc.volume, tc.pcts...)
			f.d.Tick(f.hosts, t0) // turn the bucket over: the interval is evaluated now
			for i, want := range tc.ejected {
				if f.hosts[i].Ejected() != want {
					t.Errorf("host %d (%d %%) ejected %v, want %v", i, tc.pcts[i], f.hosts[i].Ejected(), want)
				}
			}
			if got, want := f.hosts[1].SuccessRate(false), float64(tc.pcts[1]); len(tc.pcts) >= 5 && got != want {
				t.Errorf("host 1 success_rate = %v, want %v", got, want)
			}
		})
	}
}

func TestFailurePercentage(t *testing.T) {
	cfg := defaults(t, &clusterv3.OutlierDetection{MaxEjectionPercent: wrapperspb.UInt32(100), Consecutive_5Xx: wrapperspb.UInt32(0),
		EnforcingSuccessRate: wrapperspb.UInt32(0), EnforcingFailurePercentage: wrapperspb.UInt32(100)})
	f := newFixture(t, 5, cfg, nil)
	rates(f, 50, 15, 16, 100, 100, 100) // 85 % and 84 % failures
	f.d.Tick(f.hosts, t0)
	if !f.hosts[0].Ejected() || f.hosts[1].Ejected() {
		t.Fatalf("85 %% failures ejected %v (want true), 84 %% ejected %v (want false)", f.hosts[0].Ejected(), f.hosts[1].Ejected())
	}
	if f.stat("ejections_enforced_failure_percentage") != 1 || f.stat("ejections_detected_failure_percentage") != 1 {
		t.Errorf("enforced_failure_percentage %d, detected_failure_percentage %d (want 1, 1)", f.stat("ejections_enforced_failure_percentage"), f.stat("ejections_detected_failure_percentage"))
	}
}

func TestActiveHealthCheckUnejects(t *testing.T) {
	for _, enabled := range []bool{true, false} {
		f := newFixture(t, 10, defaults(t, &clusterv3.OutlierDetection{SuccessfulActiveHealthCheckUnejectHost: wrapperspb.Bool(enabled)}), nil)
		record(f.hosts[0], 5, Response, 500)
		f.d.Process(f.hosts, t0)
		f.hosts[0].RequestUneject()
		f.d.Process(f.hosts, t0.Add(time.Second))
		if f.hosts[0].Ejected() == enabled {
			t.Errorf("successful_active_health_check_uneject_host %v: ejected %v", enabled, f.hosts[0].Ejected())
		}
	}
}

func TestNotifyOncePerEvent(t *testing.T) {
	f := newFixture(t, 10, defaults(t, &clusterv3.OutlierDetection{}), nil)
	record(f.hosts[0], 20, Response, 500)
	if f.woken != 1 {
		t.Fatalf("notify called %d times, want 1 (threshold crossed once)", f.woken)
	}
	var nilMon *Monitor
	nilMon.Record(Response, 500) // no outlier detection: a no-op
	if nilMon.Ejected() {
		t.Fatal("nil monitor ejected")
	}
}

func BenchmarkRecord(b *testing.B) {
	d := New(Options{Config: Config{Consecutive5xx: 5, ConsecutiveGatewayFailure: 5}, Scope: stats.NewStore().Root()})
	m := d.NewMonitor()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			m.Record(Response, 200)
		}
	})
}
