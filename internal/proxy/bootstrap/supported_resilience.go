package bootstrap

import "google.golang.org/protobuf/reflect/protoreflect"

// The fault injection (envoy.filters.http.fault, internal/proxy/fault) and
// local rate limit (envoy.filters.http.local_ratelimit,
// internal/proxy/localratelimit) HTTP filters, configured in http_filters or
// per route through typed_per_filter_config (optionally wrapped in a
// config.route.v3.FilterConfig). Not supported: the fault filter's
// response_rate_limit, downstream_nodes, runtime keys, abort response_body
// and filter_metadata; the local rate limit's descriptors, stages,
// rate_limits, per-connection and cluster-wide buckets and the newer
// options. RuntimeFractionalPercent.runtime_key is accepted and ignored
// (weft-proxy has no runtime; default_value applies).
const (
	faultType       protoreflect.FullName = "envoy.extensions.filters.http.fault.v3.HTTPFault"
	faultPkg                              = "envoy.extensions.filters.http.fault.v3."
	localRateLimit  protoreflect.FullName = "envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit"
	filterConfigMsg protoreflect.FullName = "envoy.config.route.v3.FilterConfig"
)

// perFilterConfigTypes are the types accepted in typed_per_filter_config.
func perFilterConfigTypes() fieldRule {
	return anyOf(faultType, localRateLimit, filterConfigMsg)
}

func filterRules() map[protoreflect.FullName]msgRule {
	return map[protoreflect.FullName]msgRule{
		faultType: fields("delay", "abort", "upstream_cluster", "headers", "max_active_faults",
			"disable_downstream_cluster_stats"),
		faultPkg + "FaultAbort":                                           fields("http_status", "grpc_status", "header_abort", "percentage"),
		faultPkg + "FaultAbort.HeaderAbort":                               {},
		"envoy.extensions.filters.common.fault.v3.FaultDelay":             fields("fixed_delay", "header_delay", "percentage"),
		"envoy.extensions.filters.common.fault.v3.FaultDelay.HeaderDelay": {},
		localRateLimit: fields(
			"stat_prefix", "status", "token_bucket", "filter_enabled", "filter_enforced",
			"request_headers_to_add_when_not_enforced", "response_headers_to_add",
		).with(map[protoreflect.Name]fieldRule{
			"enable_x_ratelimit_headers": enumOf("OFF", "DRAFT_VERSION_03"),
		}),
		"envoy.type.v3.TokenBucket": fields("max_tokens", "tokens_per_fill", "fill_interval"),
		"envoy.type.v3.HttpStatus":  fields("code"),
		filterConfigMsg: {
			// An empty config enables the filter without configuration.
			"config":      {Types: []protoreflect.FullName{faultType, localRateLimit}, EmptyAny: true},
			"is_optional": field(),
			"disabled":    field(),
		},
	}
}
