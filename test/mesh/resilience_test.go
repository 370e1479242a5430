package mesh

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	adminv3 "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	localratelimitv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/local_ratelimit/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// This file proves issue 5 at mesh level: Istio YAML (and weft's
// LocalRateLimit) in weft-control → xDS → weft-proxy sidecars → real
// applications on loopback. Every service here is NAME.default.svc.
// cluster.local:8080; the client is a sidecar's outbound HTTP proxy
// listener, as in routing_test.go. The shared helpers are below; each
// mechanism has its own file-local YAML next to its test.

// workload is one instance of a service: its WorkloadEntry address (a
// loopback IP; a sidecar for it binds its inbound listener on IP:port and
// forwards to the app on 127.0.0.1:port) and its app's port.
type workload struct {
	name, ip string
	port     int
}

// serviceYAML renders the ServiceEntry of NAME.default.svc.cluster.local
// with port 8080 of protocol proto (HTTP or GRPC), selecting the labels
// app: NAME, and one WorkloadEntry per workload.
func serviceYAML(name, proto string, ws ...workload) string {
	port := strings.ToLower(proto)
	var b strings.Builder
	fmt.Fprintf(&b, `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: %[1]s, namespace: default}
spec:
  hosts: [%[1]s.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
  - {number: 8080, name: %[2]s, protocol: %[3]s}
  workloadSelector:
    labels: {app: %[1]s}
`, name, port, proto)
	for _, w := range ws {
		fmt.Fprintf(&b, `---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: %s, namespace: default}
spec:
  address: %s
  ports: {%s: %d}
  labels: {app: %s}
`, w.name, w.ip, port, w.port, name)
	}
	return b.String()
}

// serviceURL is the URL a client of the mesh uses for service name.
func serviceURL(name string) string {
	return "http://" + name + ".default.svc.cluster.local:8080/"
}

// outbound is the client-side cluster name of service name's port 8080.
func outbound(name string) string {
	return "outbound|8080||" + name + ".default.svc.cluster.local"
}

// testApp is a workload the test steers: HTTP/1.1 on 127.0.0.1, the body
// of a 200 is its name (also in x-app).
type testApp struct {
	name string
	port int
	srv  *http.Server

	hits   atomic.Int64 // requests received
	conns  atomic.Int64 // connections accepted
	status atomic.Int32 // answered instead of 200 when non-zero

	// gate, when slow is set, holds every request until release closes
	// it: a slow upstream whose requests stay in flight as long as the
	// test needs them to. delay, when set, is the least time a slow app
	// takes per request (its latency, not a synchronisation).
	slow    bool
	delay   time.Duration
	gate    chan struct{}
	release func()

	mu    sync.Mutex
	hosts map[string]int // the Host header of each request
}

// startTestApp serves a testApp on 127.0.0.1 and a kernel-chosen port.
func startTestApp(t *testing.T, name string, slow bool) *testApp {
	t.Helper()
	a := &testApp{name: name, slow: slow, gate: make(chan struct{}), hosts: map[string]int{}}
	var once sync.Once
	a.release = func() { once.Do(func() { close(a.gate) }) }
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a.port = l.Addr().(*net.TCPAddr).Port
	a.srv = &http.Server{
		Handler:           http.HandlerFunc(a.serve),
		ReadHeaderTimeout: 10 * time.Second,
		ConnState: func(_ net.Conn, s http.ConnState) {
			if s == http.StateNew {
				a.conns.Add(1)
			}
		},
	}
	go a.srv.Serve(l)
	t.Cleanup(func() {
		a.release()
		a.srv.Close()
	})
	return a
}

func (a *testApp) serve(w http.ResponseWriter, r *http.Request) {
	arrived := time.Now()
	io.Copy(io.Discard, r.Body)
	a.hits.Add(1)
	a.mu.Lock()
	a.hosts[r.Host]++
	a.mu.Unlock()
	if a.slow {
		select {
		case <-a.gate:
		case <-r.Context().Done():
			return
		}
		select {
		case <-time.After(a.delay - time.Since(arrived)):
		case <-r.Context().Done():
			return
		}
	}
	w.Header().Set("x-app", a.name)
	if s := a.status.Load(); s != 0 {
		w.WriteHeader(int(s))
	}
	io.WriteString(w, a.name)
}

// host returns how many requests arrived with Host h.
func (a *testApp) host(h string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.hosts[h]
}

