package dashboard

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/weftmesh/weft/internal/dashboard/dashboardtest"
)

// updateScreenshots rewrites the screenshots in docs/ from the real mesh:
// go test ./test/dashboard -run TestDashboardRealMesh -update-screenshots
var updateScreenshots = flag.Bool("update-screenshots", false, "write docs/dashboard-laptop.png and docs/dashboard-phone.png")

const helloSvc = "service:hello.default.svc.cluster.local"

// pageState is what the test reads from the rendered page.
type pageState struct {
	Nodes    []string          `json:"nodes"`
	Labels   map[string]string `json:"labels"`
	Service  string            `json:"service"`
	Proxies  []string          `json:"proxies"`
	Problems string            `json:"problems"`
	Live     string            `json:"live"`
}

// readPage collects the graph's nodes, the edge labels, the hello
// service's card, the proxies' states and the problems.
const readPage = `(() => {
  const labels = {};
  document.querySelectorAll('g.edge').forEach(e => {
    const t = e.querySelector('text');
    labels[e.dataset.from + ' -> ' + e.dataset.to] = t ? t.textContent : '';
  });
  const card = document.querySelector('.svc[data-host="hello.default.svc.cluster.local"]');
  return {
    nodes: Array.from(document.querySelectorAll('g.node')).map(n => n.dataset.id),
    labels,
    service: card ? card.innerText : '',
    proxies: Array.from(document.querySelectorAll('#proxies tbody tr')).map(r => r.cells[0].innerText + ' ' + r.cells[2].innerText),
    problems: document.getElementById('problems').innerText,
    live: document.getElementById('live').innerText,
  };
})()`

// waitEdge polls until an edge shows a rate within 1 % of want (the fake
// proxies' counters grow at exactly their set rates and carry
// timestamps, so the rates are exact but for rounding).
func waitEdge(from, to string, want float64) string {
	return `(() => {
  const e = document.querySelector('g.edge[data-from="` + from + `"][data-to="` + to + `"]');
  if (!e || !e.querySelector('text')) return false;
  const r = parseFloat(e.dataset.rps);
  return Math.abs(r - ` + ftoa(want) + `) / ` + ftoa(want) + ` <= 0.01;
})()`
}

func ftoa(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }

