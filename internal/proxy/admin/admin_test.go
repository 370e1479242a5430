package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	adminv3 "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// TestMain fails the package when HTTP server or client goroutines outlive
// the tests (every test shuts its admin down and closes its client).
func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		if leaked := waitNoLeaks(5 * time.Second); leaked != "" {
			fmt.Fprintf(os.Stderr, "goroutines leaked:\n%s\n", leaked)
			code = 1
		}
	}
	os.Exit(code)
}

func waitNoLeaks(wait time.Duration) string {
	deadline := time.Now().Add(wait)
	for {
		buf := make([]byte, 1<<20)
		all := string(buf[:runtime.Stack(buf, true)])
		var leaked []string
		for _, g := range strings.Split(all, "\n\n") {
			if strings.Contains(g, "net/http.(*conn).serve") || strings.Contains(g, "net/http.(*persistConn)") ||
				strings.Contains(g, "net/http.(*Server).Serve") {
				leaked = append(leaked, g)
			}
		}
		if len(leaked) == 0 {
			return ""
		}
		if time.Now().After(deadline) {
			return strings.Join(leaked, "\n\n")
		}
		runtime.Gosched()
		time.Sleep(10 * time.Millisecond) // polling interval, not synchronisation
	}
}

// testAdmin is a real admin serving on a loopback listener.
type testAdmin struct {
	*Admin
	base   string
	client *http.Client
	served chan error
}

// start serves New(o) on 127.0.0.1:0 and shuts it down when the test ends,
// checking Serve returned nil.
func start(t *testing.T, o Options) *testAdmin {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ta := &testAdmin{
		Admin:  New(o),
		base:   "http://" + l.Addr().String(),
		client: &http.Client{Transport: &http.Transport{}, Timeout: 10 * time.Second},
		served: make(chan error, 1),
	}
	go func() { ta.served <- ta.Serve(l) }()
	t.Cleanup(func() {
		ta.client.CloseIdleConnections()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := ta.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		select {
		case err := <-ta.served:
			if err != nil {
				t.Errorf("Serve returned %v after Shutdown, want nil", err)
			}
		case <-ctx.Done():
			t.Error("Serve did not return after Shutdown")
		}
	})
	return ta
}

type reply struct {
	code   int
	header http.Header
	body   string
}

func (ta *testAdmin) do(t *testing.T, method, target string) reply {
	t.Helper()
	req, err := http.NewRequest(method, ta.base+target, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := ta.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", method, target, err)
	}
	return reply{resp.StatusCode, resp.Header, string(body)}
}

func fullOptions() Options {
	return Options{
		Stats:           fixtureStore(),
		ServerInfo:      fixtureServerInfo,
		State:           func() adminv3.ServerInfo_State { return adminv3.ServerInfo_LIVE },
		ConfigDump:      fixtureConfigDump,
		Clusters:        fixtureClusters,
		Quit:            func() {},
		HealthCheckFail: func() {},
		HealthCheckOK:   func() {},
	}
}

func compareGolden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("body differs from %s\n--- got ---\n%s\n--- want ---\n%s", path, got, want)
	}
}

