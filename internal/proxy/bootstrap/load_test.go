package bootstrap

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/proto"
)

// TestLoadValidConfigs loads and validates the realistic front proxy and the
// self-contained example shipped with the repository.
func TestLoadValidConfigs(t *testing.T) {
	for _, tc := range []struct {
		path      string
		listeners int
		clusters  int
	}{
		{"testdata/front-proxy.yaml", 2, 6},
		{"../../../examples/front-proxy.yaml", 2, 1},
		{"../../../examples/mesh/apps.yaml", 2, 0},
	} {
		t.Run(filepath.Base(filepath.Dir(tc.path))+"/"+filepath.Base(tc.path), func(t *testing.T) {
			b, err := LoadAndValidate(tc.path)
			if err != nil {
				t.Fatalf("LoadAndValidate: %v", err)
			}
			sr := b.GetStaticResources()
			if len(sr.GetListeners()) != tc.listeners || len(sr.GetClusters()) != tc.clusters {
				t.Fatalf("got %d listeners, %d clusters; want %d, %d",
					len(sr.GetListeners()), len(sr.GetClusters()), tc.listeners, tc.clusters)
			}
			// Load alone agrees.
			b2, err := Load(tc.path)
			if err != nil || len(b2.GetStaticResources().GetClusters()) != tc.clusters {
				t.Fatalf("Load: %v", err)
			}
			// And so does the same configuration written as JSON.
			data, _ := os.ReadFile(tc.path)
			doc, err := parseYAML(data)
			if err != nil {
				t.Fatal(err)
			}
			jsonData, err := yamlToJSON(doc)
			if err != nil {
				t.Fatal(err)
			}
			b3, err := ParseAndValidate(jsonData, "front-proxy.json")
			if err != nil || !proto.Equal(b, b3) {
				t.Fatalf("JSON form: err %v, equal %v", err, proto.Equal(b, b3))
			}
		})
	}
}

