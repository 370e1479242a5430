package config

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
)

// rateLimitDoc is a LocalRateLimit document in namespace ns named x.
func rateLimitDoc(apiVersion, spec string) string {
	return fmt.Sprintf("apiVersion: %s\nkind: LocalRateLimit\nmetadata: {name: x, namespace: ns}\nspec:\n%s", apiVersion, indent(spec))
}

// TestValidateLocalRateLimit decodes and validates LocalRateLimit specs:
// the documented example is valid; each broken field is reported at its
// path, unknown fields with a suggestion.
func TestValidateLocalRateLimit(t *testing.T) {
	cases := []vcase{
		{name: "doc example", spec: `
workloadSelector: {matchLabels: {app: api}}
ports: [8080, 9090]
tokenBucket: {maxTokens: 100, tokensPerFill: 10, fillInterval: 1s}
statusCode: 503
responseHeaders: {x-local-rate-limit: "true"}
xRateLimitHeaders: true
`},
		{name: "minimal, Go duration", spec: "tokenBucket: {maxTokens: 1, fillInterval: 50ms}\n"},
		{name: "no token bucket", spec: "ports: [80]\n",
			want: []string{"spec.tokenBucket: tokenBucket is required (maxTokens, tokensPerFill, fillInterval)"}},
		{name: "empty token bucket", spec: "tokenBucket: {}\n", want: []string{
			"spec.tokenBucket.maxTokens: maxTokens must be greater than 0 (the bucket's capacity: the largest burst admitted)",
			"spec.tokenBucket.fillInterval: fillInterval is required (for example 1s): tokensPerFill tokens are added every fillInterval",
		}},
		{name: "fill interval too short", spec: "tokenBucket: {maxTokens: 5, fillInterval: 49ms}\n", want: []string{
			"spec.tokenBucket.fillInterval: fillInterval 49ms is below Envoy's minimum of 50ms: use a longer interval (and more tokensPerFill)",
		}},
		{name: "fill interval not whole milliseconds", spec: "tokenBucket: {maxTokens: 5, fillInterval: 1.0005s}\n", want: []string{
			"spec.tokenBucket.fillInterval: duration 1.0005s: only whole milliseconds are supported",
		}},
		{name: "tokens per fill above max", spec: "tokenBucket: {maxTokens: 5, tokensPerFill: 6, fillInterval: 1s}\n", want: []string{
			"W spec.tokenBucket.tokensPerFill: tokensPerFill 6 is above maxTokens 5: the bucket never holds more than maxTokens",
		}},
		{name: "bad ports", spec: "tokenBucket: {maxTokens: 1, fillInterval: 1s}\nports: [0, 80, 80, 70000]\n", want: []string{
			"spec.ports[0]: port number 0 must be in the range 1..65535",
			"spec.ports[2]: port 80 is listed twice",
			"spec.ports[3]: port number 70000 must be in the range 1..65535",
		}},
		{name: "status not an error", spec: "tokenBucket: {maxTokens: 1, fillInterval: 1s}\nstatusCode: 200\n", want: []string{
			"spec.statusCode: statusCode 200 is not a 4xx or 5xx status (default 429)",
		}},
		{name: "status Envoy does not know", spec: "tokenBucket: {maxTokens: 1, fillInterval: 1s}\nstatusCode: 499\n", want: []string{
			"spec.statusCode: statusCode 499 is not a status Envoy knows (envoy.type.v3.StatusCode): use for example 429 or 503",
		}},
		{name: "bad response headers", spec: "tokenBucket: {maxTokens: 1, fillInterval: 1s}\nresponseHeaders: {\"bad header\": x, \":status\": \"500\", ok: \"50%\"}\n", want: []string{
			`spec.responseHeaders[":status"]: ":status" is not a valid header name`,
			`spec.responseHeaders["bad header"]: "bad header" is not a valid header name`,
			`spec.responseHeaders["ok"]: header value "50%": a '%' must be written %% or open a %COMMAND% such as %HOSTNAME%`,
		}},
		{name: "bad selector", spec: "tokenBucket: {maxTokens: 1, fillInterval: 1s}\nworkloadSelector: {matchLabels: {app: \"a*\"}}\n", want: []string{
			`spec.workloadSelector.matchLabels["app"]: invalid label value "a*": at most 63 characters, alphanumerics, '-', '_' or '.', starting and ending with an alphanumeric`,
			`spec.workloadSelector.matchLabels["app"]: a wildcard is not supported in a selector: "app=a*"`,
		}},
		{name: "unknown field", spec: "tokenBucket: {maxTokens: 1, fillIntervall: 1s}\n", want: []string{
			"spec.tokenBucket.fillIntervall: unknown field in weft.networking.v1alpha1.TokenBucket (did you mean fillInterval?)",
		}},
		{name: "wrong type", spec: "tokenBucket: {maxTokens: many, fillInterval: 1s}\n", want: []string{
			`spec.tokenBucket.maxTokens: "many" is not a number`,
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			items, _ := decodeFile("t.yaml", []byte(rateLimitDoc("networking.weft.dev/v1alpha1", tc.spec)))
			if len(items) != 1 {
				t.Fatalf("%d items", len(items))
			}
			var got []string
			for _, e := range items[0].errs {
				s := e.Path + ": " + e.Message
				if e.Warning {
					s = "W " + s
				}
				got = append(got, s)
			}
			assertLines(t, got, tc.want)
			if valid := items[0].valid(); valid == hasError(tc.want) {
				t.Errorf("object valid = %v with problems %q", valid, got)
			}
		})
	}
}

