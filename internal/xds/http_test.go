package xds

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/weftmesh/weft/internal/xds/xdstest"
)

func get(t *testing.T, h http.Handler, target string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, target, nil))
	b, err := io.ReadAll(rec.Result().Body)
	if err != nil {
		t.Fatal(err)
	}
	return rec.Code, string(b)
}

func TestMonitoringHandlers(t *testing.T) {
	gen := newTableGen()
	want := world(90)
	gen.setAll("1", want)
	e := newEnv(t, gen)
	e.push("1")
	c := e.ads(proxyA, xdstest.Options{})
	ctx := testCtx(t)
	if err := c.WaitSynced(ctx); err != nil {
		t.Fatal(err)
	}
	e.waitServerSynced(ctx, proxyA, allTypes...)
	mux := http.NewServeMux()
	e.s.Mount(mux, func() any { return map[string]int{"services": 3} })

	code, body := get(t, mux, SynczPath)
	var st map[string]ProxyStatus
	if err := json.Unmarshal([]byte(body), &st); code != http.StatusOK || err != nil {
		t.Fatalf("syncz: %d %v\n%s", code, err, body)
	}
	ps := st[proxyA]
	if ps.Type != "sidecar" || ps.Namespace != "default" || ps.Streams != 1 || ps.ConnectedSince.IsZero() || ps.LastRequest.IsZero() {
		t.Errorf("syncz proxy: %+v", ps)
	}
	for _, url := range allTypes {
		ts := ps.Types[url]
		if ts.State != StateSynced || ts.SentVersion != want.Versions[url] || ts.AckedVersion != want.Versions[url] || ts.LastNACK != nil {
			t.Errorf("syncz %s: %+v, want SYNCED at %s", url, ts, want.Versions[url])
		}
	}
	if code, _ := get(t, mux, SynczPath+"?proxy=nobody"); code != http.StatusNotFound {
		t.Errorf("syncz for an unknown proxy: %d, want 404", code)
	}
	if code, body := get(t, mux, SynczPath+"?proxy="+proxyA); code != http.StatusOK || !strings.Contains(body, proxyA) {
		t.Errorf("syncz for one proxy: %d\n%s", code, body)
	}

	code, body = get(t, mux, MetricsPath)
	for _, line := range []string{
		`pilot_xds{version=""} 1`,
		`pilot_xds_pushes{type="cds"} 1`,
		`pilot_xds_pushes{type="rds"} 1`,
		`pilot_xds_config_size_bytes_count{type="eds"} 1`,
		`weft_xds_sent_bytes_total{type="lds"}`,
		"weft_xds_push_duration_seconds_count 1",
	} {
		if code != http.StatusOK || !strings.Contains(body, line) {
			t.Errorf("metrics lack %q:\n%s", line, body)
		}
	}

	if code, body := get(t, mux, ConfigzPath); code != http.StatusOK || !strings.Contains(body, `"services": 3`) {
		t.Errorf("configz: %d\n%s", code, body)
	}
	if code, body := get(t, ConfigzHandler(func() any { return xdstest.EDSCluster("a") }), ConfigzPath); code != http.StatusOK || !strings.Contains(body, `"edsClusterConfig"`) {
		t.Errorf("configz of a proto message: %d\n%s", code, body)
	}
}
