package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// This file holds the load-balancing tests and the helpers the cluster
// tests share (named upstreams, a bootstrap builder for clusters with
// localities, priorities, weights and health).

// named is one loopback upstream that answers every request with its name
// (body and x-upstream header).
type named struct {
	name  string
	addr  string
	hits  atomic.Int64
	conns atomic.Int64 // connections accepted
	stop  func()       // shuts the server down (idempotent)
}

// startNamed starts n named upstreams "u0".."u<n-1>". hook, when not nil,
// runs first for every request and may take over the response (it returns
// true when it did).
func startNamed(t *testing.T, n int, hook func(u *named, w http.ResponseWriter, r *http.Request) bool) []*named {
	t.Helper()
	out := make([]*named, n)
	for i := range out {
		out[i] = startNamedOn(t, fmt.Sprintf("u%d", i), "127.0.0.1:0", hook)
	}
	return out
}

// startNamedOn starts one named upstream listening on addr (HTTP/1.1 and
// h2c prior knowledge).
func startNamedOn(t *testing.T, name, addr string, hook func(u *named, w http.ResponseWriter, r *http.Request) bool) *named {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("upstream %s: %v", name, err)
	}
	return serveNamed(t, name, ln, hook)
}

// serveNamed serves a named upstream on ln until the test ends.
func serveNamed(t *testing.T, name string, ln net.Listener, hook func(u *named, w http.ResponseWriter, r *http.Request) bool) *named {
	u := &named{name: name, addr: ln.Addr().String()}
	srv := &http.Server{
		ReadHeaderTimeout: 10 * time.Second,
		Protocols:         new(http.Protocols),
		ConnState: func(_ net.Conn, s http.ConnState) {
			if s == http.StateNew {
				u.conns.Add(1)
			}
		},
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			u.hits.Add(1)
			w.Header().Set("x-upstream", u.name)
			if hook != nil && hook(u, w, r) {
				return
			}
			io.WriteString(w, u.name)
		}),
	}
	srv.Protocols.SetHTTP1(true)
	srv.Protocols.SetUnencryptedHTTP2(true)
	go srv.Serve(ln)
	u.stop = func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	}
	t.Cleanup(u.stop)
	return u
}

// ep is one lb_endpoint of a test cluster.
type ep struct {
	addr   string // "ip:port" or "name:port"
	weight int    // load_balancing_weight, 0: unset
	health string // health_status, "": unset
}

// loc is one LocalityLbEndpoints entry.
type loc struct {
	zone     string
	weight   int // locality load_balancing_weight, 0: unset
	priority int
	eps      []ep
}

func eps(us ...*named) []ep {
	out := make([]ep, len(us))
	for i, u := range us {
		out[i] = ep{addr: u.addr}
	}
	return out
}

// clusterYAML renders one static_resources.clusters entry (two-space list
// indentation). settings are extra cluster fields, one per line, at the
// cluster's level; type defaults to STATIC and connect_timeout to 1s.
func clusterYAML(name, settings string, locs ...loc) string {
	var b strings.Builder
	fmt.Fprintf(&b, "  - name: %s\n", name)
	if !strings.Contains(settings, "type:") {
		b.WriteString("    type: STATIC\n")
	}
	if !strings.Contains(settings, "connect_timeout:") {
		b.WriteString("    connect_timeout: 1s\n")
	}
	for _, l := range strings.Split(strings.TrimSpace(settings), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			fmt.Fprintf(&b, "    %s\n", l)
		}
	}
	fmt.Fprintf(&b, "    load_assignment:\n      cluster_name: %s\n      endpoints:", name)
	if len(locs) == 0 {
		b.WriteString(" []\n")
		return b.String()
	}
	b.WriteString("\n")
	for _, l := range locs {
		var parts []string
		if l.zone != "" {
			parts = append(parts, fmt.Sprintf("locality: {zone: %s}", l.zone))
		}
		if l.weight > 0 {
			parts = append(parts, fmt.Sprintf("load_balancing_weight: %d", l.weight))
		}
		if l.priority > 0 {
			parts = append(parts, fmt.Sprintf("priority: %d", l.priority))
		}
		var es []string
		for _, e := range l.eps {
			host, port, _ := net.SplitHostPort(e.addr)
			s := fmt.Sprintf("endpoint: {address: {socket_address: {address: %q, port_value: %s}}}", host, port)
			if e.weight > 0 {
				s += fmt.Sprintf(", load_balancing_weight: %d", e.weight)
			}
			if e.health != "" {
				s += ", health_status: " + e.health
			}
			es = append(es, "{"+s+"}")
		}
		parts = append(parts, "lb_endpoints: ["+strings.Join(es, ", ")+"]")
		fmt.Fprintf(&b, "      - {%s}\n", strings.Join(parts, ", "))
	}
	return b.String()
}

