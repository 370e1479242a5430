package config

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	networking "istio.io/api/networking/v1alpha3"
)

// TestLoadValid loads a realistic directory: every object valid, no
// problem, hidden files and other extensions skipped, values decoded.
func TestLoadValid(t *testing.T) {
	r, err := LoadDir("testdata/valid")
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Errors) != 0 {
		t.Fatalf("problems: %v", r.Errors)
	}
	var keys []string
	for _, o := range r.Objects {
		keys = append(keys, o.Key().String())
	}
	want := []string{
		"DestinationRule default/reviews", "Gateway istio-system/ingress",
		"ServiceEntry default/httpbin-ext", "ServiceEntry default/ratings", "ServiceEntry default/reviews",
		"Sidecar default/default", "VirtualService default/bookinfo", "VirtualService default/reviews",
		"WorkloadEntry default/reviews-v1", "WorkloadEntry default/reviews-v2",
	}
	if !slices.Equal(keys, want) {
		t.Fatalf("objects:\n got %q\nwant %q", keys, want)
	}
	if want := []string{"testdata/valid/gateway.yaml", "testdata/valid/routing.yaml", "testdata/valid/services.yaml"}; !slices.Equal(r.Files, want) {
		t.Errorf("files = %q, want %q", r.Files, want)
	}
	dr := find(t, r.Objects, Key{DestinationRule, "default", "reviews"}).Spec.(*networking.DestinationRule)
	if got := dr.GetTrafficPolicy().GetOutlierDetection().GetBaseEjectionTime().AsDuration().Minutes(); got != 15 {
		t.Errorf("baseEjectionTime = %vm, want 15m (Go duration syntax)", got)
	}
	vs := find(t, r.Objects, Key{VirtualService, "default", "reviews"})
	if vs.Source.Line != 26 || vs.Source.Doc != 1 || vs.APIVersion != "networking.istio.io/v1" {
		t.Errorf("VirtualService source %v, apiVersion %s", vs.Source, vs.APIVersion)
	}
	we := find(t, r.Objects, Key{WorkloadEntry, "default", "reviews-v1"})
	if we.Labels["version"] != "v1" || we.APIVersion != "networking.istio.io/v1beta1" {
		t.Errorf("WorkloadEntry meta %+v", we.Meta)
	}
	// Loading again gives the same versions.
	r2, _ := LoadDir("testdata/valid")
	for i := range r.Objects {
		if r.Objects[i].Version != r2.Objects[i].Version || r.Objects[i].Version == "" {
			t.Errorf("%s: version %q then %q", r.Objects[i].Key(), r.Objects[i].Version, r2.Objects[i].Version)
		}
	}
}

// find returns the object with key k.
func find(t *testing.T, objs []*Object, k Key) *Object {
	t.Helper()
	for _, o := range objs {
		if o.Key() == k {
			return o
		}
	}
	t.Fatalf("no %s", k)
	return nil
}

