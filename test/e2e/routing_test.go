package e2e

import (
	"net/http"
	"strings"
	"testing"
)

// Routing tests answer with direct responses whose body names the virtual
// host or route that matched, so no upstream is needed.

// TestRoutingDomains checks virtual host selection by Host: exact domains,
// "*.suffix" and "prefix*" wildcards (longest first), "*", and ports (the
// port is part of the Host matched, as in Envoy without
// strip_*_host_port).
func TestRoutingDomains(t *testing.T) {
	vhost := func(name string, domains string) string {
		return `
- name: ` + name + `
  domains: ` + domains + `
  routes:
  - match: {prefix: /}
    direct_response: {status: 200, body: {inline_string: ` + name + `}}`
	}
	routes := "virtual_hosts:" +
		vhost("exact", `["api.example.com", "api.example.com:8080"]`) +
		vhost("suffix", `["*.example.com"]`) +
		vhost("longer-suffix", `["*.eu.example.com"]`) +
		vhost("prefix", `["www.*"]`) +
		vhost("port-wildcard", `["ports.example:*"]`) +
		vhost("default", `["*"]`)
	p := startFront(t, front{Routes: routes})
	c := Client()
	for _, tc := range []struct{ host, want string }{
		{"api.example.com", "exact"},
		{"API.Example.COM", "exact"},
		{"api.example.com:8080", "exact"},
		// The port is matched too: "*.example.com" does not end
		// "api.example.com:9090", so the default host answers.
		{"api.example.com:9090", "default"},
		{"a.example.com", "suffix"},
		{"x.eu.example.com", "longer-suffix"},
		{"example.com", "default"},
		{"www.anything.org", "prefix"},
		{"ports.example:1234", "port-wildcard"},
		{"ports.example", "default"},
		{"other.org", "default"},
	} {
		status, body, _ := Get(t, c, p.URL("front")+"/", "host", tc.host)
		if status != 200 || body != tc.want {
			t.Errorf("Host %q: %d %q, want %q", tc.host, status, body, tc.want)
		}
	}
}

// TestRoutingMatchers checks route selection within a virtual host: first
// match wins; prefix, path, safe_regex and path_separated_prefix;
// case_sensitive; header and query parameter matchers.
func TestRoutingMatchers(t *testing.T) {
	route := func(match, name string) string {
		return `
  - match: ` + match + `
    direct_response: {status: 200, body: {inline_string: ` + name + `}}`
	}
	routes := `
virtual_hosts:
- name: all
  domains: ["*"]
  routes:` +
		route(`{path: /exact}`, "path") +
		route(`{path: /Exact-ci, case_sensitive: false}`, "path-ci") +
		route(`{prefix: /hdr, headers: [{name: x-tier, string_match: {exact: gold}}]}`, "hdr-gold") +
		route(`{prefix: /hdr, headers: [{name: x-tier, present_match: true}, {name: x-beta, string_match: {prefix: "y"}, invert_match: true}]}`, "hdr-present-not-beta") +
		route(`{prefix: /hdr, headers: [{name: x-tier, string_match: {safe_regex: {regex: "^s[a-z]+r$"}}}]}`, "hdr-regex") +
		route(`{prefix: /q, query_parameters: [{name: debug, string_match: {exact: "1"}}]}`, "query-debug") +
		route(`{prefix: /q, query_parameters: [{name: trace, present_match: true}]}`, "query-trace") +
		route(`{safe_regex: {regex: "^/re/[0-9]+$"}}`, "regex") +
		route(`{path_separated_prefix: /sep}`, "sep") +
		route(`{prefix: /CaSe, case_sensitive: false}`, "prefix-ci") +
		route(`{prefix: /}`, "fallback")
	p := startFront(t, front{Routes: routes})
	c := Client()
	for _, tc := range []struct {
		path string
		hdr  []string
		want string
	}{
		{"/exact", nil, "path"},
		{"/exact?x=1", nil, "path"},
		{"/exact/", nil, "fallback"},
		{"/EXACT", nil, "fallback"},
		{"/exact-CI", nil, "path-ci"},
		{"/hdr", []string{"x-tier", "gold"}, "hdr-gold"},
		{"/hdr", []string{"x-tier", "silver", "x-beta", "no"}, "hdr-present-not-beta"},
		// Envoy: a missing header never matches a string matcher, even
		// inverted (only present_match treats absence as a value).
		{"/hdr", []string{"x-tier", "silver"}, "hdr-regex"},
		{"/hdr", []string{"x-tier", "silver", "x-beta", "yes"}, "hdr-regex"},
		{"/hdr", []string{"x-tier", "bronze", "x-beta", "yes"}, "fallback"},
		{"/hdr", nil, "fallback"},
		{"/q?debug=1", nil, "query-debug"},
		{"/q?a=b&debug=1", nil, "query-debug"},
		{"/q?debug=2&trace", nil, "query-trace"},
		{"/q?debug=2", nil, "fallback"},
		{"/re/123", nil, "regex"},
		{"/re/123?x", nil, "regex"},
		{"/re/12a", nil, "fallback"},
		{"/sep", nil, "sep"},
		{"/sep/a", nil, "sep"},
		{"/sep?q", nil, "sep"},
		{"/separate", nil, "fallback"},
		{"/case/x", nil, "prefix-ci"},
		{"/CASE", nil, "prefix-ci"},
	} {
		status, body, _ := Get(t, c, p.URL("front")+tc.path, tc.hdr...)
		if status != 200 || body != tc.want {
			t.Errorf("%s %v: %d %q, want %q", tc.path, tc.hdr, status, body, tc.want)
		}
	}
}