// TestEndpoints checks each endpoint's status, content type and body: a
// golden file where the body is stable, else a substring.
func TestEndpoints(t *testing.T) {
	ta := start(t, fullOptions())
	cases := []struct {
		method, target string
		code           int
		ctype          string
		golden         string // testdata file the body must equal
		contains       string // else a substring the body must hold
	}{
		{"GET", "/", 200, contentHTML, "", `<form action="/quitquitquit" method="post">`},
		{"GET", "/help", 200, contentText, "help.golden", ""},
		{"GET", "/nope", 404, contentText, "", "invalid path. admin commands are:\n  /: Admin home page\n"},
		{"GET", "/stats/", 404, contentText, "", "invalid path. "},
		{"GET", "/STATS", 404, contentText, "", "invalid path. "},
		{"GET", "/stats", 200, contentText, "stats.golden", ""},
		{"POST", "/stats", 200, contentText, "stats.golden", ""},
		{"GET", "/stats?usedonly&filter=%5Ecluster%5C.", 200, contentText, "stats_usedonly.golden", ""},
		{"GET", "/stats?format=json", 200, contentJSON, "stats.json.golden", ""},
		{"GET", "/stats?format=json&pretty&type=Histograms&histogram_buckets=cumulative", 200, contentJSON, "stats_buckets_pretty.json.golden", ""},
		{"GET", "/stats?type=Counters", 200, contentText, "", "cluster.backend.upstream_rq_total: 12\nserver.debug_assertion_failures: 0\n"},
		{"GET", "/stats?type=TextReadouts&format=json", 200, contentJSON, "", `{"stats":[]}`},
		{"GET", "/stats?format=prometheus", 200, contentText, "prometheus.golden", ""},
		{"GET", "/stats/prometheus", 200, contentText, "prometheus.golden", ""},
		{"GET", "/stats/prometheus?usedonly&filter=rq_time", 200, contentText, "", "# TYPE envoy_cluster_upstream_rq_time histogram\n"},
		{"GET", "/stats?filter=(", 400, contentText, "", "Invalid re2 regex"},
		{"GET", "/stats/prometheus?filter=%5B", 400, contentText, "", "Invalid re2 regex"},
		{"GET", "/stats?format=html", 400, contentText, "", "usage: /stats?format=(json|prometheus|text)"},
		{"GET", "/stats?type=Bogus", 400, contentText, "", "invalid &type= param"},
		{"GET", "/stats?histogram_buckets=detailed", 400, contentText, "", "usage: /stats?histogram_buckets=(cumulative|disjoint|none)"},
		{"GET", "/stats/prometheus?histogram_buckets=summary", 400, contentText, "", "cumulative buckets only"},
		{"GET", "/stats?filter=%zz", 400, contentText, "", "invalid query string"},
		{"GET", "/ready", 200, contentText, "", "LIVE\n"},
		{"HEAD", "/ready", 200, contentText, "", ""},
		{"GET", "/server_info", 200, contentJSON, "server_info.json.golden", ""},
		{"GET", "/clusters", 200, contentText, "clusters.golden", ""},
		{"GET", "/clusters?format=json", 200, contentJSON, "clusters.json.golden", ""},
		{"GET", "/clusters?format=yaml", 200, contentText, "clusters.golden", ""},
		{"GET", "/config_dump", 200, contentJSON, "config_dump.json.golden", ""},
		{"GET", "/config_dump?resource=static_clusters", 200, contentJSON, "config_dump_static_clusters.json.golden", ""},
		{"GET", "/config_dump?resource=static_clusters&mask=cluster.name,cluster.connect_timeout", 200, contentJSON, "config_dump_static_clusters_mask.json.golden", ""},
		{"GET", "/config_dump?mask=static_route_configs", 200, contentJSON, "config_dump_mask.json.golden", ""},
		{"GET", "/config_dump?resource=bogus", 404, contentText, "", "bogus not found in config dump"},
		{"GET", "/config_dump?resource=bootstrap", 400, contentText, "", "bootstrap is not a repeated field. Use ?mask=bootstrap to get only this field"},
		{"GET", "/config_dump?resource=static_clusters&mask=cluster.nope", 400, contentText, "", "FieldMask cluster.nope could not be successfully used."},
		{"GET", "/config_dump?mask=nope", 400, contentText, "", "FieldMask nope could not be successfully applied to any configs."},
		{"GET", "/config_dump?mask=static_clusters.cluster", 400, contentText, "", "could not be successfully applied"},
		{"GET", "/config_dump?name_regex=back", 400, contentText, "", "name_regex is not supported"},
		{"GET", "/quitquitquit", 405, contentText, "", "Method GET not allowed, POST required."},
		{"GET", "/healthcheck/fail", 405, contentText, "", "Method GET not allowed, POST required."},
		{"PUT", "/healthcheck/ok", 405, contentText, "", "Method PUT not allowed, POST required."},
		{"POST", "/healthcheck/fail", 200, contentText, "", "OK\n"},
		{"POST", "/healthcheck/ok", 200, contentText, "", "OK\n"},
	}
	for _, c := range cases {
		t.Run(c.method+" "+c.target, func(t *testing.T) {
			r := ta.do(t, c.method, c.target)
			if r.code != c.code {
				t.Errorf("status %d, want %d; body:\n%s", r.code, c.code, r.body)
			}
			if ct := r.header.Get("Content-Type"); ct != c.ctype {
				t.Errorf("Content-Type %q, want %q", ct, c.ctype)
			}
			if cc := r.header.Get("Cache-Control"); cc != "no-cache, max-age=0" {
				t.Errorf("Cache-Control %q", cc)
			}
			if n := r.header.Get("X-Content-Type-Options"); n != "nosniff" {
				t.Errorf("X-Content-Type-Options %q", n)
			}
			if c.code == http.StatusMethodNotAllowed && r.header.Get("Allow") != "POST" {
				t.Errorf("Allow %q, want POST", r.header.Get("Allow"))
			}
			if c.ctype == contentJSON && !json.Valid([]byte(r.body)) {
				t.Errorf("body is not valid JSON:\n%s", r.body)
			}
			if strings.Contains(r.body, secretKey) {
				t.Errorf("body leaks the private key")
			}
			switch {
			case c.golden != "":
				compareGolden(t, c.golden, r.body)
			case c.method == "HEAD":
				if r.body != "" {
					t.Errorf("HEAD body %q", r.body)
				}
			case c.contains == "":
				t.Fatal("case asserts no body")
			case !strings.Contains(r.body, c.contains):
				t.Errorf("body does not contain %q:\n%s", c.contains, r.body)
			}
		})
	}
}

