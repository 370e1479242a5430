package mesh

import (
	"context"
	"fmt"
	"math"
	"regexp"
	"sync"
	"testing"
	"text/template"
	"time"

	"strings"

	"github.com/weftmesh/weft/internal/meshtest"
)

// helloService is the service hello.default.svc.cluster.local:8080
// (gRPC, so plain HTTP and gRPC both ride HTTP/2 upstream) with two
// workloads: hello-v1 at 127.0.0.2, behind its own sidecar (inbound
// listener 127.0.0.2:PORT → app on 127.0.0.1:PORT), and hello-v2 at
// 127.0.0.1 without a sidecar; its DestinationRule names the subsets v1
// and v2.
func helloService(v1, v2 int) meshtest.Service {
	return meshtest.Service{Name: "hello", Port: 8080, Protocol: "GRPC", Workloads: []meshtest.Workload{
		{Name: "hello-v1", Address: "127.0.0.2", Port: v1, Version: "v1"},
		{Name: "hello-v2", Address: "127.0.0.1", Port: v2, Version: "v2"},
	}}
}

// helloRoutes is the VirtualService: x-canary: yes goes to v2, the rest
// is split v1/v2 by weight.
func helloRoutes(w1, w2 int) string {
	return meshtest.Service{Name: "hello"}.VirtualServiceYAML("hello",
		meshtest.Route{Header: "x-canary", To: []meshtest.Destination{{Subset: "v2"}}},
		meshtest.Route{To: []meshtest.Destination{{Subset: "v1", Weight: w1}, {Subset: "v2", Weight: w2}}})
}

