package bootstrap

import (
	"regexp"
	"strings"

	"google.golang.org/protobuf/reflect/protoreflect"
)

// This file is the supported subset of the Envoy v3 API: for each message
// type, the fields weft-proxy implements, and for some of them the values it
// accepts. Everything not listed here is rejected when it is set (proto3
// "set": a non-zero scalar, a present message, a non-empty list or map).
//
// To support a new field, add its name to its message below (and, for a new
// message type, an entry for that type; TestAllowlistConsistent checks that
// every name exists in the Envoy API and that every supported message field
// has an entry). To support a new extension, add its type to the anyOf(...)
// of the Any field it goes in and import its Go package in extensions.go.

// Message type names used in several places.
const (
	hcmType          protoreflect.FullName = "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
	tcpProxyType     protoreflect.FullName = "envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy"
	tlsInspectorType protoreflect.FullName = "envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector"
	routerType       protoreflect.FullName = "envoy.extensions.filters.http.router.v3.Router"
	httpOptionsType  protoreflect.FullName = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
	tlsPkg                                 = "envoy.extensions.transport_sockets.tls.v3."
	downstreamTLS    protoreflect.FullName = tlsPkg + "DownstreamTlsContext"
	upstreamTLS      protoreflect.FullName = tlsPkg + "UpstreamTlsContext"
	rawBufferType    protoreflect.FullName = "envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer"
	// Retries and mirroring (routerfilter/retry.go, mirror.go).
	previousHostsType protoreflect.FullName = "envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate"
)

// isOpaque reports the types accepted whole, like the google.protobuf value
// types: their contents are data for filters, not behaviour of the proxy.
func isOpaque(name protoreflect.FullName) bool {
	switch name {
	case "envoy.config.core.v3.Metadata":
		// Route metadata: Istio always sets filter_metadata.istio; Envoy
		// itself only hands it to filters and access logs.
		return true
	}
	return false
}

// withHeaderMutations adds the header add/remove fields shared by route
// configurations, virtual hosts, routes and weighted clusters.
func withHeaderMutations(names ...protoreflect.Name) msgRule {
	return fields(append(names,
		"request_headers_to_add", "request_headers_to_remove",
		"response_headers_to_add", "response_headers_to_remove")...)
}

// buildAllowlist returns the supported subset, keyed by message full name.
func buildAllowlist() map[protoreflect.FullName]msgRule {
	rules := map[protoreflect.FullName]msgRule{}
	for _, part := range []map[protoreflect.FullName]msgRule{
		bootstrapRules(), listenerRules(), hcmRules(), routeRules(),
		matcherRules(), clusterRules(), coreRules(), tlsRules(), rbacRules(), jwtRules(),
		resilienceRules(), healthRules(), filterRules(), // supported_health.go, supported_resilience.go
		istioStatsRules(), // supported_istio.go
		accessLogRules(),  // supported_accesslog.go
		tracingRules(),    // supported_tracing.go
	} {
		for name, rule := range part {
			rules[name] = rule
		}
	}
	addCaptureRules(rules) // supported_capture.go
	return rules
}

func bootstrapRules() map[protoreflect.FullName]msgRule {
	return map[protoreflect.FullName]msgRule{
		"envoy.config.bootstrap.v3.Bootstrap":                 fields("node", "static_resources", "dynamic_resources", "admin"),
		"envoy.config.bootstrap.v3.Bootstrap.StaticResources": fields("listeners", "clusters"),
		"envoy.config.bootstrap.v3.Admin":                     fields("address"),
		"envoy.config.core.v3.Node":                           fields("id", "cluster", "metadata", "locality"),
		"envoy.config.core.v3.Locality":                       fields("region", "zone", "sub_zone"),
		// Dynamic mode: LDS and CDS (and, through them, RDS and EDS) over
		// one ADS stream to a static cluster (Istio's bootstrap shape).
		"envoy.config.bootstrap.v3.Bootstrap.DynamicResources": fields("ads_config", "lds_config", "cds_config"),
		"envoy.config.core.v3.ApiConfigSource": fields(
			"grpc_services",
			"set_node_on_first_message_only", // Istio sets it
		).with(map[protoreflect.Name]fieldRule{
			"api_type":              enumOf("GRPC"), // state of the world
			"transport_api_version": enumOf("V3"),
		}),
		"envoy.config.core.v3.GrpcService":           fields("envoy_grpc"),
		"envoy.config.core.v3.GrpcService.EnvoyGrpc": fields("cluster_name"),
		// A config source is the ADS stream; initial_fetch_timeout bounds
		// warming (Envoy's default 15 s; 0 waits for ever, as Istio sets).
		"envoy.config.core.v3.ConfigSource": fields("ads", "initial_fetch_timeout").with(map[protoreflect.Name]fieldRule{
			"resource_api_version": enumOf("V3"),
		}),
		"envoy.config.core.v3.AggregatedConfigSource": {},
	}
}

