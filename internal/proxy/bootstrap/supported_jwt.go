package bootstrap

import "google.golang.org/protobuf/reflect/protoreflect"

// The JWT authentication filter (envoy.filters.http.jwt_authn) weft-proxy
// enforces (internal/proxy/jwtauthn), in the shape Istio emits for
// RequestAuthentication. Not supported: requirement_map and
// requirement_name, filter_state_rules, provider_and_audiences,
// from_cookies, subjects, require_expiration, max_lifetime, JWT caching,
// async_fetch and retry_policy on remote JWKS, header/failed-status
// metadata, clear_route_cache, and (checked by the filter) rule matches
// other than prefix and path.
const (
	jwtAuthnType protoreflect.FullName = "envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication"
	jwtPkg                             = "envoy.extensions.filters.http.jwt_authn.v3."
)

func jwtRules() map[protoreflect.FullName]msgRule {
	return map[protoreflect.FullName]msgRule{
		jwtAuthnType: fields("providers", "rules", "bypass_cors_preflight"),
		jwtPkg + "JwtProvider": fields(
			"issuer", "audiences", "local_jwks", "remote_jwks", "forward",
			"from_headers", "from_params", "forward_payload_header",
			"payload_in_metadata", "normalize_payload_in_metadata",
			"clock_skew_seconds", "claim_to_headers",
		),
		jwtPkg + "JwtProvider.NormalizePayload": fields("space_delimited_claims"),
		jwtPkg + "RemoteJwks":                   fields("http_uri", "cache_duration"),
		"envoy.config.core.v3.HttpUri":          fields("uri", "cluster", "timeout"),
		jwtPkg + "JwtHeader":                    fields("name", "value_prefix"),
		jwtPkg + "JwtClaimToHeader":             fields("header_name", "claim_name"),
		jwtPkg + "RequirementRule":              fields("match", "requires"),
		jwtPkg + "JwtRequirement": fields(
			"provider_name", "requires_any", "requires_all", "allow_missing", "allow_missing_or_failed",
		),
		jwtPkg + "JwtRequirementOrList":  fields("requirements"),
		jwtPkg + "JwtRequirementAndList": fields("requirements"),
	}
}