// TestFrontProxyDecoded spot-checks that values reach the typed messages,
// including those inside typed_config.
func TestFrontProxyDecoded(t *testing.T) {
	b, err := Load("testdata/front-proxy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cl := b.GetStaticResources().GetClusters()
	if cl[0].GetType() != clusterv3.Cluster_STRICT_DNS || cl[0].GetLbPolicy() != clusterv3.Cluster_LEAST_REQUEST {
		t.Errorf("cluster api: type %v lb %v", cl[0].GetType(), cl[0].GetLbPolicy())
	}
	if got := cl[2].GetRingHashLbConfig().GetMinimumRingSize().GetValue(); got != 1024 {
		t.Errorf("users ring min = %d, want 1024", got)
	}
	if got := cl[0].GetConnectTimeout().AsDuration().Milliseconds(); got != 250 {
		t.Errorf("api connect_timeout = %dms, want 250", got)
	}
	var hcm hcmv3.HttpConnectionManager
	tc := b.GetStaticResources().GetListeners()[0].GetFilterChains()[0].GetFilters()[0].GetTypedConfig()
	if err := tc.UnmarshalTo(&hcm); err != nil {
		t.Fatal(err)
	}
	if got := len(hcm.GetRouteConfig().GetVirtualHosts()[0].GetRoutes()); got != 6 {
		t.Errorf("routes = %d, want 6", got)
	}
	if hcm.GetHttpFilters()[0].GetTypedConfig() == nil {
		t.Error("router typed_config lost")
	}
}

// TestParseErrors: decoding problems name the source, line, field path and
// reason, all at once and in file order. A want entry ending in "..." is a
// prefix.
func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		want []string
	}{{
		name: "unknown field",
		in: `static_resources:
  clusters:
  - name: web
    lb_polcy: ROUND_ROBIN
`,
		want: []string{"t.yaml:4: static_resources.clusters[0].lb_polcy: unknown field in envoy.config.cluster.v3.Cluster (did you mean lb_policy?)"},
	}, {
		name: "several problems in file order",
		in: `static_resources:
  clusters:
  - name: web
    connect_timeout: 5
    lb_policy: ROUND_ROBBIN
    per_connection_buffer_limit_bytes: -1
    load_assignment:
      cluster_name: web
      endpoints:
      - lb_endpoints:
        - endpoint: {address: {socket_address: {address: 10.0.0.1, port_value: "x"}}}
`,
		want: []string{
			`t.yaml:4: static_resources.clusters[0].connect_timeout: expected a duration string such as "5s" or "0.25s", got a number (5)`,
			`t.yaml:5: static_resources.clusters[0].lb_policy: unknown value "ROUND_ROBBIN" (valid: ROUND_ROBIN, LEAST_REQUEST, ...`,
			`t.yaml:6: static_resources.clusters[0].per_connection_buffer_limit_bytes: -1 is out of range [0, 4294967295]`,
			`t.yaml:11: static_resources.clusters[0].load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address.port_value: "x" is not a number`,
		},
	}, {
		name: "bad duration string",
		in:   "admin: {address: {socket_address: {address: 127.0.0.1}}}\nstatic_resources: {clusters: [{name: a, connect_timeout: 5m}]}\n",
		want: []string{`t.yaml:2: static_resources.clusters[0].connect_timeout: invalid duration "5m": write seconds with an "s" suffix, such as "5s" or "0.25s"`},
	}, {
		name: "unsupported @type, nested in an Any",
		in: `static_resources:
  listeners:
  - name: l
    filter_chains:
    - filters:
      - name: hcm
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: x
          http_filters:
          - name: cors
            typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.cors.v3.Cors}
          - name: router
            typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router, dynamic_stats: yes}
`,
		want: []string{
			"t.yaml:12: static_resources.listeners[0].filter_chains[0].filters[0].typed_config.http_filters[0].typed_config: type envoy.extensions.filters.http.cors.v3.Cors is not supported by weft-proxy (supported here: envoy.extensions.filters.http.router.v3.Router, envoy.extensions.filters.http.rbac.v3.RBAC, envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication, envoy.extensions.filters.http.fault.v3.HTTPFault, envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit, xds.type.v3.TypedStruct, udpa.type.v1.TypedStruct)",
			// YAML 1.2: yes is a string, not a boolean.
			`t.yaml:14: static_resources.listeners[0].filter_chains[0].filters[0].typed_config.http_filters[1].typed_config.dynamic_stats: expected true or false, got a string ("yes")`,
		},
	}, {
		name: "@type in a field that is not supported lists every supported type",
		in: `stats_sinks:
- name: s
  typed_config: {"@type": type.googleapis.com/envoy.config.metrics.v3.StatsdSink}
`,
		want: []string{"t.yaml:3: stats_sinks[0].typed_config: type envoy.config.metrics.v3.StatsdSink is not supported by weft-proxy (its supported extension types are: envoy.config.route.v3.FilterConfig, envoy.config.trace.v3.OpenTelemetryConfig, ..."},
	}, {
		name: "missing @type",
		in:   "static_resources: {listeners: [{filter_chains: [{filters: [{name: x, typed_config: {stat_prefix: x}}]}]}]}\n",
		want: []string{`t.yaml:1: static_resources.listeners[0].filter_chains[0].filters[0].typed_config: "@type" is missing: an Any must name its type, e.g. "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager`},
	}, {
		name: "JSON name and proto name of one field",
		in:   "static_resources: {clusters: [{name: a, lbPolicy: RANDOM, lb_policy: MAGLEV}]}\n",
		want: []string{`t.yaml:1: static_resources.clusters[0].lb_policy: set twice (as "lbPolicy" and "lb_policy")`},
	}, {
		name: "two members of a oneof",
		in: `static_resources:
  listeners:
  - filter_chains:
    - filters:
      - name: hcm
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          route_config:
            virtual_hosts:
            - routes:
              - match: {prefix: /}
                redirect: {path_redirect: /x}
                route: {cluster: a}
`,
		want: []string{"t.yaml:13: static_resources.listeners[0].filter_chains[0].filters[0].typed_config.route_config.virtual_hosts[0].routes[0].route: only one of the action fields may be set; redirect is set too"},
	}, {
		name: "not a mapping",
		in:   "just a string\n",
		want: []string{`t.yaml:1: expected a mapping (Bootstrap), got a string ("just a string")`},
	}, {
		name: "YAML syntax",
		in:   "static_resources: [\n",
		want: []string{"t.yaml: invalid YAML: yaml: line 1: did not find expected node content"},
	}, {
		name: "two documents",
		in:   "node: {id: a}\n---\nnode: {id: b}\n",
		want: []string{"t.yaml: line 2: a second YAML document; a bootstrap is one document"},
	}, {
		name: "empty",
		in:   "",
		want: []string{"t.yaml: empty configuration"},
	}, {
		name: "JSON",
		in:   "{\n  \"node\": {\"id\": \"a\"},\n  \"admin\": {\"adress\": {}}\n}\n",
		want: []string{"t.yaml:3: admin.adress: unknown field in envoy.config.bootstrap.v3.Admin (did you mean address?)"},
	}, {
		name: "JSON that is not YAML",
		in:   `{"node": {"id": "a\/b"}, "admin": {"adress": {}}}`,
		want: []string{"t.yaml: admin.adress: unknown field in envoy.config.bootstrap.v3.Admin (did you mean address?)"},
	}, {
		name: "huge exponent",
		in:   "static_resources: {clusters: [{name: a, per_connection_buffer_limit_bytes: 1e999999999}]}",
		want: []string{"t.yaml:1: static_resources.clusters[0].per_connection_buffer_limit_bytes: 1e999999999 is out of range [0, 4294967295]"},
	}, {
		name: "merge key: the line of the merged field",
		in: `x-defaults: &defaults
  connect_timeout: 1
static_resources:
  clusters:
  - <<: *defaults
    name: a
`,
		want: []string{"t.yaml:1: x-defaults: unknown field in envoy.config.bootstrap.v3.Bootstrap", "t.yaml:2: static_resources.clusters[0].connect_timeout: expected a duration string..."},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := Parse([]byte(tc.in), "t.yaml")
			if b != nil {
				t.Errorf("Parse returned a bootstrap with an error")
			}
			assertErrors(t, err, tc.want)
		})
	}
}