func listenerRules() map[protoreflect.FullName]msgRule {
	return map[protoreflect.FullName]msgRule{
		"envoy.config.listener.v3.Listener": fields(
			"name", "address", "stat_prefix", "filter_chains", "default_filter_chain",
			"listener_filters", "listener_filters_timeout",
			"continue_on_listener_filters_timeout", "per_connection_buffer_limit_bytes",
			"traffic_direction", // informational only (Envoy uses it for stats/tracing)
			// false: the listener binds no socket (Istio's per-service
			// outbound listeners, which only receive captured traffic).
			"bind_to_port",
			"access_log", // supported_accesslog.go
		),
		// transport_socket: TLS termination (DownstreamTlsContext) or
		// raw_buffer; see tlsRules.
		"envoy.config.listener.v3.FilterChain": fields("name", "filter_chain_match", "filters", "transport_socket"),
		"envoy.config.listener.v3.FilterChainMatch": fields(
			"destination_port", "prefix_ranges", "source_prefix_ranges", "source_ports",
			"server_names", "transport_protocol", "application_protocols",
		),
		"envoy.config.listener.v3.ListenerFilter": {
			"name":         field(),
			"typed_config": anyOf(tlsInspectorType),
		},
		"envoy.config.listener.v3.Filter": {
			"name":         field(),
			"typed_config": anyOf(hcmType, tcpProxyType, rbacNetworkType, xdsTypedStruct, udpaTypedStruct),
		},
		// tls_inspector with its defaults: no JA3/JA4 fingerprinting, default
		// initial read buffer size.
		tlsInspectorType: {},
		tcpProxyType: fields(
			"stat_prefix", "cluster", "weighted_clusters", "idle_timeout", "max_connect_attempts",
			"access_log", // supported_accesslog.go
		),
		tcpProxyType + ".WeightedCluster":               fields("clusters"),
		tcpProxyType + ".WeightedCluster.ClusterWeight": fields("name", "weight"),
	}
}

func hcmRules() map[protoreflect.FullName]msgRule {
	return map[protoreflect.FullName]msgRule{
		hcmType: fields(
			"stat_prefix", "route_config", "rds", "http_filters",
			"stream_idle_timeout", "request_timeout", "request_headers_timeout", "drain_timeout",
			"use_remote_address", "xff_num_trusted_hops", "skip_xff_append",
			"generate_request_id", "preserve_external_request_id",
			"max_request_headers_kb", // default 60, as Envoy
			"server_name", "server_header_transformation", "upgrade_configs",
			"access_log", // supported_accesslog.go
			// x-forwarded-client-cert: every forward_client_cert_details
			// mode (SANITIZE, FORWARD_ONLY, APPEND_FORWARD, SANITIZE_SET,
			// ALWAYS_FORWARD_ONLY) and every set_current_client_cert_details
			// field (subject, cert, chain, dns, uri).
			"forward_client_cert_details", "set_current_client_cert_details",
			"tracing", // supported_tracing.go
			// proxy_100_continue is not listed: false (the default, so never
			// "set") is the only supported value; 100-continue is answered
			// by the upstream through the proxy.
		).with(map[protoreflect.Name]fieldRule{
			"codec_type": enumOf("AUTO", "HTTP1", "HTTP2"), // HTTP2 = prior knowledge (h2c)
			"common_http_protocol_options": only("idle_timeout", "max_headers_count",
				"headers_with_underscores_action"),
			"http_protocol_options":  only("accept_http_10", "default_host_for_http_10"),
			"http2_protocol_options": field(), // the same subset as upstream (coreRules)
		}),
		"envoy.extensions.filters.network.http_connection_manager.v3.Rds": fields("config_source", "route_config_name"),
		"envoy.extensions.filters.network.http_connection_manager.v3.HttpFilter": {
			"name": field(),
			"typed_config": anyOf(routerType, rbacHTTPType, jwtAuthnType,
				faultType, localRateLimit, // supported_resilience.go
				xdsTypedStruct, udpaTypedStruct), // istio.stats: supported_istio.go
			// Disabled until a route's typed_per_filter_config enables it.
			"disabled": field(),
		},
		hcmType + ".UpgradeConfig": {
			"upgrade_type": {Check: checkUpgradeType},
			"enabled":      field(),
		},
		routerType:                               fields("suppress_envoy_headers"),
		hcmType + ".SetCurrentClientCertDetails": fields("subject", "cert", "chain", "dns", "uri"),
	}
}

