package kube

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the chart's CRDs under charts/weft/crds from the Go tables")

// crdDir is the chart's crds directory, from this package's directory.
var crdDir = filepath.Join("..", "..", "..", "charts", "weft", "crds")

// TestCRDManifests: the chart's CRDs are what the tables generate
// (-update rewrites them), and nothing else sits in charts/weft/crds. The
// webhook configurations are templates of the chart (internal/install
// checks them against ValidatingWebhookConfiguration).
func TestCRDManifests(t *testing.T) {
	want := map[string][]byte{}
	for _, r := range Resources() {
		b, err := r.CRDManifest()
		if err != nil {
			t.Fatal(err)
		}
		want[r.CRDName()+".yaml"] = b
	}
	for name, data := range want {
		path := filepath.Join(crdDir, name)
		if *update {
			if err := os.WriteFile(path, data, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (run go test ./internal/config/kube -run TestCRDManifests -update)", err)
		}
		if !bytes.Equal(got, data) {
			t.Errorf("%s is out of date: run go test ./internal/config/kube -run TestCRDManifests -update", path)
		}
	}
	entries, err := os.ReadDir(crdDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if _, ok := want[e.Name()]; !ok {
			t.Errorf("charts/weft/crds/%s is not generated from Resources: remove it", e.Name())
		}
	}
}
