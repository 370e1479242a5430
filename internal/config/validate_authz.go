package config

import (
	security "istio.io/api/security/v1beta1"
)

// validateAuthorizationPolicy applies Istio's rules for AuthorizationPolicy.
// CUSTOM is rejected until weft supports external authorization: a policy
// that would not be enforced must not look as if it were.
func validateAuthorizationPolicy(_ Meta, ap *security.AuthorizationPolicy, is *issues) {
	if sel := ap.GetSelector(); sel != nil {
		selectorProblems(is, specPath.f("selector").f("matchLabels"), sel.GetMatchLabels())
	}
	if ap.GetAction() == security.AuthorizationPolicy_CUSTOM {
		is.err(specPath.f("action"), "CUSTOM (external authorization) is not supported by weft yet: use ALLOW, DENY or AUDIT")
	}
}