// TestDashboardInBrowser: weft-control with a small mesh and three
// connected proxies serves the dashboard; headless Chromium shows the
// graph's nodes and edges with the rates, error rates and p99 the proxies'
// metrics imply, the service's configuration, the proxies' sync state and
// the configuration problem, on a laptop and on a phone screen.
func TestDashboardInBrowser(t *testing.T) {
	chromium := ensureChromium(t)
	cp := startControlPlane(t)
	// sleep calls hello: 18 rps to v1 (plus 0.4 rps failing with 503), 2
	// rps to v2; each hello sidecar reports what it received, hello-v1
	// also 1 rps from outside the mesh.
	connectProxy(t, cp, "sleep", "127.0.0.3", map[string]string{"app": "sleep"}, []dashboardtest.Series{
		call("source", "sleep", "hello-v1", 200, 18, 40),
		call("source", "sleep", "hello-v1", 503, 0.4, 40),
		call("source", "sleep", "hello-v2", 200, 2, 20),
	})
	connectProxy(t, cp, "hello-v1", "127.0.0.4", map[string]string{"app": "hello", "version": "v1"}, []dashboardtest.Series{
		call("destination", "sleep", "hello-v1", 200, 18, 38),
		call("destination", "sleep", "hello-v1", 503, 0.4, 38),
		call("destination", "unknown", "hello-v1", 200, 1, 3),
	})
	connectProxy(t, cp, "hello-v2", "127.0.0.5", map[string]string{"app": "hello", "version": "v2"}, []dashboardtest.Series{
		call("destination", "sleep", "hello-v2", 200, 2, 18),
	})

	ctx := newBrowser(t, chromium)
	tctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	url := "http://" + cp.HTTPAddr().String() + "/dashboard/"
	poll := func(expr string) error {
		_, err := chromedp.Run(tctx, chromedp.Poll[bool](expr, chromedp.WithPollingInterval(100*time.Millisecond), chromedp.WithPollingTimeout(30*time.Second)))
		return err
	}
	start := time.Now()
	if err := chromedp.Do(tctx, chromedp.EmulateViewport(1280, 800), chromedp.Navigate(url)); err != nil {
		t.Fatal(err)
	}
	// Rates: sleep → hello 20.4 rps; hello → v1 19.4 (18.4 from sleep, 1
	// from outside); hello → v2 2.
	for _, e := range []struct {
		from, to string
		rps      float64
	}{
		{"workload:default/sleep", helloSvc, 20.4},
		{helloSvc, "workload:default/hello-v1", 19.4},
		{helloSvc, "workload:default/hello-v2", 2},
		{"unknown", helloSvc, 1},
	} {
		if err := poll(waitEdge(e.from, e.to, e.rps)); err != nil {
			st, _ := chromedp.Run(tctx, chromedp.Evaluate[pageState](readPage))
			t.Fatalf("edge %s → %s at %v rps: %v\npage: %+v", e.from, e.to, e.rps, err, st)
		}
	}
	// Every proxy ACKed its configuration.
	if err := poll(`document.querySelectorAll('#proxies tbody tr').length === 3 && Array.from(document.querySelectorAll('#proxies tbody tr')).every(r => r.cells[2].innerText === 'SYNCED')`); err != nil {
		t.Fatalf("proxies not shown SYNCED: %v", err)
	}
	st, err := chromedp.Run(tctx, chromedp.Evaluate[pageState](readPage))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("graph shown in %v", time.Since(start).Round(time.Millisecond))
	wantNodes := []string{helloSvc, "unknown", "workload:default/hello-v1", "workload:default/hello-v2", "workload:default/sleep"}
	for _, n := range wantNodes {
		if !slices.Contains(st.Nodes, n) {
			t.Errorf("graph lacks node %s: %v", n, st.Nodes)
		}
	}
	// Error rate 0.4/20.4 = 1.96 %; p99 of 18.4 rps in (25, 50] ms and 2
	// in (10, 25] ms interpolates to 49.7 ms; of 2 rps in (10, 25] to
	// 24.85 ms; of 1 rps in (1, 5] to 4.96 ms.
	labels := map[string]string{
		"workload:default/sleep -> " + helloSvc:    "20.4 rps · 2.0% err · p99 50 ms",
		helloSvc + " -> workload:default/hello-v1": "19.4 rps · 2.1% err · p99 50 ms",
		helloSvc + " -> workload:default/hello-v2": "2.00 rps · 0% err · p99 25 ms",
		"unknown -> " + helloSvc:                   "1.00 rps · 0% err · p99 5.0 ms",
	}
	for edge, want := range labels {
		if st.Labels[edge] != want {
			t.Errorf("edge %s label %q, want %q", edge, st.Labels[edge], want)
		}
	}
	for _, w := range []string{"127.0.0.4", "127.0.0.5", "VirtualService default/hello", "http[1]: hello.default.svc.cluster.local subset v1 90%",
		"DestinationRule default/hello", "v1 {version=v1} · 1 endpoint", "HEALTHY", "SYNCED"} {
		if !strings.Contains(st.Service, w) {
			t.Errorf("hello's card lacks %q:\n%s", w, st.Service)
		}
	}
	for _, w := range []string{"sleep-1.default SYNCED", "hello-v1-1.default SYNCED", "hello-v2-1.default SYNCED"} {
		if !slices.Contains(st.Proxies, w) {
			t.Errorf("proxy table %q lacks %q", st.Proxies, w)
		}
	}
	if !strings.Contains(st.Problems, "VirtualService default/broken") || !strings.Contains(st.Live, "live") {
		t.Errorf("problems %q, live %q", st.Problems, st.Live)
	}
	shot(t, tctx, "dashboard-laptop.png", chromedp.FullScreenshot(100), false)

	// Clicking a workload brings up the card of the service it serves.
	if _, err := chromedp.Run(tctx, chromedp.Evaluate[bool](`document.querySelector('g.node[data-id="workload:default/hello-v2"]').dispatchEvent(new MouseEvent('click', {bubbles: true}))`)); err != nil {
		t.Fatal(err)
	}
	if err := poll(`(document.querySelector('.svc.focus') || {}).dataset?.host === 'hello.default.svc.cluster.local'`); err != nil {
		t.Fatalf("clicking hello-v2 did not focus hello's card: %v", err)
	}

	// A phone: the graph turns vertical to fit, nothing overflows the
	// screen's width.
	if err := chromedp.Do(tctx, chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2), chromedp.EmulateMobile, chromedp.EmulateTouch)); err != nil {
		t.Fatal(err)
	}
	if err := poll(`(() => { const s = document.querySelector('#graph svg'); if (!s) return false;
	  const vb = s.viewBox.baseVal; return vb.height > vb.width && document.documentElement.scrollWidth <= window.innerWidth + 1; })()`); err != nil {
		w, _ := chromedp.Run(tctx, chromedp.Evaluate[[]float64](`[document.documentElement.scrollWidth, window.innerWidth]`))
		t.Fatalf("phone layout: %v (scroll width, viewport width: %v)", err, w)
	}
	if err := poll(waitEdge("workload:default/sleep", helloSvc, 20.4)); err != nil {
		t.Fatalf("phone: edge: %v", err)
	}
	shot(t, tctx, "dashboard-phone.png", chromedp.CaptureScreenshot(), false)
}

// shot takes a screenshot, checks it is a PNG and, when docs is set (the
// real mesh's screenshots), writes it to docs/ with -update-screenshots.
func shot(t *testing.T, ctx context.Context, name string, a chromedp.Action[[]byte], docs bool) {
	t.Helper()
	b, err := chromedp.Run(ctx, a)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if !bytes.HasPrefix(b, []byte("\x89PNG\r\n\x1a\n")) || len(b) < 10_000 {
		t.Fatalf("%s: not a PNG of a rendered page (%d bytes)", name, len(b))
	}
	if docs && *updateScreenshots {
		path := filepath.Join("..", "..", "docs", name)
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s (%d KiB)", path, len(b)/1024)
	}
}
