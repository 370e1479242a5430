package main

import (
	"bytes"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseFlags(t *testing.T) {
	for _, tc := range []struct {
		name    string
		args    []string
		wantErr string // "" means success
		check   func(t *testing.T, o *options)
	}{
		{name: "defaults", args: []string{"-c", "f.yaml"}, check: func(t *testing.T, o *options) {
			if o.configPath != "f.yaml" || o.mode != "serve" || o.drainTimeS != 600 || o.logLevel != "info" || o.concurrency != 0 {
				t.Errorf("defaults: %+v", o)
			}
		}},
		{name: "long_names", args: []string{"--config-path", "f.yaml", "--mode", "validate", "--log-level", "debug", "--drain-time-s", "7", "--concurrency", "2"},
			check: func(t *testing.T, o *options) {
				if o.configPath != "f.yaml" || o.mode != "validate" || o.logLevel != "debug" || o.drainTimeS != 7 || o.concurrency != 2 {
					t.Errorf("long names: %+v", o)
				}
			}},
		{name: "config_yaml", args: []string{"--config-yaml", "admin: {}"}, check: func(t *testing.T, o *options) {
			if o.configYAML != "admin: {}" {
				t.Errorf("config-yaml: %+v", o)
			}
		}},
		{name: "version_needs_no_config", args: []string{"--version"}},
		{name: "unknown_flag", args: []string{"--bogus", "-c", "f"}, wantErr: "bogus"},
		{name: "stray_argument", args: []string{"-c", "f", "extra"}, wantErr: "unexpected arguments: extra"},
		{name: "bad_mode", args: []string{"-c", "f", "--mode", "init_only"}, wantErr: "--mode"},
		{name: "no_config", args: nil, wantErr: "a bootstrap is required"},
		{name: "negative_drain", args: []string{"-c", "f", "--drain-time-s", "-3"}, wantErr: "--drain-time-s -3"},
		{name: "negative_concurrency", args: []string{"-c", "f", "--concurrency", "-1"}, wantErr: "--concurrency -1"},
		{name: "drain_not_a_number", args: []string{"-c", "f", "--drain-time-s", "soon"}, wantErr: "drain-time-s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o, err := parseFlags(tc.args, io.Discard)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("parseFlags(%q) = %v, want an error containing %q", tc.args, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseFlags(%q): %v", tc.args, err)
			}
			if tc.check != nil {
				tc.check(t, o)
			}
		})
	}
}

func TestDrainTime(t *testing.T) {
	for _, tc := range []struct {
		s    int
		want time.Duration
	}{
		{0, -1}, // no wait (server.Options: negative)
		{1, time.Second},
		{600, 10 * time.Minute},
	} {
		if got := drainTime(tc.s); got != tc.want {
			t.Errorf("drainTime(%d) = %v, want %v", tc.s, got, tc.want)
		}
	}
}

func TestNewLogger(t *testing.T) {
	for _, level := range []string{"trace", "debug", "info", "warning", "warn", "error", "critical", "off", "INFO"} {
		if _, err := newLogger(level, io.Discard); err != nil {
			t.Errorf("newLogger(%q): %v", level, err)
		}
	}
	if _, err := newLogger("chatty", io.Discard); err == nil || !strings.Contains(err.Error(), "chatty") {
		t.Errorf("newLogger(chatty) = %v, want an error naming the level", err)
	}
}

const validBootstrap = `
static_resources:
  listeners:
  - name: l
    address: {socket_address: {address: 127.0.0.1, port_value: %PORT%}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.tcp_proxy
        typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy, stat_prefix: t, cluster: c}
  clusters:
  - name: c
    type: STATIC
    load_assignment: {cluster_name: c, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: 9}}}}]}]}
`

func TestRun(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// A port in use, for a configuration that validates but cannot serve.
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	_, busyPort, _ := net.SplitHostPort(busy.Addr().String())
	good := write("good.yaml", strings.ReplaceAll(validBootstrap, "%PORT%", busyPort))
	badRef := write("bad.yaml", strings.ReplaceAll(strings.ReplaceAll(validBootstrap, "%PORT%", "0"), "cluster: c}", "cluster: nope}"))
	inline := strings.ReplaceAll(validBootstrap, "%PORT%", "0")
	for _, tc := range []struct {
		name           string
		args           []string
		code           int
		stdout, stderr string
	}{
		{"version", []string{"--version"}, 0, "weft-proxy ", ""},
		{"help", []string{"-h"}, 0, "", "-drain-time-s"},
		// Validation binds nothing: the busy port does not matter.
		{"validate_ok", []string{"--mode", "validate", "-c", good}, 0, "configuration '" + good + "' OK", ""},
		{"validate_inline", []string{"--mode", "validate", "--config-yaml", inline}, 0, "configuration '--config-yaml' OK", ""},
		{"validate_bad_reference", []string{"--mode", "validate", "-c", badRef}, 1, "", `unknown cluster "nope"`},
		{"validate_missing_file", []string{"--mode", "validate", "-c", filepath.Join(dir, "none.yaml")}, 1, "", "none.yaml"},
		{"bad_flag", []string{"--nope"}, 1, "", "nope"},
		{"bad_log_level", []string{"-l", "loud", "-c", good}, 1, "", "loud"},
		// Serving fails at once when a listener cannot bind, naming it.
		{"serve_port_in_use", []string{"-c", good}, 1, "", "static_resources.listeners[0] (l)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(tc.args, &stdout, &stderr)
			if code != tc.code || !strings.Contains(stdout.String(), tc.stdout) || !strings.Contains(stderr.String(), tc.stderr) {
				t.Errorf("run(%q) = %d\nstdout: %q\nstderr: %q\nwant %d, stdout containing %q, stderr containing %q",
					tc.args, code, stdout.String(), stderr.String(), tc.code, tc.stdout, tc.stderr)
			}
		})
	}
}