// TestConfigDumpRedacts checks the dump names the private key's place but
// never its text, in every config that holds it.
func TestConfigDumpRedacts(t *testing.T) {
	ta := start(t, fullOptions())
	for _, target := range []string{"/config_dump", "/config_dump?resource=static_clusters", "/config_dump?resource=static_clusters&mask=cluster.transport_socket"} {
		r := ta.do(t, "GET", target)
		if r.code != 200 {
			t.Fatalf("%s: status %d: %s", target, r.code, r.body)
		}
		if strings.Contains(r.body, "SECRET") {
			t.Errorf("%s leaks the private key", target)
		}
		if !strings.Contains(r.body, `"private_key": {`) || !strings.Contains(r.body, `"inline_string": "[redacted]"`) {
			t.Errorf("%s: private key not shown as redacted:\n%s", target, r.body)
		}
		if !strings.Contains(r.body, "-----BEGIN CERTIFICATE-----PUBLIC") {
			t.Errorf("%s: the certificate chain, not sensitive, was redacted", target)
		}
	}
	// The caller's dump is never modified.
	if !bytes.Contains(mustMarshal(t, fixtureConfigDump()), []byte("SECRET")) {
		t.Fatal("fixture lost its key")
	}
}

// TestConfigDumpDoesNotMutateSource redacts from a dump the caller keeps.
func TestConfigDumpDoesNotMutateSource(t *testing.T) {
	src := fixtureConfigDump()
	before := mustMarshal(t, src)
	o := fullOptions()
	o.ConfigDump = func() *adminv3.ConfigDump { return src }
	ta := start(t, o)
	for _, target := range []string{"/config_dump", "/config_dump?mask=static_clusters", "/config_dump?resource=static_clusters&mask=cluster.name"} {
		if r := ta.do(t, "GET", target); r.code != 200 {
			t.Fatalf("%s: %d %s", target, r.code, r.body)
		}
	}
	if !bytes.Equal(before, mustMarshal(t, src)) {
		t.Error("the caller's ConfigDump was modified")
	}
}

