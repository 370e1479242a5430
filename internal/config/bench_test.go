package config

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeMesh writes the benchmark mesh of the issue: 1,000 services in 10
// namespaces (a ServiceEntry with 10 endpoints each, one file per
// namespace), 100 of them with a 90/10 VirtualService and a
// DestinationRule with two subsets (one file each).
func writeMesh(tb testing.TB, dir string) {
	tb.Helper()
	for ns := 0; ns < 10; ns++ {
		var b strings.Builder
		for svc := 0; svc < 100; svc++ {
			fmt.Fprintf(&b, `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: svc-%d, namespace: ns-%d}
spec:
  hosts: [svc-%d.ns-%d.svc.cluster.local]
  ports: [{number: 8080, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints:
`, svc, ns, svc, ns)
			for ep := 0; ep < 10; ep++ {
				fmt.Fprintf(&b, "  - {address: 10.%d.%d.%d, labels: {version: v%d}}\n", ns, svc, ep, ep%2+1)
			}
			b.WriteString("---\n")
		}
		write(tb, filepath.Join(dir, fmt.Sprintf("ns-%d", ns), "services.yaml"), b.String())
	}
	for i := 0; i < 100; i++ {
		ns, svc := i%10, i/10
		write(tb, filepath.Join(dir, fmt.Sprintf("ns-%d", ns), fmt.Sprintf("svc-%d-routing.yaml", svc)), fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: svc-%[1]d, namespace: ns-%[2]d}
spec:
  host: svc-%[1]d
  subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: svc-%[1]d, namespace: ns-%[2]d}
spec:
  hosts: [svc-%[1]d]
  http:
  - route:
    - {destination: {host: svc-%[1]d, subset: v1}, weight: 90}
    - {destination: {host: svc-%[1]d, subset: v2}, weight: 10}
`, svc, ns))
	}
}

// BenchmarkLoadDir measures a full reload of the benchmark mesh (what the
// watcher does after any change).
func BenchmarkLoadDir(b *testing.B) {
	dir := b.TempDir()
	writeMesh(b, dir)
	b.ReportAllocs()
	for b.Loop() {
		r, err := LoadDir(dir)
		if err != nil || len(r.Objects) != 1200 || len(r.Errors) != 0 {
			b.Fatalf("err %v, %d objects, %d problems", err, len(r.Objects), len(r.Errors))
		}
	}
}

// BenchmarkApply measures applying an unchanged reload to a full store.
func BenchmarkApply(b *testing.B) {
	dir := b.TempDir()
	writeMesh(b, dir)
	r, err := LoadDir(dir)
	if err != nil {
		b.Fatal(err)
	}
	s := NewStore()
	s.Apply(r)
	b.ReportAllocs()
	for b.Loop() {
		if ch := s.Apply(r); !ch.Empty() {
			b.Fatal("changes")
		}
	}
}

// BenchmarkReloadOneChange measures the watcher's reload after one
// VirtualService file changed in the benchmark mesh: only that file is
// decoded again.
func BenchmarkReloadOneChange(b *testing.B) {
	dir := b.TempDir()
	writeMesh(b, dir)
	cache := fileCache{}
	if _, err := loadDir(dir, cache); err != nil {
		b.Fatal(err)
	}
	vs := filepath.Join(dir, "ns-3", "svc-4-routing.yaml")
	orig, err := os.ReadFile(vs)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		w := 50 + i%40
		write(b, vs, strings.Replace(strings.Replace(string(orig), "weight: 90", fmt.Sprintf("weight: %d", w), 1), "weight: 10", fmt.Sprintf("weight: %d", 100-w), 1))
		r, err := loadDir(dir, cache)
		if err != nil || len(r.Objects) != 1200 || len(r.Errors) != 0 {
			b.Fatalf("err %v, %d objects, %d problems", err, len(r.Objects), len(r.Errors))
		}
	}
}
