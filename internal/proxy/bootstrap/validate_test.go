package bootstrap

import (
	"strings"
	"testing"
)

// base is a small valid bootstrap; the cases below edit it.
const base = `admin:
  address: {socket_address: {address: 127.0.0.1, port_value: 9901}}
static_resources:
  listeners:
  - name: http
    address: {socket_address: {address: 127.0.0.1, port_value: 10000}}
    filter_chains:
    - filters:
      - name: hcm
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: http
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: {prefix: /}
                route: {cluster: web}
          http_filters:
          - name: router
            typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}
  # more listeners
  clusters:
  - name: web
    type: STATIC
    connect_timeout: 1s
    load_assignment:
      cluster_name: web
      endpoints:
      - lb_endpoints:
        - endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: 8080}}}
  # more clusters
`

// Paths into base.
const (
	hcmPath   = "static_resources.listeners[0].filter_chains[0].filters[0].typed_config"
	routePath = hcmPath + ".route_config.virtual_hosts[0].routes[0]"
	webPath   = "static_resources.clusters[0]"
)

// Snippets added to base.
const (
	router    = `{"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}`
	tcpProxyL = `  - name: tcp
    address: {socket_address: {address: 127.0.0.1, port_value: 10001}}
    filter_chains:
    - filters:
      - name: tcp
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
          stat_prefix: tcp
          cluster: CLUSTER
  # more listeners`
)

// edit applies old→new replacements to base; each old must occur.
func edit(t *testing.T, pairs ...string) string {
	t.Helper()
	s := base
	for i := 0; i+1 < len(pairs); i += 2 {
		if !strings.Contains(s, pairs[i]) {
			t.Fatalf("edit: %q not in base", pairs[i])
		}
		s = strings.Replace(s, pairs[i], pairs[i+1], 1)
	}
	return s
}

func TestValidateEmpty(t *testing.T) {
	// Envoy starts with an empty bootstrap (no listeners, no admin).
	b, err := Parse([]byte("{}"), "empty")
	if err != nil {
		t.Fatal(err)
	}
	if err := Validate(b); err != nil {
		t.Fatalf("Validate(empty) = %v", err)
	}
}

func TestValidateBase(t *testing.T) {
	b, err := Parse([]byte(base), "base")
	if err != nil {
		t.Fatal(err)
	}
	if err := Validate(b); err != nil {
		t.Fatalf("Validate(base) = %v", err)
	}
}