// httpBootstrap is a bootstrap with an admin and one HTTP listener "front"
// (stat_prefix front) whose only route, prefix "/", has the given route
// action (a YAML flow mapping, e.g. "{cluster: c}"), plus clusters.
// rcExtra adds fields to the route configuration (e.g. "validate_clusters:
// false").
func httpBootstrap(route, rcExtra string, clusters ...string) string {
	return fmt.Sprintf(adminHead+frontListener+frontHCM+`
          route_config:
            %s
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: {prefix: /}
                route: %s`+routerFilter+`
  clusters:
%s`, orDefault(rcExtra, "name: local"), route, strings.Join(clusters, ""))
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// pick sends one GET through the proxy and returns the upstream's name.
func pick(t *testing.T, c *http.Client, url string, hdr ...string) string {
	t.Helper()
	code, body, h := Get(t, c, url, hdr...)
	if code != 200 {
		t.Fatalf("GET %s: %d %q", url, code, body)
	}
	return h.Get("x-upstream")
}

// spread sends n GETs and counts the upstreams that answered.
func spread(t *testing.T, c *http.Client, url string, n int, hdr ...string) map[string]int {
	t.Helper()
	out := map[string]int{}
	for range n {
		out[pick(t, c, url, hdr...)]++
	}
	return out
}

// within reports whether got is in want ± tol.
func within(got, want, tol int) bool { return got >= want-tol && got <= want+tol }

func TestLBRoundRobinAlternatesExactly(t *testing.T) {
	us := startNamed(t, 3, nil)
	p := StartProxy(t, httpBootstrap("{cluster: c}", "", clusterYAML("c", "lb_policy: ROUND_ROBIN", loc{eps: eps(us...)})))
	c := Client()
	var seq []string
	for range 30 {
		seq = append(seq, pick(t, c, p.URL("front")+"/"))
	}
	// Envoy's round robin with equal weights is a strict rotation: any
	// three consecutive picks are the three hosts, and the sequence repeats
	// with period 3 (the start is random).
	first := map[string]bool{seq[0]: true, seq[1]: true, seq[2]: true}
	if len(first) != 3 {
		t.Fatalf("first three picks %v are not the three hosts", seq[:3])
	}
	for i := 3; i < len(seq); i++ {
		if seq[i] != seq[i-3] {
			t.Fatalf("pick %d = %s, want %s (strict rotation); sequence %v", i, seq[i], seq[i-3], seq)
		}
	}
	if n := p.Stat("cluster.c.upstream_rq_total"); n != 30 {
		t.Errorf("cluster.c.upstream_rq_total = %d, want 30", n)
	}
}

func TestLBEndpointWeights(t *testing.T) {
	us := startNamed(t, 2, nil)
	weighted := loc{eps: []ep{{addr: us[0].addr, weight: 1}, {addr: us[1].addr, weight: 3}}}
	const n = 400
	for _, tc := range []struct {
		policy string
		// want is the expected number of picks of u0 (weight 1) out of n;
		// tol is the tolerance, stated per case.
		want, tol int
		hash      bool
	}{
		// ROUND_ROBIN walks Envoy's EDF schedule: deterministic, so 400
		// picks are exactly 100 periods of (u0 once, u1 three times).
		{policy: "ROUND_ROBIN", want: 100, tol: 0},
		// LEAST_REQUEST with unequal weights picks by weight/(active+1);
		// sequential requests leave no request active, so picks are
		// weight-proportional at random: binomial(400, 1/4), sd 8.7;
		// tolerance 40 (4.6 sd).
		{policy: "LEAST_REQUEST", want: 100, tol: 40},
		// RANDOM ignores weights in Envoy (random_lb: hosts[random %
		// size]): binomial(400, 1/2), sd 10; tolerance 50 (5 sd). A
		// weighted RANDOM would give ~100 and fail.
		{policy: "RANDOM", want: 200, tol: 50},
		// RING_HASH and MAGLEV give a host a share of the ring/table
		// proportional to its weight; 400 distinct keys: binomial sd 8.7
		// plus the ring's own imprecision; tolerance 50.
		{policy: "RING_HASH", want: 100, tol: 50, hash: true},
		{policy: "MAGLEV", want: 100, tol: 50, hash: true},
	} {
		t.Run(tc.policy, func(t *testing.T) {
			route := "{cluster: c}"
			if tc.hash {
				route = "{cluster: c, hash_policy: [{header: {header_name: x-key}}]}"
			}
			p := StartProxy(t, httpBootstrap(route, "", clusterYAML("c", "lb_policy: "+tc.policy, weighted)))
			c := Client()
			got := map[string]int{}
			for i := range n {
				got[pick(t, c, p.URL("front")+"/", "x-key", fmt.Sprintf("key-%d", i))]++
			}
			if !within(got["u0"], tc.want, tc.tol) || got["u0"]+got["u1"] != n {
				t.Errorf("%s: u0 (weight 1) got %d of %d, want %d ± %d (u1 got %d)", tc.policy, got["u0"], n, tc.want, tc.tol, got["u1"])
			}
		})
	}
}

// TestLBLeastRequestPrefersIdleHost holds requests open on one host and
// checks that LEAST_REQUEST sends new requests to the idle one.
func TestLBLeastRequestPrefersIdleHost(t *testing.T) {
	for _, tc := range []struct {
		name   string
		config string
		// minIdle is the least number of the 200 picks that must go to the
		// idle host. With 2 hosts and choice_count c, a pick lands on the
		// busy host only when all c draws hit it: probability 2^-c.
		minIdle int
	}{
		// c = 2: P(idle) = 3/4, binomial(200, .75) mean 150, sd 6.1;
		// at least 125 (4 sd below), and well above the 100 of a
		// host-blind policy.
		{"p2c", "lb_policy: LEAST_REQUEST", 125},
		// c = 8: P(busy) = 1/256; expected 0.8 of 200 on the busy host;
		// at least 195 (P(more than 5 on the busy host) < 1e-3).
		{"choice_count_8", "lb_policy: LEAST_REQUEST\nleast_request_lb_config: {choice_count: 8}", 195},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Both hosts hold /hold requests until released, u1's first.
			releaseU0, releaseU1 := make(chan struct{}), make(chan struct{})
			var held atomic.Int64
			us := startNamed(t, 2, func(u *named, w http.ResponseWriter, r *http.Request) bool {
				if r.URL.Path == "/hold" {
					held.Add(1)
					if u.name == "u0" {
						<-releaseU0
					} else {
						<-releaseU1
					}
				}
				return false
			})
			p := StartProxy(t, httpBootstrap("{cluster: c}", "", clusterYAML("c", tc.config, loc{eps: eps(us...)})))
			// Send 8 hold requests one after the other: least request
			// spreads them over both hosts. Then release u1's, leaving u0
			// busy and u1 idle.
			var wg sync.WaitGroup
			defer wg.Wait()
			defer close(releaseU0)
			deadline := time.Now().Add(5 * time.Second)
			for i := range 8 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if resp, err := Client().Get(p.URL("front") + "/hold"); err == nil {
						io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
					}
				}()
				waitFor(t, deadline, "a hold request to be held", func() bool { return held.Load() == int64(i+1) })
			}
			close(releaseU1)
			var busy, idle int64
			waitFor(t, deadline, "u1's held requests to end", func() bool {
				for _, h := range p.Server().Clusters().Get("c").Hosts() {
					if h.Address() == us[0].addr {
						busy = h.ActiveRequests()
					} else {
						idle = h.ActiveRequests()
					}
				}
				return idle == 0
			})
			if busy == 0 {
				t.Fatalf("least request put all 8 held requests on u1")
			}
			c := Client()
			got := spread(t, c, p.URL("front")+"/", 200)
			if got["u1"] < tc.minIdle {
				t.Errorf("idle host u1 got %d of 200 picks, want at least %d (busy u0 got %d)", got["u1"], tc.minIdle, got["u0"])
			}
		})
	}
}

