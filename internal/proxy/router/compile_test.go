package router

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCompileErrors(t *testing.T) {
	route := `{match: {prefix: "/"}, route: {cluster: c}}`
	tests := []struct {
		name, yaml, wantPath, wantMsg string
	}{
		{"unsupported route config field", `
internal_only_headers: [x-internal]
virtual_hosts: []`, "internal_only_headers", "not supported"},
		{"unsupported vhost field", `
virtual_hosts:
- {name: v, domains: ["*"], routes: [` + route + `], rate_limits: [{actions: [{generic_key: {descriptor_value: x}}]}]}`,
			"virtual_hosts[0].rate_limits", "not supported"},
		{"require_tls", `
virtual_hosts:
- {name: v, domains: ["*"], routes: [` + route + `], require_tls: ALL}`,
			"virtual_hosts[0].require_tls", "not supported"},
		{"unsupported route action field", `
virtual_hosts:
- {name: v, domains: ["*"], routes: [{match: {prefix: "/"}, route: {cluster: c, hedge_policy: {hedge_on_per_try_timeout: true}}}]}`,
			"virtual_hosts[0].routes[0].route.hedge_policy", "not supported"},
		{"invalid regex", `
virtual_hosts:
- {name: a, domains: ["a"], routes: [` + route + `]}
- {name: v, domains: ["*"], routes: [` + route + `, ` + route + `, ` + route + `, {match: {safe_regex: {regex: "(["}}, route: {cluster: c}}]}`,
			"virtual_hosts[1].routes[3].match.safe_regex.regex", "invalid RE2"},
		{"google_re2 program size", `
virtual_hosts:
- {name: v, domains: ["*"], routes: [{match: {safe_regex: {google_re2: {max_program_size: 10}, regex: "a"}}, route: {cluster: c}}]}`,
			"virtual_hosts[0].routes[0].match.safe_regex.google_re2.max_program_size", "not supported"},
		{"duplicate domain", `
virtual_hosts:
- {name: a, domains: ["Example.com"], routes: [` + route + `]}
- {name: b, domains: ["x", "example.com"], routes: [` + route + `]}`,
			"virtual_hosts[1].domains[1]", "duplicate domain"},
		{"duplicate suffix wildcard", `
virtual_hosts:
- {name: a, domains: ["*.example.com"], routes: [` + route + `]}
- {name: b, domains: ["*.EXAMPLE.com"], routes: [` + route + `]}`,
			"virtual_hosts[1].domains[0]", "duplicate domain"},
		{"two defaults", `
virtual_hosts:
- {name: a, domains: ["*"], routes: [` + route + `]}
- {name: b, domains: ["*"], routes: [` + route + `]}`,
			"virtual_hosts[1].domains[0]", "single wildcard"},
		{"no action", `
virtual_hosts:
- {name: v, domains: ["*"], routes: [{match: {prefix: "/"}}]}`,
			"virtual_hosts[0].routes[0]", "one of route, redirect or direct_response"},
		{"no path specifier", `
virtual_hosts:
- {name: v, domains: ["*"], routes: [{match: {headers: [{name: x}]}, route: {cluster: c}}]}`,
			"virtual_hosts[0].routes[0].match", "one of prefix"},
		{"add pseudo header", `
virtual_hosts:
- {name: v, domains: ["*"], routes: [` + route + `], request_headers_to_add: [{header: {key: ":path", value: "/x"}}]}`,
			"virtual_hosts[0].request_headers_to_add[0].header.key", "may not be modified"},
		{"remove host", `
response_headers_to_remove: [x-ok, Host]
virtual_hosts: []`, "response_headers_to_remove[1]", "may not be removed"},
		{"invalid header name", `
request_headers_to_add: [{header: {key: "bad key", value: "v"}}]
virtual_hosts: []`, "request_headers_to_add[0].header.key", "not a valid header name"},
		{"unknown variable", `
virtual_hosts:
- {name: v, domains: ["*"], routes: [{match: {prefix: "/"}, route: {cluster: c}, request_headers_to_add: [{header: {key: x-id, value: "%UPSTREAM_METADATA([\"a\"])%"}}]}]}`,
			"virtual_hosts[0].routes[0].request_headers_to_add[0].header.value", "not supported"},
		{"unescaped percent", `
request_headers_to_add: [{header: {key: x-p, value: "100%"}}]
virtual_hosts: []`, "request_headers_to_add[0].header.value", "no valid %VARIABLE%"},
		{"append and append_action", `
request_headers_to_add: [{header: {key: x-p, value: "v"}, append: true, append_action: OVERWRITE_IF_EXISTS}]
virtual_hosts: []`, "request_headers_to_add[0]", "both append and append_action"},
		{"prefix and regex rewrite", `
virtual_hosts:
- {name: v, domains: ["*"], routes: [{match: {prefix: "/"}, route: {cluster: c, prefix_rewrite: "/x", regex_rewrite: {pattern: {regex: "a"}, substitution: "b"}}}]}`,
			"virtual_hosts[0].routes[0].route", "only one of prefix_rewrite and regex_rewrite"},
		{"bad rewrite group", `
virtual_hosts:
- {name: v, domains: ["*"], routes: [{match: {prefix: "/"}, route: {cluster: c, regex_rewrite: {pattern: {regex: "(a)"}, substitution: "\\2"}}}]}`,
			"virtual_hosts[0].routes[0].route.regex_rewrite.substitution", "group"},
		{"total weight mismatch", `
virtual_hosts:
- {name: v, domains: ["*"], routes: [{match: {prefix: "/"}, route: {weighted_clusters: {total_weight: 100, clusters: [{name: a, weight: 30}, {name: b, weight: 30}]}}}]}`,
			"virtual_hosts[0].routes[0].route.weighted_clusters.total_weight", "add up to 60"},
		{"zero weights", `
virtual_hosts:
- {name: v, domains: ["*"], routes: [{match: {prefix: "/"}, route: {weighted_clusters: {clusters: [{name: a, weight: 0}]}}}]}`,
			"virtual_hosts[0].routes[0].route.weighted_clusters.clusters", "greater than 0"},
		{"body too large", `
max_direct_response_body_size_bytes: 4
virtual_hosts:
- {name: v, domains: ["*"], routes: [{match: {prefix: "/"}, direct_response: {status: 200, body: {inline_string: "12345"}}}]}`,
			"virtual_hosts[0].routes[0].direct_response.body", "maximum is 4"},
		{"body env var", `
virtual_hosts:
- {name: v, domains: ["*"], routes: [{match: {prefix: "/"}, direct_response: {status: 200, body: {environment_variable: HOME}}}]}`,
			"virtual_hosts[0].routes[0].direct_response.body.environment_variable", "not supported"},
		{"missing body file", `
virtual_hosts:
- {name: v, domains: ["*"], routes: [{match: {prefix: "/"}, direct_response: {status: 200, body: {filename: "/nonexistent/weft/body"}}}]}`,
			"virtual_hosts[0].routes[0].direct_response.body.filename", "cannot read"},
		{"duplicate upgrade", `
virtual_hosts:
- {name: v, domains: ["*"], routes: [{match: {prefix: "/"}, route: {cluster: c, upgrade_configs: [{upgrade_type: websocket}, {upgrade_type: WebSocket}]}}]}`,
			"virtual_hosts[0].routes[0].route.upgrade_configs[1].upgrade_type", "duplicate upgrade"},
		{"cookie attributes", `
virtual_hosts:
- {name: v, domains: ["*"], routes: [{match: {prefix: "/"}, route: {cluster: c, hash_policy: [{cookie: {name: s, attributes: [{name: SameSite, value: Lax}]}}]}}]}`,
			"virtual_hosts[0].routes[0].route.hash_policy[0].cookie.attributes", "not supported"},
		{"path_separated_prefix trailing slash", `
virtual_hosts:
- {name: v, domains: ["*"], routes: [{match: {path_separated_prefix: "/api/"}, route: {cluster: c}}]}`,
			"virtual_hosts[0].routes[0].match.path_separated_prefix", "must not end with '/'"},
		{"header string_match invalid regex", `
virtual_hosts:
- {name: v, domains: ["*"], routes: [{match: {prefix: "/", headers: [{name: x, string_match: {safe_regex: {regex: "a)|(b"}}}]}, route: {cluster: c}}]}`,
			"virtual_hosts[0].routes[0].match.headers[0].string_match.safe_regex.regex", "invalid RE2: error parsing regexp: unexpected ): `a)|(b`"},
		{"header safe_regex_match invalid regex", `
virtual_hosts:
- {name: v, domains: ["*"], routes: [{match: {prefix: "/", headers: [{name: x, safe_regex_match: {regex: "(["}}]}, route: {cluster: c}}]}`,
			"virtual_hosts[0].routes[0].match.headers[0].safe_regex_match.regex", "invalid RE2"},
		{"query string_match google_re2", `
virtual_hosts:
- {name: v, domains: ["*"], routes: [{match: {prefix: "/", query_parameters: [{name: q, string_match: {safe_regex: {google_re2: {max_program_size: 1}, regex: "a"}}}]}, route: {cluster: c}}]}`,
			"virtual_hosts[0].routes[0].match.query_parameters[0].string_match.safe_regex.google_re2.max_program_size", "not supported"},
		{"pgv: direct response status", `
virtual_hosts:
- {name: v, domains: ["*"], routes: [{match: {prefix: "/"}, direct_response: {status: 700}}]}`,
			"virtual_hosts[0].routes[0].direct_response.status", "[200, 599]"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Compile(parseRC(t, tc.yaml), CompileOptions{})
			if err == nil {
				t.Fatal("Compile succeeded")
			}
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("error %T is not a *ConfigError: %v", err, err)
			}
			if ce.Path != tc.wantPath || !strings.Contains(err.Error(), tc.wantMsg) {
				t.Fatalf("error %q (path %q), want path %q and %q", err, ce.Path, tc.wantPath, tc.wantMsg)
			}
		})
	}
}

