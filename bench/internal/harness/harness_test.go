package harness

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/weftmesh/weft/bench/internal/loadgen"
	"github.com/weftmesh/weft/bench/internal/report"
	"github.com/weftmesh/weft/bench/internal/supervise"
)

const templatesDir = "../../templates"

// TestRenderTemplates renders every config for both protocols and checks
// the settings the benchmark promises (see bench/README.md).
func TestRenderTemplates(t *testing.T) {
	tests := []struct {
		template string
		grpc     bool
		want     []string
		wantNot  []string
	}{
		{"upstream-nginx.conf.tmpl", false, []string{"worker_processes 1;", "listen 127.0.0.1:9000 ", "root /srv;"}, nil},
		{"nginx.conf.tmpl", false, []string{"worker_processes 1;", "keepalive 64;", "proxy_pass http://backend;",
			"proxy_http_version 1.1;", "server 127.0.0.1:9100;"}, []string{"grpc_pass", "http2"}},
		{"nginx.conf.tmpl", true, []string{"listen 127.0.0.1:9000 http2", "grpc_pass grpc://backend;", "keepalive 64;"}, []string{"proxy_pass"}},
		{"haproxy.cfg.tmpl", false, []string{"nbthread 1", "mode http", "http-reuse always", "bind 127.0.0.1:9000\n",
			"server up 127.0.0.1:9100\n"}, []string{"proto h2"}},
		{"haproxy.cfg.tmpl", true, []string{"bind 127.0.0.1:9000 proto h2", "server up 127.0.0.1:9100 proto h2"}, nil},
		{"weft-proxy.yaml.tmpl", false, []string{"port_value: 9001", "port_value: 9000", "codec_type: AUTO",
			"envoy.filters.http.router", "type: STATIC", "port_value: 9100"}, []string{"http2_protocol_options"}},
		{"weft-proxy.yaml.tmpl", true, []string{"envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
			"explicit_http_config:", "http2_protocol_options: {}"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.template, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "cfg")
			d := ConfigData{Dir: "/run/x", Port: 9000, AdminPort: 9001, UpstreamPort: 9100, GRPC: tt.grpc, DocRoot: "/srv"}
			if err := Render(templatesDir, tt.template, out, d); err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range tt.want {
				if !strings.Contains(string(b), w) {
					t.Errorf("grpc=%v: config lacks %q:\n%s", tt.grpc, w, b)
				}
			}
			for _, w := range tt.wantNot {
				if strings.Contains(string(b), w) {
					t.Errorf("grpc=%v: config has %q:\n%s", tt.grpc, w, b)
				}
			}
		})
	}
	if err := Render(templatesDir, "missing.tmpl", filepath.Join(t.TempDir(), "x"), ConfigData{}); err == nil {
		t.Error("Render of a missing template succeeded")
	}
}

// lookPath finds a proxy binary; bench/run.sh installs nginx and haproxy.
func lookPath(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s is needed by the bench tests: apt-get install -y %s (bench/run.sh does)", name, name)
	}
	return p
}

// TestProxiesAcceptTheirConfigs has nginx and HAProxy check the rendered
// configs, as the harness does before each start.
func TestProxiesAcceptTheirConfigs(t *testing.T) {
	for _, name := range []string{Nginx, HAProxy} {
		for _, grpc := range []bool{false, true} {
			k := kinds[name]
			dir := t.TempDir()
			if err := makeDirs(dir); err != nil {
				t.Fatal(err)
			}
			d := ConfigData{Dir: dir, Port: 9000, UpstreamPort: 9100, GRPC: grpc}
			cfg := filepath.Join(dir, k.config)
			if err := Render(templatesDir, k.template, cfg, d); err != nil {
				t.Fatal(err)
			}
			if err := checkConfig(k, lookPath(t, name), cfg, d); err != nil {
				t.Errorf("%s grpc=%v: %v", name, grpc, err)
			}
		}
	}
	// A broken config is reported with the proxy's own message.
	dir := t.TempDir()
	cfg := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(cfg, []byte("frontend x\n  bogus_keyword 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := checkConfig(kinds[HAProxy], lookPath(t, HAProxy), cfg, ConfigData{Dir: dir}); err == nil || !strings.Contains(err.Error(), "bogus_keyword") {
		t.Errorf("checkConfig(broken) = %v, want an error quoting the bad keyword", err)
	}
}

func TestWaitReady(t *testing.T) {
	t.Run("ready after some failures", func(t *testing.T) {
		var calls atomic.Int32
		p := func(context.Context) error {
			if calls.Add(1) < 3 {
				return errors.New("not yet")
			}
			return nil
		}
		if err := waitReady(context.Background(), "x", 5*time.Second, nil, p); err != nil {
			t.Fatal(err)
		}
		if calls.Load() != 3 {
			t.Fatalf("probe called %d times, want 3", calls.Load())
		}
	})
	t.Run("deadline", func(t *testing.T) {
		start := time.Now()
		err := waitReady(context.Background(), "thing", 100*time.Millisecond, nil, func(context.Context) error { return errors.New("refused") })
		if err == nil || !strings.Contains(err.Error(), "thing not ready") || !strings.Contains(err.Error(), "refused") {
			t.Fatalf("err = %v, want a deadline error naming the thing and the last probe error", err)
		}
		if time.Since(start) > 5*time.Second {
			t.Fatalf("took %s for a 100ms deadline", time.Since(start))
		}
	})
	t.Run("process exits", func(t *testing.T) {
		s := supervise.New(time.Second)
		proc, err := s.Start(supervise.Spec{Name: "false", Path: "false", CPU: -1})
		if err != nil {
			t.Fatal(err)
		}
		defer s.StopAll()
		err = waitReady(context.Background(), "false", time.Minute, proc, func(context.Context) error { return errors.New("no") })
		if err == nil || !strings.Contains(err.Error(), "exited") {
			t.Fatalf("err = %v, want an 'exited' error well before the 1 minute deadline", err)
		}
	})
}

func TestHTTPProbe(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/missing" {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write(make([]byte, 1024))
	}))
	defer srv.Close()
	tests := []struct {
		path    string
		wantLen int
		ok      bool
	}{
		{"/1k.bin", 1024, true},
		{"/1k.bin", -1, true},
		{"/1k.bin", 10, false},
		{"/missing", -1, false},
	}
	for _, tt := range tests {
		err := httpProbe(srv.URL+tt.path, tt.wantLen)(context.Background())
		if (err == nil) != tt.ok {
			t.Errorf("GET %s (len %d): err = %v, want ok=%v", tt.path, tt.wantLen, err, tt.ok)
		}
	}
}