// TestLocalRateLimitAPIVersion: only networking.weft.dev/v1alpha1 is read.
func TestLocalRateLimitAPIVersion(t *testing.T) {
	for _, tc := range []struct{ apiVersion, want string }{
		{"networking.weft.dev/v1", "apiVersion: apiVersion networking.weft.dev/v1 is not supported: use networking.weft.dev/v1alpha1"},
		{"networking.istio.io/v1", "apiVersion: apiVersion networking.istio.io/v1 is not supported for LocalRateLimit: use networking.weft.dev/v1alpha1"},
	} {
		items, _ := decodeFile("t.yaml", []byte(rateLimitDoc(tc.apiVersion, "tokenBucket: {maxTokens: 1, fillInterval: 1s}\n")))
		if len(items) != 1 || len(items[0].errs) != 1 {
			t.Fatalf("%s: items %d, want one item with one problem", tc.apiVersion, len(items))
		}
		if e := items[0].errs[0]; e.Path+": "+e.Message != tc.want {
			t.Errorf("%s: got %q, want %q", tc.apiVersion, e.Path+": "+e.Message, tc.want)
		}
	}
}

// TestLocalRateLimitOf reads a decoded object, defaults applied.
func TestLocalRateLimitOf(t *testing.T) {
	for _, tc := range []struct {
		name, spec string
		want       LocalRateLimitSpec
	}{
		{name: "defaults", spec: "tokenBucket: {maxTokens: 10, fillInterval: 1s}\n", want: LocalRateLimitSpec{
			MaxTokens: 10, TokensPerFill: 1, FillInterval: time.Second, StatusCode: DefaultRateLimitStatus,
		}},
		{name: "everything", spec: `
workloadSelector: {matchLabels: {app: api}}
ports: [8080]
tokenBucket: {maxTokens: 100, tokensPerFill: 20, fillInterval: 0.5s}
statusCode: 503
responseHeaders: {x-limited: "yes"}
xRateLimitHeaders: true
`, want: LocalRateLimitSpec{
			Selector: map[string]string{"app": "api"}, Ports: []uint32{8080},
			MaxTokens: 100, TokensPerFill: 20, FillInterval: 500 * time.Millisecond, StatusCode: 503,
			ResponseHeaders: map[string]string{"x-limited": "yes"}, XRateLimitHeaders: true,
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			items, _ := decodeFile("t.yaml", []byte(rateLimitDoc("networking.weft.dev/v1alpha1", tc.spec)))
			if len(items) != 1 || !items[0].valid() {
				t.Fatalf("not one valid object: %d items", len(items))
			}
			got, ok := LocalRateLimitOf(items[0].obj)
			if !ok {
				t.Fatal("LocalRateLimitOf: not a LocalRateLimit")
			}
			if !reflect.DeepEqual(*got, tc.want) {
				t.Errorf("got %+v\nwant %+v", *got, tc.want)
			}
		})
	}
	if _, ok := LocalRateLimitOf(&Object{Meta: Meta{Kind: VirtualService}}); ok {
		t.Error("LocalRateLimitOf accepted a VirtualService")
	}
}

// TestLocalRateLimitVersionStable: equal content, equal version; the
// version changes with the spec.
func TestLocalRateLimitVersionStable(t *testing.T) {
	version := func(spec string) string {
		items, _ := decodeFile("t.yaml", []byte(rateLimitDoc("networking.weft.dev/v1alpha1", spec)))
		if len(items) != 1 || items[0].obj == nil {
			t.Fatalf("no object for %q", spec)
		}
		return items[0].obj.Version
	}
	a := version("tokenBucket: {maxTokens: 1, fillInterval: 1s}\nresponseHeaders: {a: b, c: d}\n")
	b := version("responseHeaders: {c: d, a: b}\ntokenBucket: {fillInterval: 1s, maxTokens: 1}\n")
	c := version("tokenBucket: {maxTokens: 2, fillInterval: 1s}\n")
	if a != b || a == c || strings.TrimSpace(a) == "" {
		t.Errorf("versions %q %q %q: want the first two equal and the third different", a, b, c)
	}
}

// TestLocalRateLimitJSON: the spec renders as the user wrote it (what
// /debug/configz shows: protojson of the stored spec), camelCase names and
// durations included.
func TestLocalRateLimitJSON(t *testing.T) {
	items, _ := decodeFile("t.yaml", []byte(rateLimitDoc("networking.weft.dev/v1alpha1",
		"workloadSelector: {matchLabels: {app: api}}\ntokenBucket: {maxTokens: 5, fillInterval: 1500ms}\nxRateLimitHeaders: true\n")))
	if len(items) != 1 || items[0].obj == nil {
		t.Fatal("no object")
	}
	b, err := protojson.Marshal(items[0].obj.Spec)
	if err != nil {
		t.Fatal(err)
	}
	got := strings.ReplaceAll(string(b), " ", "")
	want := `{"workloadSelector":{"matchLabels":{"app":"api"}},"tokenBucket":{"maxTokens":5,"fillInterval":"1.500s"},"xRateLimitHeaders":true}`
	if got != want {
		t.Errorf("got %s\nwant %s", got, want)
	}
}
