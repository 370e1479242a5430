package config

import (
	"fmt"
	"os"

	"google.golang.org/protobuf/proto"
	mesh "istio.io/api/mesh/v1alpha1"

	"github.com/weftmesh/weft/internal/protoyaml"
)

// The mesh configuration is Istio's MeshConfig (istio.io/api
// mesh/v1alpha1), the YAML that Istio keeps under the "mesh" key of the
// istio ConfigMap or in IstioOperator's spec.meshConfig: extension
// providers (OpenTelemetry, Zipkin, Envoy file access logs, Prometheus),
// the default providers, accessLogFile/Format/Encoding, enableTracing and
// defaultConfig.tracing. weft-control reads it from --mesh-config.

// Istio's default extension providers (pkg/config/mesh DefaultMeshConfig):
// "prometheus" for metrics and "envoy", an Envoy file access log to
// /dev/stdout, which Telemetry resources may name without declaring them.
const (
	PrometheusProvider = "prometheus"
	EnvoyProvider      = "envoy"
)

// DefaultMeshConfig returns Istio's defaults for the fields weft reads:
// tracing enabled at 1 % sampling (once a provider is chosen), no access
// log, Prometheus metrics, and the built-in providers.
func DefaultMeshConfig() *mesh.MeshConfig {
	m := &mesh.MeshConfig{
		EnableTracing:    true,
		DefaultConfig:    &mesh.ProxyConfig{Tracing: &mesh.Tracing{Sampling: 1}},
		DefaultProviders: &mesh.MeshConfig_DefaultProviders{Metrics: []string{PrometheusProvider}},
	}
	addBuiltinProviders(m)
	return m
}

// addBuiltinProviders adds Istio's built-in providers the configuration
// does not define itself.
func addBuiltinProviders(m *mesh.MeshConfig) {
	have := map[string]bool{}
	for _, p := range m.GetExtensionProviders() {
		have[p.GetName()] = true
	}
	if !have[PrometheusProvider] {
		m.ExtensionProviders = append(m.ExtensionProviders, &mesh.MeshConfig_ExtensionProvider{
			Name:     PrometheusProvider,
			Provider: &mesh.MeshConfig_ExtensionProvider_Prometheus{Prometheus: &mesh.MeshConfig_ExtensionProvider_PrometheusMetricsProvider{}},
		})
	}
	if !have[EnvoyProvider] {
		m.ExtensionProviders = append(m.ExtensionProviders, &mesh.MeshConfig_ExtensionProvider{
			Name: EnvoyProvider,
			Provider: &mesh.MeshConfig_ExtensionProvider_EnvoyFileAccessLog{
				EnvoyFileAccessLog: &mesh.MeshConfig_ExtensionProvider_EnvoyFileAccessLogProvider{Path: "/dev/stdout"},
			},
		})
	}
}

// LoadMeshConfig reads a mesh configuration file over Istio's defaults
// (fields the file sets replace the default ones, as Istio merges its mesh
// ConfigMap). Problems carry the file, line and field path; any error
// rejects the file (warnings do not).
func LoadMeshConfig(path string) (*mesh.MeshConfig, []*Error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, []*Error{{Source: Source{File: path}, Message: fmt.Sprintf("cannot read the mesh configuration: %v", err)}}
	}
	return ParseMeshConfig(path, data)
}

