package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// update rewrites the golden files: go test ./cmd/weft -update
var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// weft runs the CLI in-process and returns its status and outputs.
func weft(args ...string) (code int, stdout, stderr string) {
	var out, errOut bytes.Buffer
	code = run(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./cmd/weft -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("output differs from %s (go test ./cmd/weft -update rewrites it):\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

// TestAnalyzeBroken: every problem of a broken directory, human-readable
// and as JSON, exit status 1.
func TestAnalyzeBroken(t *testing.T) {
	code, out, errOut := weft("analyze", "-f", "testdata/broken")
	if code != 1 || errOut != "" {
		t.Fatalf("status %d, stderr %q", code, errOut)
	}
	golden(t, "analyze-broken.golden.txt", out)

	code, out, errOut = weft("analyze", "-f", "testdata/broken", "-o", "json")
	if code != 1 || errOut != "" {
		t.Fatalf("json: status %d, stderr %q", code, errOut)
	}
	var problems []problem
	if err := json.Unmarshal([]byte(out), &problems); err != nil {
		t.Fatalf("output is not a JSON array of problems: %v", err)
	}
	if len(problems) != strings.Count(golden0(t, "analyze-broken.golden.txt"), "\ntestdata/")+1 {
		t.Errorf("%d JSON problems, not as many as text lines", len(problems))
	}
	golden(t, "analyze-broken.golden.json", out)
}

// golden0 reads a golden file.
func golden0(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestAnalyzeValid: no problem, status 0; several -f combine into one
// configuration (the VirtualService's subsets are in another file).
func TestAnalyzeValid(t *testing.T) {
	code, out, _ := weft("analyze", "-f", "testdata/valid")
	if code != 0 || out != "No problems in 3 files (11 objects).\n" {
		t.Fatalf("status %d, output %q", code, out)
	}
	code, out, _ = weft("analyze", "-f", "testdata/valid/routing.yaml", "-f", "testdata/valid/services.yaml", "-o", "json")
	if code != 0 || strings.TrimSpace(out) != "[]" {
		t.Fatalf("status %d, output %q", code, out)
	}
	// Alone, the routing file misses its ServiceEntry: warnings only.
	code, out, _ = weft("analyze", "-f", "testdata/valid/routing.yaml")
	if code != 0 || !strings.Contains(out, "0 errors and 3 warnings in 1 file: 3 objects valid, 0 objects rejected.") {
		t.Fatalf("status %d, output %q", code, out)
	}
}

// TestAnalyzeExample: the README's local mesh example is clean.
func TestAnalyzeExample(t *testing.T) {
	code, out, _ := weft("analyze", "-f", "../../examples/mesh/config")
	if code != 0 || out != "No problems in 1 file (5 objects).\n" {
		t.Fatalf("examples/mesh/config: status %d, output %q", code, out)
	}
}

// TestAnalyzeUsage: bad invocations fail with status 1 and a message.
func TestAnalyzeUsage(t *testing.T) {
	empty := t.TempDir()
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no file", []string{"analyze"}, `weft: required flag(s) "filename" not set`},
		{"missing file", []string{"analyze", "-f", "testdata/nope.yaml"}, "weft: config: stat testdata/nope.yaml: no such file or directory"},
		{"no configuration files", []string{"analyze", "-f", empty}, "weft: no configuration files (*.yaml, *.yml, *.json) in " + empty},
		{"unknown output", []string{"analyze", "-f", "testdata/valid", "-o", "xml"}, `weft: unknown output format "xml": use -o table, -o json, -o yaml`},
		{"unknown command", []string{"analyse"}, `weft: unknown command "analyse" for "weft"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := weft(tc.args...)
			if code != 1 || out != "" || !strings.HasPrefix(errOut, tc.want) {
				t.Fatalf("status %d, stdout %q, stderr %q; want status 1 and %q", code, out, errOut, tc.want)
			}
		})
	}
}

// TestRootHelp: the root command lists analyze.
func TestRootHelp(t *testing.T) {
	code, out, _ := weft("--help")
	if code != 0 || !strings.Contains(out, "analyze") {
		t.Fatalf("status %d, help %q", code, out)
	}
}