// TestLBHashPolicies checks that RING_HASH and MAGLEV send the same key to
// the same host and spread different keys, for each hash_policy kind.
func TestLBHashPolicies(t *testing.T) {
	us := startNamed(t, 3, nil)
	for _, policy := range []string{"RING_HASH", "MAGLEV"} {
		cl := clusterYAML("c", "lb_policy: "+policy, loc{eps: eps(us...)})
		t.Run(policy+"/header", func(t *testing.T) {
			p := StartProxy(t, httpBootstrap("{cluster: c, hash_policy: [{header: {header_name: x-user}}]}", "", cl))
			checkSticky(t, func(key string) string { return pick(t, Client(), p.URL("front")+"/", "x-user", key) })
		})
		t.Run(policy+"/query_parameter", func(t *testing.T) {
			p := StartProxy(t, httpBootstrap("{cluster: c, hash_policy: [{query_parameter: {name: user}}]}", "", cl))
			checkSticky(t, func(key string) string { return pick(t, Client(), p.URL("front")+"/x?a=1&user="+key) })
		})
		t.Run(policy+"/source_ip", func(t *testing.T) {
			p := StartProxy(t, httpBootstrap("{cluster: c, hash_policy: [{connection_properties: {source_ip: true}}]}", "", cl))
			// Keys are source addresses 127.0.0.k: Linux routes all of
			// 127/8 to loopback, so a client can bind any of them.
			checkSticky(t, func(key string) string {
				ip := "127.0.0.1"
				if n, ok := strings.CutPrefix(key, "key"); ok {
					var k int // keyN comes from 127.0.0.(N+2)
					fmt.Sscan(n, &k)
					ip = fmt.Sprintf("127.0.0.%d", k+2)
				}
				return pick(t, clientFrom(t, ip), p.URL("front")+"/")
			})
		})
		t.Run(policy+"/cookie", func(t *testing.T) {
			p := StartProxy(t, httpBootstrap("{cluster: c, hash_policy: [{cookie: {name: sticky}}]}", "", cl))
			checkSticky(t, func(key string) string { return pick(t, Client(), p.URL("front")+"/", "cookie", "a=b; sticky="+key) })
		})
	}
}

