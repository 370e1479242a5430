package bootstrap

import "google.golang.org/protobuf/reflect/protoreflect"

// healthRules are the supported fields of a cluster's outlier_detection
// (upstream/outlier) and health_checks (upstream/healthcheck).
func healthRules() map[protoreflect.FullName]msgRule {
	return map[protoreflect.FullName]msgRule{
		// Every field but the extension monitors and degraded-host
		// detection.
		"envoy.config.cluster.v3.OutlierDetection": fields(
			"consecutive_5xx", "interval", "base_ejection_time", "max_ejection_percent",
			"enforcing_consecutive_5xx", "enforcing_success_rate", "success_rate_minimum_hosts",
			"success_rate_request_volume", "success_rate_stdev_factor", "consecutive_gateway_failure",
			"enforcing_consecutive_gateway_failure", "split_external_local_origin_errors",
			"consecutive_local_origin_failure", "enforcing_consecutive_local_origin_failure",
			"enforcing_local_origin_success_rate", "failure_percentage_threshold",
			"enforcing_failure_percentage", "enforcing_failure_percentage_local_origin",
			"failure_percentage_minimum_hosts", "failure_percentage_request_volume",
			"max_ejection_time", "max_ejection_time_jitter", "successful_active_health_check_uneject_host",
			"always_eject_one_host",
		),
		"envoy.config.core.v3.HealthCheck": fields(
			"timeout", "interval", "initial_jitter", "interval_jitter", "interval_jitter_percent",
			"unhealthy_threshold", "healthy_threshold", "reuse_connection",
			"no_traffic_interval", "no_traffic_healthy_interval", "unhealthy_interval",
			"unhealthy_edge_interval", "healthy_edge_interval",
			"http_health_check", "tcp_health_check", "grpc_health_check",
		),
		"envoy.config.core.v3.HealthCheck.HttpHealthCheck": fields(
			"host", "path", "request_headers_to_add", "expected_statuses", "retriable_statuses",
		).with(map[protoreflect.Name]fieldRule{
			"codec_client_type": enumOf("HTTP1", "HTTP2"),
		}),
		"envoy.config.core.v3.HealthCheck.TcpHealthCheck":  fields("send", "receive"),
		"envoy.config.core.v3.HealthCheck.Payload":         fields("text", "binary"),
		"envoy.config.core.v3.HealthCheck.GrpcHealthCheck": fields("service_name", "authority"),
		"envoy.type.v3.Int64Range":                         fields("start", "end"),
	}
}
