package config

import (
	"strings"
	"testing"
)

// TestParseMeshConfig: a mesh configuration as Istio's ConfigMap holds it
// applies over Istio's defaults; problems name the file, line and field.
func TestParseMeshConfig(t *testing.T) {
	t.Run("defaults", func(t *testing.T) {
		m, errs := ParseMeshConfig("mesh.yaml", nil)
		if len(errs) > 0 || !m.GetEnableTracing() || m.GetDefaultConfig().GetTracing().GetSampling() != 1 ||
			ExtensionProvider(m, EnvoyProvider).GetEnvoyFileAccessLog().GetPath() != "/dev/stdout" ||
			ExtensionProvider(m, PrometheusProvider) == nil {
			t.Fatalf("defaults %v %v", m, errs)
		}
	})
	t.Run("istio example", func(t *testing.T) {
		m, errs := ParseMeshConfig("mesh.yaml", []byte(`
accessLogFile: /dev/stdout
accessLogEncoding: JSON
defaultConfig:
  tracing: {sampling: 100}
extensionProviders:
- name: otel-tracing
  opentelemetry:
    service: opentelemetry-collector.observability.svc.cluster.local
    port: 4317
defaultProviders:
  tracing: [otel-tracing]
`))
		if len(errs) > 0 {
			t.Fatal(errs)
		}
		if m.GetAccessLogFile() != "/dev/stdout" || m.GetAccessLogEncoding().String() != "JSON" ||
			m.GetDefaultConfig().GetTracing().GetSampling() != 100 || !m.GetEnableTracing() ||
			ExtensionProvider(m, "otel-tracing").GetOpentelemetry().GetPort() != 4317 ||
			ExtensionProvider(m, EnvoyProvider) == nil {
			t.Fatalf("parsed %v", m)
		}
	})
	for _, tc := range []struct{ name, yaml, want string }{
		{"unknown field", "acessLogFile: x\n", "mesh.yaml:1 (document 0): acessLogFile: unknown field"},
		{"provider without service", "extensionProviders:\n- name: o\n  opentelemetry: {port: 4317}\n",
			"mesh.yaml:3 (document 0): extensionProviders[0].opentelemetry.service: the collector's service is required"},
		{"duplicate provider", "extensionProviders:\n- {name: a, prometheus: {}}\n- {name: a, prometheus: {}}\n",
			`mesh.yaml:3 (document 0): extensionProviders[1].name: provider "a" is defined twice`},
		{"unknown default provider", "defaultProviders:\n  tracing: [zipkin]\n",
			`mesh.yaml:2 (document 0): defaultProviders.tracing[0]: no extension provider named "zipkin"`},
		{"sampling", "defaultConfig:\n  tracing:\n    sampling: 200\n", "mesh.yaml:3 (document 0): defaultConfig.tracing.sampling: 200 is out of range"},
		{"two documents", "enableTracing: true\n---\nenableTracing: false\n", "a mesh configuration is one YAML document"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, errs := ParseMeshConfig("mesh.yaml", []byte(tc.yaml))
			if m != nil || len(errs) == 0 || !strings.Contains(errs[0].Error(), tc.want) {
				t.Fatalf("got %v %v, want an error containing %q", m, errs, tc.want)
			}
		})
	}
}
