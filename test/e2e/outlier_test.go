package e2e

import (
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// This file holds the resilience tests of issue 5 items 3 and 4: outlier
// detection, active health checks and the panic threshold, with three
// real upstreams behind the proxy.

// waitUntil polls cond until it holds or the deadline passes.
func waitUntil(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond) // polling a condition with a deadline
	}
}

// hostFlags returns the health_flags line of addr in /clusters.
func hostFlags(t *testing.T, p *Proxy, cluster, addr string) string {
	t.Helper()
	resp, err := http.Get(p.AdminURL() + "/clusters")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	prefix := cluster + "::" + addr + "::health_flags::"
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, prefix); ok {
			return v
		}
	}
	t.Fatalf("no %s line in /clusters:\n%s", prefix, b)
	return ""
}

func TestOutlierEjectsAndReturns(t *testing.T) {
	var bad atomic.Bool
	bad.Store(true)
	us := startNamed(t, 3, func(u *named, w http.ResponseWriter, r *http.Request) bool {
		if u.name == "u1" && bad.Load() {
			w.WriteHeader(503)
			return true
		}
		return false
	})
	// max_ejection_percent 50: one host of three (33 %) may go.
	od := `outlier_detection: {consecutive_5xx: 3, interval: 0.1s, base_ejection_time: 1s, max_ejection_percent: 50}`
	p := StartProxy(t, httpBootstrap("{cluster: c}", "", clusterYAML("c", "lb_policy: ROUND_ROBIN\n"+od, loc{eps: eps(us...)})))
	c := Client()
	codes := map[int]int{}
	for range 9 {
		code, _, _ := Get(t, c, p.URL("front")+"/")
		codes[code]++
	}
	// Round robin sends every third request to u1: nine requests give it
	// the three 503s that eject it.
	if codes[503] != 3 {
		t.Fatalf("503s in nine requests = %d, want 3 (codes %v)", codes[503], codes)
	}
	p.WaitStat("cluster.c.outlier_detection.ejections_active", 1)
	p.WaitStat("cluster.c.membership_healthy", 2) // the host set without u1 is published
	if n := p.Stat("cluster.c.outlier_detection.ejections_enforced_consecutive_5xx"); n != 1 {
		t.Errorf("ejections_enforced_consecutive_5xx = %d, want 1", n)
	}
	if f := hostFlags(t, p, "c", us[1].addr); f != "/failed_outlier_check" {
		t.Errorf("u1 health_flags = %q, want /failed_outlier_check", f)
	}
	// Ejected: traffic avoids u1 entirely.
	hits := us[1].hits.Load()
	got := spread(t, c, p.URL("front")+"/", 20)
	if got["u1"] != 0 || us[1].hits.Load() != hits || got["u0"]+got["u2"] != 20 {
		t.Fatalf("while ejected: %v (u1 hits %d → %d)", got, hits, us[1].hits.Load())
	}
	// It comes back after base_ejection_time (1 s, checked every 0.1 s).
	bad.Store(false)
	ejectedAt := time.Now()
	waitUntil(t, "u1's return", 5*time.Second, func() bool { return p.Stat("cluster.c.membership_healthy") == 3 })
	if d := time.Since(ejectedAt); d > 2*time.Second {
		t.Errorf("u1 returned after %v, want about 1 s", d)
	}
	got = spread(t, c, p.URL("front")+"/", 30)
	if got["u1"] != 10 {
		t.Fatalf("after return: %v, want 10 picks of u1 (round robin)", got)
	}
}

