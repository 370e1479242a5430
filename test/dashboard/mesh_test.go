// Package dashboard tests weft-control's dashboard in a real headless
// Chromium, the page driven through the Chrome DevTools protocol: with a
// control plane running in process over a small mesh and fake proxies
// connected over ADS whose Istio metrics endpoints are loopback servers in
// Istio's format (exact numbers: TestDashboardInBrowser), and with a real
// mesh — weft-control with its CA, weft-proxy sidecars with mTLS and
// their own metrics listeners, applications and a steady load
// (TestDashboardRealMesh, which also takes docs/dashboard-*.png).
package dashboard

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/controlplane"
	dash "github.com/weftmesh/weft/internal/dashboard"
	"github.com/weftmesh/weft/internal/dashboard/dashboardtest"
	"github.com/weftmesh/weft/internal/meshtest"
	"github.com/weftmesh/weft/internal/xds/xdstest"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// meshConfig is the hello service of examples/mesh (two versions, subsets,
// a weighted VirtualService) plus a VirtualService that is rejected, so
// that the page has a configuration problem to show.
func meshConfig() string {
	s := helloService(meshtest.Workload{Address: "127.0.0.4", Port: 8081}, meshtest.Workload{Address: "127.0.0.5", Port: 8082}, false)
	return s.YAML() + "---\n" + s.VirtualServiceYAML("hello",
		meshtest.Route{Header: "x-canary", To: []meshtest.Destination{{Subset: "v2"}}},
		meshtest.Route{To: []meshtest.Destination{{Subset: "v1", Weight: 90}, {Subset: "v2", Weight: 10}}},
	) + "---\n" + brokenRoute(s)
}

// startControlPlane runs weft-control over meshConfig with a fast scrape.
func startControlPlane(t *testing.T) *controlplane.ControlPlane {
	t.Helper()
	return runControlPlane(t, controlplane.Options{
		Dashboard: dash.ScrapeOptions{Interval: 250 * time.Millisecond, Window: 5 * time.Second, Timeout: 5 * time.Second},
	}, map[string]string{"hello.yaml": meshConfig()})
}

// fakeProxy is a proxy connected over ADS (ACKing like Envoy) whose
// metrics endpoint serves series.
type fakeProxy struct {
	id      string
	metrics *dashboardtest.Server
}

// connectProxy connects a sidecar for workload name at ip, its metrics
// endpoint announced in node metadata WEFT_METRICS_ADDRESS, and waits
// until it has its configuration.
func connectProxy(t *testing.T, cp *controlplane.ControlPlane, name, ip string, labels map[string]string, series []dashboardtest.Series) *fakeProxy {
	t.Helper()
	// Timestamped samples: the rates the page shows are exact.
	m, err := dashboardtest.NewServer(series, true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	id := "sidecar~" + ip + "~" + name + "-1.default~default.svc.cluster.local"
	node := xdstest.NodeFor(id, labels, map[string]string{
		"NAMESPACE": "default", "WORKLOAD_NAME": name, dash.MetaMetricsAddress: m.Addr(),
		// Outbound listener on a free port: several sidecars on one machine.
		"HTTP_PROXY_PORT": "0",
	})
	ads, err := xdstest.NewADS(xdstest.Options{Address: cp.XDSAddr().String(), Node: node})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ads.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := ads.WaitSynced(ctx); err != nil {
		t.Fatalf("proxy %s: %v", name, err)
	}
	return &fakeProxy{id: id, metrics: m}
}

// call is a sleep → hello request series as a reporter saw it.
func call(reporter, src, dst string, code int, rps, ms float64) dashboardtest.Series {
	srcNS := "default"
	if src == "unknown" {
		srcNS = "unknown"
	}
	return dashboardtest.Series{
		Reporter: reporter, SourceWorkload: src, SourceNamespace: srcNS,
		DestinationWorkload: dst, DestinationNamespace: "default",
		DestinationService: "hello.default.svc.cluster.local", ResponseCode: code, Requests: rps, DurationMs: ms,
	}
}
