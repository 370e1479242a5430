package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCAFlags: CA flags reach the CA, whose errors end the program with
// status 1 and a message naming the flag.
func TestCAFlags(t *testing.T) {
	base := []string{"--config-dir", t.TempDir(), "--xds-address", "127.0.0.1:0", "--http-address", "127.0.0.1:0",
		"--secure-address", "127.0.0.1:0", "--ca-dir", t.TempDir()}
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--cert-ttl", "5s"}, "at least 10s"},
		{[]string{"--trust-domain", "Example.COM"}, "trust domain"},
		{[]string{"--ca-cert", "/nonexistent/ca-cert.pem", "--ca-key", "/nonexistent/ca-key.pem"}, "--ca-cert"},
		{[]string{"--ca-cert", "/nonexistent/ca-cert.pem"}, "both --ca-cert and --ca-key"},
	}
	for _, tt := range tests {
		var stderr bytes.Buffer
		if code := run(append(append([]string{}, base...), tt.args...), &stderr); code != 1 || !strings.Contains(stderr.String(), tt.want) {
			t.Errorf("%v: status %d, stderr %q, want 1 and %q", tt.args, code, stderr.String(), tt.want)
		}
	}
}

// TestMeshConfigFlag: a mesh configuration with a problem stops
// weft-control at start with the file, line and field path.
func TestMeshConfigFlag(t *testing.T) {
	dir := t.TempDir()
	meshFile := filepath.Join(dir, "mesh.yaml")
	if err := os.WriteFile(meshFile, []byte("enableTracing: true\ndefaultProviders:\n  tracing: [otel]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	code := run([]string{"--config-dir", dir, "--xds-address", "127.0.0.1:0", "--http-address", "127.0.0.1:0",
		"--secure-address", "", "--mesh-config", meshFile}, &stderr)
	want := meshFile + `:3 (document 0): defaultProviders.tracing[0]: no extension provider named "otel"`
	if code != 1 || !strings.Contains(stderr.String(), want) {
		t.Fatalf("status %d, stderr %q, want 1 and %q", code, stderr.String(), want)
	}
}

// TestKubeconfigFlag: an unreadable --kubeconfig stops weft-control at
// start with a message naming the flag.
func TestKubeconfigFlag(t *testing.T) {
	var stderr bytes.Buffer
	code := run([]string{"--kubeconfig", filepath.Join(t.TempDir(), "missing"), "--xds-address", "127.0.0.1:0",
		"--http-address", "127.0.0.1:0", "--secure-address", ""}, &stderr)
	if code != 1 || !strings.Contains(stderr.String(), "--kubeconfig") {
		t.Fatalf("status %d, stderr %q, want 1 and --kubeconfig", code, stderr.String())
	}
}
