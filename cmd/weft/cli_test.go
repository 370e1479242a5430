package main

import (
	"encoding/json"
	"runtime"
	"strings"
	"testing"
)

// TestVersion: the text and JSON forms carry the Go version.
func TestVersion(t *testing.T) {
	code, out, _ := weft("version")
	if code != 0 || !strings.HasPrefix(out, "weft ") || !strings.Contains(out, "go: "+runtime.Version()) {
		t.Errorf("version: status %d, %q", code, out)
	}
	code, out, _ = weft("version", "-o", "json")
	var v versionInfo
	if err := json.Unmarshal([]byte(out), &v); code != 0 || err != nil || v.GoVersion != runtime.Version() || v.Commit == "" {
		t.Errorf("version -o json: status %d, %q (%v)", code, out, err)
	}
}

// TestCLIErrorsSayWhatToDo: usage errors of the new commands name the
// next step; completion scripts are printed for each shell.
func TestCLIErrorsSayWhatToDo(t *testing.T) {
	state := t.TempDir()
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"apply without weft up", []string{"apply", "-f", "testdata/valid", "--state-dir", state}, "weft: no weft up is running: start the mesh with `weft up -f DIR` first"},
		{"apply without file", []string{"apply"}, `weft: required flag(s) "filename" not set`},
		{"up on a missing directory", []string{"up", "-f", "testdata/nope", "--state-dir", state}, "is not a directory: give the directory of your Istio YAML and Workloads with -f"},
		{"up with a bad output", []string{"up", "-o", "xml"}, `weft: unknown output format "xml": use -o table, -o json, -o yaml`},
		{"version with a bad output", []string{"version", "-o", "xml"}, `weft: unknown output format "xml"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, errOut := weft(tc.args...)
			if code != 1 || !strings.Contains(errOut, tc.want) {
				t.Errorf("status %d, stderr %q; want status 1 and %q", code, errOut, tc.want)
			}
		})
	}
	for _, shell := range []string{"bash", "zsh", "fish"} {
		code, out, _ := weft("completion", shell)
		if code != 0 || !strings.Contains(out, "weft") || len(out) < 500 {
			t.Errorf("completion %s: status %d, %d bytes", shell, code, len(out))
		}
	}
	for _, cmd := range []string{"up", "apply", "version"} {
		if code, out, _ := weft(cmd, "--help"); code != 0 || !strings.Contains(out, "Examples:") {
			t.Errorf("%s --help: status %d, no examples in %q", cmd, code, out)
		}
	}
}