// outcome is one request of a load run.
type outcome struct {
	at   time.Time // when it was sent
	took time.Duration
	code int
	body string
	err  error
}

// load runs workers that send GET url through a client until stopped.
type load struct {
	mu      sync.Mutex
	results []outcome
	stop    context.CancelFunc
	wg      sync.WaitGroup
}

func startLoad(c *http.Client, url string, workers int) *load {
	ctx, stop := context.WithCancel(context.Background())
	l := &load{stop: stop}
	for range workers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for ctx.Err() == nil {
				start := time.Now()
				code, body, err := get(c, url)
				o := outcome{at: start, took: time.Since(start), code: code, body: body, err: err}
				l.mu.Lock()
				l.results = append(l.results, o)
				l.mu.Unlock()
			}
		}()
	}
	return l
}

// n returns the number of requests completed so far.
func (l *load) n() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.results)
}

// finish stops the workers and returns every outcome.
func (l *load) finish() []outcome {
	l.stop()
	l.wg.Wait()
	return l.results
}

// healthFlags returns the health_flags of host addr of cluster in the
// sidecar's /clusters, "" when the host is not listed.
func (s *sidecar) healthFlags(cluster, addr string) string {
	prefix := cluster + "::" + addr + "::health_flags::"
	for _, l := range strings.Split(s.admin("/clusters"), "\n") {
		if v, ok := strings.CutPrefix(l, prefix); ok {
			return v
		}
	}
	return ""
}

// meshClient is s.client(), whose idle connections are closed when the
// test ends (before the sidecar drains, so the drain need not wait for
// them).
func meshClient(t *testing.T, s *sidecar) *http.Client {
	c := s.client()
	t.Cleanup(c.CloseIdleConnections)
	return c
}

// stat returns a counter or gauge of the sidecar.
func (s *sidecar) stat(name string) int64 { return s.srv.Stats().CounterValue(name) }

// kill ends a workload abruptly, as a crashed pod: its app's listener and
// connections are closed, and its sidecar shuts down with no drain time
// (its sockets and connections close at once), so connects to it fail.
func kill(a *testApp, s *sidecar) {
	a.srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	s.srv.Shutdown(ctx)
}

// chaosPolicy is the chaos service's resilience configuration. Outlier
// detection: five consecutive 5xx (connect failures count as 503 when
// local-origin errors are not split, Envoy's default) eject a host for
// baseEjectionTime 1 s; the detector runs every 100 ms (un-ejection is
// checked on that tick); maxEjectionPercent 67 lets two hosts of three go
// ((1+1)/3 = 66.7 % ≤ 67), never the last one (100 %); Istio's
// minHealthPercent default 0 disables Envoy's panic threshold. Retries:
// three, on 5xx (which includes connect failures and resets before the
// response), each on a host not tried yet (Istio's default
// retryIgnorePreviousHosts: previous_hosts). Istio's default policy would
// not retry a reset: a request in flight when its instance is killed would
// fail.
const chaosPolicy = `
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: chaos, namespace: default}
spec:
  host: chaos.default.svc.cluster.local
  trafficPolicy:
    outlierDetection:
      consecutive5xxErrors: 5
      interval: 100ms
      baseEjectionTime: 1s
      maxEjectionPercent: 67
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: chaos, namespace: default}
spec:
  hosts: [chaos.default.svc.cluster.local]
  http:
  - retries: {attempts: 3, retryOn: "5xx,reset,connect-failure"}
    route:
    - destination: {host: chaos.default.svc.cluster.local}
`

// chaosBaseEjection is chaosPolicy's baseEjectionTime.
const chaosBaseEjection = time.Second

