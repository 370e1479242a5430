package bootstrap

import "google.golang.org/protobuf/reflect/protoreflect"

// The RBAC filters (envoy.filters.http.rbac, envoy.filters.network.rbac)
// and the envoy.config.rbac.v3 policies weft-proxy enforces
// (internal/proxy/rbac). Not supported: the matcher-tree forms (matcher,
// shadow_matcher), CEL conditions, per-rule stats, audit logging options,
// filter_state / custom / sourced_metadata principals and the uri_template
// permission; the network filter's enforcement_type stays at its default
// (one decision per connection).
const (
	rbacHTTPType    protoreflect.FullName = "envoy.extensions.filters.http.rbac.v3.RBAC"
	rbacNetworkType protoreflect.FullName = "envoy.extensions.filters.network.rbac.v3.RBAC"
	rbacPkg                               = "envoy.config.rbac.v3."
)

func rbacRules() map[protoreflect.FullName]msgRule {
	return map[protoreflect.FullName]msgRule{
		rbacHTTPType:    fields("rules", "rules_stat_prefix", "shadow_rules", "shadow_rules_stat_prefix"),
		rbacNetworkType: fields("rules", "shadow_rules", "stat_prefix", "shadow_rules_stat_prefix"),
		rbacPkg + "RBAC": fields("policies").with(map[protoreflect.Name]fieldRule{
			"action": enumOf("ALLOW", "DENY", "LOG"),
		}),
		rbacPkg + "Policy": fields("permissions", "principals"),
		rbacPkg + "Permission": fields(
			"and_rules", "or_rules", "not_rule", "any", "header", "url_path",
			"destination_ip", "destination_port", "destination_port_range",
			"requested_server_name", "metadata",
		),
		rbacPkg + "Permission.Set": fields("rules"),
		rbacPkg + "Principal": fields(
			"and_ids", "or_ids", "not_id", "any", "authenticated",
			"direct_remote_ip", "remote_ip", "source_ip", "header", "url_path", "metadata",
		),
		rbacPkg + "Principal.Set":           fields("ids"),
		rbacPkg + "Principal.Authenticated": fields("principal_name"),
		"envoy.type.matcher.v3.PathMatcher": fields("path"),
		"envoy.type.matcher.v3.MetadataMatcher": fields(
			"filter", "path", "value", "invert",
		),
		"envoy.type.matcher.v3.MetadataMatcher.PathSegment": fields("key"),
		"envoy.type.matcher.v3.ValueMatcher": fields(
			"null_match", "double_match", "string_match", "bool_match", "present_match", "list_match", "or_match",
		),
		"envoy.type.matcher.v3.ValueMatcher.NullMatch": {},
		"envoy.type.matcher.v3.DoubleMatcher":          fields("range", "exact"),
		"envoy.type.v3.DoubleRange":                    fields("start", "end"),
		"envoy.type.matcher.v3.ListMatcher":            fields("one_of"),
		"envoy.type.matcher.v3.OrMatcher":              fields("value_matchers"),
		"envoy.type.v3.Int32Range":                     fields("start", "end"),
	}
}