func routeRules() map[protoreflect.FullName]msgRule {
	return map[protoreflect.FullName]msgRule{
		"envoy.config.route.v3.RouteConfiguration": withHeaderMutations(
			"name", "virtual_hosts", "most_specific_header_mutations_wins",
			"validate_clusters", // default true for static route tables, as Envoy
			"max_direct_response_body_size_bytes",
			"ignore_port_in_host_matching", // Istio sets it on gateway route tables
		).with(map[protoreflect.Name]fieldRule{"typed_per_filter_config": perFilterConfigTypes()}),
		"envoy.config.route.v3.VirtualHost": withHeaderMutations(
			"name", "domains", "routes",
			// retries (resilienceRules)
			"retry_policy", "include_request_attempt_count", "include_attempt_count_in_response",
			"per_request_buffer_limit_bytes",
		).with(map[protoreflect.Name]fieldRule{"typed_per_filter_config": perFilterConfigTypes()}),
		"envoy.config.route.v3.Route": withHeaderMutations(
			"name", "match", "route", "redirect", "direct_response", "metadata",
			"per_request_buffer_limit_bytes", // body buffered for retries and shadows
		).with(map[protoreflect.Name]fieldRule{"typed_per_filter_config": perFilterConfigTypes()}),
		"envoy.config.route.v3.RouteMatch": fields(
			"prefix", "path", "safe_regex", "path_separated_prefix",
			"case_sensitive", "headers", "query_parameters", "grpc",
		),
		"envoy.config.route.v3.RouteMatch.GrpcRouteMatchOptions": {},
		"envoy.config.route.v3.HeaderMatcher": fields(
			"name", "string_match", "present_match", "invert_match", "treat_missing_header_as_empty",
			// deprecated forms of string_match, still common in examples
			"exact_match", "prefix_match", "suffix_match", "contains_match", "safe_regex_match",
		),
		"envoy.config.route.v3.QueryParameterMatcher": fields("name", "string_match", "present_match"),
		"envoy.config.route.v3.RouteAction": fields(
			"cluster", "weighted_clusters", "cluster_not_found_response_code",
			"timeout", "idle_timeout", "prefix_rewrite", "regex_rewrite",
			"host_rewrite_literal", "auto_host_rewrite", "hash_policy",
			"upgrade_configs", "max_stream_duration",
			"retry_policy", "request_mirror_policies", // resilienceRules
		),
		"envoy.config.route.v3.RouteAction.UpgradeConfig": {
			"upgrade_type": {Check: checkUpgradeType},
			"enabled":      field(),
		},
		"envoy.config.route.v3.RouteAction.MaxStreamDuration": fields(
			"max_stream_duration", "grpc_timeout_header_max", "grpc_timeout_header_offset",
		),
		"envoy.config.route.v3.RouteAction.HashPolicy": fields(
			"header", "cookie", "connection_properties", "query_parameter", "terminal",
		),
		"envoy.config.route.v3.RouteAction.HashPolicy.Header":               fields("header_name"),
		"envoy.config.route.v3.RouteAction.HashPolicy.Cookie":               fields("name", "ttl", "path"),
		"envoy.config.route.v3.RouteAction.HashPolicy.ConnectionProperties": fields("source_ip"),
		"envoy.config.route.v3.RouteAction.HashPolicy.QueryParameter":       fields("name"),
		"envoy.config.route.v3.WeightedCluster": fields(
			"clusters",
			// Deprecated and ignored by current Envoy (weights are relative
			// to their sum); accepted and ignored likewise.
			"total_weight",
		),
		"envoy.config.route.v3.WeightedCluster.ClusterWeight": withHeaderMutations(
			"name", "weight", "host_rewrite_literal",
		),
		"envoy.config.route.v3.RedirectAction": fields(
			"scheme_redirect", "https_redirect", "host_redirect", "port_redirect",
			"path_redirect", "prefix_rewrite", "regex_rewrite", "response_code", "strip_query",
		),
		"envoy.config.route.v3.DirectResponseAction": fields("status", "body"),
	}
}