// TestLoadErrors: problems of whole documents, each with file, line,
// document, key, exact path and message. A want ending in "..." is a prefix.
func TestLoadErrors(t *testing.T) {
	for _, tc := range []struct {
		name     string
		in       string
		want     []string
		rejected []string
	}{{
		name: "unknown spec field with suggestion",
		in: `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
spec:
  hosts: [reviews]
  http:
  - route:
    - destination:
        host: reviews
        subet: v1
`,
		want:     []string{"f.yaml:11 (document 0): VirtualService default/reviews: spec.http[0].route[0].destination.subet: unknown field in istio.networking.v1alpha3.Destination (did you mean subset?)"},
		rejected: []string{"VirtualService default/reviews"},
	}, {
		name: "wrong types, in file order",
		in: `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: r, namespace: prod}
spec:
  host: [reviews]
  trafficPolicy:
    loadBalancer: {simple: ROUND_ROBBIN}
    connectionPool: {tcp: {maxConnections: many, connectTimeout: 30}}
`,
		want: []string{
			"f.yaml:5 (document 0): DestinationRule prod/r: spec.host: expected a string, got a list (quote it)",
			`f.yaml:7 (document 0): DestinationRule prod/r: spec.trafficPolicy.loadBalancer.simple: unknown value "ROUND_ROBBIN" (valid: UNSPECIFIED, LEAST_CONN, RANDOM, PASSTHROUGH, ROUND_ROBIN, LEAST_REQUEST)`,
			`f.yaml:8 (document 0): DestinationRule prod/r: spec.trafficPolicy.connectionPool.tcp.connectTimeout: expected a duration string such as "5s", "250ms" or "1m30s", got a number (30)`,
			`f.yaml:8 (document 0): DestinationRule prod/r: spec.trafficPolicy.connectionPool.tcp.maxConnections: "many" is not a number`,
		},
		rejected: []string{"DestinationRule prod/r"},
	}, {
		name: "validation error with its line",
		in: `apiVersion: networking.istio.io/v1alpha3
kind: VirtualService
metadata:
  name: r
spec:
  hosts: [r]
  http:
  - route:
    - destination: {host: r}
      weight: 60
    - destination: {host: r2}
      weight: -40
`,
		want: []string{
			"f.yaml:8 (document 0): VirtualService default/r: spec.http[0].route: warning: the weights sum to 60, not 100...",
			"f.yaml:9 (document 0): VirtualService default/r: spec.http[0].route[0].destination.host: warning: host r (r.default.svc.cluster.local) is not defined by any ServiceEntry",
			"f.yaml:11 (document 0): VirtualService default/r: spec.http[0].route[1].destination.host: warning: host r2 (r2.default.svc.cluster.local) is not defined by any ServiceEntry",
			"f.yaml:12 (document 0): VirtualService default/r: spec.http[0].route[1].weight: weight -40 must not be negative",
		},
		rejected: []string{"VirtualService default/r"},
	}, {
		name: "envelope problems",
		in: `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: se
  namespce: prod
  uid: 1234
  resourceVersion: "9"
spek: {}
status: {}
`,
		want: []string{
			"f.yaml:1 (document 0): ServiceEntry default/se: spec: spec is required",
			"f.yaml:5 (document 0): ServiceEntry default/se: metadata.namespce: unknown field (did you mean namespace?)",
			"f.yaml:8 (document 0): ServiceEntry default/se: spek: unknown field (did you mean spec?)",
		},
		rejected: []string{"ServiceEntry default/se"},
	}, {
		name: "unsupported kinds and versions",
		in: `apiVersion: security.istio.io/v1alpha1
kind: AuthorizationPolicy
metadata: {name: deny}
spec: {}
---
apiVersion: networking.istio.io/v1
kind: EnvoyFilter
metadata: {name: ef}
spec: {}
---
apiVersion: networking.istio.io/v2
kind: Gateway
metadata: {name: gw}
spec: {}
---
apiVersion: v1
kind: Service
metadata: {name: svc}
`,
		want: []string{
			"f.yaml:1 (document 0): AuthorizationPolicy default/deny: apiVersion: apiVersion security.istio.io/v1alpha1 is not supported: use security.istio.io/v1 or v1beta1",
			"f.yaml:7 (document 1): EnvoyFilter default/ef: kind: kind EnvoyFilter of networking.istio.io is not supported by weft-control (it reads VirtualService, DestinationRule, Gateway, ServiceEntry, WorkloadEntry and Sidecar of networking.istio.io, PeerAuthentication, AuthorizationPolicy and RequestAuthentication of security.istio.io, Telemetry of telemetry.istio.io, weft's LocalRateLimit of networking.weft.dev, and weft up's Workload of local.weft.dev); for local rate limiting, use LocalRateLimit of networking.weft.dev/v1alpha1 (docs/RATELIMIT.md)",
			"f.yaml:11 (document 2): Gateway default/gw: apiVersion: apiVersion networking.istio.io/v2 is not supported: use networking.istio.io/v1, v1beta1 or v1alpha3",
			"f.yaml:17 (document 3): Service default/svc: kind: v1 Service is not a resource weft-control reads...",
		},
		rejected: []string{"AuthorizationPolicy default/deny", "Gateway default/gw"},
	}, {
		name: "syntax error stays in its document",
		in: `apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: a}
spec: {address: 10.0.0.1}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: b
spec: {address: 10.0.0.2}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: c}
spec: {address: 10.0.0.3, labels: {app: [x]}}
`,
		want: []string{
			"f.yaml:8 (document 1): invalid YAML: did not find expected ',' or '}'",
			`f.yaml:14 (document 2): WorkloadEntry default/c: spec.labels["app"]: expected a string, got a list (quote it)`,
		},
		rejected: []string{"WorkloadEntry default/c"},
	}, {
		name: "not an object",
		in:   "- a\n- b\n---\njust text\n---\napiVersion: networking.istio.io/v1\nkind: Sidecar\nspec: {egress: [{hosts: [\"*/*\"]}]}\n",
		want: []string{
			"f.yaml:1 (document 0): a document must be a mapping with apiVersion, kind, metadata and spec",
			"f.yaml:4 (document 1): a document must be a mapping with apiVersion, kind, metadata and spec",
			"f.yaml:6 (document 2): Sidecar default/: metadata: metadata is required, with at least a name",
		},
	}, {
		name: "duplicate key",
		in:   "apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {name: a}\nmetadata: {name: b}\n",
		want: []string{`f.yaml:4 (document 0): key "metadata" is written twice (also on line 3)`},
	}, {
		name: "a List of objects",
		in: `apiVersion: v1
kind: List
items:
- apiVersion: networking.istio.io/v1
  kind: WorkloadEntry
  metadata: {name: ok}
  spec: {address: 10.0.0.1}
- apiVersion: networking.istio.io/v1
  kind: WorkloadEntry
  metadata: {name: bad, namespace: x}
  spec:
    address: 10.0.0.1
    weigth: 3
`,
		want:     []string{"f.yaml:13 (document 0): WorkloadEntry x/bad: spec.weigth: unknown field in istio.networking.v1alpha3.WorkloadEntry (did you mean weight?)"},
		rejected: []string{"WorkloadEntry x/bad"},
	}, {
		name: "duplicate definition",
		in:   "apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {name: a}\nspec: {address: 10.0.0.1}\n---\napiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {name: a}\nspec: {address: 10.0.0.2}\n",
		want: []string{"f.yaml:8 (document 1): WorkloadEntry default/a: metadata.name: duplicate definition: WorkloadEntry default/a is also defined at f.yaml:1 (document 0); the first definition applies"},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			r := loadString(t, tc.in)
			var got, rejected []string
			for _, e := range r.Errors {
				got = append(got, e.Error())
			}
			for _, k := range r.Rejected {
				rejected = append(rejected, k.String())
			}
			assertLines(t, got, tc.want)
			if !slices.Equal(rejected, tc.rejected) {
				t.Errorf("rejected = %q, want %q", rejected, tc.rejected)
			}
		})
	}
}