// ParseMeshConfig is LoadMeshConfig on data read from file.
func ParseMeshConfig(file string, data []byte) (*mesh.MeshConfig, []*Error) {
	docs := protoyaml.Split(data)
	var nonEmpty []*protoyaml.Document
	for _, d := range docs {
		if !d.Empty() {
			nonEmpty = append(nonEmpty, d)
		}
	}
	m := DefaultMeshConfig()
	if len(nonEmpty) == 0 {
		return m, nil
	}
	if len(nonEmpty) > 1 {
		return nil, []*Error{{Source: Source{File: file, Doc: nonEmpty[1].Index, Line: nonEmpty[1].Line}, Message: "a mesh configuration is one YAML document"}}
	}
	doc := nonEmpty[0]
	l := &loaded{src: Source{File: file, Doc: doc.Index, Line: doc.Line}, node: contentNode(doc.Node)}
	v, err := doc.Value()
	if err != nil {
		p := problemOf(err)
		if p.Line > 0 {
			l.src.Line = p.Line
		}
		l.problem(fieldPath(p.Path), p.Reason, false)
		return nil, l.errs
	}
	file0 := &mesh.MeshConfig{}
	for _, p := range decodeOptions.Unmarshal(v, file0, "") {
		l.problem(fieldPath(p.Path), p.Reason, false)
	}
	if l.failed() {
		return nil, l.errs
	}
	proto.Merge(m, file0)
	if file0.GetExtensionProviders() != nil {
		m.ExtensionProviders = file0.GetExtensionProviders()
		addBuiltinProviders(m)
	}
	var is issues
	validateMeshConfig(m, &is)
	for _, x := range is {
		l.problem(x.path, x.msg, x.warning)
	}
	if l.failed() {
		return nil, l.errs
	}
	return m, l.errs
}

// validateMeshConfig applies Istio's rules for the fields weft reads
// (pkg/config/validation ValidateMeshConfig): provider names are unique
// and set, a provider has a kind, OpenTelemetry and Zipkin providers name
// a service and a port, default providers exist, and the default sampling
// is a percentage.
func validateMeshConfig(m *mesh.MeshConfig, is *issues) {
	names := map[string]bool{}
	for i, p := range m.GetExtensionProviders() {
		pp := fieldPath("extensionProviders").i(i)
		switch {
		case p.GetName() == "":
			is.err(pp.f("name"), "a provider needs a name")
		case names[p.GetName()]:
			is.err(pp.f("name"), fmt.Sprintf("provider %q is defined twice", p.GetName()))
		}
		names[p.GetName()] = true
		switch t := p.GetProvider().(type) {
		case nil:
			is.err(pp, "a provider needs a kind, such as opentelemetry, zipkin, envoyFileAccessLog or prometheus")
		case *mesh.MeshConfig_ExtensionProvider_Opentelemetry:
			servicePortProblems(pp.f("opentelemetry"), t.Opentelemetry.GetService(), t.Opentelemetry.GetPort(), is)
		case *mesh.MeshConfig_ExtensionProvider_Zipkin:
			servicePortProblems(pp.f("zipkin"), t.Zipkin.GetService(), t.Zipkin.GetPort(), is)
		}
	}
	dp := m.GetDefaultProviders()
	for _, d := range []struct {
		field string
		list  []string
	}{{"tracing", dp.GetTracing()}, {"metrics", dp.GetMetrics()}, {"accessLogging", dp.GetAccessLogging()}} {
		for i, name := range d.list {
			if !names[name] {
				is.err(fieldPath("defaultProviders").f(d.field).i(i), fmt.Sprintf("no extension provider named %q: define it under extensionProviders", name))
			}
		}
	}
	if s := m.GetDefaultConfig().GetTracing().GetSampling(); s < 0 || s > 100 {
		is.err("defaultConfig.tracing.sampling", fmt.Sprintf("%v is out of range: use 0 to 100", s))
	}
}

// servicePortProblems checks a provider's service host and port.
func servicePortProblems(p fieldPath, service string, port uint32, is *issues) {
	if service == "" {
		is.err(p.f("service"), "the collector's service is required, for example otel-collector.observability.svc.cluster.local or 127.0.0.1")
	}
	if port == 0 || port > 65535 {
		is.err(p.f("port"), fmt.Sprintf("port %d: use 1-65535", port))
	}
}

// ExtensionProvider returns the provider named name, or nil.
func ExtensionProvider(m *mesh.MeshConfig, name string) *mesh.MeshConfig_ExtensionProvider {
	for _, p := range m.GetExtensionProviders() {
		if p.GetName() == name {
			return p
		}
	}
	return nil
}