// resilienceRules are the route retry policies and request mirroring
// (routerfilter/retry.go, mirror.go).
func resilienceRules() map[protoreflect.FullName]msgRule {
	return map[protoreflect.FullName]msgRule{
		"envoy.config.route.v3.RetryPolicy": fields(
			"retry_on", "num_retries", "per_try_timeout", "per_try_idle_timeout",
			"retry_host_predicate", "host_selection_retry_max_attempts",
			"retriable_status_codes", "retry_back_off", "retriable_headers",
		),
		"envoy.config.route.v3.RetryPolicy.RetryHostPredicate": {
			"name":         field(),
			"typed_config": anyOf(previousHostsType),
		},
		previousHostsType: {},
		"envoy.config.route.v3.RetryPolicy.RetryBackOff": fields("base_interval", "max_interval"),
		"envoy.config.route.v3.RouteAction.RequestMirrorPolicy": fields(
			"cluster", "runtime_fraction", "disable_shadow_host_suffix_append",
			"trace_sampled", // accepted: no tracing yet, nothing to sample
		),
		// runtime_key is accepted and ignored: there is no runtime, the
		// default_value applies.
		"envoy.config.core.v3.RuntimeFractionalPercent": fields("default_value", "runtime_key"),
		"envoy.type.v3.FractionalPercent": fields("numerator").with(map[protoreflect.Name]fieldRule{
			"denominator": enumOf("HUNDRED", "TEN_THOUSAND", "MILLION"),
		}),
	}
}

func matcherRules() map[protoreflect.FullName]msgRule {
	return map[protoreflect.FullName]msgRule{
		"envoy.type.matcher.v3.StringMatcher": fields(
			"exact", "prefix", "suffix", "contains", "safe_regex", "ignore_case",
		),
		"envoy.type.matcher.v3.RegexMatcher": {
			"regex": {Check: checkRE2},
			// The deprecated engine selector; only the empty message (RE2
			// with default limits) is accepted.
			"google_re2": field(),
		},
		"envoy.type.matcher.v3.RegexMatcher.GoogleRE2":  {},
		"envoy.type.matcher.v3.RegexMatchAndSubstitute": fields("pattern", "substitution"),
	}
}