// loadString loads one file f.yaml holding in, with paths relative to its
// directory.
func loadString(t *testing.T, in string) *LoadResult {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "f.yaml"), []byte(in), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Chdir(dir)
	r, err := LoadFiles("f.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestLoadIncomplete: files with an unidentified document are listed, so
// the store keeps what they held.
func TestLoadIncomplete(t *testing.T) {
	r := loadString(t, "apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {name: a}\nspec: {address: 10.0.0.1}\n---\nkind: [\n")
	if !slices.Equal(r.Incomplete, []string{"f.yaml"}) || len(r.Objects) != 1 {
		t.Fatalf("incomplete %q, %d objects", r.Incomplete, len(r.Objects))
	}
	r = loadString(t, "apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {namespace: x}\nspec: {address: 10.0.0.1}\n")
	if !slices.Equal(r.Incomplete, []string{"f.yaml"}) {
		t.Fatalf("a document without a name: incomplete %q", r.Incomplete)
	}
}

// TestLoadJSON: a .json file is one object; its problems have lines too.
func TestLoadJSON(t *testing.T) {
	dir := t.TempDir()
	js := `{
  "apiVersion": "networking.istio.io/v1",
  "kind": "ServiceEntry",
  "metadata": {"name": "api"},
  "spec": {
    "hosts": ["api.example.com"],
    "ports": [{"number": 443, "name": "tls", "protocol": "TLS"}],
    "resolution": "DNS",
    "locaton": "MESH_EXTERNAL"
  }
}`
	if err := os.WriteFile(filepath.Join(dir, "se.json"), []byte(js), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Errors) != 1 || r.Errors[0].Source.Line != 9 || r.Errors[0].Path != "spec.locaton" {
		t.Fatalf("errors = %v", r.Errors)
	}
}

// TestLoadMissing: a missing path is an error, not an empty result.
func TestLoadMissing(t *testing.T) {
	if _, err := LoadDir(filepath.Join(t.TempDir(), "nope")); !os.IsNotExist(unwrapAll(err)) {
		t.Errorf("LoadDir: %v", err)
	}
	if _, err := LoadFiles("testdata/valid", filepath.Join(t.TempDir(), "nope.yaml")); err == nil {
		t.Error("LoadFiles: no error")
	}
	if _, err := LoadDir("testdata/valid/routing.yaml"); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Errorf("LoadDir on a file: %v", err)
	}
}

