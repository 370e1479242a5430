package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// goList runs `go list -deps` on this package with extra flags and returns
// the import paths.
func goList(t *testing.T, flags ...string) []string {
	t.Helper()
	gobin := filepath.Join(runtime.GOROOT(), "bin", "go")
	if p, err := exec.LookPath("go"); err == nil {
		gobin = p
	}
	out, err := exec.Command(gobin, append(append([]string{"list", "-deps"}, flags...), ".")...).CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps %s: %v\n%s", strings.Join(flags, " "), err, out)
	}
	return strings.Fields(string(out))
}

// TestNoKubernetesDependencies: weft-proxy runs in every pod, and the
// Kubernetes client libraries' start-up code and tables cost each sidecar
// about 16 MiB of RSS (docs/PERFORMANCE.md, "Memory"); they came in once
// through internal/ca. The proxy must not import them (sigs.k8s.io/yaml, a
// plain YAML library, is fine).
func TestNoKubernetesDependencies(t *testing.T) {
	for _, pkg := range goList(t) {
		if strings.HasPrefix(pkg, "k8s.io/") || strings.HasPrefix(pkg, "sigs.k8s.io/controller-runtime") || strings.HasPrefix(pkg, "helm.sh/") {
			t.Errorf("weft-proxy depends on %s", pkg)
		}
	}
}

// releaseBuildTags are the tags every build of weft's binaries uses
// (Makefile BUILDFLAGS, bench/run.sh, Dockerfile).
const releaseBuildTags = "grpcnotrace"

// TestNoTemplatesInReleaseBuild: gRPC imports golang.org/x/net/trace unless
// built with grpcnotrace, and x/net/trace brings html/template and
// text/template, whose reflect.Value.MethodByName makes the linker keep
// every exported method of every reachable type: 6 MB of binary and
// 2.6 MiB of idle RSS per proxy (docs/PERFORMANCE.md, "Memory"). weft never
// enables gRPC tracing (grpc.EnableTracing), so the tag changes nothing
// else. No other package may bring the templates back.
func TestNoTemplatesInReleaseBuild(t *testing.T) {
	for _, pkg := range goList(t, "-tags", releaseBuildTags) {
		switch pkg {
		case "golang.org/x/net/trace", "html/template", "text/template":
			t.Errorf("weft-proxy built with -tags %s depends on %s", releaseBuildTags, pkg)
		}
	}
}

// TestBuildsUseReleaseTags: the builds that ship or measure weft-proxy pass
// the release tags.
func TestBuildsUseReleaseTags(t *testing.T) {
	for _, f := range []string{"Makefile", "bench/run.sh", "Dockerfile"} {
		data, err := os.ReadFile(filepath.Join("..", "..", f))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(data), "-tags "+releaseBuildTags) {
			t.Errorf("%s: no go build with -tags %s", f, releaseBuildTags)
		}
	}
}
