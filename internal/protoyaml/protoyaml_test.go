package protoyaml

import (
	"errors"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/proto"
	networking "istio.io/api/networking/v1alpha3"
)

// istio decodes like the Istio configuration loader.
var istio = Options{JSONNames: true, GoDurations: true}

// TestSplit: documents, their indexes and start lines; a syntax error stays
// in its document.
func TestSplit(t *testing.T) {
	type want struct {
		line  int
		empty bool
		err   string // prefix of the error, "" for none
	}
	for _, tc := range []struct {
		name string
		in   string
		want []want
	}{
		{"empty", "", nil},
		{"comments only", "# nothing\n\n", nil},
		{"one document", "a: 1\nb: 2\n", []want{{line: 1}}},
		{"leading comment and marker", "# c\n---\na: 1\n", []want{{line: 3}}},
		{"three documents, one empty", "a: 1\n---\n---\n# x\nb: 2\n", []want{{line: 1}, {line: 2, empty: true}, {line: 5}}},
		{"null document", "a: 1\n---\nnull\n", []want{{line: 1}, {line: 2, empty: true}}},
		{"content on the marker line", "a: 1\n--- {b: 2}\n", []want{{line: 1}, {line: 2}}},
		{"CRLF", "a: 1\r\n---\r\nb: 2\r\n", []want{{line: 1}, {line: 3}}},
		{"syntax error confined", "a: 1\n---\nb: [\n---\nc: 3\n", []want{{line: 1}, {line: 2, err: "line 3: invalid YAML: did not find expected node content"}, {line: 5}}},
		{"syntax error line is absolute", "a: 1\n---\nb: 1\n  c: 2\n", []want{{line: 1}, {line: 2, err: "line 4: invalid YAML: mapping values are not allowed"}}},
		{"unclosed flow mapping: the line it opens on", "a: 1\n---\nx: 1\nb: {c: 1\nd: 2\n", []want{{line: 1}, {line: 2, err: "line 4: invalid YAML: did not find expected ',' or '}'"}}},
		{"directive stays with its document", "%YAML 1.1\n---\na: 1\n...\n# c\n%TAG !e! tag:e.com,2000:\n---\nb: !e!x 1\n", []want{{line: 3}, {line: 8}}},
		{"JSON", "\n{\"a\": {\n  \"b\": 1}}\n", []want{{line: 2}}},
		{"dashes inside a block scalar are indented", "a: |\n  ---\n  x\nb: 1\n", []want{{line: 1}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			docs := Split([]byte(tc.in))
			if len(docs) != len(tc.want) {
				t.Fatalf("got %d documents, want %d", len(docs), len(tc.want))
			}
			for i, d := range docs {
				w := tc.want[i]
				if d.Index != i || d.Line != w.line || d.Empty() != w.empty {
					t.Errorf("doc %d: index %d line %d empty %v; want line %d empty %v", i, d.Index, d.Line, d.Empty(), w.line, w.empty)
				}
				switch {
				case w.err == "" && d.Err != nil:
					t.Errorf("doc %d: unexpected error %v", i, d.Err)
				case w.err != "" && (d.Err == nil || !strings.HasPrefix(d.Err.Error(), w.err)):
					t.Errorf("doc %d: error %v, want prefix %q", i, d.Err, w.err)
				}
			}
		})
	}
}