// checkSticky asserts that one key always reaches one host and that 60
// different keys reach all three hosts (a host is missed by all 60 with
// probability 3·(2/3)^60 ≈ 1e-10).
func checkSticky(t *testing.T, get func(key string) string) {
	t.Helper()
	first := get("alice")
	for range 10 {
		if got := get("alice"); got != first {
			t.Fatalf("key alice went to %s then %s", first, got)
		}
	}
	seen := map[string]int{}
	for i := range 60 {
		seen[get(fmt.Sprintf("key%d", i))]++
	}
	if len(seen) != 3 {
		t.Errorf("60 keys reached %v, want all three hosts", seen)
	}
}

// clientFrom returns a client whose connections come from the local IP ip.
func clientFrom(t *testing.T, ip string) *http.Client {
	t.Helper()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
	return &http.Client{Transport: &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true}, Timeout: 10 * time.Second}
}

// TestLBHashCookieGenerated checks Envoy's generated cookie: with a ttl and
// no cookie in the request, the router hashes a generated value, returns it
// in Set-Cookie, and requests carrying it reach the same host.
func TestLBHashCookieGenerated(t *testing.T) {
	us := startNamed(t, 3, nil)
	for _, policy := range []string{"RING_HASH", "MAGLEV"} {
		t.Run(policy, func(t *testing.T) {
			p := StartProxy(t, httpBootstrap("{cluster: c, hash_policy: [{cookie: {name: sticky, ttl: 60s, path: /app}}]}", "",
				clusterYAML("c", "lb_policy: "+policy, loc{eps: eps(us...)})))
			code, _, h := Get(t, Client(), p.URL("front")+"/")
			if code != 200 {
				t.Fatalf("status %d", code)
			}
			sc := h.Values("set-cookie")
			if len(sc) != 1 {
				t.Fatalf("set-cookie %q, want one generated cookie", sc)
			}
			// Envoy: name="value"; Max-Age=ttl; Path=path; HttpOnly, the
			// value 16 hex digits.
			var value string
			if _, err := fmt.Sscanf(sc[0], "sticky=%q;", &value); err != nil || len(value) != 16 {
				t.Fatalf("set-cookie %q: want sticky=\"<16 hex digits>\"", sc[0])
			}
			if want := `sticky="` + value + `"; Max-Age=60; Path=/app; HttpOnly`; sc[0] != want {
				t.Errorf("set-cookie %q, want %q", sc[0], want)
			}
			first := h.Get("x-upstream")
			for range 10 {
				code, _, h := Get(t, Client(), p.URL("front")+"/", "cookie", "sticky="+value)
				if code != 200 || h.Get("x-upstream") != first {
					t.Fatalf("with the generated cookie: %d from %s, want 200 from %s", code, h.Get("x-upstream"), first)
				}
				if h.Get("set-cookie") != "" {
					t.Fatalf("a request carrying the cookie got set-cookie %q", h.Get("set-cookie"))
				}
			}
		})
	}
	t.Run("no_ttl_no_cookie", func(t *testing.T) {
		p := StartProxy(t, httpBootstrap("{cluster: c, hash_policy: [{cookie: {name: sticky}}]}", "",
			clusterYAML("c", "lb_policy: RING_HASH", loc{eps: eps(us...)})))
		_, _, h := Get(t, Client(), p.URL("front")+"/")
		if sc := h.Get("set-cookie"); sc != "" {
			t.Errorf("set-cookie %q without ttl, want none", sc)
		}
	})
}

