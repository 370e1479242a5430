package translate

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzGenerate feeds arbitrary test inputs (seeded with every golden
// scenario) through translation: whatever the configuration, Generate and
// Warnings must not panic and must return a version for every type.
// Configuration reaching translation is validated by internal/config; the
// fuzzer also sends invalid values, which must not crash translation
// either.
func FuzzGenerate(f *testing.F) {
	files, err := filepath.Glob("testdata/*/input.yaml")
	if err != nil || len(files) == 0 {
		f.Fatalf("no seeds: %v", err)
	}
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		in, err := decodeInput(data, "fuzz.yaml")
		if err != nil {
			return // not a decodable input
		}
		tr := New(Options{})
		for _, p := range in.proxies {
			res := tr.Generate(in.snapshot, p)
			if len(res.Versions) != 4 {
				t.Fatalf("%s: versions %v, want one per type", p.ID, res.Versions)
			}
		}
		for _, w := range tr.Warnings(in.snapshot) {
			if !w.Warning {
				t.Fatalf("warning not marked Warning: %v", w)
			}
		}
	})
}
