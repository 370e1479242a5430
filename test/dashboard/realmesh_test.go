package dashboard

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/weftmesh/weft/internal/ca"
	"github.com/weftmesh/weft/internal/controlplane"
	dash "github.com/weftmesh/weft/internal/dashboard"
	"github.com/weftmesh/weft/internal/meshtest"
)

// realMesh is hello (HTTP, port 8080) with workloads hello-v1 and hello-v2
// (apps on ports v1, v2) behind sidecars with certificates: requests with
// x-canary go to v2, requests with x-fail are aborted with 503 by a fault
// in the caller's sidecar, the rest go to v1. The VirtualService broken is
// rejected (a configuration problem for the page to show).
func realMesh(v1, v2 int) string {
	s := helloService(meshtest.Workload{Address: "127.0.62.2", Port: v1}, meshtest.Workload{Address: "127.0.62.3", Port: v2}, true)
	return s.YAML() + "---\n" + s.VirtualServiceYAML("hello",
		meshtest.Route{Header: "x-fail", AbortStatus: 503, To: []meshtest.Destination{{Subset: "v1"}}},
		meshtest.Route{Header: "x-canary", To: []meshtest.Destination{{Subset: "v2"}}},
		meshtest.Route{To: []meshtest.Destination{{Subset: "v1"}}},
	) + "---\n" + brokenRoute(s)
}

// The generated load: sleep sends loadRPS requests per second to hello,
// one in ten with x-fail (aborted: 503) and one in ten with x-canary (to
// v2); a client outside the mesh sends outsideEvery-th tick a plain-text
// request straight to hello-v1's inbound listener.
const (
	loadRPS      = 20
	outsideEvery = 20 // 1 rps
	// window is the dashboard's rate window; the rates are compared once
	// the load has run for longer.
	window = 3 * time.Second
)

// load is a steady request generator: a request per tick, each in its own
// goroutine so that a slow response does not slow the pace.
type load struct {
	ticks    atomic.Int64
	ok, fail atomic.Int64
	// unexpected counts responses other than the planned ones (200 from
	// v1 or v2, 503 for x-fail); the last one is kept.
	unexpected atomic.Int64
	last       atomic.Value // string
	started    time.Time
	wg         sync.WaitGroup
}

// startLoad runs the load until the test ends.
func startLoad(t *testing.T, sleep *http.Client, outside string) *load {
	l := &load{started: time.Now()}
	ctx, cancel := context.WithCancel(context.Background())
	direct := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: nil}}
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		tick := time.NewTicker(time.Second / loadRPS)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			l.ticks.Add(1)
			hdr, want := "", "v1"
			switch i % 10 {
			case 3:
				hdr, want = "x-fail", ""
			case 7:
				hdr, want = "x-canary", "v2"
			}
			l.wg.Add(1)
			go func() {
				defer l.wg.Done()
				l.send(ctx, sleep, "http://hello.default.svc.cluster.local:8080/", hdr, want)
			}()
			if i%outsideEvery == 0 {
				l.wg.Add(1)
				go func() { defer l.wg.Done(); l.send(ctx, direct, "http://"+outside+"/", "", "v1") }()
			}
		}
	}()
	t.Cleanup(func() { cancel(); l.wg.Wait() })
	return l
}

// send makes one request; want is the body expected ("" for a 503).
func (l *load) send(ctx context.Context, c *http.Client, url, hdr, want string) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if hdr != "" {
		req.Header.Set(hdr, "yes")
	}
	code, body, err := do(c, req)
	switch {
	case ctx.Err() != nil:
	case err == nil && want == "" && code == 503:
		l.fail.Add(1)
	case err == nil && code == 200 && body == want:
		l.ok.Add(1)
	default:
		l.unexpected.Add(1)
		l.last.Store(fmt.Sprintf("%s %s: %d %q %v", url, hdr, code, body, err))
	}
}