// TestChaosKillAndFailingInstance: the service chaos has three instances,
// each behind its own sidecar (the client sidecar's endpoints are the
// instances' inbound listeners, as in a mesh: a killed pod takes its
// sidecar with it, so the client sees connect failures, while an app
// answering 503 is seen through its healthy sidecar). Four workers send
// steady load through the client sidecar. Mid-run c1 is killed and c2
// starts answering 503; c2 must be ejected (client sidecar /clusters:
// /failed_outlier_check), then, once it answers 200 again, return after
// the ejection time and get traffic again. At least 99.9 % of all requests
// must succeed.
func TestChaosKillAndFailingInstance(t *testing.T) {
	apps := make([]*testApp, 3)
	ws := make([]workload, 3)
	for i := range apps {
		apps[i] = startTestApp(t, fmt.Sprintf("c%d", i+1), false)
		ws[i] = workload{name: apps[i].name, ip: fmt.Sprintf("127.0.0.%d", 11+i), port: apps[i].port}
	}
	cp := startControlPlane(t, map[string]string{
		"chaos.yaml":        serviceYAML("chaos", "HTTP", ws...),
		"chaos-policy.yaml": chaosPolicy,
	})
	sidecars := make([]*sidecar, 3)
	for i, w := range ws {
		sidecars[i] = startSidecar(t, cp, sidecarOptions{Name: w.name, IP: w.ip,
			Labels: map[string]string{"app": "chaos"}, ProxyPort: freePort(t, "127.0.0.1")})
	}
	client := startSidecar(t, cp, sidecarOptions{Name: "sleep", IP: "127.0.0.3",
		Labels: map[string]string{"app": "sleep"}, ProxyPort: freePort(t, "127.0.0.1")})
	cluster := outbound("chaos")
	addr := func(i int) string { return fmt.Sprintf("%s:%d", ws[i].ip, ws[i].port) }

	const (
		total   = 3000 // requests in the run
		workers = 4
	)
	ld := startLoad(meshClient(t, client), serviceURL("chaos"), workers)
	waitFor(t, "warm-up load", 20*time.Second, func() bool { return ld.n() >= 300 })
	for i, a := range apps {
		if a.hits.Load() == 0 {
			t.Fatalf("warm-up: instance %d got no request", i+1)
		}
	}

	// Chaos: c1 dies, c2 answers 503.
	apps[1].status.Store(http.StatusServiceUnavailable)
	kill(apps[0], sidecars[0])
	chaosAt := time.Now()
	waitFor(t, "c2 ejected", 10*time.Second, func() bool {
		return strings.Contains(client.healthFlags(cluster, addr(1)), "/failed_outlier_check")
	})
	ejectedAt := time.Now()

	// c2 recovers; it is back once its ejection time has passed.
	apps[1].status.Store(0)
	waitFor(t, "c2 healthy again", 10*time.Second, func() bool { return client.healthFlags(cluster, addr(1)) == "healthy" })
	backAt := time.Now()
	atBack := ld.n()
	waitFor(t, "the rest of the run", 60*time.Second, func() bool { return ld.n() >= max(total, atBack+1000) })
	results := ld.finish()

	var failed []string
	during, back := map[string]int{}, map[string]int{}
	for _, r := range results {
		switch {
		case r.err != nil || r.code != 200:
			failed = append(failed, fmt.Sprintf("%d %q %v", r.code, r.body, r.err))
		case r.at.After(backAt):
			back[r.body]++
		case r.at.After(chaosAt):
			during[r.body]++
		}
	}
	// Tolerance: the issue's ≥ 99.9 % success, i.e. at most one failure
	// per thousand requests.
	if len(failed)*1000 > len(results) {
		t.Errorf("%d of %d requests failed (> 0.1 %%); first: %s", len(failed), len(results), failed[0])
	}
	// The ejection lasts base_ejection_time (un-ejection is checked every
	// interval, 100 ms); it was seen up to one admin poll (10 ms plus the
	// admin request) late, hence the 200 ms allowance below the ejection
	// time, and 1 s of slack above for a loaded -race run.
	if away := backAt.Sub(ejectedAt); away < chaosBaseEjection-200*time.Millisecond || away > chaosBaseEjection+time.Second {
		t.Errorf("c2 came back %v after it was seen ejected, want about the ejection time %v", away, chaosBaseEjection)
	}
	// Back in the host set, c2 shares the load with c3 again: least
	// request between two equal hosts gives it about half; a quarter is
	// the (loose) bound, since least request is not a fair coin.
	if n := back["c1"] + back["c2"] + back["c3"]; back["c2"]*4 < n {
		t.Errorf("after c2's return: %v, want c2 to get ≥ 25 %% of the %d requests", back, n)
	}
	if during["c1"] != 0 {
		t.Errorf("the killed c1 answered %d requests", during["c1"])
	}
	if n := client.stat("cluster." + cluster + ".outlier_detection.ejections_enforced_consecutive_5xx"); n < 2 {
		t.Errorf("ejections_enforced_consecutive_5xx = %d, want ≥ 2 (c1 and c2)", n)
	}
	t.Logf("%d requests, %d failed (%.3f %% success); during the chaos %v, after c2's return %v; c2 ejected %v after the chaos began, back %v later; client sidecar: %d retries, %d ejections",
		len(results), len(failed), 100*float64(len(results)-len(failed))/float64(len(results)), during, back,
		ejectedAt.Sub(chaosAt).Round(time.Millisecond), backAt.Sub(ejectedAt).Round(time.Millisecond),
		client.stat("cluster."+cluster+".upstream_rq_retry"),
		client.stat("cluster."+cluster+".outlier_detection.ejections_enforced_total"))
}

