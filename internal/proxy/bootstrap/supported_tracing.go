package bootstrap

import (
	_ "github.com/envoyproxy/go-control-plane/envoy/config/trace/v3" // OpenTelemetryConfig, ZipkinConfig

	"google.golang.org/protobuf/reflect/protoreflect"
)

// tracingRules are HttpConnectionManager.tracing and its providers
// (internal/proxy/tracing): OpenTelemetry over OTLP gRPC (envoy_grpc) or
// HTTP, and Zipkin v2 JSON.
func tracingRules() map[protoreflect.FullName]msgRule {
	return map[protoreflect.FullName]msgRule{
		hcmType + ".Tracing": fields(
			"client_sampling", "random_sampling", "overall_sampling", "max_path_tag_length",
			"custom_tags", "spawn_upstream_span",
			// verbose only adds per-filter annotations in Envoy; accepted,
			// weft-proxy records none.
			"verbose",
		).with(map[protoreflect.Name]fieldRule{
			"provider": field(),
		}),
		"envoy.config.trace.v3.Tracing.Http": {
			"name":         field(),
			"typed_config": anyOf("envoy.config.trace.v3.OpenTelemetryConfig", "envoy.config.trace.v3.ZipkinConfig"),
		},
		"envoy.config.trace.v3.OpenTelemetryConfig": fields("grpc_service", "http_service", "service_name"),
		"envoy.config.trace.v3.ZipkinConfig": fields("collector_cluster", "collector_endpoint", "collector_hostname").with(
			map[protoreflect.Name]fieldRule{"collector_endpoint_version": enumOf("HTTP_JSON")}),
		"envoy.config.core.v3.HttpService": fields("http_uri"),
		"envoy.config.core.v3.HttpUri":     fields("uri", "cluster", "timeout"),
		// metadata tags are not supported (tracing.New refuses them too).
		"envoy.type.tracing.v3.CustomTag":             fields("tag", "literal", "environment", "request_header"),
		"envoy.type.tracing.v3.CustomTag.Literal":     fields("value"),
		"envoy.type.tracing.v3.CustomTag.Environment": fields("name", "default_value"),
		"envoy.type.tracing.v3.CustomTag.Header":      fields("name", "default_value"),
	}
}
