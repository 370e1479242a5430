package router

import (
	"errors"
	"strings"
	"testing"

	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// stringParser parses google.protobuf.StringValue per-route configs into
// their string; "bad" fails; other types are unknown.
type stringParser struct{}

func (stringParser) ParsePerRouteConfig(a *anypb.Any) (any, bool, error) {
	var v wrapperspb.StringValue
	if a.MessageName() != "google.protobuf.StringValue" {
		return nil, false, nil
	}
	if err := a.UnmarshalTo(&v); err != nil {
		return nil, true, err
	}
	if v.Value == "bad" {
		return nil, true, errors.New("bad value")
	}
	return v.Value, true, nil
}

func str(v string) string {
	return `{"@type": type.googleapis.com/google.protobuf.StringValue, value: ` + v + `}`
}

func TestPerFilterConfigPrecedence(t *testing.T) {
	tab := compileYAMLOpts(t, `
typed_per_filter_config:
  a: `+str("rc-a")+`
  b: `+str("rc-b")+`
  c: `+str("rc-c")+`
virtual_hosts:
- name: v
  domains: ["*"]
  typed_per_filter_config:
    b: `+str("vh-b")+`
    d: {"@type": type.googleapis.com/envoy.config.route.v3.FilterConfig, disabled: true}
  routes:
  - name: r1
    match: {prefix: /1}
    route: {cluster: c}
    typed_per_filter_config:
      c: `+str("rt-c")+`
      d: {"@type": type.googleapis.com/envoy.config.route.v3.FilterConfig, config: {}}
      e: {"@type": type.googleapis.com/envoy.config.route.v3.FilterConfig, is_optional: true, config: {"@type": type.googleapis.com/google.protobuf.Int32Value, value: 1}}
  - name: r2
    match: {prefix: /2}
    route: {cluster: c}
    typed_per_filter_config:
      b: {"@type": type.googleapis.com/envoy.config.route.v3.FilterConfig, disabled: true}
  - name: r3
    match: {prefix: /3}
    route: {cluster: c}
`, CompileOptions{FilterConfigs: stringParser{}})
	routes := tab.VirtualHosts()[0].Routes()
	type want struct {
		cfg      any
		disabled bool
		ok       bool
	}
	for _, tc := range []struct {
		route int
		name  string
		want  want
	}{
		{0, "a", want{"rc-a", false, true}}, // route configuration level
		{0, "b", want{"vh-b", false, true}}, // virtual host beats route configuration
		{0, "c", want{"rt-c", false, true}}, // route beats both
		{0, "d", want{nil, false, true}},    // route's empty config enables what the vhost disabled
		{0, "e", want{nil, false, true}},    // optional unknown type: enabled, no config
		{0, "z", want{nil, false, false}},   // never mentioned
		{1, "b", want{"vh-b", true, true}},  // route disables; config of the next level kept
		{1, "d", want{nil, true, true}},     // vhost disables
		{2, "c", want{"rc-c", false, true}}, // no route-level entries
	} {
		fc, ok := routes[tc.route].FilterConfig(tc.name)
		if got := (want{fc.Config, fc.Disabled, ok}); got != tc.want {
			t.Errorf("route %d filter %q: got %+v, want %+v", tc.route, tc.name, got, tc.want)
		}
	}
}

func TestPerFilterConfigNone(t *testing.T) {
	tab := compileYAML(t, `
virtual_hosts:
- name: v
  domains: ["*"]
  routes:
  - match: {prefix: /}
    route: {cluster: c}
`)
	r := tab.VirtualHosts()[0].Routes()[0]
	if r.HasFilterConfigs() {
		t.Fatal("route without typed_per_filter_config reports filter configs")
	}
	if _, ok := r.FilterConfig("x"); ok {
		t.Fatal("FilterConfig ok without configs")
	}
	var nilRoute *Route
	if _, ok := nilRoute.FilterConfig("x"); ok || nilRoute.HasFilterConfigs() {
		t.Fatal("nil route has filter configs")
	}
}

func TestPerFilterConfigWithoutParserKeepsAny(t *testing.T) {
	tab := compileYAML(t, `
virtual_hosts:
- name: v
  domains: ["*"]
  routes:
  - match: {prefix: /}
    route: {cluster: c}
    typed_per_filter_config:
      f: `+str("x")+`
`)
	fc, ok := tab.VirtualHosts()[0].Routes()[0].FilterConfig("f")
	a, isAny := fc.Config.(*anypb.Any)
	if !ok || !isAny || a.MessageName() != "google.protobuf.StringValue" {
		t.Fatalf("got %+v %v", fc, ok)
	}
}

func TestPerFilterConfigErrors(t *testing.T) {
	for _, tc := range []struct{ name, entry, want string }{
		{"unknown type", `{"@type": type.googleapis.com/google.protobuf.Int32Value, value: 1}`,
			`virtual_hosts[0].routes[0].typed_per_filter_config["f"]: no HTTP filter of weft-proxy takes per-route configuration of type google.protobuf.Int32Value`},
		{"parser error", str("bad"),
			`virtual_hosts[0].routes[0].typed_per_filter_config["f"]: bad value`},
		{"wrapper without config", `{"@type": type.googleapis.com/envoy.config.route.v3.FilterConfig}`,
			`virtual_hosts[0].routes[0].typed_per_filter_config["f"].config: required unless disabled is true`},
		{"wrapped parser error", `{"@type": type.googleapis.com/envoy.config.route.v3.FilterConfig, config: ` + str("bad") + `}`,
			`virtual_hosts[0].routes[0].typed_per_filter_config["f"].config: bad value`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rc := parseRC(t, `
virtual_hosts:
- name: v
  domains: ["*"]
  routes:
  - match: {prefix: /}
    route: {cluster: c}
    typed_per_filter_config:
      f: `+tc.entry+`
`)
			_, err := Compile(rc, CompileOptions{FilterConfigs: stringParser{}})
			var ce *ConfigError
			if err == nil || !errors.As(err, &ce) || !strings.HasPrefix(err.Error(), tc.want) {
				t.Fatalf("error %v, want prefix %q (ConfigError)", err, tc.want)
			}
		})
	}
}

func BenchmarkRouteFilterConfig(b *testing.B) {
	tab := compileYAMLOpts(b, `
virtual_hosts:
- name: v
  domains: ["*"]
  typed_per_filter_config:
    envoy.filters.http.local_ratelimit: `+str("vh")+`
  routes:
  - match: {prefix: /}
    route: {cluster: c}
    typed_per_filter_config:
      envoy.filters.http.fault: `+str("rt")+`
`, CompileOptions{FilterConfigs: stringParser{}})
	r := tab.VirtualHosts()[0].Routes()[0]
	b.ReportAllocs()
	for b.Loop() {
		if fc, ok := r.FilterConfig("envoy.filters.http.fault"); !ok || fc.Config == nil {
			b.Fatal("missing")
		}
	}
}