// TestRunEndToEnd runs the real harness briefly (2 s per cell) with nginx and HAProxy for
// both protocols and checks every cell was measured and every process is
// gone afterwards.
func TestRunEndToEnd(t *testing.T) {
	tmp := t.TempDir()
	fortio := filepath.Join(tmp, "fortio")
	build := exec.Command("go", "build", "-o", fortio, "fortio.org/fortio")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build fortio: %v\n%s", err, out)
	}
	opts := Options{
		TemplatesDir: templatesDir, RunDir: filepath.Join(tmp, "run"), Fortio: fortio,
		Binaries: map[string]string{Nginx: lookPath(t, Nginx), HAProxy: lookPath(t, HAProxy)},
		Proxies:  []string{Nginx, HAProxy}, Protocols: []loadgen.Protocol{loadgen.HTTP1, loadgen.GRPC},
		Rates: []int{200}, Duration: 2 * time.Second, Runs: 1, Connections: 4, Resolution: 0.00001,
		LoadCPU: 0, ProxyCPU: 1, ReadyTimeout: 15 * time.Second,
	}
	res, err := Run(context.Background(), opts)
	if err != nil || len(res.Failures) != 0 {
		t.Fatalf("Run: %v; failures: %q", err, res.Failures)
	}
	ms := res.Measurements
	if len(ms) != 6 {
		t.Fatalf("got %d measurements, want 6 (2 protocols × direct, nginx, haproxy)", len(ms))
	}
	for _, m := range ms {
		// 2 s at 200 req/s is 400 requests; the tolerance (a quarter) allows
		// for a shared machine slowing fortio's calls (it catches up only
		// within the run's duration).
		if m.Load.Errors != 0 || m.Load.Requests < 100 {
			t.Errorf("%s %s: %d requests, %d errors; want >= 100 and none", m.Protocol, m.Target, m.Load.Requests, m.Load.Errors)
		}
		if m.Target == report.Direct {
			continue
		}
		// Any real proxy spends well over 1 µs per request and holds
		// more than 1 MiB.
		if m.ProxyCPUUSPerRq < 1 || m.PeakRSSKiB < 1024 || m.IdleRSSKiB == 0 || m.PeakRSSKiB < m.IdleRSSKiB/2 {
			t.Errorf("%s %s: cpu %.1f µs/req, idle %d KiB, peak %d KiB: implausible", m.Protocol, m.Target,
				m.ProxyCPUUSPerRq, m.IdleRSSKiB, m.PeakRSSKiB)
		}
		if m.Target == Nginx && len(m.Processes) != 2 {
			t.Errorf("%s nginx: %d processes measured, want master + worker", m.Protocol, len(m.Processes))
		}
	}
	// Every pid the harness measured is gone (process groups killed).
	for _, m := range ms {
		for _, p := range m.Processes {
			if err := syscall.Kill(p.PID, 0); !errors.Is(err, syscall.ESRCH) {
				t.Errorf("pid %d (%s) still exists after Run", p.PID, p.Name)
			}
		}
	}
}

