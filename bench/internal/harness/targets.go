package harness

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"text/template"
	"time"
)

// The proxies the harness knows, in report order.
const (
	Nginx     = "nginx"
	HAProxy   = "haproxy"
	WeftProxy = "weft-proxy"
	// WeftProxyHop and WeftProxyMTLS are one weft-proxy process serving a
	// sidecar-to-sidecar hop: a front listener forwards to a second
	// listener of the same process (the "server sidecar"), which forwards
	// to the upstream — in plaintext, or over mutual TLS with SPIFFE
	// certificates as between Istio sidecars. Their difference is what mTLS
	// costs one hop (client and server side). Run them with --only.
	WeftProxyHop  = "weft-proxy-hop"
	WeftProxyMTLS = "weft-proxy-mtls"
	// WeftProxyStats is WeftProxy with Istio's standard metrics on: the
	// istio.stats HTTP filter before the router, on an OUTBOUND listener
	// (reporter "source", as a client sidecar). Its difference to
	// WeftProxy is what recording the metrics costs. Run it with --only.
	WeftProxyStats = "weft-proxy-stats"
)

// AllProxies is every proxy in report order (what runs by default).
var AllProxies = []string{Nginx, HAProxy, WeftProxy}

// HopProxies are the mTLS-cost and metrics-cost targets, run only when
// named.
var HopProxies = []string{WeftProxyHop, WeftProxyMTLS, WeftProxyStats}

// IsWeft reports whether target runs the weft-proxy binary.
func IsWeft(target string) bool {
	return target == WeftProxy || target == WeftProxyHop || target == WeftProxyMTLS || target == WeftProxyStats
}

// ConfigData fills a config template.
type ConfigData struct {
	Dir          string // absolute working directory of this instance (pid, logs, temp files)
	Port         int    // listen port on 127.0.0.1
	AdminPort    int    // admin port on 127.0.0.1 (weft-proxy only)
	UpstreamPort int    // upstream port on 127.0.0.1
	GRPC         bool   // gRPC over h2c rather than HTTP/1.1
	DocRoot      string // upstream nginx only: directory served
	HopPort      int    // weft-proxy-hop/-mtls: the second ("server sidecar") listener
	CertDir      string // weft-proxy-mtls: ca.pem, client(-key).pem, server(-key).pem
	IstioStats   bool   // weft-proxy-stats: the istio.stats filter before the router
}

// proxyKind says how to configure, check and run one proxy.
type proxyKind struct {
	name     string
	template string // file name under the templates directory
	config   string // file name of the rendered config in the instance dir
	// command returns the executable, its arguments and extra environment.
	command func(bin, cfg string, d ConfigData) (path string, args, env []string)
	// check returns a command that validates cfg without serving (nginx -t,
	// haproxy -c, weft-proxy --mode validate).
	check func(bin, cfg string, d ConfigData) (path string, args []string)
}

var kinds = map[string]proxyKind{
	Nginx: {
		name: Nginx, template: "nginx.conf.tmpl", config: "nginx.conf",
		command: func(bin, cfg string, d ConfigData) (string, []string, []string) {
			return bin, nginxArgs(cfg, d), nil
		},
		check: func(bin, cfg string, d ConfigData) (string, []string) {
			return bin, append([]string{"-t", "-q"}, nginxArgs(cfg, d)...)
		},
	},
	HAProxy: {
		name: HAProxy, template: "haproxy.cfg.tmpl", config: "haproxy.cfg",
		command: func(bin, cfg string, _ ConfigData) (string, []string, []string) {
			// -db: stay in the foreground, no master-worker: one process.
			return bin, []string{"-db", "-f", cfg}, nil
		},
		check: func(bin, cfg string, _ ConfigData) (string, []string) {
			return bin, []string{"-c", "-f", cfg}
		},
	},
	WeftProxy:      weftKind(WeftProxy, "weft-proxy.yaml.tmpl"),
	WeftProxyHop:   weftKind(WeftProxyHop, "weft-proxy-hop.yaml.tmpl"),
	WeftProxyMTLS:  weftKind(WeftProxyMTLS, "weft-proxy-hop.yaml.tmpl"),
	WeftProxyStats: weftKind(WeftProxyStats, "weft-proxy.yaml.tmpl"),
}

// weftKind runs weft-proxy with the bootstrap template tmpl.
func weftKind(name, tmpl string) proxyKind {
	return proxyKind{
		name: name, template: tmpl, config: "weft-proxy.yaml",
		command: func(bin, cfg string, _ ConfigData) (string, []string, []string) {
			args := []string{"-c", cfg}
			help := helpText(bin)
			if bytes.Contains(help, []byte("-concurrency")) {
				args = append(args, "--concurrency", "1")
			}
			// Envoy's --drain-time-s: the harness stops the proxy with
			// SIGTERM after each run and need not wait for a drain.
			if bytes.Contains(help, []byte("-drain-time-s")) {
				args = append(args, "--drain-time-s", "0")
			}
			return bin, args, []string{"GOMAXPROCS=1"}
		},
		check: func(bin, cfg string, _ ConfigData) (string, []string) {
			return bin, []string{"--mode", "validate", "-c", cfg}
		},
	}
}

// nginxArgs runs nginx on cfg with its prefix and early error log in the
// instance dir (-e, nginx >= 1.19.5), so nothing touches /var/log/nginx.
func nginxArgs(cfg string, d ConfigData) []string {
	return []string{"-e", filepath.Join(d.Dir, "error.log"), "-p", d.Dir, "-c", cfg}
}

// helpText returns bin's --help output, to find which Envoy-style flags
// (--concurrency, --drain-time-s) the weft-proxy being measured has; until
// it has --concurrency, GOMAXPROCS=1 alone gives it one worker. A binary
// that ignores --help and starts serving is killed after 5s.
func helpText(bin string) []byte {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	out, _ := exec.CommandContext(ctx, bin, "--help").CombinedOutput()
	return out
}

// Render executes the template file name under dir with d and writes the
// result to out.
func Render(templatesDir, name, out string, d ConfigData) error {
	path := filepath.Join(templatesDir, name)
	t, err := template.New(name).Option("missingkey=error").ParseFiles(path)
	if err != nil {
		return fmt.Errorf("config template %s: %w", path, err)
	}
	var buf bytes.Buffer
	if err := t.Execute(&buf, d); err != nil {
		return fmt.Errorf("config template %s: %w", path, err)
	}
	if err := os.WriteFile(out, buf.Bytes(), 0o644); err != nil {
		return fmt.Errorf("write config %s: %w", out, err)
	}
	return nil
}

// checkConfig runs the proxy's own config check and returns its output in
// the error when it fails.
func checkConfig(k proxyKind, bin, cfg string, d ConfigData) error {
	path, args := k.check(bin, cfg, d)
	out, err := exec.Command(path, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s rejects its generated config %s (%s %s): %w\n%s",
			k.name, cfg, path, strings.Join(args, " "), err, out)
	}
	return nil
}

// makeDirs creates the instance dir and the temp dirs nginx configs name.
func makeDirs(dir string) error {
	for _, sub := range []string{"tmp/body", "tmp/proxy", "tmp/fastcgi", "tmp/uwsgi", "tmp/scgi"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			return fmt.Errorf("create %s: %w", dir, err)
		}
	}
	return nil
}
