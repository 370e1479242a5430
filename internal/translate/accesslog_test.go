package translate

import (
	"fmt"
	"testing"

	"go.yaml.in/yaml/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"
	mesh "istio.io/api/mesh/v1alpha1"
	telemetry "istio.io/api/telemetry/v1alpha1"

	"github.com/weftmesh/weft/internal/config"
)

// decodeMeshConfig reads a scenario's "kind: MeshConfig" document: its
// "mesh" key is the mesh configuration YAML, over Istio's defaults.
func decodeMeshConfig(doc map[string]any, file string) (*mesh.MeshConfig, error) {
	body, err := yaml.Marshal(doc["mesh"])
	if err != nil {
		return nil, err
	}
	m, errs := config.ParseMeshConfig(file, body)
	for _, e := range errs {
		if !e.Warning {
			return nil, fmt.Errorf("mesh: %v", e)
		}
	}
	return m, nil
}

// TestMergeAccessLogging follows Istio's mergeLogs cases: levels are
// least specific first.
func TestMergeAccessLogging(t *testing.T) {
	prov := func(names ...string) []*telemetry.ProviderRef {
		var out []*telemetry.ProviderRef
		for _, n := range names {
			out = append(out, &telemetry.ProviderRef{Name: n})
		}
		return out
	}
	mode := func(m telemetry.WorkloadMode) *telemetry.AccessLogging_LogSelector {
		return &telemetry.AccessLogging_LogSelector{Mode: m}
	}
	disabled := &telemetry.AccessLogging{Disabled: wrapperspb.Bool(true)}
	cases := []struct {
		name     string
		levels   []alogLevel
		defaults []string
		mode     telemetry.WorkloadMode
		want     map[string]bool
	}{
		{"defaults only", nil, []string{"envoy"}, telemetry.WorkloadMode_CLIENT, map[string]bool{"envoy": false}},
		{"mesh-wide provider", []alogLevel{{{Providers: prov("envoy")}}}, nil, telemetry.WorkloadMode_CLIENT, map[string]bool{"envoy": false}},
		{"workload disables", []alogLevel{{{Providers: prov("envoy")}}, {disabled}}, nil, telemetry.WorkloadMode_SERVER, map[string]bool{"envoy": true}},
		{"server-only entry, client side", []alogLevel{{{Providers: prov("envoy"), Match: mode(telemetry.WorkloadMode_SERVER)}}}, nil, telemetry.WorkloadMode_CLIENT, map[string]bool{}},
		{"server-only entry, server side", []alogLevel{{{Providers: prov("envoy"), Match: mode(telemetry.WorkloadMode_SERVER)}}}, nil, telemetry.WorkloadMode_SERVER, map[string]bool{"envoy": false}},
		{"namespace replaces the provider", []alogLevel{{{Providers: prov("envoy")}}, {{Providers: prov("json")}}}, nil, telemetry.WorkloadMode_CLIENT, map[string]bool{"json": false}},
		{"disabled without providers inherits the default", []alogLevel{{disabled}}, []string{"envoy"}, telemetry.WorkloadMode_CLIENT, map[string]bool{"envoy": true}},
	}
	for _, c := range cases {
		got := mergeAccessLogging(c.levels, c.defaults, c.mode)
		if fmt.Sprint(got) != fmt.Sprint(c.want) {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}