func TestOptionsValidate(t *testing.T) {
	good := Options{Protocols: []loadgen.Protocol{loadgen.HTTP1}, Rates: []int{1000}, Duration: time.Second, Runs: 1,
		Connections: 1, Binaries: map[string]string{Nginx: "/usr/sbin/nginx"}, Proxies: []string{Nginx}}
	if err := good.validate(); err != nil {
		t.Fatalf("valid options rejected: %v", err)
	}
	tests := []struct {
		name string
		mod  func(*Options)
	}{
		{"no protocols", func(o *Options) { o.Protocols = nil }},
		{"no rates", func(o *Options) { o.Rates = nil }},
		{"zero duration", func(o *Options) { o.Duration = 0 }},
		{"zero runs", func(o *Options) { o.Runs = 0 }},
		{"zero connections", func(o *Options) { o.Connections = 0 }},
		{"unknown proxy", func(o *Options) { o.Proxies = []string{"envoy"} }},
		{"proxy without binary", func(o *Options) { o.Proxies = []string{HAProxy} }},
		{"no nginx for the upstream", func(o *Options) { o.Binaries = map[string]string{HAProxy: "x"}; o.Proxies = []string{HAProxy} }},
	}
	for _, tt := range tests {
		o := good
		o.Binaries = map[string]string{Nginx: "/usr/sbin/nginx"}
		tt.mod(&o)
		if err := o.validate(); err == nil {
			t.Errorf("%s: accepted", tt.name)
		}
	}
}

// TestRunGoesOnAfterAProxyFails gives HAProxy a binary that rejects every
// config: its cell is reported as failed and nginx is still measured.
func TestRunGoesOnAfterAProxyFails(t *testing.T) {
	tmp := t.TempDir()
	fortio := filepath.Join(tmp, "fortio")
	if out, err := exec.Command("go", "build", "-o", fortio, "fortio.org/fortio").CombinedOutput(); err != nil {
		t.Fatalf("build fortio: %v\n%s", err, out)
	}
	opts := Options{
		TemplatesDir: templatesDir, RunDir: filepath.Join(tmp, "run"), Fortio: fortio,
		Binaries: map[string]string{Nginx: lookPath(t, Nginx), HAProxy: lookPath(t, "false")},
		Proxies:  []string{HAProxy, Nginx}, Protocols: []loadgen.Protocol{loadgen.HTTP1},
		Rates: []int{100}, Duration: time.Second, Runs: 1, Connections: 2, Resolution: 0.0001,
		LoadCPU: 0, ProxyCPU: 1, ReadyTimeout: 15 * time.Second,
	}
	res, err := Run(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Failures) != 1 || !strings.Contains(res.Failures[0], "haproxy rejects its generated config") {
		t.Fatalf("failures = %q, want one naming haproxy's config check", res.Failures)
	}
	var targets []string
	for _, m := range res.Measurements {
		targets = append(targets, m.Target)
	}
	if strings.Join(targets, ",") != "direct,nginx" {
		t.Fatalf("measured %v, want direct and nginx", targets)
	}
}

// TestWeftProxyCommand passes --concurrency 1 and --drain-time-s 0 only when
// the binary's --help lists them, and always GOMAXPROCS=1.
func TestWeftProxyCommand(t *testing.T) {
	tests := []struct {
		name string
		help string
		want []string
	}{
		{"envoy flags", "Usage:\n  -concurrency int\n  -drain-time-s int\n", []string{"-c", "cfg.yaml", "--concurrency", "1", "--drain-time-s", "0"}},
		{"bare", "Usage:\n  -c string\n", []string{"-c", "cfg.yaml"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bin := filepath.Join(t.TempDir(), "weft-proxy")
			script := "#!/bin/sh\ncat <<'EOF'\n" + tt.help + "EOF\nexit 2\n"
			if err := os.WriteFile(bin, []byte(script), 0o755); err != nil {
				t.Fatal(err)
			}
			path, args, env := kinds[WeftProxy].command(bin, "cfg.yaml", ConfigData{})
			if path != bin || strings.Join(args, " ") != strings.Join(tt.want, " ") || strings.Join(env, " ") != "GOMAXPROCS=1" {
				t.Fatalf("command = %s %q env %q; want %q and GOMAXPROCS=1", path, args, env, tt.want)
			}
		})
	}
}

// TestHopConfigsValidate renders the weft-proxy hop configs (plaintext and
// mTLS with generated SPIFFE certificates) and the metrics-on config, and
// has weft-proxy, built from this checkout, validate them.
func TestHopConfigsValidate(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "weft-proxy")
	build := exec.Command("go", "build", "-o", bin, "./cmd/weft-proxy")
	build.Dir = filepath.Join("..", "..", "..")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building weft-proxy: %v\n%s", err, out)
	}
	certs := filepath.Join(t.TempDir(), "certs")
	if err := writeMeshCerts(certs); err != nil {
		t.Fatal(err)
	}
	for _, name := range HopProxies {
		for _, grpc := range []bool{false, true} {
			dir := t.TempDir()
			d := ConfigData{Dir: dir, Port: 9000, AdminPort: 9001, HopPort: 9002, UpstreamPort: 9100, GRPC: grpc, IstioStats: name == WeftProxyStats}
			if name == WeftProxyMTLS {
				d.CertDir = certs
			}
			k := kinds[name]
			cfg := filepath.Join(dir, k.config)
			if err := Render(templatesDir, k.template, cfg, d); err != nil {
				t.Fatal(err)
			}
			if err := checkConfig(k, bin, cfg, d); err != nil {
				t.Errorf("%s grpc=%v: %v", name, grpc, err)
			}
		}
	}
}
