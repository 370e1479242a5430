package dashboard

import (
	"context"
	"io"
	"log/slog"
	"math"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/dashboard/dashboardtest"
	"github.com/weftmesh/weft/internal/model"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// meshSeries is a sleep → hello call as both sidecars report it: 20
// requests per second answered 200 and 5 answered 503, every request
// between 25 and 50 ms.
func meshSeries(reporter string) []dashboardtest.Series {
	base := dashboardtest.Series{
		Reporter: reporter, SourceWorkload: "sleep", SourceNamespace: "default",
		DestinationWorkload: "hello-v1", DestinationNamespace: "default",
		DestinationService: "hello.default.svc.cluster.local", DurationMs: 40,
	}
	ok, failed := base, base
	ok.ResponseCode, ok.Requests = 200, 20
	failed.ResponseCode, failed.Requests = 503, 5
	return []dashboardtest.Series{ok, failed}
}

func startMetrics(t *testing.T, series []dashboardtest.Series, timestamps bool) *dashboardtest.Server {
	t.Helper()
	s, err := dashboardtest.NewServer(series, timestamps)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// waitRound waits until the collector published round n (or fails at the
// deadline).
func waitRound(t *testing.T, c *collector, n uint64, deadline time.Duration) *traffic {
	t.Helper()
	timeout := time.After(deadline)
	for {
		next := c.changed.wait()
		if tr := c.cur.Load(); tr.round >= n {
			return tr
		}
		select {
		case <-next:
		case <-timeout:
			t.Fatalf("round %d not reached in %v (at %d)", n, deadline, c.cur.Load().round)
		}
	}
}

// TestCollectorScrapesProxies: real metrics endpoints on loopback, found
// through node metadata WEFT_METRICS_ADDRESS or IP:port; the collector
// turns their growing counters into the exact rates they grow at.
func TestCollectorScrapesProxies(t *testing.T) {
	client := startMetrics(t, meshSeries("source"), false)     // as Envoy: no timestamps
	server := startMetrics(t, meshSeries("destination"), true) // timestamped samples
	_, port, _ := net.SplitHostPort(server.Addr())
	portN, _ := strconv.Atoi(port)
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := dead.Addr().String()
	dead.Close() // nothing listens there any more: connection refused

	proxies := []*model.Proxy{
		{ID: "sidecar~10.0.0.1~sleep-1.default~default.svc.cluster.local", IPs: []string{"10.0.0.1"}, Metadata: map[string]string{MetaMetricsAddress: client.Addr()}},
		// Scraped at its IP and the configured port.
		{ID: "sidecar~127.0.0.1~hello-v1-1.default~default.svc.cluster.local", IPs: []string{"127.0.0.1"}},
		{ID: "sidecar~10.0.0.9~gone-1.default~default.svc.cluster.local", IPs: []string{"10.0.0.9"}, Metadata: map[string]string{MetaMetricsAddress: deadAddr}},
		// Proxyless gRPC clients have no Envoy stats: not scraped.
		{ID: "sidecar~10.0.0.3~grpc-1.default~default.svc.cluster.local", IPs: []string{"10.0.0.3"}, Proxyless: true},
	}
	c := newCollector(ScrapeOptions{Interval: 50 * time.Millisecond, Timeout: 5 * time.Second, Window: time.Minute, Port: portN}, func() []*model.Proxy { return proxies }, quiet)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	// Ten rounds: about half a second between the first and last scrape.
	tr := waitRound(t, c, 10, 10*time.Second)
	if len(tr.targets) != 3 {
		t.Fatalf("targets %+v, want 3 (proxyless skipped)", tr.targets)
	}
	for _, ts := range tr.targets {
		failed := strings.Contains(ts.Proxy, "gone-1")
		if failed != (ts.Error != "") || (!failed && ts.Flows != 1) {
			t.Errorf("target %+v", ts)
		}
	}
	// Sorted by id: the IP-addressed proxy is last.
	if want := "http://127.0.0.1:" + port + "/stats/prometheus"; tr.targets[2].URL != want {
		t.Errorf("IP target URL %s, want %s", tr.targets[2].URL, want)
	}
	for _, tt := range []struct {
		reporter string
		// tolerance: without timestamps the scraper's clock adds, at each
		// end of a ≥0.4 s span, the delay between a scrape's start and
		// the endpoint's rendering; 5 % covers it. With timestamps the
		// rate is exact but for float rounding.
		tolerance float64
	}{{"source", 0.05}, {"destination", 1e-6}} {
		reporter := tt.reporter
		k := flowKey{Reporter: reporter, SrcWorkload: "sleep", SrcNamespace: "default", DstService: "hello.default.svc.cluster.local", DstWorkload: "hello-v1", DstNamespace: "default"}
		f := tr.flows[k]
		if f == nil {
			t.Fatalf("no %s flow in %v", reporter, tr.flows)
		}
		if math.Abs(f.rps-25)/25 > tt.tolerance || math.Abs(f.eps-5)/5 > tt.tolerance {
			t.Errorf("%s: rps %.6f eps %.6f, want 25 and 5 (±%v)", reporter, f.rps, f.eps, tt.tolerance)
		}
		// Every request in (25, 50] ms: p99 interpolates to 49.75 ms
		// whatever the rate.
		if q, ok := quantile(0.99, f.buckets); !ok || math.Abs(q-49.75) > 1e-6 {
			t.Errorf("%s: p99 %v (%v), want 49.75", reporter, q, ok)
		}
	}
}

// TestCollectorForgetsGoneProxies: a proxy that disconnects leaves the
// targets and its history is dropped.
func TestCollectorForgetsGoneProxies(t *testing.T) {
	srv := startMetrics(t, meshSeries("source"), false)
	p := &model.Proxy{ID: "sidecar~10.0.0.1~sleep-1.default~d", IPs: []string{"10.0.0.1"}, Metadata: map[string]string{MetaMetricsAddress: srv.Addr()}}
	list := []*model.Proxy{p}
	c := newCollector(ScrapeOptions{Interval: time.Hour}, func() []*model.Proxy { return list }, quiet)
	ctx := context.Background()
	c.round(ctx)
	c.round(ctx)
	if tr := c.cur.Load(); tr.round != 2 || len(tr.targets) != 1 || len(c.hist) != 1 || len(tr.flows) != 1 {
		t.Fatalf("round %d, %d targets, %d histories, %d flows", tr.round, len(tr.targets), len(c.hist), len(tr.flows))
	}
	list = nil
	c.round(ctx)
	if tr := c.cur.Load(); len(tr.targets) != 0 || len(c.hist) != 0 || len(tr.flows) != 0 {
		t.Fatalf("after disconnect: %d targets, %d histories, %d flows", len(tr.targets), len(c.hist), len(tr.flows))
	}
	if srv.Hits() != 2 {
		t.Fatalf("%d scrapes, want 2", srv.Hits())
	}
}

// TestMetricsAddr: the node metadata's address wins; an unspecified host
// there (a sidecar's metrics listener on 0.0.0.0 or [::]) is reached at
// the proxy's IP; without metadata, the proxy's IP and the default port.
func TestMetricsAddr(t *testing.T) {
	for _, tt := range []struct {
		meta, ip, want string
	}{
		{"", "10.0.0.7", "10.0.0.7:15090"},
		{"", "fd00::7", "[fd00::7]:15090"},
		{"", "", ""},
		{"127.0.62.2:15090", "10.0.0.7", "127.0.62.2:15090"},
		{"0.0.0.0:15090", "10.0.0.7", "10.0.0.7:15090"},
		{"[::]:15090", "fd00::7", "[fd00::7]:15090"},
		{":15090", "10.0.0.7", "10.0.0.7:15090"},
		{"0.0.0.0:15090", "", "0.0.0.0:15090"},
		{"metrics.local:9090", "10.0.0.7", "metrics.local:9090"},
	} {
		if got := metricsAddr(tt.meta, tt.ip, DefaultMetricsPort); got != tt.want {
			t.Errorf("metricsAddr(%q, %q) = %q, want %q", tt.meta, tt.ip, got, tt.want)
		}
	}
}