func render(t *testing.T, tmpl string, vars map[string]any) string {
	t.Helper()
	var b strings.Builder
	if err := template.Must(template.New("").Option("missingkey=error").Parse(tmpl)).Execute(&b, vars); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// hello is a running hello mesh: weft-control, the two apps, hello-v1's
// sidecar and a client sidecar ("sleep", at 127.0.0.3).
type hello struct {
	cp       *controlPlane
	v1, v2   *app
	server   *sidecar // hello-v1's
	client   *sidecar // sleep's
	routeURL string
}

func startHello(t *testing.T, w1, w2 int) *hello {
	t.Helper()
	h := &hello{v1: startApp(t, "v1"), v2: startApp(t, "v2")}
	h.cp = startControlPlane(t, map[string]string{
		"hello.yaml":    helloService(h.v1.port, h.v2.port).YAML(),
		"hello-vs.yaml": helloRoutes(w1, w2),
	})
	h.server = startSidecar(t, h.cp, sidecarOptions{
		Name: "hello-v1", IP: "127.0.0.2", Labels: map[string]string{"app": "hello", "version": "v1"},
	})
	h.client = startSidecar(t, h.cp, sidecarOptions{
		Name: "sleep", IP: "127.0.0.3", Labels: map[string]string{"app": "sleep"},
	})
	// The server sidecar has its inbound listener (the kernel would refuse
	// the bind otherwise, and the listener would be NACKed).
	inbound := fmt.Sprintf("127.0.0.2_%d", h.v1.port)
	if a := h.server.srv.ListenerAddr(inbound); a == nil {
		t.Fatalf("hello-v1's sidecar has no inbound listener %s: %v", inbound, h.server.srv.ListenerAddrs())
	}
	h.routeURL = "http://hello.default.svc.cluster.local:8080/"
	return h
}

// binomialBound is the acceptance band for a count of n Bernoulli(p)
// trials: ±5 standard deviations (a false failure once in ~1.7 million
// runs).
func binomialBound(n int, p float64) (lo, hi int) {
	sd := math.Sqrt(float64(n) * p * (1 - p))
	mean := float64(n) * p
	return int(math.Floor(mean - 5*sd)), int(math.Ceil(mean + 5*sd))
}

// TestWeightedSplitThroughSidecars: 90/10 across two sidecars (client's
// outbound HTTP proxy listener, hello-v1's inbound listener) lands within
// the binomial bound, and every v1 request passed hello-v1's sidecar.
func TestWeightedSplitThroughSidecars(t *testing.T) {
	h := startHello(t, 90, 10)
	const n = 2000
	got := count(t, h.client.client(), h.routeURL, n)
	lo, hi := binomialBound(n, 0.10)
	if got["v1"]+got["v2"] != n || got["v2"] < lo || got["v2"] > hi {
		t.Fatalf("90/10 split over %d requests: %v; want v2 in [%d, %d] (±5σ)", n, got, lo, hi)
	}
	t.Logf("90/10: %v (v2 band [%d, %d])", got, lo, hi)
	inbound := fmt.Sprintf("cluster.inbound|%d||.upstream_rq_completed", h.v1.port)
	if v := h.server.srv.Stats().CounterValue(inbound); v != int64(got["v1"]) {
		t.Errorf("hello-v1's sidecar forwarded %d requests to its app (%s), want the %d that reached v1", v, inbound, got["v1"])
	}
}

// TestHeaderMatchToSubset: x-canary: yes always reaches subset v2; short
// names resolve as Istio's do (hello, hello.default, with and without the
// port).
func TestHeaderMatchToSubset(t *testing.T) {
	h := startHello(t, 100, 0)
	c := h.client.client()
	if got := count(t, c, h.routeURL, 100, "x-canary", "yes"); got["v2"] != 100 {
		t.Fatalf("x-canary: yes: %v, want all 100 on v2", got)
	}
	for _, u := range []string{h.routeURL, "http://hello:8080/", "http://hello.default:8080/", "http://hello.default.svc:8080/"} {
		if got := count(t, c, u, 20); got["v1"] != 20 {
			t.Fatalf("%s without the header: %v, want all 20 on v1 (weight 100)", u, got)
		}
	}
	code, _, err := get(c, "http://nobody.default.svc.cluster.local:8080/")
	if err != nil || code != 404 {
		t.Fatalf("unknown host: %d %v, want 404 (no route)", code, err)
	}
}

var weight50 = regexp.MustCompile(`"weight":\s*50\b`)

// TestWeightChangeUnderLoad: rewriting the VirtualService from 90/10 to
// 50/50 reaches the client sidecar within 2 s of the file write, and not
// one request fails while load runs across the change.
func TestWeightChangeUnderLoad(t *testing.T) {
	h := startHello(t, 90, 10)
	c := h.client.client()

	type result struct {
		at   time.Time
		body string
		err  error
	}
	var (
		mu      sync.Mutex
		results []result
	)
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				code, body, err := get(c, h.routeURL)
				if err == nil && code != 200 {
					err = fmt.Errorf("status %d: %q", code, body)
				}
				mu.Lock()
				results = append(results, result{time.Now(), body, err})
				mu.Unlock()
			}
		}()
	}
	n := func() int { mu.Lock(); defer mu.Unlock(); return len(results) }
	waitFor(t, "load running", 10*time.Second, func() bool { return n() >= 200 })

	written := time.Now()
	h.cp.write("hello-vs.yaml", helloRoutes(50, 50))
	took := waitFor(t, "50/50 in the client sidecar's routes", 2*time.Second, func() bool {
		return weight50.MatchString(h.client.admin("/config_dump?resource=dynamic_route_configs"))
	})
	applied := time.Now()
	t.Logf("50/50 in the client sidecar %v after the file write", took.Round(time.Millisecond))
	before := n()
	waitFor(t, "load after the change", 30*time.Second, func() bool { return n() >= before+1000 })
	stop()
	wg.Wait()

	var failed []string
	after := map[string]int{}
	for _, r := range results {
		if r.err != nil {
			failed = append(failed, r.err.Error())
			continue
		}
		if r.at.After(applied) {
			after[r.body]++
		}
	}
	if len(failed) > 0 {
		t.Fatalf("%d of %d requests failed across the change (first: %s)", len(failed), len(results), failed[0])
	}
	total := after["v1"] + after["v2"]
	lo, hi := binomialBound(total, 0.5)
	if after["v2"] < lo || after["v2"] > hi {
		t.Fatalf("after the change: %v; want v2 in [%d, %d] of %d (±5σ)", after, lo, hi, total)
	}
	t.Logf("%d requests, none failed; after the change %v (v2 band [%d, %d]); change written at %s", len(results), after, lo, hi, written.Format(time.StampMilli))
}