// TestValidateErrors: every class of problem Validate finds, with its path
// and reason (no source or line: Validate works on messages).
func TestValidateErrors(t *testing.T) {
	for _, tc := range []struct {
		name  string
		edits []string
		want  []string
	}{{
		name:  "unsupported field",
		edits: []string{"    type: STATIC\n", "    type: STATIC\n    respect_dns_ttl: true\n    ignore_health_on_host_removal: true\n"},
		want: []string{
			webPath + ".respect_dns_ttl: not supported by weft-proxy",
			webPath + ".ignore_health_on_host_removal: not supported by weft-proxy",
		},
	}, {
		name:  "unsupported field inside typed_config",
		edits: []string{"stat_prefix: http\n", "stat_prefix: http\n          proxy_100_continue: true\n          via: weft\n"},
		want: []string{
			hcmPath + ".via: not supported by weft-proxy",
			hcmPath + ".proxy_100_continue: not supported by weft-proxy",
		},
	}, {
		name:  "false is not set",
		edits: []string{"stat_prefix: http\n", "stat_prefix: http\n          proxy_100_continue: false\n"},
	}, {
		name:  "unsupported enum values",
		edits: []string{"type: STATIC", "type: STATIC\n    lb_policy: LOAD_BALANCING_POLICY_CONFIG", "127.0.0.1, port_value: 8080", "127.0.0.1, port_value: 8080, protocol: UDP"},
		want: []string{
			webPath + ".lb_policy: LOAD_BALANCING_POLICY_CONFIG is not supported by weft-proxy (supported: ROUND_ROBIN, LEAST_REQUEST, RANDOM, RING_HASH, MAGLEV, CLUSTER_PROVIDED)",
			webPath + ".load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address.protocol: UDP is not supported by weft-proxy (supported: TCP)",
		},
	}, {
		name:  "codec HTTP3",
		edits: []string{"stat_prefix: http\n", "stat_prefix: http\n          codec_type: HTTP3\n"},
		want:  []string{hcmPath + ".codec_type: HTTP3 is not supported by weft-proxy (supported: AUTO, HTTP1, HTTP2)"},
	}, {
		name:  "type supported elsewhere but not here",
		edits: []string{"typed_config: " + router, `typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy, stat_prefix: x, cluster: web}`},
		want: []string{
			hcmPath + ".http_filters[0].typed_config: type envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy is not supported by weft-proxy (supported here: envoy.extensions.filters.http.router.v3.Router, envoy.extensions.filters.http.rbac.v3.RBAC, envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication, envoy.extensions.filters.http.fault.v3.HTTPFault, envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit, xds.type.v3.TypedStruct, udpa.type.v1.TypedStruct)",
			hcmPath + ".http_filters[0]: the last HTTP filter must be the router (envoy.extensions.filters.http.router.v3.Router), not envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
		},
	}, {
		name:  "PGV violations, in the bootstrap and inside typed_config",
		edits: []string{"port_value: 8080", "port_value: 70000", "stat_prefix: http", `stat_prefix: ""`},
		want: []string{
			webPath + ".load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address.port_value: value must be less than or equal to 65535",
			hcmPath + ".stat_prefix: value length must be at least 1 runes",
		},
	}, {
		name:  "PGV required oneof",
		edits: []string{"route: {cluster: web}", "metadata: {}"},
		want:  []string{routePath + ".action: value is required"},
	}, {
		name:  "unknown cluster from a route and a tcp_proxy",
		edits: []string{"route: {cluster: web}", "route: {cluster: api}", "  # more listeners", strings.Replace(tcpProxyL, "CLUSTER", "db", 1)},
		want: []string{
			routePath + `.route.cluster: unknown cluster "api": it is not in static_resources.clusters`,
			`static_resources.listeners[1].filter_chains[0].filters[0].typed_config.cluster: unknown cluster "db": it is not in static_resources.clusters`,
		},
	}, {
		name:  "validate_clusters false skips the check",
		edits: []string{"route: {cluster: web}", "route: {cluster: api}", "route_config:\n", "route_config:\n            validate_clusters: false\n"},
	}, {
		name: "unknown weighted cluster, zero weights",
		edits: []string{"route: {cluster: web}",
			"route: {weighted_clusters: {clusters: [{name: web, weight: 0}, {name: api, weight: 0}]}}"},
		want: []string{
			routePath + `.route.weighted_clusters.clusters[1].name: unknown cluster "api": it is not in static_resources.clusters`,
			routePath + ".route.weighted_clusters: the sum of the weights must be greater than 0",
		},
	}, {
		name: "duplicate names and addresses",
		edits: []string{
			"  # more listeners", strings.Replace(strings.Replace(tcpProxyL, "CLUSTER", "web", 1), "name: tcp\n    address: {socket_address: {address: 127.0.0.1, port_value: 10001}}", "name: http\n    address: {socket_address: {address: 127.0.0.1, port_value: 10000}}", 1),
			"  # more clusters", "  - {name: web, connect_timeout: 1s}",
			`domains: ["*"]`, `domains: ["*", "a.example", "A.example"]`,
		},
		want: []string{
			`static_resources.clusters[1].name: duplicate cluster name "web" (also at static_resources.clusters[0].name); each must be unique`,
			hcmPath + `.route_config.virtual_hosts[0].domains[2]: duplicate domain "a.example" (also at ` + hcmPath + `.route_config.virtual_hosts[0].domains[1]); each must be unique`,
			`static_resources.listeners[1].name: duplicate listener name "http" (also at static_resources.listeners[0].name); each must be unique`,
			`static_resources.listeners[1].address: duplicate listener address "127.0.0.1:10000" (also at static_resources.listeners[0].address); each must be unique`,
		},
	}, {
		name:  "router not last",
		edits: []string{"typed_config: " + router + "\n", "typed_config: " + router + "\n          - name: router2\n            typed_config: " + router + "\n"},
		want:  []string{hcmPath + ".http_filters[0]: the router filter (router) must be the last filter in the http filter chain"},
	}, {
		name:  "no http filters",
		edits: []string{"          http_filters:\n          - name: router\n            typed_config: " + router + "\n", ""},
		want:  []string{hcmPath + ".http_filters: empty: the last HTTP filter must be the router (envoy.extensions.filters.http.router.v3.Router)"},
	}, {
		name: "listener and STATIC endpoint addresses must be IPs",
		edits: []string{"address: 127.0.0.1, port_value: 10000", "address: localhost, port_value: 10000",
			"address: 127.0.0.1, port_value: 8080", "address: web.internal, port_value: 8080"},
		want: []string{
			`static_resources.clusters[0].load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address.address: "web.internal" is not an IP address; a STATIC cluster takes IP addresses (use STRICT_DNS or LOGICAL_DNS for host names)`,
			`static_resources.listeners[0].address.socket_address.address: "localhost" is not an IP address; listeners bind IP addresses (0.0.0.0 or :: for all)`,
		},
	}, {
		name:  "LOGICAL_DNS with two endpoints",
		edits: []string{"type: STATIC", "type: LOGICAL_DNS", "        - endpoint: {address", "        - endpoint: {address: {socket_address: {address: b.internal, port_value: 1}}}\n        - endpoint: {address"},
		want:  []string{webPath + ".load_assignment.endpoints: a LOGICAL_DNS cluster needs exactly one locality with exactly one lb_endpoint"},
	}, {
		name: "ring and maglev sizes",
		edits: []string{"    type: STATIC\n", "    type: STATIC\n    ring_hash_lb_config: {minimum_ring_size: 2048, maximum_ring_size: 1024}\n",
			"  # more clusters", "  - {name: m, connect_timeout: 1s, lb_policy: MAGLEV, maglev_lb_config: {table_size: 65536}}"},
		want: []string{
			webPath + ".ring_hash_lb_config: minimum_ring_size (2048) > maximum_ring_size (1024)",
			"static_resources.clusters[1].maglev_lb_config.table_size: 65536 is not a prime number",
		},
	}, {
		name:  "upgrade types",
		edits: []string{"stat_prefix: http\n", "stat_prefix: http\n          upgrade_configs: [{upgrade_type: websocket}, {upgrade_type: WebSocket}, {upgrade_type: CONNECT}]\n"},
		want: []string{
			hcmPath + `.upgrade_configs[2].upgrade_type: "CONNECT" (CONNECT termination) is not supported by weft-proxy`,
			hcmPath + `.upgrade_configs[1].upgrade_type: duplicate upgrade type "websocket" (also at ` + hcmPath + `.upgrade_configs[0].upgrade_type); each must be unique`,
		},
	}, {
		name:  "invalid regex",
		edits: []string{"match: {prefix: /}", `match: {safe_regex: {regex: "(("}}`},
		want:  []string{routePath + ".match.safe_regex.regex: invalid regular expression: error parsing regexp: missing closing ): `((`"},
	}, {
		name:  "typed_extension_protocol_options key",
		edits: []string{"    type: STATIC\n", "    type: STATIC\n    typed_extension_protocol_options:\n      http: {\"@type\": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions}\n"},
		want:  []string{webPath + `.typed_extension_protocol_options["http"]: key "http" is not supported by weft-proxy (supported: envoy.extensions.upstreams.http.v3.HttpProtocolOptions)`},
	}, {
		name:  "no filter chains",
		edits: []string{"    filter_chains:\n    - filters:\n      - name: hcm\n", "    default_filter_chain:\n      filters:\n      - name: hcm\n"},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := Parse([]byte(edit(t, tc.edits...)), "t.yaml")
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			err = Validate(b)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("Validate = %v, want nil", err)
				}
				return
			}
			assertErrors(t, err, tc.want)
		})
	}
}