func TestHTTPHealthCheckMarksDownAndUp(t *testing.T) {
	var down atomic.Bool
	us := startNamed(t, 3, func(u *named, w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path != "/healthz" {
			return false
		}
		if r.Header.Get("user-agent") != "Envoy/HC" || r.Host != "c" {
			w.WriteHeader(400)
		} else if u.name == "u2" && down.Load() {
			w.WriteHeader(503)
		}
		return true
	})
	hc := `health_checks: [{timeout: 1s, interval: 0.05s, no_traffic_interval: 0.05s, unhealthy_threshold: 2, healthy_threshold: 2,
      http_health_check: {path: /healthz}}]`
	p := StartProxy(t, httpBootstrap("{cluster: c}", "", clusterYAML("c", "lb_policy: ROUND_ROBIN\n"+hc, loc{eps: eps(us...)})))
	// Hosts start failed until their first check passes.
	p.WaitStat("cluster.c.health_check.healthy", 3)
	if f := hostFlags(t, p, "c", us[2].addr); f != "healthy" {
		t.Fatalf("u2 health_flags = %q, want healthy", f)
	}
	down.Store(true)
	// A 503 is not in expected_statuses: unhealthy at once.
	p.WaitStat("cluster.c.health_check.healthy", 2)
	p.WaitStat("cluster.c.membership_healthy", 2)
	if f := hostFlags(t, p, "c", us[2].addr); f != "/failed_active_hc" {
		t.Errorf("u2 health_flags = %q, want /failed_active_hc", f)
	}
	c := Client()
	if got := spread(t, c, p.URL("front")+"/", 20); got["u2"] != 0 {
		t.Fatalf("u2 still picked while failing its health check: %v", got)
	}
	down.Store(false)
	p.WaitStat("cluster.c.health_check.healthy", 3)
	p.WaitStat("cluster.c.membership_healthy", 3)
	if got := spread(t, c, p.URL("front")+"/", 30); got["u2"] != 10 {
		t.Fatalf("after recovery: %v, want 10 picks of u2", got)
	}
	if p.Stat("cluster.c.health_check.failure") == 0 || p.Stat("cluster.c.health_check.attempt") < p.Stat("cluster.c.health_check.success") {
		t.Errorf("health_check stats: attempt %d success %d failure %d", p.Stat("cluster.c.health_check.attempt"),
			p.Stat("cluster.c.health_check.success"), p.Stat("cluster.c.health_check.failure"))
	}
}

func TestGRPCHealthCheck(t *testing.T) {
	b := startGRPC(t)
	b.Health.SetServingStatus("svc", healthpb.HealthCheckResponse_SERVING)
	host, port := HostPort(b.Addr)
	cluster := `
  - name: g
    type: STATIC
    connect_timeout: 1s
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: {http2_protocol_options: {}}
    health_checks: [{timeout: 1s, interval: 0.05s, no_traffic_interval: 0.05s, unhealthy_threshold: 1, healthy_threshold: 1,
      grpc_health_check: {service_name: svc}}]
    load_assignment:
      cluster_name: g
      endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: ` + host + `, port_value: ` + port + `}}}}]}]
`
	p := StartProxy(t, httpBootstrap("{cluster: g}", "", cluster))
	p.WaitStat("cluster.g.health_check.healthy", 1)
	b.Health.SetServingStatus("svc", healthpb.HealthCheckResponse_NOT_SERVING)
	p.WaitStat("cluster.g.health_check.healthy", 0)
	if f := hostFlags(t, p, "g", b.Addr); f != "/failed_active_hc" {
		t.Errorf("health_flags = %q, want /failed_active_hc", f)
	}
	b.Health.SetServingStatus("svc", healthpb.HealthCheckResponse_SERVING)
	p.WaitStat("cluster.g.health_check.healthy", 1)
}

func TestPanicThresholdSpreadsTraffic(t *testing.T) {
	us := startNamed(t, 3, func(u *named, w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path == "/healthz" {
			if u.name != "u0" {
				w.WriteHeader(503)
			}
			return true
		}
		return false
	})
	hc := `health_checks: [{timeout: 1s, interval: 0.05s, no_traffic_interval: 0.05s, unhealthy_threshold: 1, healthy_threshold: 1,
      http_health_check: {path: /healthz}}]`
	for _, tc := range []struct {
		name      string
		threshold string
		panic     bool
	}{
		// One healthy host of three is 33 %, below the default 50 %:
		// panic, every host gets traffic.
		{"default 50 %", "", true},
		// Below a 30 % threshold it is not: only u0.
		{"30 %", "common_lb_config: {healthy_panic_threshold: {value: 30}}", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := StartProxy(t, httpBootstrap("{cluster: c}", "", clusterYAML("c", "lb_policy: ROUND_ROBIN\n"+hc+"\n"+tc.threshold, loc{eps: eps(us...)})))
			p.WaitStat("cluster.c.health_check.healthy", 1)
			p.WaitStat("cluster.c.membership_healthy", 1)
			waitUntil(t, "two hosts failing", 5*time.Second, func() bool { return p.Stat("cluster.c.health_check.failure") >= 2 })
			got := spread(t, Client(), p.URL("front")+"/", 30)
			panicked := p.Stat("cluster.c.lb_healthy_panic")
			if tc.panic {
				if got["u0"] != 10 || got["u1"] != 10 || got["u2"] != 10 || panicked != 30 {
					t.Fatalf("panic: picks %v, lb_healthy_panic %d; want 10 each and 30", got, panicked)
				}
			} else if got["u0"] != 30 || panicked != 0 {
				t.Fatalf("no panic: picks %v, lb_healthy_panic %d; want all on u0 and 0", got, panicked)
			}
		})
	}
}
