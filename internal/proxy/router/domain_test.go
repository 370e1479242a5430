package router

import (
	"testing"
)

const domainsYAML = `
name: domains
virtual_hosts:
- name: exact
  domains: ["example.com", "Mixed.Example.ORG", "example.com:8080", "[::1]:8443"]
  routes: [{match: {prefix: "/"}, direct_response: {status: 200}}]
- name: suffix-short
  domains: ["*.com"]
  routes: [{match: {prefix: "/"}, direct_response: {status: 200}}]
- name: suffix-long
  domains: ["*.foo.com"]
  routes: [{match: {prefix: "/"}, direct_response: {status: 200}}]
- name: suffix-dash
  domains: ["*-bar.foo.com"]
  routes: [{match: {prefix: "/"}, direct_response: {status: 200}}]
- name: prefix-short
  domains: ["api.*"]
  routes: [{match: {prefix: "/"}, direct_response: {status: 200}}]
- name: prefix-long
  domains: ["api.internal.*", "example.com:*"]
  routes: [{match: {prefix: "/"}, direct_response: {status: 200}}]
- name: default
  domains: ["*"]
  routes: [{match: {prefix: "/"}, direct_response: {status: 200}}]
`

func TestDomainMatching(t *testing.T) {
	tab := compileYAML(t, domainsYAML)
	tests := []struct {
		host, want string
	}{
		{"example.com", "exact"},
		{"EXAMPLE.com", "exact"},
		{"mixed.example.org", "exact"},
		// The port is part of what is matched (no stripping configured).
		{"example.com:8080", "exact"},
		{"example.com:9090", "prefix-long"}, // "example.com:*"
		{"[::1]:8443", "exact"},
		{"www.foo.com", "suffix-long"},      // longest suffix wins over *.com
		{"baz-bar.foo.com", "suffix-dash"},  // *-bar.foo.com is longer than *.foo.com
		{"-bar.foo.com", "suffix-long"},     // the wildcard must match at least one character
		{".foo.com", "suffix-short"},        // *.foo.com needs one char before .foo.com; *.com matches
		{"other.com", "suffix-short"},       //
		{"www.foo.com:80", "default"},       // a port defeats suffix wildcards
		{"api.example.net", "prefix-short"}, // suffix wildcards checked first: none match
		{"api.internal.x", "prefix-long"},   // longest prefix wins
		{"api.com", "suffix-short"},         // suffixes come before prefixes
		{"api.", "default"},                 // prefix wildcard must match at least one character
		{"unknown.net", "default"},          //
		{"", "default"},                     // empty host still reaches "*"
	}
	for _, tc := range tests {
		req := newReq(tc.host, "/")
		req.Authority = []byte(tc.host) // present, possibly empty
		_, vh := tab.Route(req)
		got := "<nil>"
		if vh != nil {
			got = vh.Name()
		}
		if got != tc.want {
			t.Errorf("host %q: virtual host %s, want %s", tc.host, got, tc.want)
		}
	}
}

func TestDomainNoHost(t *testing.T) {
	tab := compileYAML(t, domainsYAML)
	req := newReq("", "/")
	req.Authority = nil
	if r, vh := tab.Route(req); r != nil || vh != nil {
		t.Fatalf("request without host matched %v", vh.Name())
	}
	// With only a "*" virtual host, Envoy's fast path uses it even without a host.
	only := compileYAML(t, `
virtual_hosts:
- name: any
  domains: ["*"]
  routes: [{name: r, match: {prefix: "/"}, direct_response: {status: 200}}]
`)
	if got := routeName(only, req); got != "r" {
		t.Fatalf("default-only table: route %s, want r", got)
	}
}

func TestNoDefaultVirtualHost(t *testing.T) {
	tab := compileYAML(t, `
virtual_hosts:
- name: a
  domains: ["a.example"]
  routes: [{name: r, match: {prefix: "/"}, direct_response: {status: 200}}]
`)
	if r, vh := tab.Route(newReq("b.example", "/")); r != nil || vh != nil {
		t.Fatal("unknown host matched")
	}
}