// TestValidateTypedConfigRequired: filters are selected by type, so a
// filter without typed_config is reported at each level.
func TestValidateTypedConfigRequired(t *testing.T) {
	in := edit(t, "            typed_config: "+router+"\n", "",
		"  # more listeners", `  - name: tls
    address: {socket_address: {address: 127.0.0.1, port_value: 10002}}
    listener_filters: [{name: envoy.filters.listener.tls_inspector}]
    filter_chains: [{filters: [{name: envoy.filters.network.tcp_proxy}]}]`)
	b, err := Parse([]byte(in), "t.yaml")
	if err != nil {
		t.Fatal(err)
	}
	assertErrors(t, Validate(b), []string{
		hcmPath + ".http_filters[0].typed_config: " + typedConfigRequired,
		"static_resources.listeners[1].filter_chains[0].filters[0].typed_config: " + typedConfigRequired,
		"static_resources.listeners[1].listener_filters[0].typed_config: " + typedConfigRequired,
	})
}

// TestParseAndValidateLines: validation problems get the file's lines, in
// file order.
func TestParseAndValidateLines(t *testing.T) {
	in := edit(t, "route: {cluster: web}", "route: {cluster: api}", "    type: STATIC\n", "    type: STATIC\n    respect_dns_ttl: true\n")
	b, err := ParseAndValidate([]byte(in), "t.yaml")
	if b != nil {
		t.Error("a bootstrap returned with problems")
	}
	assertErrors(t, err, []string{
		"t.yaml:19: " + routePath + `.route.cluster: unknown cluster "api": it is not in static_resources.clusters`,
		"t.yaml:27: " + webPath + ".respect_dns_ttl: not supported by weft-proxy",
	})
}