// assertErrors checks that err prints exactly the wanted lines (a want line
// ending in "..." is a prefix) and that it unwraps to *FieldError values.
func assertErrors(t *testing.T, err error, want []string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error; want %q", want)
	}
	var fe *FieldError
	if !errors.As(err, &fe) {
		t.Errorf("error %T does not unwrap to *FieldError", err)
	}
	got := strings.Split(err.Error(), "\n")
	if len(got) != len(want) {
		t.Fatalf("got %d problems, want %d:\n%s", len(got), len(want), err)
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

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.yaml"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("err = %v, want os.ErrNotExist", err)
	}
	if _, err := LoadAndValidate(filepath.Join(t.TempDir(), "nope.yaml")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("LoadAndValidate err = %v, want os.ErrNotExist", err)
	}
}

// TestParseAnchors: aliases and merge keys are expanded like any YAML
// loader does.
func TestParseAnchors(t *testing.T) {
	in := `x: &ep {address: {socket_address: {address: 10.0.0.1, port_value: 80}}}
`
	_, err := Parse([]byte(in), "t.yaml")
	assertErrors(t, err, []string{"t.yaml:1: x: unknown field in envoy.config.bootstrap.v3.Bootstrap"})

	in = `static_resources:
  clusters:
  - &c
    name: a
    connect_timeout: 1s
    load_assignment:
      cluster_name: a
      endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 10.0.0.1, port_value: 80}}}}]}]
  - <<: *c
    name: b
`
	b, err := ParseAndValidate([]byte(in), "t.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if got := b.GetStaticResources().GetClusters()[1]; got.GetName() != "b" || got.GetConnectTimeout().GetSeconds() != 1 {
		t.Fatalf("merged cluster = %v", got)
	}
}

func TestSplitPathAndLine(t *testing.T) {
	doc, err := parseYAML([]byte(`a:
  b_c:
  - x: 1
  - {"y.z": 2, "dnsLookupFamily": V4_ONLY}
`))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path string
		line int
	}{
		{"", 1},
		{"a", 1},
		{"a.b_c", 2},
		{"a.b_c[0].x", 3},
		{`a.b_c[1]["y.z"]`, 4},
		{"a.b_c[1].dns_lookup_family", 4}, // JSON name in the file
		{"a.b_c[5].x", 2},                 // nearest written ancestor
		{"a.missing.deeper", 1},
		{`listener "ingress".name`, 0}, // not a path of the file
	} {
		if got := lineOf(doc, tc.path); got != tc.line {
			t.Errorf("lineOf(%q) = %d, want %d", tc.path, got, tc.line)
		}
	}
}