func clusterRules() map[protoreflect.FullName]msgRule {
	return map[protoreflect.FullName]msgRule{
		"envoy.config.cluster.v3.Cluster": fields(
			"name", "connect_timeout", "load_assignment",
			"metadata", // read: filter_metadata.istio.services (istio.stats)
			"dns_refresh_rate", "circuit_breakers",
			"http2_protocol_options",      // deprecated form of typed_extension_protocol_options
			"max_requests_per_connection", // deprecated form of common_http_protocol_options'
			"common_lb_config", "least_request_lb_config", "ring_hash_lb_config", "maglev_lb_config",
			"per_connection_buffer_limit_bytes",
			"dns_lookup_family", // every value: AUTO, V4_ONLY, V6_ONLY, V4_PREFERRED, ALL
			"eds_cluster_config",
			// UpstreamTlsContext or raw_buffer, chosen per endpoint by
			// its filter_metadata["envoy.transport_socket_match"].
			"transport_socket", "transport_socket_matches",
			"outlier_detection", "health_checks", // see supported_health.go
			"upstream_connection_options", // tcp_keepalive only
		).with(map[protoreflect.Name]fieldRule{
			"type":      enumOf("STATIC", "STRICT_DNS", "LOGICAL_DNS", "EDS"),
			"lb_policy": enumOf("ROUND_ROBIN", "LEAST_REQUEST", "RANDOM", "RING_HASH", "MAGLEV"),
			"typed_extension_protocol_options": {
				Keys:  []string{string(httpOptionsType)},
				Types: []protoreflect.FullName{httpOptionsType},
			},
			"common_http_protocol_options": only("idle_timeout", "max_requests_per_connection"),
		}),
		"envoy.config.cluster.v3.Cluster.EdsClusterConfig": fields("eds_config", "service_name"),
		"envoy.config.cluster.v3.CircuitBreakers":          fields("thresholds"),
		"envoy.config.cluster.v3.CircuitBreakers.Thresholds.RetryBudget": fields(
			"budget_percent", "min_retry_concurrency",
		),
		"envoy.config.cluster.v3.CircuitBreakers.Thresholds": fields(
			"max_connections", "max_pending_requests", "max_requests", "max_retries",
			"retry_budget", // replaces max_retries when set, as in Envoy
		).with(map[protoreflect.Name]fieldRule{
			// HIGH thresholds are accepted but never apply: no supported
			// route field selects the HIGH priority (as in Envoy without
			// route priority).
			"priority": enumOf("DEFAULT", "HIGH"),
		}),
		"envoy.config.cluster.v3.Cluster.CommonLbConfig": fields(
			"healthy_panic_threshold", "locality_weighted_lb_config",
		),
		"envoy.config.cluster.v3.Cluster.CommonLbConfig.LocalityWeightedLbConfig": {},
		"envoy.config.cluster.v3.Cluster.LeastRequestLbConfig": fields(
			"choice_count",
			"active_request_bias", // default_value is used; there is no runtime
		),
		"envoy.config.cluster.v3.Cluster.RingHashLbConfig": fields(
			"minimum_ring_size", "maximum_ring_size",
		).with(map[protoreflect.Name]fieldRule{
			"hash_function": enumOf("XX_HASH", "MURMUR_HASH_2"),
		}),
		"envoy.config.cluster.v3.Cluster.MaglevLbConfig": fields("table_size"),
		"envoy.config.endpoint.v3.ClusterLoadAssignment": fields("cluster_name", "endpoints"),
		"envoy.config.endpoint.v3.LocalityLbEndpoints": fields(
			"locality", "lb_endpoints", "load_balancing_weight", "priority",
		),
		"envoy.config.endpoint.v3.LbEndpoint": fields(
			"endpoint", "health_status", "load_balancing_weight",
			"metadata", // read: filter_metadata["envoy.transport_socket_match"]
		),
		"envoy.config.cluster.v3.Cluster.TransportSocketMatch": fields("name", "match", "transport_socket"),
		"envoy.config.endpoint.v3.Endpoint":                    fields("address", "hostname"),
		httpOptionsType: fields(
			"explicit_http_config", "use_downstream_protocol_config", "common_http_protocol_options",
		),
		httpOptionsType + ".ExplicitHttpConfig":      fields("http_protocol_options", "http2_protocol_options"),
		httpOptionsType + ".UseDownstreamHttpConfig": fields("http_protocol_options", "http2_protocol_options"),
	}
}

func coreRules() map[protoreflect.FullName]msgRule {
	return map[protoreflect.FullName]msgRule{
		// pipe: a Unix socket, for STATIC clusters used as gRPC config
		// sources only (Istio's sds-grpc); see xref.
		"envoy.config.core.v3.Address": fields("socket_address", "pipe"),
		"envoy.config.core.v3.Pipe":    fields("path"),
		"envoy.config.core.v3.TransportSocket": {
			"name":         field(),
			"typed_config": anyOf(downstreamTLS, upstreamTLS, rawBufferType),
		},
		"envoy.config.core.v3.SocketAddress": fields(
			"address", "port_value",
			"ipv4_compat", // "::" also accepts IPv4 connections
		).with(map[protoreflect.Name]fieldRule{
			"protocol": enumOf("TCP"),
		}),
		"envoy.config.core.v3.CidrRange":     fields("address_prefix", "prefix_len"),
		"envoy.config.core.v3.RuntimeDouble": fields("default_value", "runtime_key"),
		"envoy.type.v3.Percent":              fields("value"),
		"envoy.config.core.v3.HeaderValueOption": fields(
			"header", "append", "append_action", "keep_empty_value",
		),
		"envoy.config.core.v3.HeaderValue": fields("key", "value"),
		"envoy.config.core.v3.DataSource":  fields("inline_string", "inline_bytes", "filename"),
		// Upstream: the clusters' HTTP options. The downstream (HCM) uses
		// other fields of the same messages; see the overrides in hcmRules.
		"envoy.config.core.v3.HttpProtocolOptions":          fields("idle_timeout", "max_requests_per_connection"),
		"envoy.config.cluster.v3.UpstreamConnectionOptions": fields("tcp_keepalive"),
		"envoy.config.core.v3.TcpKeepalive":                 fields("keepalive_probes", "keepalive_time", "keepalive_interval"),
		"envoy.config.core.v3.Http1ProtocolOptions":         {},
		"envoy.config.core.v3.Http2ProtocolOptions": fields(
			"max_concurrent_streams", "initial_stream_window_size", "initial_connection_window_size",
		),
	}
}