func do(c *http.Client, req *http.Request) (int, string, error) {
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// shownEdge is an edge as the page renders it.
type shownEdge struct {
	From  string  `json:"from"`
	To    string  `json:"to"`
	RPS   float64 `json:"rps"`
	Err   float64 `json:"err"`
	Label string  `json:"label"`
}

const readEdges = `Array.from(document.querySelectorAll('g.edge')).map(e => ({
  from: e.dataset.from, to: e.dataset.to, rps: parseFloat(e.dataset.rps),
  err: parseFloat(e.dataset.errorRate), label: (e.querySelector('text') || {}).textContent || ''}))`

// p99Label reads the p99 from an edge label ("… · p99 3.2 ms").
var p99Label = regexp.MustCompile(`p99 ([0-9.]+) (ms|s)$`)

// TestDashboardRealMesh: weft-control with its CA, three weft-proxy
// sidecars with mTLS and Istio metrics listeners on their own loopback
// IPs, net/http applications and a steady load; headless Chromium shows
// the workloads and the service, edges whose rates match the generated
// load, the error rate the fault causes, a p99, and the proxies SYNCED.
// With -update-screenshots it refreshes docs/dashboard-*.png.
func TestDashboardRealMesh(t *testing.T) {
	chromium := ensureChromium(t)
	v1, v2 := startHello(t, "v1"), startHello(t, "v2")
	cp := runControlPlane(t, controlplane.Options{
		Debounce:      50 * time.Millisecond,
		SecureAddress: "127.0.0.1:0",
		CA:            ca.Options{Dir: t.TempDir(), Logger: quiet},
		Dashboard:     dash.ScrapeOptions{Interval: 250 * time.Millisecond, Window: window, Timeout: 2 * time.Second},
	}, map[string]string{"hello.yaml": realMesh(v1, v2)})
	startRealSidecar(t, cp, sidecarOptions{Name: "hello-v1", IP: "127.0.62.2", ServiceAccount: "hello", Labels: map[string]string{"app": "hello", "version": "v1"}})
	startRealSidecar(t, cp, sidecarOptions{Name: "hello-v2", IP: "127.0.62.3", ServiceAccount: "hello", Labels: map[string]string{"app": "hello", "version": "v2"}})
	sleep := startRealSidecar(t, cp, sidecarOptions{Name: "sleep", IP: "127.0.62.4", ServiceAccount: "sleep", Labels: map[string]string{"app": "sleep", "version": "v1"}})
	c := sleep.Client()
	waitUntil(t, "sleep reaches hello-v1 and hello-v2 over mTLS", 10*time.Second, func() bool {
		r1, _ := http.NewRequest(http.MethodGet, "http://hello.default.svc.cluster.local:8080/", nil)
		r2, _ := http.NewRequest(http.MethodGet, "http://hello.default.svc.cluster.local:8080/", nil)
		r2.Header.Set("x-canary", "yes")
		_, b1, e1 := do(c, r1)
		_, b2, e2 := do(c, r2)
		return e1 == nil && e2 == nil && b1 == "v1" && b2 == "v2"
	})
	ld := startLoad(t, c, "127.0.62.2:"+strconv.Itoa(v1))

	ctx := newBrowser(t, chromium)
	tctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if err := chromedp.Do(tctx, chromedp.EmulateViewport(1280, 800), chromedp.Navigate("http://"+cp.HTTPAddr().String()+"/dashboard/")); err != nil {
		t.Fatal(err)
	}
	// Rates are compared once the window holds load only (plus a scrape
	// interval); the load's ticks are the clock.
	waitUntil(t, "the load to run for the rate window", 2*window+5*time.Second, func() bool {
		return ld.ticks.Load() >= int64((window+time.Second).Seconds()*loadRPS)
	})

	// Expected rates, from the load's plan: sleep → hello 20 rps with 10 %
	// errors (the fault's 503s, which never leave sleep's sidecar);
	// hello → v1 16 rps from sleep plus 1 from outside; hello → v2 2 rps;
	// outside (unknown) → hello 1 rps.
	//
	// Tolerance: 15 % of the rate. The rate over a 3 s window is off by
	// at most a request or two at the window's ends (±1 request of 60 is
	// 1.7 %), and a scrape's timestamp is its start, not the instant the
	// counters were read (a few ms of 3 s); the rest of the margin is for
	// a loaded machine delaying ticks. The error rate: 10 % ± 3 points
	// (one request in ten fails, so any run of n requests holds n/10 ± 1
	// failures: ±1.7 points over 60).
	want := []struct {
		from, to string
		rps, err float64
	}{
		{"workload:default/sleep", helloSvc, loadRPS, 0.1},
		{helloSvc, "workload:default/hello-v1", loadRPS*0.8 + loadRPS/outsideEvery, 0},
		{helloSvc, "workload:default/hello-v2", loadRPS * 0.1, 0},
		{"unknown", helloSvc, loadRPS / outsideEvery, 0},
	}
	var edges []shownEdge
	var mismatch string
	err := pollUntil(tctx, 20*time.Second, func() (bool, error) {
		var err error
		edges, err = chromedp.Run(tctx, chromedp.Evaluate[[]shownEdge](readEdges))
		if err != nil {
			return false, err
		}
		mismatch = ""
		for _, w := range want {
			i := slices.IndexFunc(edges, func(e shownEdge) bool { return e.From == w.from && e.To == w.to })
			if i < 0 {
				mismatch = fmt.Sprintf("no edge %s → %s", w.from, w.to)
				return false, nil
			}
			e := edges[i]
			if math.Abs(e.RPS-w.rps) > 0.15*w.rps || math.Abs(e.Err-w.err) > 0.03 || !p99Label.MatchString(e.Label) {
				mismatch = fmt.Sprintf("edge %s → %s: %.2f rps, error rate %.3f, label %q; want %.2f rps ± 15 %%, error rate %.2f ± 0.03, a p99",
					w.from, w.to, e.RPS, e.Err, e.Label, w.rps, w.err)
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		st, _ := chromedp.Run(tctx, chromedp.Evaluate[pageState](readPage))
		// What the sidecars expose, to tell a dashboard fault from a
		// metrics one.
		for _, a := range []string{"127.0.62.2:15090", "127.0.62.3:15090", "127.0.62.4:15090"} {
			t.Logf("%s: %s", a, istioRequests(a))
		}
		t.Fatalf("%v: %s\nedges: %+v\npage: %+v", err, mismatch, edges, st)
	}
	for _, e := range edges {
		t.Logf("edge %s → %s: %s", e.From, e.To, e.Label)
		// Loopback requests take milliseconds; a p99 of seconds would
		// mean the histogram is read wrong.
		if m := p99Label.FindStringSubmatch(e.Label); m != nil && m[2] != "ms" {
			t.Errorf("edge %s → %s: p99 %s %s, want milliseconds", e.From, e.To, m[1], m[2])
		}
	}
	if n := ld.unexpected.Load(); n > 0 {
		t.Errorf("%d unexpected responses, last %v", n, ld.last.Load())
	}
	elapsed := time.Since(ld.started).Seconds()
	t.Logf("load: %d ticks in %.1f s (%.1f per second), %d ok, %d aborted", ld.ticks.Load(), elapsed, float64(ld.ticks.Load())/elapsed, ld.ok.Load(), ld.fail.Load())

	if err := pollUntil(tctx, 10*time.Second, func() (bool, error) {
		st, err := chromedp.Run(tctx, chromedp.Evaluate[pageState](readPage))
		return err == nil && len(st.Proxies) == 3 && !slices.ContainsFunc(st.Proxies, func(p string) bool { return !strings.HasSuffix(p, " SYNCED") }), err
	}); err != nil {
		t.Fatalf("proxies not shown SYNCED: %v", err)
	}
	st, err := chromedp.Run(tctx, chromedp.Evaluate[pageState](readPage))
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{helloSvc, "unknown", "workload:default/hello-v1", "workload:default/hello-v2", "workload:default/sleep"} {
		if !slices.Contains(st.Nodes, n) {
			t.Errorf("graph lacks node %s: %v", n, st.Nodes)
		}
	}
	if len(st.Nodes) != 5 {
		t.Errorf("graph nodes %v, want exactly the five above", st.Nodes)
	}
	for _, w := range []string{"sleep.default SYNCED", "hello-v1.default SYNCED", "hello-v2.default SYNCED"} {
		if !slices.Contains(st.Proxies, w) {
			t.Errorf("proxy table %q lacks %q", st.Proxies, w)
		}
	}
	for _, w := range []string{"127.0.62.2", "127.0.62.3", "VirtualService default/hello", "DestinationRule default/hello", "HEALTHY"} {
		if !strings.Contains(st.Service, w) {
			t.Errorf("hello's card lacks %q:\n%s", w, st.Service)
		}
	}
	if !strings.Contains(st.Problems, "VirtualService default/broken") {
		t.Errorf("problems %q lack the rejected VirtualService", st.Problems)
	}
	shot(t, tctx, "dashboard-laptop.png", chromedp.FullScreenshot(100), true)

	if err := chromedp.Do(tctx, chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2), chromedp.EmulateMobile, chromedp.EmulateTouch)); err != nil {
		t.Fatal(err)
	}
	if err := pollUntil(tctx, 10*time.Second, func() (bool, error) {
		return chromedp.Run(tctx, chromedp.Evaluate[bool](`(() => { const s = document.querySelector('#graph svg'); if (!s) return false;
	  const vb = s.viewBox.baseVal; return vb.height > vb.width && document.documentElement.scrollWidth <= window.innerWidth + 1; })()`))
	}); err != nil {
		t.Fatalf("phone layout: %v", err)
	}
	shot(t, tctx, "dashboard-phone.png", chromedp.CaptureScreenshot(), true)
}

// istioRequests is the istio_requests_total lines a metrics endpoint
// serves (or why it could not be read).
func istioRequests(addr string) string {
	resp, err := http.Get("http://" + addr + "/stats/prometheus")
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err.Error()
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "istio_requests_total") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// pollUntil evaluates cond every 100 ms until it holds, fails, or within
// passes.
func pollUntil(ctx context.Context, within time.Duration, cond func() (bool, error)) error {
	deadline := time.Now().Add(within)
	for {
		ok, err := cond()
		if err != nil || ok {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not within %v", within)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond): // polling a condition with a deadline
		}
	}
}

// waitUntil polls cond until it holds, failing the test after within.
func waitUntil(t *testing.T, what string, within time.Duration, cond func() bool) {
	t.Helper()
	if err := pollUntil(context.Background(), within, func() (bool, error) { return cond(), nil }); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}
