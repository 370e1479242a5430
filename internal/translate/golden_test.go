package translate

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

var update = flag.Bool("update", false, "rewrite the golden files from the current output")

// TestGolden translates every testdata/<scenario>/input.yaml for each of
// its proxies and compares the resources and the warnings with
// testdata/<scenario>/output.golden.json (go test -update rewrites them).
// Every resource must pass Envoy's generated validation (PGV, Any contents
// included) and, for proxies other than proxyless gRPC clients,
// weft-proxy's supported-subset check; proxyless resources must have the
// shapes grpc-go accepts.
func TestGolden(t *testing.T) {
	dirs, err := filepath.Glob("testdata/*/input.yaml")
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no scenarios found: %v", err)
	}
	for _, in := range dirs {
		dir := filepath.Dir(in)
		t.Run(filepath.Base(dir), func(t *testing.T) {
			input := loadInput(t, in)
			if len(input.proxies) == 0 {
				t.Fatal("the scenario declares no Proxy")
			}
			tr := New(Options{})
			out := goldenOutput{Warnings: []string{}}
			for _, p := range input.proxies {
				res := tr.Generate(input.snapshot, p)
				checkResources(t, p, res)
				out.Proxies = append(out.Proxies, goldenProxy{
					ID:        p.ID,
					Listeners: sortedJSON(t, res.Listeners),
					Routes:    sortedJSON(t, res.Routes),
					Clusters:  sortedJSON(t, res.Clusters),
					Endpoints: sortedJSON(t, res.Endpoints),
				})
			}
			for _, w := range tr.Warnings(input.snapshot) {
				if !w.Warning {
					t.Errorf("warning not marked Warning: %v", w)
				}
				out.Warnings = append(out.Warnings, w.Error())
			}
			compareGolden(t, filepath.Join(dir, "output.golden.json"), out)
		})
	}
}

// goldenOutput is the content of a golden file.
type goldenOutput struct {
	Proxies  []goldenProxy `json:"proxies"`
	Warnings []string      `json:"warnings"`
}

type goldenProxy struct {
	ID        string `json:"id"`
	Listeners []any  `json:"listeners"`
	Routes    []any  `json:"routes"`
	Clusters  []any  `json:"clusters"`
	Endpoints []any  `json:"endpoints"`
}

// sortedJSON renders resources sorted by name as generic JSON values (so
// that the golden file's keys are sorted and its layout stable; protojson's
// own output varies its whitespace on purpose).
func sortedJSON[T proto.Message](t *testing.T, m map[string]T) []any {
	t.Helper()
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	out := make([]any, 0, len(names))
	for _, n := range names {
		b, err := protojson.Marshal(m[n])
		if err != nil {
			t.Fatalf("%s: %v", n, err)
		}
		var v any
		if err := json.Unmarshal(b, &v); err != nil {
			t.Fatalf("%s: %v", n, err)
		}
		out = append(out, v)
	}
	return out
}

// compareGolden compares out with the golden file, or rewrites it.
func compareGolden(t *testing.T, file string, out goldenOutput) {
	t.Helper()
	got, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, '\n')
	if *update {
		if err := os.WriteFile(file, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the output; diff:\n%s\n(run go test -update to accept the new output)", file, lineDiff(string(want), string(got)))
	}
}

// lineDiff shows the first differing lines of two texts, with context.
func lineDiff(want, got string) string {
	wl, gl := splitLines(want), splitLines(got)
	i := 0
	for i < len(wl) && i < len(gl) && wl[i] == gl[i] {
		i++
	}
	var b bytes.Buffer
	from := max(0, i-3)
	for j := from; j < i; j++ {
		b.WriteString("  " + wl[j] + "\n")
	}
	for j := i; j < min(len(wl), i+8); j++ {
		b.WriteString("- " + wl[j] + "\n")
	}
	for j := i; j < min(len(gl), i+8); j++ {
		b.WriteString("+ " + gl[j] + "\n")
	}
	return b.String()
}

func splitLines(s string) []string {
	var out []string
	for len(s) > 0 {
		i := bytes.IndexByte([]byte(s), '\n')
		if i < 0 {
			return append(out, s)
		}
		out = append(out, s[:i])
		s = s[i+1:]
	}
	return out
}