func TestCompileValidatesClusters(t *testing.T) {
	y := `
virtual_hosts:
- name: v
  domains: ["*"]
  routes:
  - {match: {prefix: "/a"}, route: {cluster: known}}
  - {match: {prefix: "/b"}, route: {weighted_clusters: {clusters: [{name: known, weight: 1}, {name: missing, weight: 1}]}}}
`
	exists := func(name string) bool { return name == "known" }
	_, err := Compile(parseRC(t, y), CompileOptions{ValidateClustersDefault: true, ClusterExists: exists})
	if err == nil || !strings.Contains(err.Error(), `virtual_hosts[0].routes[1].route.weighted_clusters.clusters[1].name: unknown cluster "missing"`) {
		t.Fatalf("error %v", err)
	}
	// validate_clusters: false in the configuration wins over the default.
	if _, err := Compile(parseRC(t, "validate_clusters: false\n"+y), CompileOptions{ValidateClustersDefault: true, ClusterExists: exists}); err != nil {
		t.Fatalf("validate_clusters false: %v", err)
	}
	// RDS default: no validation.
	if _, err := Compile(parseRC(t, y), CompileOptions{ClusterExists: exists}); err != nil {
		t.Fatalf("default off: %v", err)
	}
}

func TestCompileAcceptsMetadataAndDefaults(t *testing.T) {
	tab := compileYAML(t, `
name: local
metadata: {filter_metadata: {istio: {config: x}}}
virtual_hosts:
- name: v
  domains: ["*"]
  metadata: {filter_metadata: {istio: {config: y}}}
  routes:
  - name: r
    metadata: {filter_metadata: {istio: {config: z}}}
    match: {prefix: "/"}
    route: {cluster: c}
`)
	if tab.Name() != "local" || len(tab.VirtualHosts()) != 1 {
		t.Fatalf("table %q with %d vhosts", tab.Name(), len(tab.VirtualHosts()))
	}
	r := tab.VirtualHosts()[0].Routes()[0]
	if r.Kind() != ActionRoute || r.Timeout() != DefaultTimeout || r.ClusterNotFoundStatus() != 503 {
		t.Fatalf("kind %v timeout %v cluster-not-found %d", r.Kind(), r.Timeout(), r.ClusterNotFoundStatus())
	}
	if _, ok := r.IdleTimeout(); ok {
		t.Fatal("idle timeout set by default")
	}
	if c := r.PickCluster(12345); c == nil || c.Name != "c" {
		t.Fatalf("cluster %v", c)
	}
}