// dumpedPolicy gives the dumped service every resilience feature that
// shows in a sidecar's /config_dump: VirtualService retries and a fault
// (route), DestinationRule outlierDetection and connectionPool (cluster),
// and a LocalRateLimit on its workload (inbound HCM).
const dumpedPolicy = `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: dumped, namespace: default}
spec:
  hosts: [dumped.default.svc.cluster.local]
  http:
  - retries: {attempts: 3, retryOn: "5xx,reset"}
    fault:
      abort: {httpStatus: 503, percentage: {value: 20}}
    route:
    - destination: {host: dumped.default.svc.cluster.local}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: dumped, namespace: default}
spec:
  host: dumped.default.svc.cluster.local
  trafficPolicy:
    outlierDetection: {consecutive5xxErrors: 5, interval: 100ms, baseEjectionTime: 1s, maxEjectionPercent: 67}
    connectionPool:
      tcp: {maxConnections: 1}
      http: {http1MaxPendingRequests: 1, http2MaxRequests: 2}
---
apiVersion: networking.weft.dev/v1alpha1
kind: LocalRateLimit
metadata: {name: dumped, namespace: default}
spec:
  workloadSelector: {matchLabels: {app: dumped}}
  tokenBucket: {maxTokens: 50, tokensPerFill: 5, fillInterval: 50ms}
`

// configDump is a sidecar's /config_dump, decoded as Envoy's admin
// ConfigDump (every Any resolved: the dump is valid Envoy JSON).
type configDump struct {
	clusters  map[string]*clusterv3.Cluster
	listeners map[string]*listenerv3.Listener
	routes    map[string]*routev3.RouteConfiguration
}

func (s *sidecar) configDump() configDump {
	s.t.Helper()
	var cd adminv3.ConfigDump
	if err := protojson.Unmarshal([]byte(s.admin("/config_dump")), &cd); err != nil {
		s.t.Fatalf("/config_dump: %v", err)
	}
	out := configDump{map[string]*clusterv3.Cluster{}, map[string]*listenerv3.Listener{}, map[string]*routev3.RouteConfiguration{}}
	for _, a := range cd.GetConfigs() {
		m, err := a.UnmarshalNew()
		if err != nil {
			s.t.Fatalf("/config_dump: %s: %v", a.GetTypeUrl(), err)
		}
		switch d := m.(type) {
		case *adminv3.ClustersConfigDump:
			for _, c := range d.GetDynamicActiveClusters() {
				var cl clusterv3.Cluster
				mustUnpack(s.t, c.GetCluster(), &cl)
				out.clusters[cl.GetName()] = &cl
			}
		case *adminv3.ListenersConfigDump:
			for _, l := range d.GetDynamicListeners() {
				var ln listenerv3.Listener
				mustUnpack(s.t, l.GetActiveState().GetListener(), &ln)
				out.listeners[ln.GetName()] = &ln
			}
		case *adminv3.RoutesConfigDump:
			for _, r := range d.GetDynamicRouteConfigs() {
				var rc routev3.RouteConfiguration
				mustUnpack(s.t, r.GetRouteConfig(), &rc)
				out.routes[rc.GetName()] = &rc
			}
		}
	}
	return out
}

func mustUnpack(t *testing.T, a *anypb.Any, m proto.Message) {
	t.Helper()
	if err := a.UnmarshalTo(m); err != nil {
		t.Fatalf("/config_dump: %s: %v", a.GetTypeUrl(), err)
	}
}

