package main

import (
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestNoKubernetesDependencies: weft-proxy runs in every pod, and the
// Kubernetes client libraries' start-up code and tables cost each sidecar
// about 16 MiB of RSS (docs/PERFORMANCE.md, "Memory"); they came in once
// through internal/ca. The proxy must not import them (sigs.k8s.io/yaml, a
// plain YAML library, is fine).
func TestNoKubernetesDependencies(t *testing.T) {
	gobin := filepath.Join(runtime.GOROOT(), "bin", "go")
	if p, err := exec.LookPath("go"); err == nil {
		gobin = p
	}
	out, err := exec.Command(gobin, "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	for _, pkg := range strings.Fields(string(out)) {
		if strings.HasPrefix(pkg, "k8s.io/") || strings.HasPrefix(pkg, "sigs.k8s.io/controller-runtime") || strings.HasPrefix(pkg, "helm.sh/") {
			t.Errorf("weft-proxy depends on %s", pkg)
		}
	}
}
