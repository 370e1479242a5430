package dashboard

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/config"
	"github.com/weftmesh/weft/internal/model"
	"github.com/weftmesh/weft/internal/xds"
)

// fakeSource is a fixed control-plane state.
type fakeSource struct{ in buildInput }

func (f fakeSource) Snapshot() *model.Snapshot              { return f.in.snap }
func (f fakeSource) Proxies() []*model.Proxy                { return f.in.proxies }
func (f fakeSource) SyncStatus() map[string]xds.ProxyStatus { return f.in.sync }
func (f fakeSource) Problems() []*config.Error              { return f.in.problems }

func newTestDashboard(t *testing.T) (*Dashboard, *httptest.Server) {
	t.Helper()
	in := testInput(nil)
	in.proxies = nil // nothing to scrape
	d, err := New(Options{Source: fakeSource{in}, Scrape: ScrapeOptions{Interval: time.Hour}, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	d.Mount(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return d, srv
}

// TestServesPageAndAssets: the embedded page and its assets, with the
// right types; /dashboard redirects to /dashboard/.
func TestServesPageAndAssets(t *testing.T) {
	_, srv := newTestDashboard(t)
	tests := []struct {
		path, ctype, body string
	}{
		{"/dashboard/", "text/html", `<script src="app.js">`},
		{"/dashboard/app.js", "javascript", `new EventSource("api/events")`},
		{"/dashboard/style.css", "text/css", "@media (max-width: 700px)"},
	}
	for _, tt := range tests {
		resp, err := http.Get(srv.URL + tt.path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(resp.Header.Get("Content-Type"), tt.ctype) || !strings.Contains(string(b), tt.body) {
			t.Errorf("%s: %s %q, body has %q: %v", tt.path, resp.Status, resp.Header.Get("Content-Type"), tt.body, strings.Contains(string(b), tt.body))
		}
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Get(srv.URL + "/dashboard")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 3 || resp.Header.Get("Location") != "/dashboard/" {
		t.Errorf("/dashboard: %s → %q", resp.Status, resp.Header.Get("Location"))
	}
	// No CDN, no external resource: the page works offline.
	for _, asset := range []string{"assets/index.html", "assets/app.js", "assets/style.css"} {
		b, err := assets.ReadFile(asset)
		if err != nil {
			t.Fatal(err)
		}
		for _, ext := range []string{"http://", "https://", "//cdn"} {
			if strings.Contains(strings.ReplaceAll(string(b), "http://www.w3.org/2000/svg", ""), ext) {
				t.Errorf("%s references %q: every asset must be embedded", asset, ext)
			}
		}
	}
}

// TestMeshJSON: api/mesh is the View.
func TestMeshJSON(t *testing.T) {
	_, srv := newTestDashboard(t)
	resp, err := http.Get(srv.URL + MeshPath)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var v View
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		t.Fatal(err)
	}
	if resp.Header.Get("Content-Type") != "application/json" || v.SnapshotVersion != "7" || len(v.Services) != 1 || len(v.Problems) != 2 || v.Window != 60 {
		t.Fatalf("%s %+v", resp.Header.Get("Content-Type"), v)
	}
	resp2, err := http.Post(srv.URL+MeshPath, "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp2.Body.Close()
	if resp2.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST: %s", resp2.Status)
	}
}

// readEvent reads one SSE event's name and data.
func readEvent(t *testing.T, r *bufio.Reader) (string, string) {
	t.Helper()
	var name, data string
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("reading the event stream: %v", err)
		}
		line = strings.TrimRight(line, "\n")
		switch {
		case line == "" && name != "":
			return name, data
		case strings.HasPrefix(line, "event: "):
			name = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			data += strings.TrimPrefix(line, "data: ")
		}
	}
}

// TestEvents: the stream sends the view at once and after every collector
// round, and ends when the dashboard stops.
func TestEvents(t *testing.T) {
	d, srv := newTestDashboard(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+EventsPath, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("content type %q", resp.Header.Get("Content-Type"))
	}
	r := bufio.NewReader(resp.Body)
	for want := uint64(0); want < 3; want++ {
		name, data := readEvent(t, r)
		var v View
		if err := json.Unmarshal([]byte(data), &v); err != nil || name != "mesh" {
			t.Fatalf("event %q: %v", name, err)
		}
		if v.Scrape.Round != want {
			t.Fatalf("event of round %d, want %d", v.Scrape.Round, want)
		}
		d.col.round(context.Background()) // the next round: a new event
	}
	// Run ends with its context: the stream ends, the server can shut
	// down without waiting for the browser.
	runCtx, stop := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- d.Run(runCtx) }()
	stop()
	if err := <-ran; err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { _, err := io.Copy(io.Discard, r); done <- err }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("stream ended with %v, want EOF", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the event stream outlived the dashboard")
	}
}