// TestDecodeProblems: every problem of a document, with its exact path and
// line, in file order. A want entry ending in "..." is a prefix.
func TestDecodeProblems(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts Options
		in   string
		want []string
	}{{
		name: "unknown field with a suggestion (JSON names)",
		opts: istio,
		in: `hosts: [reviews]
http:
- route:
  - destination:
      host: reviews
      subet: v1
`,
		want: []string{"line 6: http[0].route[0].destination.subet: unknown field in istio.networking.v1alpha3.Destination (did you mean subset?)"},
	}, {
		name: "camelCase typo",
		opts: istio,
		in:   "http:\n- retries: {attempts: 3, perTryTimout: 2s}\n",
		want: []string{"line 2: http[0].retries.perTryTimout: unknown field in istio.networking.v1alpha3.HTTPRetry (did you mean perTryTimeout?)"},
	}, {
		name: "proto names in paths by default",
		opts: Options{},
		in:   "http:\n- retries:\n    per_try_timeout: 5\n",
		want: []string{`line 3: http[0].retries.per_try_timeout: expected a duration string such as "5s" or "0.25s", got a number (5)`},
	}, {
		name: "several problems in file order",
		opts: istio,
		in: `hosts: reviews
http:
- timeout: 10
  route:
  - destination: {host: reviews, port: {number: -1}}
    weight: "ten"
  match:
  - uri: {prefix: /a, exact: /b}
    headers:
      x-user: {regex: 1}
`,
		want: []string{
			`line 1: hosts: expected a list, got a string ("reviews")`,
			`line 3: http[0].timeout: expected a duration string such as "5s", "250ms" or "1m30s", got a number (10)`,
			`line 5: http[0].route[0].destination.port.number: -1 is out of range [0, 4294967295]`,
			`line 6: http[0].route[0].weight: "ten" is not a number`,
			`line 8: http[0].match[0].uri.prefix: only one of the match_type fields may be set; exact is set too`,
			`line 10: http[0].match[0].headers["x-user"].regex: expected a string, got a number (1) (quote it)`,
		},
	}, {
		name: "bad enum",
		opts: istio,
		in:   "http:\n- redirect: {uri: /x, derivePort: FROM_NOWHERE}\n",
		want: []string{`line 2: http[0].redirect.derivePort: unknown value "FROM_NOWHERE" (valid: FROM_PROTOCOL_DEFAULT, FROM_REQUEST_PORT)`},
	}, {
		name: "bad Go duration",
		opts: istio,
		in:   "http:\n- timeout: 5 minutes\n",
		want: []string{`line 2: http[0].timeout: invalid duration "5 minutes": write a number with a unit, such as "5s", "250ms" or "1m30s"`},
	}, {
		name: "Go duration without GoDurations",
		opts: Options{JSONNames: true},
		in:   "http:\n- timeout: 1m\n",
		want: []string{`line 2: http[0].timeout: invalid duration "1m": write seconds with an "s" suffix, such as "5s" or "0.25s"`},
	}, {
		name: "snake_case key found for a JSON-named path",
		opts: istio,
		in:   "http:\n- cors_policy:\n    max_age: forever\n",
		want: []string{`line 3: http[0].corsPolicy.maxAge: invalid duration "forever"...`},
	}, {
		name: "not a mapping",
		opts: istio,
		in:   "- a\n- b\n",
		want: []string{"line 1: expected a mapping (VirtualService), got a list"},
	}, {
		name: "duplicate key",
		opts: istio,
		in:   "hosts: [a]\nhosts: [b]\n",
		want: []string{`line 2: key "hosts" is written twice (also on line 1)`},
	}, {
		name: "null in a list",
		opts: istio,
		in:   "hosts: [a, null]\n",
		want: []string{"line 1: hosts[1]: null is not allowed here"},
	}, {
		name: "merge key: the line of the merged field",
		opts: istio,
		in: `hosts: [a]
tcp:
- &r
  route: [{destination: {host: a}}]
- <<: *r
  matchh: []
`,
		want: []string{"line 6: tcp[1].matchh: unknown field in istio.networking.v1alpha3.TCPRoute (did you mean match?)"},
	}, {
		name: "key that is not a path step",
		opts: istio,
		in:   "hosts: [a]\n\"a.b\": 1\n",
		want: []string{`line 2: ["a.b"]: unknown field in istio.networking.v1alpha3.VirtualService`},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			docs := Split([]byte(tc.in))
			if len(docs) != 1 {
				t.Fatalf("%d documents", len(docs))
			}
			ps := tc.opts.Decode(docs[0], &networking.VirtualService{})
			assertProblems(t, ps, tc.want)
		})
	}
}