func TestDirectResponseBodyFromFile(t *testing.T) {
	dir := t.TempDir()
	name := filepath.Join(dir, "body.txt")
	if err := os.WriteFile(name, []byte("hello from file"), 0o600); err != nil {
		t.Fatal(err)
	}
	tab := compileYAML(t, `
virtual_hosts:
- name: v
  domains: ["*"]
  routes:
  - {name: file, match: {prefix: "/f"}, direct_response: {status: 503, body: {filename: "`+name+`"}}}
  - {name: bytes, match: {prefix: "/b"}, direct_response: {status: 200, body: {inline_bytes: "aGk="}}}
  - {name: none, match: {prefix: "/"}, direct_response: {status: 204}}
`)
	for path, want := range map[string]string{"/f": "hello from file", "/b": "hi", "/": ""} {
		r, _ := tab.Route(newReq("h", path))
		if r == nil || r.Kind() != ActionDirectResponse || string(r.Body()) != want {
			t.Errorf("%s: route %v body %q, want %q", path, r, r.Body(), want)
		}
	}
	// The file is read at compile time: removing it changes nothing.
	if err := os.Remove(name); err != nil {
		t.Fatal(err)
	}
	if r, _ := tab.Route(newReq("h", "/f")); string(r.Body()) != "hello from file" || r.Status() != 503 {
		t.Fatalf("body %q status %d", r.Body(), r.Status())
	}
}
