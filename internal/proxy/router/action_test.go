package router

import (
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/proxy/headers"
)

const rewriteYAML = `
virtual_hosts:
- name: v
  domains: ["*"]
  routes:
  - {name: prefix, match: {prefix: "/old/"}, route: {cluster: c, prefix_rewrite: "/new/"}}
  - {name: prefix-ci, match: {prefix: "/CI/", case_sensitive: false}, route: {cluster: c, prefix_rewrite: "/"}}
  - {name: exact, match: {path: "/exact"}, route: {cluster: c, prefix_rewrite: "/other"}}
  - {name: sep, match: {path_separated_prefix: "/svc"}, route: {cluster: c, prefix_rewrite: "/backend"}}
  - {name: regexpath, match: {safe_regex: {regex: "/r/.*"}}, route: {cluster: c, prefix_rewrite: "/whole"}}
  - name: regex
    match: {prefix: "/users/"}
    route:
      cluster: c
      regex_rewrite: {pattern: {regex: "^/users/([^/]+)/profile$"}, substitution: "/profiles/\\1?$x"}
  - name: regex-all
    match: {prefix: "/aa"}
    route: {cluster: c, regex_rewrite: {pattern: {regex: "a"}, substitution: "b"}}
  - {name: host, match: {prefix: "/host"}, route: {cluster: c, host_rewrite_literal: "backend.internal"}}
  - {name: auto, match: {prefix: "/auto"}, route: {cluster: c, auto_host_rewrite: true}}
`

func TestPathRewrites(t *testing.T) {
	tab := compileYAML(t, rewriteYAML)
	tests := []struct {
		path, wantPath string
	}{
		{"/old/x?q=1", "/new/x?q=1"},
		{"/ci/x?y", "/x?y"},
		{"/Ci/x", "/x"},
		{"/exact?q", "/other?q"},
		{"/svc/deep/path", "/backend/deep/path"},
		{"/svc", "/backend"},
		{"/r/anything?k=v", "/whole?k=v"}, // regex match: the whole path is replaced, query kept
		{"/users/bob/profile?full=1", "/profiles/bob?$x?full=1"},
		{"/users/bob/other", "/users/bob/other"}, // regex did not match: path unchanged
		{"/aaa?a=a", "/bbb?a=a"},                 // every match replaced, query untouched
	}
	for _, tc := range tests {
		req := newReq("h", tc.path)
		r, _ := tab.Route(req)
		if r == nil {
			t.Fatalf("%s: no route", tc.path)
		}
		r.ApplyRequestRewrites(req, r.PickCluster(0))
		if string(req.Path) != tc.wantPath {
			t.Errorf("%s (%s): path %q, want %q", tc.path, r.Name(), req.Path, tc.wantPath)
		}
		if got := string(req.Get(headers.XEnvoyOrigPath)); got != tc.path {
			t.Errorf("%s: x-envoy-original-path %q, want %q", tc.path, got, tc.path)
		}
	}
}

func TestRewriteSuppressEnvoyHeadersAndHost(t *testing.T) {
	tab := compileYAMLOpts(t, rewriteYAML, CompileOptions{SuppressEnvoyHeaders: true})
	req := newReq("h", "/old/x")
	r, _ := tab.Route(req)
	r.FinalizeRequest(req, r.PickCluster(0), nil)
	if string(req.Path) != "/new/x" || req.Has(headers.XEnvoyOrigPath) {
		t.Fatalf("path %q, original path header present %v", req.Path, req.Has(headers.XEnvoyOrigPath))
	}

	req = newReq("front.example", "/host")
	r, _ = tab.Route(req)
	r.FinalizeRequest(req, r.PickCluster(0), nil)
	if string(req.Authority) != "backend.internal" || string(req.Path) != "/host" || req.Has(headers.XEnvoyOrigPath) {
		t.Fatalf("host %q path %q", req.Authority, req.Path)
	}

	req = newReq("front.example", "/auto")
	r, _ = tab.Route(req)
	r.FinalizeRequest(req, r.PickCluster(0), nil)
	if !r.AutoHostRewrite() || string(req.Authority) != "front.example" {
		t.Fatalf("auto %v host %q: the router rewrites the host later", r.AutoHostRewrite(), req.Authority)
	}
}