// TestLBPriorities checks Envoy's priority levels: priority 1 takes traffic
// only when priority 0 is not healthy enough, in proportion to priority 0's
// overprovisioned health (1.4 × healthy / total).
func TestLBPriorities(t *testing.T) {
	us := startNamed(t, 5, nil)
	p1 := loc{priority: 1, eps: eps(us[2])}
	const n = 400
	for _, tc := range []struct {
		name     string
		p0       loc
		want     map[string]int
		tol      int
		panicked bool
	}{
		// All healthy: priority 0 takes everything; exact.
		{"all_healthy", loc{eps: eps(us[0], us[1])}, map[string]int{"u0": 200, "u1": 200, "u2": 0}, 0, false},
		// Priority 0 all unhealthy: priority 1 takes everything; the
		// normalized total health is 100 %, so no panic; exact.
		{"p0_unhealthy", loc{eps: []ep{{addr: us[0].addr, health: "UNHEALTHY"}, {addr: us[1].addr, health: "UNHEALTHY"}}},
			map[string]int{"u0": 0, "u1": 0, "u2": n}, 0, false},
		// Half of priority 0 healthy: its health is 1.4 × 50 % = 70 %, so
		// it takes 70 % and priority 1 the other 30 %: binomial(400, .3),
		// sd 9.2, tolerance 40 (4.3 sd). The unhealthy u1 gets nothing.
		{"p0_half", loc{eps: []ep{{addr: us[0].addr}, {addr: us[1].addr, health: "UNHEALTHY"}}},
			map[string]int{"u0": 280, "u1": 0, "u2": 120}, 40, false},
		// A quarter of priority 0 healthy: its health is 35 % and it is
		// below the panic threshold on its own, but priority 1 brings the
		// normalized total health to 100 %, and Envoy never panics then
		// (recalculatePerPriorityPanic): priority 0's 35 % goes to its
		// healthy host only. binomial(400, .35) sd 9.5, tolerance 40.
		{"p0_quarter_no_panic", loc{eps: []ep{{addr: us[0].addr}, {addr: us[1].addr, health: "UNHEALTHY"},
			{addr: us[3].addr, health: "UNHEALTHY"}, {addr: us[4].addr, health: "UNHEALTHY"}}},
			map[string]int{"u0": 140, "u1": 0, "u2": 260, "u3": 0, "u4": 0}, 40, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := StartProxy(t, httpBootstrap("{cluster: c}", "", clusterYAML("c", "lb_policy: ROUND_ROBIN", tc.p0, p1)))
			got := spread(t, Client(), p.URL("front")+"/", n)
			for name, want := range tc.want {
				tol := tc.tol
				if want == 0 {
					tol = 0 // an unhealthy or unused host gets nothing, exactly
				}
				if !within(got[name], want, tol) {
					t.Errorf("%s got %d of %d, want %d ± %d (all: %v)", name, got[name], n, want, tol, got)
				}
			}
			if got := p.Stat("cluster.c.lb_healthy_panic"); got != 0 {
				t.Errorf("cluster.c.lb_healthy_panic = %d, want 0", got)
			}
		})
	}
}

