package router

import (
	"testing"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

func TestPathMatchers(t *testing.T) {
	tab := compileYAML(t, `
virtual_hosts:
- name: all
  domains: ["*"]
  routes:
  - {name: exact, match: {path: "/exact"}, direct_response: {status: 200}}
  - {name: exact-ci, match: {path: "/Exact-CI", case_sensitive: false}, direct_response: {status: 200}}
  - {name: sep, match: {path_separated_prefix: "/api"}, direct_response: {status: 200}}
  - {name: regex, match: {safe_regex: {regex: "/items/[0-9]+"}}, direct_response: {status: 200}}
  - {name: quoted, match: {safe_regex: {regex: "/q\\Q+"}}, direct_response: {status: 200}}
  - {name: prefix-ci, match: {prefix: "/CI/", case_sensitive: false}, direct_response: {status: 200}}
  - {name: prefix, match: {prefix: "/p"}, direct_response: {status: 200}}
  - {name: root, match: {prefix: "/"}, direct_response: {status: 200}}
`)
	tests := []struct{ path, want string }{
		{"/exact", "exact"},
		{"/exact?x=1", "exact"}, // query ignored by path matchers
		{"/exact#frag", "exact"},
		{"/exact/", "root"},
		{"/EXACT", "root"}, // case sensitive by default
		{"/exact-ci", "exact-ci"},
		{"/EXACT-ci?q", "exact-ci"},
		{"/api", "sep"},
		{"/api/", "sep"},
		{"/api/v1", "sep"},
		{"/api?x", "sep"},
		{"/apix", "root"}, // path_separated_prefix needs a segment boundary
		{"/items/42", "regex"},
		{"/items/42?x=1", "regex"}, // regex sees the path without query
		{"/items/42/x", "root"},    // full match only
		{"/items/", "root"},
		{"/q+", "quoted"}, // \Q quotes to the end; the anchors stay outside
		{"/q++", "root"},
		{"/ci/x", "prefix-ci"},
		{"/Ci/X", "prefix-ci"},
		{"/p", "prefix"},
		{"/px", "prefix"},
		{"/P", "root"},
		{"/", "root"},
	}
	for _, tc := range tests {
		if got := routeName(tab, newReq("h", tc.path)); got != tc.want {
			t.Errorf("path %q: route %s, want %s", tc.path, got, tc.want)
		}
	}
}

func TestRouteNeedsPath(t *testing.T) {
	tab := compileYAML(t, `
virtual_hosts:
- {name: all, domains: ["*"], routes: [{name: root, match: {prefix: ""}, direct_response: {status: 200}}]}
`)
	req := newReq("h", "", ":method", "CONNECT")
	r, vh := tab.Route(req)
	if r != nil || vh == nil {
		t.Fatalf("CONNECT without path: route %v vhost %v; want no route, the virtual host", r, vh)
	}
	if got := routeName(tab, newReq("h", "*")); got != "root" {
		t.Fatalf("empty prefix should match any path, got %s", got)
	}
}

func TestIgnorePathParameters(t *testing.T) {
	tab := compileYAML(t, `
ignore_path_parameters_in_path_matching: true
virtual_hosts:
- {name: all, domains: ["*"], routes: [{name: exact, match: {path: "/a/b"}, direct_response: {status: 200}}]}
`)
	if got := routeName(tab, newReq("h", "/a/b;jsessionid=1?x=2")); got != "exact" {
		t.Fatalf("path parameters not ignored: %s", got)
	}
	strict := compileYAML(t, `
virtual_hosts:
- {name: all, domains: ["*"], routes: [{name: exact, match: {path: "/a/b"}, direct_response: {status: 200}}]}
`)
	if got := routeName(strict, newReq("h", "/a/b;jsessionid=1")); got != "<nil>" {
		t.Fatalf("path parameters ignored without the option: %s", got)
	}
}

const headerMatchYAML = `
virtual_hosts:
- name: all
  domains: ["*"]
  routes:
  - {name: exact, match: {prefix: "/exact", headers: [{name: x-a, string_match: {exact: "v"}}]}, direct_response: {status: 200}}
  - {name: exact-ic, match: {prefix: "/exact-ic", headers: [{name: x-a, string_match: {exact: "VaL", ignore_case: true}}]}, direct_response: {status: 200}}
  - {name: prefix, match: {prefix: "/prefix", headers: [{name: x-a, string_match: {prefix: "ab"}}]}, direct_response: {status: 200}}
  - {name: suffix, match: {prefix: "/suffix", headers: [{name: x-a, string_match: {suffix: "yz", ignore_case: true}}]}, direct_response: {status: 200}}
  - {name: contains, match: {prefix: "/contains", headers: [{name: x-a, string_match: {contains: "Mid", ignore_case: true}}]}, direct_response: {status: 200}}
  - {name: regex, match: {prefix: "/regex", headers: [{name: x-a, string_match: {safe_regex: {regex: "[0-9]{3}"}}}]}, direct_response: {status: 200}}
  - {name: present, match: {prefix: "/present", headers: [{name: x-a, present_match: true}]}, direct_response: {status: 200}}
  - {name: absent, match: {prefix: "/absent", headers: [{name: x-a, present_match: false}]}, direct_response: {status: 200}}
  - {name: default-present, match: {prefix: "/nospec", headers: [{name: x-a}]}, direct_response: {status: 200}}
  - {name: invert, match: {prefix: "/invert", headers: [{name: x-a, string_match: {exact: "v"}, invert_match: true}]}, direct_response: {status: 200}}
  - {name: invert-empty, match: {prefix: "/inv-empty", headers: [{name: x-a, string_match: {exact: "v"}, invert_match: true, treat_missing_header_as_empty: true}]}, direct_response: {status: 200}}
  - {name: missing-empty, match: {prefix: "/miss-empty", headers: [{name: x-a, string_match: {safe_regex: {regex: "^$"}}, treat_missing_header_as_empty: true}]}, direct_response: {status: 200}}
  - {name: invert-present, match: {prefix: "/inv-present", headers: [{name: x-a, present_match: true, invert_match: true}]}, direct_response: {status: 200}}
  - {name: method, match: {prefix: "/method", headers: [{name: ":method", string_match: {exact: "POST"}}]}, direct_response: {status: 200}}
  - {name: authority, match: {prefix: "/authority", headers: [{name: ":authority", string_match: {suffix: ".example"}}]}, direct_response: {status: 200}}
  - {name: host-alias, match: {prefix: "/host", headers: [{name: host, present_match: true}]}, direct_response: {status: 200}}
  - {name: dep-exact, match: {prefix: "/dep-exact", headers: [{name: x-a, exact_match: "v"}]}, direct_response: {status: 200}}
  - {name: dep-exact-empty, match: {prefix: "/dep-any", headers: [{name: x-a, exact_match: ""}]}, direct_response: {status: 200}}
  - {name: dep-prefix, match: {prefix: "/dep-prefix", headers: [{name: x-a, prefix_match: "ab"}]}, direct_response: {status: 200}}
  - {name: dep-suffix, match: {prefix: "/dep-suffix", headers: [{name: x-a, suffix_match: "yz"}]}, direct_response: {status: 200}}
  - {name: dep-contains, match: {prefix: "/dep-contains", headers: [{name: x-a, contains_match: "mid"}]}, direct_response: {status: 200}}
  - {name: dep-regex, match: {prefix: "/dep-regex", headers: [{name: x-a, safe_regex_match: {regex: "a+"}}]}, direct_response: {status: 200}}
  - {name: range, match: {prefix: "/range", headers: [{name: x-a, range_match: {start: -10, end: 0}}]}, direct_response: {status: 200}}
  - {name: multi, match: {prefix: "/multi", headers: [{name: x-a, string_match: {exact: "1,2"}}]}, direct_response: {status: 200}}
  - {name: two, match: {prefix: "/two", headers: [{name: x-a, string_match: {exact: "1"}}, {name: x-b, present_match: true}]}, direct_response: {status: 200}}
`

func TestHeaderMatchers(t *testing.T) {
	tab := compileYAML(t, headerMatchYAML)
	tests := []struct {
		path string
		hdrs []string
		want bool
	}{
		{"/exact", []string{"x-a", "v"}, true},
		{"/exact", []string{"x-a", "V"}, false},
		{"/exact", nil, false},
		{"/exact-ic", []string{"x-a", "vAl"}, true},
		{"/exact-ic", []string{"x-a", "vAlx"}, false},
		{"/prefix", []string{"x-a", "abc"}, true},
		{"/prefix", []string{"x-a", "Abc"}, false},
		{"/suffix", []string{"x-a", "xYZ"}, true},
		{"/contains", []string{"x-a", "aaMIDbb"}, true},
		{"/contains", []string{"x-a", "aaMDbb"}, false},
		{"/regex", []string{"x-a", "123"}, true},
		{"/regex", []string{"x-a", "1234"}, false}, // full match
		{"/present", []string{"x-a", ""}, true},    // an empty value is present
		{"/present", nil, false},
		{"/absent", nil, true},
		{"/absent", []string{"x-a", "v"}, false},
		{"/nospec", []string{"x-a", "anything"}, true},
		{"/nospec", nil, false},
		{"/invert", []string{"x-a", "w"}, true},
		{"/invert", []string{"x-a", "v"}, false},
		{"/invert", nil, false}, // a missing header never matches, even inverted
		{"/inv-empty", nil, true},
		{"/miss-empty", nil, true},
		{"/miss-empty", []string{"x-a", "x"}, false},
		{"/inv-present", nil, true},
		{"/inv-present", []string{"x-a", "v"}, false},
		{"/method", []string{":method", "POST"}, true},
		{"/method", nil, false},
		{"/authority", nil, true}, // host is "h.example"
		{"/host", nil, false},     // "host" is not :authority in Envoy's header map
		{"/dep-exact", []string{"x-a", "v"}, true},
		{"/dep-exact", []string{"x-a", "vv"}, false},
		{"/dep-any", []string{"x-a", "whatever"}, true},
		{"/dep-any", nil, false},
		{"/dep-prefix", []string{"x-a", "abz"}, true},
		{"/dep-suffix", []string{"x-a", "xyz"}, true},
		{"/dep-contains", []string{"x-a", "amidb"}, true},
		{"/dep-regex", []string{"x-a", "aaa"}, true},
		{"/dep-regex", []string{"x-a", "aab"}, false},
		{"/range", []string{"x-a", "-1"}, true},
		{"/range", []string{"x-a", "-10"}, true},
		{"/range", []string{"x-a", "0"}, false},
		{"/range", []string{"x-a", "-1x"}, false},
		{"/range", []string{"x-a", ""}, false},
		{"/multi", []string{"x-a", "1", "x-a", "2"}, true}, // repeated values are joined with ","
		{"/multi", []string{"x-a", "1"}, false},
		{"/two", []string{"x-a", "1", "x-b", ""}, true},
		{"/two", []string{"x-a", "1"}, false}, // every matcher must match
	}
	for _, tc := range tests {
		got := routeName(tab, newReq("h.example", tc.path, tc.hdrs...)) != "<nil>"
		if got != tc.want {
			t.Errorf("%s %v: matched %v, want %v", tc.path, tc.hdrs, got, tc.want)
		}
	}
}

func TestQueryParameterMatchers(t *testing.T) {
	tab := compileYAML(t, `
virtual_hosts:
- name: all
  domains: ["*"]
  routes:
  - {name: exact, match: {prefix: "/e", query_parameters: [{name: q, string_match: {exact: "a b"}}]}, direct_response: {status: 200}}
  - {name: encoded, match: {prefix: "/enc", query_parameters: [{name: q, string_match: {exact: "a%20b"}}]}, direct_response: {status: 200}}
  - {name: present, match: {prefix: "/p", query_parameters: [{name: debug, present_match: true}]}, direct_response: {status: 200}}
  - {name: nospec, match: {prefix: "/n", query_parameters: [{name: debug}]}, direct_response: {status: 200}}
  - {name: regex, match: {prefix: "/r", query_parameters: [{name: id, string_match: {safe_regex: {regex: "[0-9]+"}}}]}, direct_response: {status: 200}}
  - {name: ic, match: {prefix: "/i", query_parameters: [{name: v, string_match: {prefix: "ab", ignore_case: true}}]}, direct_response: {status: 200}}
`)
	tests := []struct {
		path string
		want bool
	}{
		{"/e?q=a%20b", false}, // values are not decoded, as in Envoy
		{"/enc?q=a%20b", true},
		{"/p?debug", true},
		{"/p?x=1&debug=", true},
		{"/p?debugx=1", false},
		{"/p", false},
		{"/n?debug=0", true},
		{"/r?id=12&id=x", true},  // only the first value counts
		{"/r?id=x&id=12", false}, //
		{"/r?x=1&id=77#f", true},
		{"/r?id=", false},
		{"/r?id=1=2", false}, // value is "1=2"
		{"/i?v=ABc", true},
	}
	for _, tc := range tests {
		got := routeName(tab, newReq("h", tc.path)) != "<nil>"
		if got != tc.want {
			t.Errorf("%s: matched %v, want %v", tc.path, got, tc.want)
		}
	}
}

func TestGRPCMatch(t *testing.T) {
	tab := compileYAML(t, `
virtual_hosts:
- name: all
  domains: ["*"]
  routes:
  - {name: grpc, match: {prefix: "/", grpc: {}}, route: {cluster: grpc}}
  - {name: other, match: {prefix: "/"}, route: {cluster: http}}
`)
	for ct, want := range map[string]string{
		"application/grpc":       "grpc",
		"application/grpc+proto": "grpc",
		"application/grpc-web":   "other",
		"application/json":       "other",
		"":                       "other",
	} {
		var hdrs []string
		if ct != "" {
			hdrs = []string{"content-type", ct}
		}
		if got := routeName(tab, newReq("h", "/svc/Method", hdrs...)); got != want {
			t.Errorf("content-type %q: %s, want %s", ct, got, want)
		}
	}
}

func TestFirstMatchWins(t *testing.T) {
	tab := compileYAML(t, `
virtual_hosts:
- name: all
  domains: ["*"]
  routes:
  - {name: a, match: {prefix: "/api", headers: [{name: x-canary, present_match: true}]}, route: {cluster: canary}}
  - {name: b, match: {prefix: "/api"}, route: {cluster: stable}}
  - {name: c, match: {prefix: "/api/v2"}, route: {cluster: never}}
`)
	if got := routeName(tab, newReq("h", "/api/v2/x", "x-canary", "1")); got != "a" {
		t.Fatalf("got %s, want a", got)
	}
	if got := routeName(tab, newReq("h", "/api/v2/x")); got != "b" {
		t.Fatalf("got %s, want b: order decides, not specificity", got)
	}
}

// TestCaseInsensitivePathIsASCIIFolded: case_sensitive: false folds ASCII
// letters only, as Envoy; a non-ASCII byte sequence in the configured
// prefix keeps its bytes (and its length, which prefix_rewrite replaces).
func TestCaseInsensitivePathIsASCIIFolded(t *testing.T) {
	rm, err := compileRouteMatch(&routev3.RouteMatch{
		PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/İA"},
		CaseSensitive: wrapperspb.Bool(false),
	}, "match")
	if err != nil {
		t.Fatal(err)
	}
	if string(rm.value) != "/İa" {
		t.Fatalf("folded prefix %q, want %q", rm.value, "/İa")
	}
	if !rm.matchPath([]byte("/İa/x")) || !rm.matchPath([]byte("/İA/x")) || rm.matchPath([]byte("/ia/x")) {
		t.Error("ASCII folding only: /İa and /İA match, /ia does not")
	}
}