// TestReadyFollowsState walks the server states and the health-check
// commands, as a readiness probe sees them.
func TestReadyFollowsState(t *testing.T) {
	var state atomic.Int32
	var failing atomic.Bool
	state.Store(int32(adminv3.ServerInfo_PRE_INITIALIZING))
	o := fullOptions()
	o.State = func() adminv3.ServerInfo_State {
		if failing.Load() {
			return adminv3.ServerInfo_DRAINING // Envoy: health-check failure reads as DRAINING
		}
		return adminv3.ServerInfo_State(state.Load())
	}
	o.HealthCheckFail = func() { failing.Store(true) }
	o.HealthCheckOK = func() { failing.Store(false) }
	ta := start(t, o)

	expect := func(step string, code int, body string) {
		t.Helper()
		r := ta.do(t, "GET", "/ready")
		if r.code != code || r.body != body {
			t.Errorf("%s: /ready = %d %q, want %d %q", step, r.code, r.body, code, body)
		}
		info := ta.do(t, "GET", "/server_info")
		if want := fmt.Sprintf(`"state": %q`, strings.TrimSpace(body)); !strings.Contains(info.body, want) {
			t.Errorf("%s: /server_info lacks %s", step, want)
		}
	}
	expect("pre-initializing", 503, "PRE_INITIALIZING\n")
	state.Store(int32(adminv3.ServerInfo_INITIALIZING))
	expect("initializing", 503, "INITIALIZING\n")
	state.Store(int32(adminv3.ServerInfo_LIVE))
	expect("live", 200, "LIVE\n")
	if r := ta.do(t, "POST", "/healthcheck/fail"); r.body != "OK\n" {
		t.Fatalf("healthcheck/fail: %d %q", r.code, r.body)
	}
	expect("failing health checks", 503, "DRAINING\n")
	if r := ta.do(t, "GET", "/healthcheck/ok"); r.code != 405 || failing.Load() != true {
		t.Fatalf("GET /healthcheck/ok acted: %d, failing=%v", r.code, failing.Load())
	}
	if r := ta.do(t, "POST", "/healthcheck/ok"); r.body != "OK\n" {
		t.Fatalf("healthcheck/ok: %d %q", r.code, r.body)
	}
	expect("passing again", 200, "LIVE\n")
}

// TestQuitQuitQuit checks GET is refused, POST answers "OK\n" and then
// runs Quit once, and that Quit may shut the admin down itself.
func TestQuitQuitQuit(t *testing.T) {
	var calls atomic.Int32
	quit := make(chan struct{})
	o := fullOptions()
	var ta *testAdmin
	o.Quit = func() {
		calls.Add(1)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = ta.Shutdown(ctx) // the real server's graceful shutdown does this
		close(quit)
	}
	ta = start(t, o)

	if r := ta.do(t, "GET", "/quitquitquit"); r.code != 405 {
		t.Fatalf("GET /quitquitquit = %d", r.code)
	}
	if calls.Load() != 0 {
		t.Fatal("GET ran Quit")
	}
	r := ta.do(t, "POST", "/quitquitquit")
	if r.code != 200 || r.body != "OK\n" {
		t.Fatalf("POST /quitquitquit = %d %q", r.code, r.body)
	}
	select {
	case <-quit:
	case <-time.After(5 * time.Second):
		t.Fatal("Quit not called")
	}
	select {
	case err := <-ta.served:
		if err != nil {
			t.Fatalf("Serve after Quit: %v", err)
		}
		ta.served <- nil // for the cleanup's check
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after Quit shut the admin down")
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("Quit called %d times", n)
	}
}

// TestOnlyConfiguredEndpoints checks that an endpoint without its source
// answers 404 and is not listed.
func TestOnlyConfiguredEndpoints(t *testing.T) {
	ta := start(t, Options{State: func() adminv3.ServerInfo_State { return adminv3.ServerInfo_LIVE }})
	for _, p := range []string{"/stats", "/stats/prometheus", "/server_info", "/clusters", "/config_dump", "/quitquitquit", "/healthcheck/fail"} {
		if r := ta.do(t, "POST", p); r.code != 404 {
			t.Errorf("%s = %d, want 404", p, r.code)
		}
	}
	help := ta.do(t, "GET", "/help").body
	want := "admin commands are:\n  /: Admin home page\n  /help: print out list of admin commands\n  /ready: print server state, return 200 if LIVE, otherwise return 503\n"
	if help != want {
		t.Errorf("/help =\n%s\nwant\n%s", help, want)
	}
}

// TestPanicIsContained checks a panicking source answers 500 and the admin
// keeps serving.
func TestPanicIsContained(t *testing.T) {
	o := fullOptions()
	o.Clusters = func() *adminv3.Clusters { panic("cluster manager bug") }
	ta := start(t, o)
	if r := ta.do(t, "GET", "/clusters"); r.code != 500 || r.body != "internal error\n" {
		t.Errorf("/clusters = %d %q, want 500", r.code, r.body)
	}
	if r := ta.do(t, "GET", "/ready"); r.code != 200 {
		t.Errorf("/ready after a panic = %d", r.code)
	}
}

