package xds

import (
	"bufio"
	"context"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/model"
	"github.com/weftmesh/weft/internal/xds/xdstest"
)

// scrape reads /metrics into series → value ("name{labels}" as printed).
func scrape(t *testing.T, s *Server) map[string]float64 {
	t.Helper()
	code, body := get(t, s.MetricsHandler(), MetricsPath)
	if code != http.StatusOK {
		t.Fatalf("metrics: %d\n%s", code, body)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out
}

// TestPilotMetrics: Istio's pilot_* metrics after known events — a proxy
// connects with a version, a push, a NACK (counter and per-node gauge), an
// ACK of the fix (gauge cleared), a disconnect.
func TestPilotMetrics(t *testing.T) {
	good, bad, _, fixed := nackSteps()
	gen := newTableGen()
	gen.setAll("1", good)
	gen.setAll("2", bad)
	gen.setAll("3", fixed)
	e := newEnv(t, gen)
	e.push("1")
	node := xdstest.NodeFor(proxyA, map[string]string{"app": "test"}, map[string]string{
		model.MetaIstioVersion: "1.2.3", model.MetaClusterID: "east", model.MetaAdminAddress: "127.0.0.9:15000",
	})
	c := e.ads(proxyA, xdstest.Options{Node: node, Reject: rejectWeight50})
	ctx := testCtx(t)
	if err := c.WaitSynced(ctx); err != nil {
		t.Fatal(err)
	}
	e.waitServerSynced(ctx, proxyA, allTypes...)
	m := scrape(t, e.s)
	for series, want := range map[string]float64{
		`pilot_xds{version="1.2.3"}`:         1,
		`pilot_xds_pushes{type="rds"}`:       1,
		`pilot_proxy_convergence_time_count`: 0, // the proxy connected after the push
		`pilot_total_xds_internal_errors`:    0,
	} {
		if m[series] != want {
			t.Errorf("after connecting: %s = %v, want %v", series, m[series], want)
		}
	}
	if m["pilot_xds_send_time_count"] < 4 {
		t.Errorf("pilot_xds_send_time_count = %v, want at least one send per type (4)", m["pilot_xds_send_time_count"])
	}
	ps := e.s.SyncStatus()[proxyA]
	if ps.Name != "app-1" || ps.ClusterID != "east" || ps.Version != "1.2.3" || ps.AdminAddress != "127.0.0.9:15000" || ps.ControlPlane != DefaultID {
		t.Errorf("syncz identity: %+v", ps)
	}

	// A push whose change happened two seconds ago: convergence counts
	// from the change (at least 2 s), queue time from the push (less).
	e.s.PushSince(model.NewSnapshot(model.SnapshotOptions{Version: "2"}), time.Now().Add(-2*time.Second))
	e.waitStatus(ctx, proxyA, func(ps ProxyStatus) bool { return ps.Types[xdstest.RouteType].State == StateNACKed })
	m = scrape(t, e.s)
	rejectSeries := `pilot_xds_rds_reject{err="InvalidArgument",node="` + proxyA + `"}`
	for series, want := range map[string]float64{
		`pilot_total_xds_rejects{type="rds"}`: 1,
		rejectSeries:                          1,
		`pilot_proxy_convergence_time_count`:  1,
		`pilot_proxy_queue_time_count`:        1,
		`pilot_xds_pushes{type="rds"}`:        2,
	} {
		if m[series] != want {
			t.Errorf("after the NACK: %s = %v, want %v", series, m[series], want)
		}
	}
	if s := m["pilot_proxy_convergence_time_sum"]; s < 2 {
		t.Errorf("pilot_proxy_convergence_time_sum = %v, want at least the 2 s since the change", s)
	}
	if s := m["pilot_proxy_queue_time_sum"]; s >= 2 {
		t.Errorf("pilot_proxy_queue_time_sum = %v, want less than 2 s (it counts from the push)", s)
	}

	e.push("3")
	if err := c.Wait(ctx, versionsReached(fixed)); err != nil {
		t.Fatal(err)
	}
	e.waitServerSynced(ctx, proxyA, allTypes...)
	m = scrape(t, e.s)
	if _, ok := m[rejectSeries]; ok {
		t.Errorf("after the ACK of the fix: %s still exported", rejectSeries)
	}
	if m[`pilot_total_xds_rejects{type="rds"}`] != 1 {
		t.Errorf("pilot_total_xds_rejects is a counter: %v, want 1", m[`pilot_total_xds_rejects{type="rds"}`])
	}

	_ = c.Close()
	waitMetrics(ctx, t, e.s, "pilot_xds 0 after the disconnect", func(m map[string]float64) bool {
		return m[`pilot_xds{version="1.2.3"}`] == 0
	})
}

// waitMetrics polls the metrics until cond holds (the stream's close is
// processed on the server's goroutine).
func waitMetrics(ctx context.Context, t *testing.T, s *Server, what string, cond func(map[string]float64) bool) {
	t.Helper()
	for !cond(scrape(t, s)) {
		select {
		case <-ctx.Done():
			t.Fatalf("%s: not before the deadline", what)
		case <-time.After(5 * time.Millisecond):
			// Polling: the server has no change notification for tests.
		}
	}
}

// TestRejectGaugeForgottenOnDisconnect: a proxy that leaves while its
// latest response is NACKed leaves no pilot_xds_TYPE_reject series.
func TestRejectGaugeForgottenOnDisconnect(t *testing.T) {
	gen := newTableGen()
	gen.setAll("1", world(50))
	e := newEnv(t, gen)
	e.push("1")
	c := e.ads(proxyA, xdstest.Options{Reject: rejectWeight50})
	ctx := testCtx(t)
	e.waitStatus(ctx, proxyA, func(ps ProxyStatus) bool { return ps.Types[xdstest.RouteType].State == StateNACKed })
	series := `pilot_xds_rds_reject{err="InvalidArgument",node="` + proxyA + `"}`
	if v := scrape(t, e.s)[series]; v != 1 {
		t.Fatalf("%s = %v, want 1", series, v)
	}
	_ = c.Close()
	waitMetrics(ctx, t, e.s, series+" removed after the proxy left", func(m map[string]float64) bool {
		_, ok := m[series]
		return !ok
	})
}
