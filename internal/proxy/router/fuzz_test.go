package router

import (
	"bytes"
	"testing"

	"github.com/weftmesh/weft/internal/proxy/headers"
	"github.com/weftmesh/weft/internal/proxy/upstream/lb"
)

// fuzzYAML exercises every matcher kind, rewrites, redirects, mutations and
// hash policies.
const fuzzYAML = `
ignore_path_parameters_in_path_matching: true
request_headers_to_add: [{header: {key: x-g, value: "%REQ(x-a)%"}}]
virtual_hosts:
- name: wild
  domains: ["*.example.com", "api.*", "exact.test", "exact.test:8080"]
  routes:
  - {name: sep, match: {path_separated_prefix: "/svc", case_sensitive: false}, route: {cluster: a, prefix_rewrite: "/"}}
  - name: re
    match: {safe_regex: {regex: "/u/([^/]+)/(.*)"}, headers: [{name: x-a, string_match: {contains: "z", ignore_case: true}}]}
    route: {cluster: b, regex_rewrite: {pattern: {regex: "^/u/([^/]+)/(.*)$"}, substitution: "/\\2/\\1"}}
  - name: q
    match: {prefix: "/q", query_parameters: [{name: k, string_match: {safe_regex: {regex: "[a-z]*"}}}, {name: p}]}
    route: {weighted_clusters: {clusters: [{name: a, weight: 1}, {name: b, weight: 2, host_rewrite_literal: h}]}, hash_policy: [{cookie: {name: c, ttl: 10s}}, {query_parameter: {name: k}}]}
  - name: hdr
    match: {prefix: "/h", headers: [{name: x-a, range_match: {start: 0, end: 100}, invert_match: true, treat_missing_header_as_empty: true}, {name: ":method", string_match: {exact: "get", ignore_case: true}}]}
    route: {cluster: c, hash_policy: [{header: {header_name: x-a}}, {connection_properties: {source_ip: true}}]}
  - {name: redir, match: {prefix: "/r"}, redirect: {https_redirect: true, regex_rewrite: {pattern: {regex: "r+"}, substitution: "x"}, strip_query: true}}
  - {name: redir2, match: {prefix: "/R", case_sensitive: false}, redirect: {port_redirect: 1, prefix_rewrite: "/p"}}
  - {name: direct, match: {path: "/d"}, direct_response: {status: 302, body: {inline_string: "moved"}}}
  - {name: grpc, match: {prefix: "/", grpc: {}}, route: {cluster: g}}
- name: default
  domains: ["*"]
  routes:
  - {name: root, match: {prefix: "/"}, route: {cluster: d, prefix_rewrite: "/x"}, response_headers_to_add: [{header: {key: x-r, value: "%REQ(:path):5%"}}]}
`

func FuzzRoute(f *testing.F) {
	seeds := []struct{ host, path, a, b string }{
		{"www.example.com", "/svc/x?y=1", "", ""},
		{"API.test:99", "/u/bob/z/y?k=v", "aZa", ""},
		{"exact.test:8080", "/q?k=abc&p", "", "c=1; d=2"},
		{"x.example.com", "/h;p=1?x", "150", ""},
		{"[::1]:80", "/rrr?q", "", ""},
		{"api.x", "/R/a", "", ""},
		{"", "*", "", ""},
		{"exact.test.", "/d", "", ""},
		{"h", "", "a", "b"},
		{"é.example.com", "/%zz?&&==&", "\x00", "\xff"},
	}
	for _, s := range seeds {
		f.Add(s.host, s.path, s.a, s.b)
	}
	tab := compileYAMLOpts(f, fuzzYAML, CompileOptions{HostPort: StripAnyPort, StripTrailingHostDot: true})
	vars := defaultVars()
	f.Fuzz(func(t *testing.T, host, path, a, b string) {
		req := &headers.Request{Method: []byte("GET"), Scheme: []byte("https"), Authority: []byte(host)}
		if path != "" {
			req.Path = []byte(path)
		}
		req.Add("x-a", a)
		req.Add("x-a", b)
		req.Add("cookie", b)
		req.Add("content-type", a)
		tab.NormalizeHost(req, 80)
		r, vh := tab.Route(req)
		r2, vh2 := tab.Route(req)
		if r != r2 || vh != vh2 {
			t.Fatal("routing is not deterministic")
		}
		if r == nil {
			return
		}
		if r.VirtualHost() != vh {
			t.Fatal("route's virtual host differs from the returned one")
		}
		resp := &headers.Response{Status: 200}
		switch r.Kind() {
		case ActionRoute:
			target := r.PickCluster(uint64(len(path)) * 0x9e3779b97f4a7c15)
			var ctx lb.Context
			r.Hash(req, vars, &ctx, nil)
			r.FinalizeRequest(req, target, vars)
			if len(req.Path) == 0 || (path != "" && !bytes.Contains([]byte(path), pathOnlyQuery(req.Path))) {
				t.Fatalf("path %q lost its query after rewrite to %q", path, req.Path)
			}
			r.ApplyResponseHeaders(resp, req, target, vars)
		default:
			status, loc := r.RedirectLocation(req, nil)
			if status == 0 || loc != nil && !bytes.Contains(loc, []byte("://")) {
				t.Fatalf("status %d location %q", status, loc)
			}
			r.ApplyResponseHeaders(resp, req, nil, vars)
		}
	})
}

// pathOnlyQuery returns the query part (from '?') of p, which rewrites keep.
func pathOnlyQuery(p []byte) []byte {
	if i := bytes.IndexAny(p, "?#"); i >= 0 {
		return p[i:]
	}
	return nil
}
