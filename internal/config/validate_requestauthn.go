package config

import (
	security "istio.io/api/security/v1beta1"
)

// validateRequestAuthentication applies the structural rules of Istio's
// ValidateRequestAuthentication: the selector's labels are valid, each JWT
// rule names its issuer, and jwks and jwksUri are not both set.
func validateRequestAuthentication(_ Meta, ra *security.RequestAuthentication, is *issues) {
	if sel := ra.GetSelector(); sel != nil {
		selectorProblems(is, specPath.f("selector").f("matchLabels"), sel.GetMatchLabels())
	}
	for i, r := range ra.GetJwtRules() {
		p := specPath.f("jwtRules").i(i)
		if r.GetIssuer() == "" {
			is.err(p.f("issuer"), "issuer is required")
		}
		if r.GetJwks() != "" && r.GetJwksUri() != "" {
			is.err(p, "set jwks or jwksUri, not both")
		}
	}
}