func TestIgnorePortInHostMatching(t *testing.T) {
	tab := compileYAML(t, `
ignore_port_in_host_matching: true
virtual_hosts:
- name: plain
  domains: ["example.com"]
  routes: [{match: {prefix: "/"}, direct_response: {status: 200}}]
- name: v6
  domains: ["[::1]"]
  routes: [{match: {prefix: "/"}, direct_response: {status: 200}}]
- name: with-port
  domains: ["example.com:8080"]
  routes: [{match: {prefix: "/"}, direct_response: {status: 200}}]
`)
	for host, want := range map[string]string{
		"example.com:8080": "plain", // port ignored on the request side only
		"example.com":      "plain",
		"[::1]:80":         "v6",
		"[::1]":            "v6",
	} {
		req := newReq(host, "/")
		_, vh := tab.Route(req)
		if vh == nil || vh.Name() != want {
			t.Errorf("host %q: got %v, want %s", host, vh, want)
		}
		if string(req.Authority) != host {
			t.Errorf("host %q was modified to %q", host, req.Authority)
		}
	}
}

func TestNormalizeHost(t *testing.T) {
	tests := []struct {
		name      string
		opts      CompileOptions
		host      string
		method    string
		localPort uint16
		want      string
	}{
		{"none keeps port", CompileOptions{}, "example.com:80", "GET", 80, "example.com:80"},
		{"matching strips equal port", CompileOptions{HostPort: StripMatchingPort}, "example.com:80", "GET", 80, "example.com"},
		{"matching keeps other port", CompileOptions{HostPort: StripMatchingPort}, "example.com:8080", "GET", 80, "example.com:8080"},
		{"any strips", CompileOptions{HostPort: StripAnyPort}, "example.com:8080", "GET", 80, "example.com"},
		{"any ipv6", CompileOptions{HostPort: StripAnyPort}, "[::1]:8080", "GET", 80, "[::1]"},
		{"ipv6 without port untouched", CompileOptions{HostPort: StripAnyPort}, "[::1]", "GET", 80, "[::1]"},
		{"non-numeric port untouched", CompileOptions{HostPort: StripAnyPort}, "example.com:http", "GET", 80, "example.com:http"},
		{"empty port untouched", CompileOptions{HostPort: StripAnyPort}, "example.com:", "GET", 80, "example.com:"},
		{"CONNECT keeps port", CompileOptions{HostPort: StripAnyPort}, "example.com:443", "CONNECT", 443, "example.com:443"},
		{"trailing dot", CompileOptions{StripTrailingHostDot: true}, "example.com.", "GET", 80, "example.com"},
		{"trailing dot before port", CompileOptions{StripTrailingHostDot: true}, "example.com.:443", "GET", 80, "example.com:443"},
		{"dot then port", CompileOptions{StripTrailingHostDot: true, HostPort: StripMatchingPort}, "example.com.:443", "GET", 443, "example.com"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tab := compileYAMLOpts(t, domainsYAML, tc.opts)
			req := newReq(tc.host, "/", ":method", tc.method)
			tab.NormalizeHost(req, tc.localPort)
			if string(req.Authority) != tc.want {
				t.Fatalf("host %q -> %q, want %q", tc.host, req.Authority, tc.want)
			}
		})
	}
}

func TestStripMatchingPortThenRoute(t *testing.T) {
	tab := compileYAMLOpts(t, `
virtual_hosts:
- name: site
  domains: ["example.com"]
  routes: [{name: r, match: {prefix: "/"}, direct_response: {status: 200}}]
`, CompileOptions{HostPort: StripMatchingPort})
	req := newReq("Example.com:443", "/")
	if got := routeName(tab, req); got != "<nil>" {
		t.Fatalf("before normalization matched %s", got)
	}
	tab.NormalizeHost(req, 443)
	if got := routeName(tab, req); got != "r" {
		t.Fatalf("after normalization: %s, want r", got)
	}
}