// TestResilienceConfigDump: the dumped workload's sidecar shows in
// /config_dump what weft-control generated from the Istio YAML and the
// LocalRateLimit: its route to dumped has the retry policy and the fault
// (typed_per_filter_config), its cluster outbound|8080||dumped has
// outlier_detection and circuit_breakers, and its inbound HCM has the
// local_ratelimit filter.
func TestResilienceConfigDump(t *testing.T) {
	a := startTestApp(t, "dumped", false)
	w := workload{name: "dumped-1", ip: "127.0.0.31", port: a.port}
	cp := startControlPlane(t, map[string]string{
		"dumped.yaml":        serviceYAML("dumped", "HTTP", w),
		"dumped-policy.yaml": dumpedPolicy,
	})
	s := startSidecar(t, cp, sidecarOptions{Name: w.name, IP: w.ip,
		Labels: map[string]string{"app": "dumped"}, ProxyPort: freePort(t, "127.0.0.1")})
	d := s.configDump()

	t.Run("route", func(t *testing.T) {
		r := findRoute(d.routes["http_proxy"], "dumped.default.svc.cluster.local:8080")
		if r == nil {
			t.Fatalf("no route for dumped.default.svc.cluster.local:8080 in http_proxy: %v", d.routes["http_proxy"])
		}
		rp := r.GetRoute().GetRetryPolicy()
		if rp.GetRetryOn() != "5xx,reset" || rp.GetNumRetries().GetValue() != 3 {
			t.Errorf("retry_policy %v, want retry_on 5xx,reset and num_retries 3", rp)
		}
		var f faultv3.HTTPFault
		a, ok := r.GetTypedPerFilterConfig()["envoy.filters.http.fault"]
		if !ok {
			t.Fatalf("no typed_per_filter_config for envoy.filters.http.fault: %v", r.GetTypedPerFilterConfig())
		}
		mustUnpack(t, a, &f)
		if ab := f.GetAbort(); ab.GetHttpStatus() != 503 || ab.GetPercentage().GetNumerator() != 200000 ||
			ab.GetPercentage().GetDenominator() != typev3.FractionalPercent_MILLION {
			t.Errorf("fault abort %v, want 503 at 200000 per million", ab)
		}
	})
	t.Run("cluster", func(t *testing.T) {
		c := d.clusters[outbound("dumped")]
		if c == nil {
			t.Fatalf("no cluster %s", outbound("dumped"))
		}
		od := c.GetOutlierDetection()
		if od.GetConsecutive_5Xx().GetValue() != 5 || od.GetBaseEjectionTime().AsDuration() != time.Second ||
			od.GetInterval().AsDuration() != 100*time.Millisecond || od.GetMaxEjectionPercent().GetValue() != 67 {
			t.Errorf("outlier_detection %v, want consecutive_5xx 5, interval 100ms, base_ejection_time 1s, max_ejection_percent 67", od)
		}
		th := c.GetCircuitBreakers().GetThresholds()
		if len(th) != 1 || th[0].GetMaxConnections().GetValue() != 1 || th[0].GetMaxPendingRequests().GetValue() != 1 ||
			th[0].GetMaxRequests().GetValue() != 2 {
			t.Errorf("circuit_breakers %v, want max_connections 1, max_pending_requests 1, max_requests 2", c.GetCircuitBreakers())
		}
	})
	t.Run("inbound local_ratelimit", func(t *testing.T) {
		name := fmt.Sprintf("%s_%d", w.ip, w.port)
		l := d.listeners[name]
		if l == nil {
			t.Fatalf("no inbound listener %s", name)
		}
		var rl *localratelimitv3.LocalRateLimit
		for _, fc := range l.GetFilterChains() {
			for _, nf := range fc.GetFilters() {
				var hcm hcmv3.HttpConnectionManager
				if nf.GetTypedConfig().UnmarshalTo(&hcm) != nil {
					continue
				}
				for _, hf := range hcm.GetHttpFilters() {
					if hf.GetName() == "envoy.filters.http.local_ratelimit" {
						rl = &localratelimitv3.LocalRateLimit{}
						mustUnpack(t, hf.GetTypedConfig(), rl)
					}
				}
			}
		}
		if tb := rl.GetTokenBucket(); tb.GetMaxTokens() != 50 || tb.GetTokensPerFill().GetValue() != 5 || tb.GetFillInterval().AsDuration() != 50*time.Millisecond {
			t.Errorf("inbound local_ratelimit %v, want a token bucket of 50, 5 per 50ms", rl)
		}
	})
}

// findRoute returns the first route of the virtual host with domain d.
func findRoute(rc *routev3.RouteConfiguration, d string) *routev3.Route {
	for _, vh := range rc.GetVirtualHosts() {
		if slices.Contains(vh.GetDomains(), d) && len(vh.GetRoutes()) > 0 {
			return vh.GetRoutes()[0]
		}
	}
	return nil
}
