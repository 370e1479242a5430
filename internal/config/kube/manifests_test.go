package kube

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the manifests under manifests/ from the Go tables")

// manifestsDir is the repository's manifests directory, from this
// package's directory.
const manifestsDir = "../../../manifests"

// TestCRDManifests: the shipped manifests are what the tables generate
// (-update rewrites them), and nothing else sits in manifests/crds.
func TestCRDManifests(t *testing.T) {
	want := map[string][]byte{}
	for _, r := range Resources() {
		b, err := r.CRDManifest()
		if err != nil {
			t.Fatal(err)
		}
		want[filepath.Join("crds", r.CRDName()+".yaml")] = b
	}
	b, err := ValidatingWebhookManifest()
	if err != nil {
		t.Fatal(err)
	}
	want["validating-webhook.yaml"] = b
	for name, data := range want {
		path := filepath.Join(manifestsDir, name)
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
	entries, err := os.ReadDir(filepath.Join(manifestsDir, "crds"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if _, ok := want[filepath.Join("crds", e.Name())]; !ok {
			t.Errorf("manifests/crds/%s is not generated from Resources: remove it", e.Name())
		}
	}
}