// unwrapAll returns the innermost error.
func unwrapAll(err error) error {
	for {
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			return err
		}
		err = u.Unwrap()
	}
}

// TestLoadCache: the watcher's cached reload gives the same result as a
// full load, change after change, and never lets one load's problems leak
// into the next.
func TestLoadCache(t *testing.T) {
	dir := t.TempDir()
	cache := fileCache{}
	vs := "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: r}\nspec: {hosts: [r], http: [{route: [{destination: {host: r, subset: %s}}]}]}\n"
	dr := "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: r}\nspec: {host: r, subsets: [{name: v1}]}\n"
	for i, files := range []map[string]string{
		{"vs.yaml": fmt.Sprintf(vs, "v1"), "dr.yaml": dr},
		{"vs.yaml": fmt.Sprintf(vs, "v2"), "dr.yaml": dr},                        // cross-object error, dr cached
		{"vs.yaml": fmt.Sprintf(vs, "v1"), "dr.yaml": dr, "dup.yaml": dr},        // a duplicate
		{"vs.yaml": fmt.Sprintf(vs, "v1"), "dup.yaml": dr},                       // file removed
		{"vs.yaml": fmt.Sprintf(vs, "v1"), "dup.yaml": dr, "bad.yaml": "a: [\n"}, // syntax error
	} {
		writeFiles(t, dir, files)
		cached, err := loadDir(dir, cache)
		if err != nil {
			t.Fatal(err)
		}
		full, err := LoadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := describe(cached), describe(full); got != want {
			t.Errorf("step %d: cached load\n%s\nfull load\n%s", i, got, want)
		}
		if len(cache) != len(full.Files) {
			t.Errorf("step %d: %d cached files for %d files", i, len(cache), len(full.Files))
		}
	}
}

// describe summarizes a load result for comparisons.
func describe(r *LoadResult) string {
	var b strings.Builder
	for _, o := range r.Objects {
		fmt.Fprintf(&b, "object %s %s\n", o.Key(), o.Version)
	}
	for _, k := range r.Rejected {
		fmt.Fprintf(&b, "rejected %s\n", k)
	}
	for _, e := range r.Errors {
		fmt.Fprintf(&b, "problem %v\n", e)
	}
	fmt.Fprintf(&b, "incomplete %v\n", r.Incomplete)
	return b.String()
}