func TestRedirectLocation(t *testing.T) {
	tab := compileYAML(t, `
virtual_hosts:
- name: v
  domains: ["*"]
  routes:
  - {name: https, match: {prefix: "/https"}, redirect: {https_redirect: true}}
  - {name: scheme, match: {prefix: "/scheme"}, redirect: {scheme_redirect: "ftp", response_code: FOUND}}
  - {name: host, match: {prefix: "/host"}, redirect: {host_redirect: "new.example"}}
  - {name: port, match: {prefix: "/port"}, redirect: {port_redirect: 8443}}
  - {name: hostport, match: {prefix: "/hp"}, redirect: {host_redirect: "new.example", port_redirect: 9000, https_redirect: true}}
  - {name: path, match: {prefix: "/path"}, redirect: {path_redirect: "/elsewhere", response_code: SEE_OTHER}}
  - {name: pathq, match: {prefix: "/pq"}, redirect: {path_redirect: "/else?fixed=1", strip_query: true}}
  - {name: strip, match: {prefix: "/strip"}, redirect: {path_redirect: "/s", strip_query: true, response_code: TEMPORARY_REDIRECT}}
  - {name: prefix, match: {prefix: "/pre/"}, redirect: {prefix_rewrite: "/post/", response_code: PERMANENT_REDIRECT}}
  - {name: regex, match: {prefix: "/re/"}, redirect: {regex_rewrite: {pattern: {regex: "^/re/(.*)$"}, substitution: "/moved/\\1"}}}
  - {name: noslash, match: {prefix: "/ns"}, redirect: {path_redirect: "relative"}}
  - {name: moved, match: {prefix: "/moved-dr"}, direct_response: {status: 301}}
  - {name: created, match: {prefix: "/created"}, direct_response: {status: 201, body: {inline_string: "ok"}}}
  - {name: plain, match: {prefix: "/"}, direct_response: {status: 200}}
`)
	tests := []struct {
		name               string
		host, path, scheme string
		xfp                string
		wantStatus         int
		wantLocation       string
	}{
		{"https keeps custom port", "example.com:8080", "/https/x?q=1", "http", "http", 301, "https://example.com:8080/https/x?q=1"},
		{"https drops :80", "example.com:80", "/https", "http", "http", 301, "https://example.com/https"},
		{"https keeps :443 of http", "example.com:443", "/https", "http", "http", 301, "https://example.com:443/https"},
		{"same scheme keeps :80", "example.com:80", "/path", "http", "http", 303, "http://example.com:80/elsewhere"},
		{"scheme", "example.com", "/scheme", "http", "", 302, "ftp://example.com/scheme"},
		{"host", "example.com:8080", "/host/a?b", "http", "http", 301, "http://new.example/host/a?b"},
		{"port replaces port", "example.com:8080", "/port", "https", "https", 301, "https://example.com:8443/port"},
		{"port on ipv6", "[::1]:8080", "/port", "http", "http", 301, "http://[::1]:8443/port"},
		{"host and port", "example.com", "/hp", "http", "http", 301, "https://new.example:9000/hp"},
		{"path keeps query", "example.com", "/path?a=1", "http", "http", 303, "http://example.com/elsewhere?a=1"},
		{"path with query wins", "example.com", "/pq?a=1", "http", "http", 301, "http://example.com/else?fixed=1"},
		{"strip query", "example.com", "/strip?a=1", "http", "http", 307, "http://example.com/s"},
		{"prefix rewrite", "example.com", "/pre/x/y?z", "http", "http", 308, "http://example.com/post/x/y?z"},
		{"regex rewrite", "example.com", "/re/a/b?z=1", "http", "http", 301, "http://example.com/moved/a/b?z=1"},
		{"slash added", "example.com", "/ns", "http", "http", 301, "http://example.com/relative"},
		{"direct 301 points to itself", "example.com", "/moved-dr?x", "https", "https", 301, "https://example.com/moved-dr?x"},
		{"direct 201", "example.com", "/created", "http", "http", 201, "http://example.com/created"},
		{"direct 200 has no location", "example.com", "/other", "http", "http", 200, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			hdrs := []string{":scheme", tc.scheme}
			if tc.xfp != "" {
				hdrs = append(hdrs, headers.XForwardedProto, tc.xfp)
			}
			req := newReq(tc.host, tc.path, hdrs...)
			r, _ := tab.Route(req)
			if r == nil {
				t.Fatal("no route")
			}
			status, loc := r.RedirectLocation(req, nil)
			if status != tc.wantStatus || string(loc) != tc.wantLocation {
				t.Fatalf("%s: status %d location %q, want %d %q", r.Name(), status, loc, tc.wantStatus, tc.wantLocation)
			}
			if string(req.Path) != tc.path {
				t.Fatalf("request path changed to %q", req.Path)
			}
		})
	}
}

func TestTimeoutsAndUpgrades(t *testing.T) {
	tab := compileYAML(t, `
virtual_hosts:
- name: v
  domains: ["*"]
  routes:
  - name: r
    match: {prefix: "/"}
    route:
      cluster: c
      timeout: 0s
      idle_timeout: 30s
      cluster_not_found_response_code: NOT_FOUND
      max_stream_duration: {max_stream_duration: 5s, grpc_timeout_header_max: 2s}
      upgrade_configs: [{upgrade_type: WebSocket}, {upgrade_type: h2c, enabled: false}]
`)
	r, _ := tab.Route(newReq("h", "/"))
	if r.Timeout() != 0 {
		t.Errorf("timeout %v, want 0 (disabled)", r.Timeout())
	}
	if d, ok := r.IdleTimeout(); !ok || d != 30*time.Second {
		t.Errorf("idle timeout %v %v", d, ok)
	}
	if r.ClusterNotFoundStatus() != 404 {
		t.Errorf("cluster not found status %d", r.ClusterNotFoundStatus())
	}
	want := MaxStreamDuration{MaxStreamDuration: 5 * time.Second, HasMaxStreamDuration: true,
		GrpcTimeoutHeaderMax: 2 * time.Second, HasGrpcTimeoutHeaderMax: true}
	if r.MaxStreamDuration() != want {
		t.Errorf("max stream duration %+v", r.MaxStreamDuration())
	}
	for _, tc := range []struct {
		proto     string
		hcm, want bool
	}{
		{"websocket", false, true}, // route enables even without the HCM
		{"WEBSOCKET", true, true},
		{"h2c", true, false}, // route disables even if the HCM allows
		{"other", true, true},
		{"other", false, false},
	} {
		if got := r.UpgradeAllowed([]byte(tc.proto), tc.hcm); got != tc.want {
			t.Errorf("upgrade %s (hcm %v): %v, want %v", tc.proto, tc.hcm, got, tc.want)
		}
	}
}
