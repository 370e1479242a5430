package bootstrap

import "google.golang.org/protobuf/reflect/protoreflect"

// Access logs (internal/proxy/accesslog) on http_connection_manager and
// tcp_proxy: the file logger and the stdout/stderr stream loggers, with
// every substitution format (log_format; the deprecated format,
// json_format and typed_json_format of FileAccessLog), and the common
// filters. Not supported: formatter extensions, runtime, traceable,
// header, gRPC status, metadata, log type and extension filters, and
// runtime overrides of comparison values (runtime_key is accepted and
// ignored: weft-proxy has no runtime, so the default value applies as in
// Envoy with the key unset).
const (
	accessLogPkg                            = "envoy.config.accesslog.v3."
	fileAccessLogType protoreflect.FullName = "envoy.extensions.access_loggers.file.v3.FileAccessLog"
	stdoutLogType     protoreflect.FullName = "envoy.extensions.access_loggers.stream.v3.StdoutAccessLog"
	stderrLogType     protoreflect.FullName = "envoy.extensions.access_loggers.stream.v3.StderrAccessLog"
)

func accessLogRules() map[protoreflect.FullName]msgRule {
	return map[protoreflect.FullName]msgRule{
		accessLogPkg + "AccessLog": {
			"name":         field(),
			"filter":       field(),
			"typed_config": anyOf(fileAccessLogType, stdoutLogType, stderrLogType),
		},
		accessLogPkg + "AccessLogFilter": fields(
			"status_code_filter", "duration_filter", "not_health_check_filter",
			"response_flag_filter", "and_filter", "or_filter",
		),
		accessLogPkg + "StatusCodeFilter":     fields("comparison"),
		accessLogPkg + "DurationFilter":       fields("comparison"),
		accessLogPkg + "ComparisonFilter":     fields("op", "value"),
		"envoy.config.core.v3.RuntimeUInt32":  fields("default_value", "runtime_key"),
		accessLogPkg + "NotHealthCheckFilter": {},
		accessLogPkg + "ResponseFlagFilter":   fields("flags"),
		accessLogPkg + "AndFilter":            fields("filters"),
		accessLogPkg + "OrFilter":             fields("filters"),
		fileAccessLogType:                     fields("path", "format", "json_format", "typed_json_format", "log_format"),
		stdoutLogType:                         fields("log_format"),
		stderrLogType:                         fields("log_format"),
		"envoy.config.core.v3.SubstitutionFormatString": fields(
			"text_format", "json_format", "text_format_source", "omit_empty_values",
			"content_type", "json_format_options",
		),
		"envoy.config.core.v3.JsonFormatOptions": fields("sort_properties"),
	}
}