// TestLBPanicThreshold checks healthy_panic_threshold: below it Envoy
// balances over every host, healthy or not; 0 disables panic mode.
func TestLBPanicThreshold(t *testing.T) {
	us := startNamed(t, 4, nil)
	oneHealthy := loc{eps: []ep{{addr: us[0].addr}, {addr: us[1].addr, health: "UNHEALTHY"},
		{addr: us[2].addr, health: "UNHEALTHY"}, {addr: us[3].addr, health: "UNHEALTHY"}}}
	const n = 100
	for _, tc := range []struct {
		name     string
		settings string
		// want is every host's exact count: round robin over the hosts in
		// use is deterministic.
		want     map[string]int
		panicked int64
	}{
		// 25 % healthy < the default 50 %: panic, all four hosts in turn.
		{"default_50", "", map[string]int{"u0": 25, "u1": 25, "u2": 25, "u3": 25}, n},
		// 25 % >= 20 %: no panic, only the healthy host.
		{"threshold_20", "common_lb_config: {healthy_panic_threshold: {value: 20}}", map[string]int{"u0": n}, 0},
		// 0 disables panic mode.
		{"threshold_0", "common_lb_config: {healthy_panic_threshold: {value: 0}}", map[string]int{"u0": n}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := StartProxy(t, httpBootstrap("{cluster: c}", "", clusterYAML("c", "lb_policy: ROUND_ROBIN\n"+tc.settings, oneHealthy)))
			got := spread(t, Client(), p.URL("front")+"/", n)
			for _, u := range us {
				if got[u.name] != tc.want[u.name] {
					t.Errorf("%s got %d, want %d (all: %v)", u.name, got[u.name], tc.want[u.name], got)
				}
			}
			if got := p.Stat("cluster.c.lb_healthy_panic"); got != tc.panicked {
				t.Errorf("cluster.c.lb_healthy_panic = %d, want %d", got, tc.panicked)
			}
		})
	}
	t.Run("none_healthy_no_panic", func(t *testing.T) {
		// Every host unhealthy and panic disabled: no host, 503 UH.
		none := loc{eps: []ep{{addr: us[0].addr, health: "UNHEALTHY"}, {addr: us[1].addr, health: "UNHEALTHY"}}}
		p := StartProxy(t, httpBootstrap("{cluster: c}", "", clusterYAML("c", "common_lb_config: {healthy_panic_threshold: {value: 0}}", none)))
		code, body, _ := Get(t, Client(), p.URL("front")+"/")
		if code != 503 || body != "no healthy upstream" {
			t.Errorf("got %d %q, want 503 \"no healthy upstream\"", code, body)
		}
		if f := p.NextStream(0).Flags.String(); f != "UH" {
			t.Errorf("flags %s, want UH", f)
		}
	})
}

// TestLBLocalityWeighted checks locality_weighted_lb_config: localities
// share traffic by load_balancing_weight times their availability,
// min(1, 1.4 × healthy / total) (Envoy's "Locality weighted load
// balancing"); without the config, locality weights are ignored.
func TestLBLocalityWeighted(t *testing.T) {
	us := startNamed(t, 5, nil)
	const n = 400
	lw := "common_lb_config: {locality_weighted_lb_config: {}, healthy_panic_threshold: {value: 0}}"
	for _, tc := range []struct {
		name     string
		settings string
		locs     []loc
		// wantA is the expected picks of zone a out of n; tolerance 40 is
		// at least 4 sd of binomial(400, p) for every p here (sd <= 10).
		wantA int
	}{
		{"weights_1_3", lw, []loc{{zone: "a", weight: 1, eps: eps(us[0])}, {zone: "b", weight: 3, eps: eps(us[1])}}, 100},
		// Zone b has 1 healthy host of 4: availability 1.4 × 1/4 = 35 %,
		// effective weight 0.35 against zone a's 1: a gets 1/1.35 = 74 %.
		{"availability", lw, []loc{{zone: "a", weight: 1, eps: eps(us[0])},
			{zone: "b", weight: 1, eps: []ep{{addr: us[1].addr}, {addr: us[2].addr, health: "UNHEALTHY"},
				{addr: us[3].addr, health: "UNHEALTHY"}, {addr: us[4].addr, health: "UNHEALTHY"}}}}, 296},
		// Without locality_weighted_lb_config the weights do not matter:
		// round robin over the two hosts, exactly half.
		{"not_configured", "", []loc{{zone: "a", weight: 1, eps: eps(us[0])}, {zone: "b", weight: 3, eps: eps(us[1])}}, 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := StartProxy(t, httpBootstrap("{cluster: c}", "", clusterYAML("c", "lb_policy: ROUND_ROBIN\n"+tc.settings, tc.locs...)))
			got := spread(t, Client(), p.URL("front")+"/", n)
			a := got["u0"]
			if !within(a, tc.wantA, 40) {
				t.Errorf("zone a got %d of %d, want %d ± 40 (all: %v)", a, n, tc.wantA, got)
			}
			for _, u := range us[2:] {
				if got[u.name] != 0 {
					t.Errorf("unhealthy %s got %d requests", u.name, got[u.name])
				}
			}
		})
	}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, deadline time.Time, what string, cond func() bool) {
	t.Helper()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond) // polling a condition with a deadline
	}
}