// TestDecodeAny: Any fields resolve through the registry by default; an
// unknown @type is a problem at the Any field.
func TestDecodeAny(t *testing.T) {
	in := `name: x
typed_config:
  "@type": type.googleapis.com/no.such.Type
`
	ps := Options{}.Decode(Split([]byte(in))[0], &corev3.TypedExtensionConfig{})
	assertProblems(t, ps, []string{"line 2: typed_config: unknown type no.such.Type (not a message type this program knows)"})

	in = "name: x\ntyped_config: {stat_prefix: a}\n"
	ps = Options{}.Decode(Split([]byte(in))[0], &corev3.TypedExtensionConfig{})
	assertProblems(t, ps, []string{`line 2: typed_config: "@type" is missing: an Any must name its type`})

	in = "name: x\ntyped_config: {\"@type\": type.googleapis.com/envoy.config.core.v3.Locality, regoin: eu}\n"
	ps = Options{}.Decode(Split([]byte(in))[0], &corev3.TypedExtensionConfig{})
	assertProblems(t, ps, []string{"line 2: typed_config.regoin: unknown field in envoy.config.core.v3.Locality (did you mean region?)"})

	in = "name: x\ntyped_config: {\"@type\": type.googleapis.com/envoy.config.core.v3.Locality, region: eu}\n"
	var tec corev3.TypedExtensionConfig
	if ps := (Options{}).Decode(Split([]byte(in))[0], &tec); ps != nil {
		t.Fatal(ps)
	}
	var loc corev3.Locality
	if err := tec.GetTypedConfig().UnmarshalTo(&loc); err != nil || loc.GetRegion() != "eu" {
		t.Fatalf("locality %v, %v", &loc, err)
	}
}

// TestGoDurations: Istio's durations accept Go syntax and keep their value.
func TestGoDurations(t *testing.T) {
	in := `http:
- timeout: 1m30s
  retries: {attempts: 2, perTryTimeout: 250ms}
  fault: {delay: {fixedDelay: 1.5s}}
  corsPolicy: {maxAge: 24h}
`
	var vs networking.VirtualService
	if ps := istio.Decode(Split([]byte(in))[0], &vs); ps != nil {
		t.Fatal(ps)
	}
	h := vs.GetHttp()[0]
	for _, c := range []struct {
		name      string
		got, want int64 // milliseconds
	}{
		{"timeout", h.GetTimeout().AsDuration().Milliseconds(), 90000},
		{"perTryTimeout", h.GetRetries().GetPerTryTimeout().AsDuration().Milliseconds(), 250},
		{"fixedDelay", h.GetFault().GetDelay().GetFixedDelay().AsDuration().Milliseconds(), 1500},
		{"maxAge", h.GetCorsPolicy().GetMaxAge().AsDuration().Milliseconds(), 86400000},
	} {
		if c.got != c.want {
			t.Errorf("%s = %dms, want %dms", c.name, c.got, c.want)
		}
	}
}

// TestValueOf: the YAML-to-JSON mapping.
func TestValueOf(t *testing.T) {
	in := `labels: {date: 2024-01-01, on: yes, n: 007, f: .inf}
data: !!binary |
  aGVs
  bG8=
base: &b {x: 1, y: 2}
merged: {<<: *b, y: 3}
list: [1, 2.5, true, ~]
`
	v, err := Split([]byte(in))[0].Value()
	if err != nil {
		t.Fatal(err)
	}
	m := v.(map[string]any)
	labels := m["labels"].(map[string]any)
	if labels["date"] != "2024-01-01" || labels["on"] != "yes" || labels["n"] != 7 || labels["f"] != "Infinity" {
		t.Errorf("labels = %#v", labels)
	}
	if m["data"] != "aGVsbG8=" {
		t.Errorf("binary = %#v", m["data"])
	}
	merged := m["merged"].(map[string]any)
	if merged["x"] != 1 || merged["y"] != 3 {
		t.Errorf("merged = %#v", merged)
	}
	list := m["list"].([]any)
	if len(list) != 4 || list[1] != 2.5 || list[2] != true || list[3] != nil {
		t.Errorf("list = %#v", list)
	}
}