// sdsConfigSource is the ConfigSource of an SdsSecretConfig: ADS, or a
// gRPC api_config_source (Istio's sds-grpc cluster).
func sdsConfigSource() fieldRule {
	return fieldRule{Fields: msgRule{
		"ads":                   field(),
		"api_config_source":     field(),
		"initial_fetch_timeout": field(),
		"resource_api_version":  enumOf("V3"),
	}}
}

// tlsRules is the TLS transport socket (package tlsctx): certificates
// inline, in files or from SDS, validation by trusted CA and SAN matchers,
// ALPN, protocol versions and TLS 1.2 cipher suites.
func tlsRules() map[protoreflect.FullName]msgRule {
	return map[protoreflect.FullName]msgRule{
		rawBufferType: {},
		downstreamTLS: fields("common_tls_context", "require_client_certificate"),
		upstreamTLS:   fields("common_tls_context", "sni", "max_session_keys"),
		tlsPkg + "CommonTlsContext": fields(
			"tls_params", "tls_certificates", "tls_certificate_sds_secret_configs",
			"validation_context", "validation_context_sds_secret_config",
			"combined_validation_context", "alpn_protocols",
		),
		tlsPkg + "CommonTlsContext.CombinedCertificateValidationContext": fields(
			"default_validation_context", "validation_context_sds_secret_config",
		),
		tlsPkg + "TlsParameters": fields("cipher_suites").with(map[protoreflect.Name]fieldRule{
			"tls_minimum_protocol_version": enumOf("TLS_AUTO", "TLSv1_2", "TLSv1_3"),
			"tls_maximum_protocol_version": enumOf("TLS_AUTO", "TLSv1_2", "TLSv1_3"),
		}),
		tlsPkg + "TlsCertificate": fields("certificate_chain", "private_key"),
		tlsPkg + "CertificateValidationContext": fields(
			"trusted_ca", "match_typed_subject_alt_names",
			"match_subject_alt_names", // deprecated; Istio still emits it
		),
		tlsPkg + "SubjectAltNameMatcher": fields("matcher").with(map[protoreflect.Name]fieldRule{
			"san_type": enumOf("DNS", "URI", "EMAIL", "IP_ADDRESS"),
		}),
		tlsPkg + "SdsSecretConfig": fields("name").with(map[protoreflect.Name]fieldRule{
			"sds_config": sdsConfigSource(),
		}),
		// SDS resources (validated by xdsclient.DecodeSecrets).
		tlsPkg + "Secret": fields("name", "tls_certificate", "validation_context"),
	}
}

// checkUpgradeType accepts any HTTP token except CONNECT. Envoy compares
// upgrade_type case-insensitively with the request's Upgrade header (or, for
// "CONNECT", enables CONNECT termination, which weft-proxy does not do).
// Any other token, e.g. "websocket" or "h2c", is a plain Upgrade
// pass-through, which weft-proxy implements independently of the protocol.
func checkUpgradeType(v protoreflect.Value) string {
	t := v.String()
	if strings.EqualFold(t, "CONNECT") {
		return `"CONNECT" (CONNECT termination) is not supported by weft-proxy`
	}
	if !isToken(t) {
		return `"` + t + `" is not an HTTP token (RFC 9110 section 5.6.2)`
	}
	return ""
}

// isToken reports whether s is a non-empty RFC 9110 token.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0 {
			continue
		}
		return false
	}
	return true
}

// checkRE2 rejects regular expressions that do not compile. Envoy uses RE2;
// Go's regexp implements the same syntax (minus \C), so a pattern Envoy
// accepts compiles here too.
func checkRE2(v protoreflect.Value) string {
	if _, err := regexp.Compile(v.String()); err != nil {
		return "invalid regular expression: " + err.Error()
	}
	return ""
}