// TestRedirectsAndDirectResponses checks redirect actions (Location and
// status) and direct responses, including the route's response headers and
// HEAD.
func TestRedirectsAndDirectResponses(t *testing.T) {
	routes := `
virtual_hosts:
- name: all
  domains: ["*"]
  response_headers_to_add: [{header: {key: x-vhost, value: v}}]
  routes:
  - match: {prefix: /https}
    redirect: {https_redirect: true}
  - match: {prefix: /host}
    redirect: {host_redirect: new.example, response_code: PERMANENT_REDIRECT}
  - match: {prefix: /path}
    redirect: {path_redirect: /elsewhere, strip_query: true, response_code: FOUND}
  - match: {prefix: /old/}
    redirect: {prefix_rewrite: /new/, response_code: TEMPORARY_REDIRECT}
  - match: {prefix: /port}
    redirect: {port_redirect: 8443, scheme_redirect: https}
  - match: {prefix: /direct}
    direct_response: {status: 418, body: {inline_string: "i am a teapot"}}
  - match: {prefix: /empty}
    direct_response: {status: 503}
`
	p := startFront(t, front{Routes: routes})
	c := Client()
	for _, tc := range []struct {
		path, host string
		status     int
		location   string
	}{
		{"/https/a?b=1", "site.example", 301, "https://site.example/https/a?b=1"},
		{"/https", "site.example:8080", 301, "https://site.example:8080/https"},
		{"/host/x", "site.example", 308, "http://new.example/host/x"},
		{"/path/x?q=1", "site.example", 302, "http://site.example/elsewhere"},
		{"/old/p?q=1", "site.example", 307, "http://site.example/new/p?q=1"},
		{"/port", "site.example:80", 301, "https://site.example:8443/port"},
	} {
		status, body, h := Get(t, c, p.URL("front")+tc.path, "host", tc.host)
		if status != tc.status || h.Get("location") != tc.location {
			t.Errorf("%s (Host %s): %d location %q, want %d %q", tc.path, tc.host, status, h.Get("location"), tc.status, tc.location)
		}
		if body != "" || h.Get("x-vhost") != "v" {
			t.Errorf("%s: body %q x-vhost %q", tc.path, body, h.Get("x-vhost"))
		}
	}
	status, body, h := Get(t, c, p.URL("front")+"/direct")
	if status != 418 || body != "i am a teapot" || h.Get("content-type") != "text/plain" || h.Get("x-vhost") != "v" {
		t.Errorf("direct_response: %d %q %v", status, body, h)
	}
	status, body, h = Get(t, c, p.URL("front")+"/empty")
	if status != 503 || body != "" || h.Get("content-length") != "0" {
		t.Errorf("empty direct_response: %d %q cl %q", status, body, h.Get("content-length"))
	}
	req, _ := http.NewRequest("HEAD", p.URL("front")+"/direct", nil)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 418 || resp.ContentLength != int64(len("i am a teapot")) {
		t.Errorf("HEAD direct_response: %d content-length %d", resp.StatusCode, resp.ContentLength)
	}
	p.WaitStat("http.front.downstream_rq_4xx", 2) // GET and HEAD of /direct
	if !strings.HasPrefix(p.NextStream(0).Details, "direct_response") {
		t.Errorf("details %q", p.NextStream(0).Details)
	}
}