// TestOddRequests sends malformed and oversized requests on a raw
// connection: each gets an HTTP error, and the admin keeps serving.
func TestOddRequests(t *testing.T) {
	ta := start(t, fullOptions())
	addr := strings.TrimPrefix(ta.base, "http://")
	cases := []struct {
		name, req string
		code      string
	}{
		{"garbage", "\x00\x01\x02 nonsense\r\n\r\n", "400"},
		{"no version", "GET /ready\r\n\r\n", "400"},
		{"huge header", "GET /ready HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", 80<<10) + "\r\n\r\n", "431"},
		{"absolute URI", "GET http://x/ready HTTP/1.1\r\nHost: x\r\n\r\n", "200"},
		{"encoded path", "GET /%72eady HTTP/1.1\r\nHost: x\r\n\r\n", "200"},
		{"dot segments", "GET /stats/../ready HTTP/1.1\r\nHost: x\r\n\r\n", "404"},
		{"control bytes in query", "GET /stats?filter=%00%0a HTTP/1.1\r\nHost: x\r\n\r\n", "200"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
			if _, err := io.WriteString(conn, c.req); err != nil {
				t.Fatal(err)
			}
			line := make([]byte, 12)
			if _, err := io.ReadFull(conn, line); err != nil {
				t.Fatalf("reading status line: %v", err)
			}
			if got := string(line[9:12]); got != c.code {
				t.Errorf("status %s, want %s", got, c.code)
			}
		})
	}
	if r := ta.do(t, "GET", "/ready"); r.code != 200 {
		t.Errorf("/ready after odd requests = %d", r.code)
	}
}

// FuzzServeHTTP drives the admin with arbitrary methods and targets: no
// request may panic (which ServeHTTP would turn into a 500) or hang.
func FuzzServeHTTP(f *testing.F) {
	for _, seed := range []struct{ method, target string }{
		{"GET", "/stats?filter=.*&usedonly&format=json"},
		{"GET", "/config_dump?resource=static_clusters&mask=cluster.name"},
		{"GET", "/config_dump?mask=a..b,,c"},
		{"GET", "/config_dump?resource=static_clusters&mask=cluster.,last_updated.seconds"},
		{"POST", "/healthcheck/fail"},
		{"GET", "/stats?histogram_buckets=disjoint&type=Histograms"},
		{"DELETE", "/clusters?format=json"},
	} {
		f.Add(seed.method, seed.target)
	}
	a := New(fullOptions())
	a.opts.Quit = func() {}
	f.Fuzz(func(t *testing.T, method, target string) {
		req, err := http.NewRequest(method, "http://admin"+target, nil)
		if err != nil {
			return // not a request net/http would deliver
		}
		rec := &recorder{header: http.Header{}}
		a.ServeHTTP(rec, req)
		if rec.code == http.StatusInternalServerError {
			t.Fatalf("%s %q: 500: %s", method, target, rec.body.String())
		}
		if rec.code == 0 || rec.header.Get("Content-Type") == "" {
			t.Fatalf("%s %q: no status or content type", method, target)
		}
	})
}

// recorder is a minimal ResponseWriter (httptest would do; this keeps the
// fuzz loop free of its allocations and checks).
type recorder struct {
	header http.Header
	code   int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header         { return r.header }
func (r *recorder) WriteHeader(code int)        { r.code = code }
func (r *recorder) Write(b []byte) (int, error) { return r.body.Write(b) }

// TestConfigDumpEndpointsOnlyWithIncludeEDS: as in Envoy, the endpoints
// config dump is printed only when ?include_eds asks for it.
func TestConfigDumpEndpointsOnlyWithIncludeEDS(t *testing.T) {
	src := fixtureConfigDump()
	src.Configs = append(src.Configs, mustAny(&adminv3.EndpointsConfigDump{}))
	o := fullOptions()
	o.ConfigDump = func() *adminv3.ConfigDump { return src }
	ta := start(t, o)
	const eds = "type.googleapis.com/envoy.admin.v3.EndpointsConfigDump"
	if r := ta.do(t, "GET", "/config_dump"); r.code != 200 || strings.Contains(r.body, eds) {
		t.Errorf("/config_dump: %d, endpoints present=%v; want 200 without endpoints", r.code, strings.Contains(r.body, eds))
	}
	if r := ta.do(t, "GET", "/config_dump?include_eds"); r.code != 200 || !strings.Contains(r.body, eds) {
		t.Errorf("/config_dump?include_eds: %d, endpoints present=%v; want 200 with endpoints", r.code, strings.Contains(r.body, eds))
	}
}
