package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestLoadOverlay: an object of the overlay replaces the base's object of
// the same key (no duplicate), and the cross-object checks see the base's
// other objects (a subset the base's DestinationRule defines is valid, one
// it does not is an error of the overlay's file).
func TestLoadOverlay(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	vs := func(subset string) string {
		return "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: reviews}\nspec:\n  hosts: [reviews]\n  http: [{route: [{destination: {host: reviews, subset: " + subset + "}}]}]\n"
	}
	write("base/dr.yaml", "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: reviews}\nspec:\n  host: reviews\n  subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]\n")
	write("base/vs.yaml", vs("v1"))
	good := write("good.yaml", vs("v2"))
	bad := write("bad.yaml", vs("v3"))

	r, err := LoadOverlay([]string{filepath.Join(dir, "base")}, []string{good})
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := r.Counts(); n != 0 {
		t.Errorf("good overlay: errors %v", r.Errors)
	}
	var vsFiles []string
	for _, o := range r.Objects {
		if o.Kind == VirtualService {
			vsFiles = append(vsFiles, o.Source.File)
		}
	}
	if len(vsFiles) != 1 || vsFiles[0] != good {
		t.Errorf("VirtualServices from %v, want only %s", vsFiles, good)
	}

	r, err = LoadOverlay([]string{filepath.Join(dir, "base")}, []string{bad})
	if err != nil {
		t.Fatal(err)
	}
	if !r.HasErrors() || r.Errors[0].Source.File != bad || !strings.Contains(r.Errors[0].Message, "v3") {
		t.Errorf("bad overlay: problems %v, want the missing subset v3 in %s", r.Errors, bad)
	}
	if _, err := LoadOverlay([]string{filepath.Join(dir, "nope")}, nil); err == nil {
		t.Error("missing base: no error")
	}
}