// TestValueOfBounds: recursive aliases and alias bombs are problems, not
// hangs.
func TestValueOfBounds(t *testing.T) {
	bomb := "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
	prev := "a"
	for _, n := range []string{"b", "c", "d", "e", "f", "g"} {
		bomb += n + ": &" + n + " [*" + prev + ", *" + prev + ", *" + prev + ", *" + prev + ", *" + prev + ", *" + prev + ", *" + prev + ", *" + prev + ", *" + prev + ", *" + prev + "]\n"
		prev = n
	}
	for _, tc := range []struct{ name, in, want string }{
		{"alias bomb", bomb, "the document expands to more than"},
		{"recursive alias", "a: &a [1, *a]\n", "alias *a refers to itself"},
		{"complex key", "? [a]\n: b\n", "a mapping key must be a scalar"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			docs := Split([]byte(tc.in))
			if len(docs) != 1 {
				t.Fatalf("%d documents", len(docs))
			}
			_, err := docs[0].Value()
			var p *Problem
			if !errors.As(err, &p) || !strings.Contains(p.Reason, tc.want) || p.Line == 0 {
				t.Fatalf("err = %v, want a problem with a line containing %q", err, tc.want)
			}
		})
	}
}

// TestLineOf: paths in either naming, exact map keys, nearest ancestor.
func TestLineOf(t *testing.T) {
	doc := Split([]byte(`spec:
  http:
  - match:
    - headers:
        x_user: {exact: a}
    retries:
      per_try_timeout: 1s
`))[0].Node
	for _, tc := range []struct {
		path string
		line int
	}{
		{"", 1},
		{"spec.http[0].match[0].headers", 4},
		{`spec.http[0].match[0].headers["x_user"].exact`, 5},
		{`spec.http[0].match[0].headers["xUser"]`, 4}, // map keys match exactly
		{"spec.http[0].retries.perTryTimeout", 7},     // JSON name, snake_case in the file
		{"spec.http[3].route", 2},
		{"nothing", 0},
		{`bad["path`, 0},
	} {
		if got := LineOf(doc, tc.path); got != tc.line {
			t.Errorf("LineOf(%q) = %d, want %d", tc.path, got, tc.line)
		}
	}
}

// TestJSONDocument: a JSON text decodes through encoding/json and still
// gets lines from its YAML reading.
func TestJSONDocument(t *testing.T) {
	in := "{\n  \"hosts\": [\"a\"],\n  \"http\": [{\"timeout\": \"2m\", \"retriez\": {}}]\n}\n"
	docs := Split([]byte(in))
	if len(docs) != 1 || docs[0].JSON == nil {
		t.Fatalf("docs = %v", docs)
	}
	ps := istio.Decode(docs[0], &networking.VirtualService{})
	assertProblems(t, ps, []string{"line 3: http[0].retriez: unknown field in istio.networking.v1alpha3.HTTPRoute (did you mean retries?)"})

	in = `{"hosts": ["a\/b"], "http": [{"timeout": "2m"}]}`
	var vs networking.VirtualService
	if ps := istio.Decode(Split([]byte(in))[0], &vs); ps != nil {
		t.Fatal(ps)
	}
	want := &networking.VirtualService{Hosts: []string{"a/b"}}
	if vs.GetHttp()[0].GetTimeout().GetSeconds() != 120 || !proto.Equal(&networking.VirtualService{Hosts: vs.Hosts}, want) {
		t.Fatalf("decoded %v", &vs)
	}
}

// assertProblems checks that ps prints exactly the wanted lines (a want
// line ending in "..." is a prefix).
func assertProblems(t *testing.T, ps Problems, want []string) {
	t.Helper()
	if len(ps) == 0 {
		t.Fatalf("no problems; want %q", want)
	}
	got := strings.Split(ps.Error(), "\n")
	if len(got) != len(want) {
		t.Fatalf("got %d problems, want %d:\n%s", len(got), len(want), ps)
	}
	for i := range want {
		w := want[i]
		ok := got[i] == w
		if p, isPrefix := strings.CutSuffix(w, "..."); isPrefix {
			ok = strings.HasPrefix(got[i], p)
		}
		if !ok {
			t.Errorf("problem %d:\n got: %s\nwant: %s", i, got[i], w)
		}
	}
}
