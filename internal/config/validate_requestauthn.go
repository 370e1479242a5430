package config

import (
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"strconv"

	security "istio.io/api/security/v1beta1"
)

// validateRequestAuthentication applies Istio's rules for
// RequestAuthentication (pkg/config/validation ValidateRequestAuthentication
// and validateJwtRule): the selector's labels are valid and a selector is
// not combined with targetRef(s); each JWT rule names its issuer; audiences,
// header and parameter locations and outputClaimToHeaders entries are not
// empty; jwksUri is an http(s) URL with a host (and a valid port); jwks is
// a JSON Web Key Set; jwks and jwksUri are not both set; timeout is a
// valid duration.
func validateRequestAuthentication(_ Meta, ra *security.RequestAuthentication, is *issues) {
	if sel := ra.GetSelector(); sel != nil {
		selectorProblems(is, specPath.f("selector").f("matchLabels"), sel.GetMatchLabels())
		if ra.GetTargetRef() != nil || len(ra.GetTargetRefs()) > 0 {
			is.err(specPath, "set selector or targetRef(s), not both")
		}
	}
	if ra.GetTargetRef() != nil && len(ra.GetTargetRefs()) > 0 {
		is.err(specPath, "set targetRef or targetRefs, not both")
	}
	for i, r := range ra.GetJwtRules() {
		validateJWTRule(specPath.f("jwtRules").i(i), r, is)
	}
}

func validateJWTRule(p fieldPath, r *security.JWTRule, is *issues) {
	if r == nil {
		is.err(p, "a JWT rule may not be null")
		return
	}
	if r.GetIssuer() == "" {
		is.err(p.f("issuer"), "issuer is required")
	}
	for i, a := range r.GetAudiences() {
		if a == "" {
			is.err(p.f("audiences").i(i), "an audience must be a non-empty string")
		}
	}
	if r.GetJwks() != "" && r.GetJwksUri() != "" {
		is.err(p, "set jwks or jwksUri, not both")
	}
	if u := r.GetJwksUri(); u != "" {
		is.check(p.f("jwksUri"), jwksURIProblem(u))
	}
	if j := r.GetJwks(); j != "" {
		is.check(p.f("jwks"), jwksProblem(j))
	}
	for i, h := range r.GetFromHeaders() {
		hp := p.f("fromHeaders").i(i)
		switch {
		case h == nil:
			is.err(hp, "a header location may not be null: set name")
		case h.GetName() == "":
			is.err(hp.f("name"), "the header name must be a non-empty string")
		default:
			is.check(hp.f("name"), headerNameProblem(h.GetName()))
		}
	}
	for i, q := range r.GetFromParams() {
		if q == "" {
			is.err(p.f("fromParams").i(i), "a query parameter name must be a non-empty string")
		}
	}
	for i, c := range r.GetFromCookies() {
		if c == "" {
			is.err(p.f("fromCookies").i(i), "a cookie name must be a non-empty string")
		}
	}
	for i, ch := range r.GetOutputClaimToHeaders() {
		cp := p.f("outputClaimToHeaders").i(i)
		switch {
		case ch == nil:
			is.err(cp, "outputClaimToHeaders entries may not be null: set header and claim")
		case ch.GetHeader() == "" || ch.GetClaim() == "":
			is.err(cp, "outputClaimToHeaders needs a non-empty header and claim")
		default:
			is.check(cp.f("header"), headerNameProblem(ch.GetHeader()))
		}
	}
	if h := r.GetOutputPayloadToHeader(); h != "" {
		is.check(p.f("outputPayloadToHeader"), headerNameProblem(h))
	}
	if r.GetTimeout() != nil {
		is.check(p.f("timeout"), durationProblem(r.GetTimeout()))
	}
}

// jwksURIProblem is Istio's security.ParseJwksURI: an http or https URL
// with a host, and a port 1-65535 when one is given.
func jwksURIProblem(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Sprintf("jwksUri %q is not a URL: %v", raw, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Sprintf("jwksUri %q: the scheme must be http or https", raw)
	}
	if u.Hostname() == "" {
		return fmt.Sprintf("jwksUri %q has no host", raw)
	}
	if ps := u.Port(); ps != "" {
		if n, err := strconv.Atoi(ps); err != nil || n < 1 || n > 65535 {
			return fmt.Sprintf("jwksUri %q: port %q must be in the range 1..65535", raw, ps)
		}
	}
	if _, _, err := net.SplitHostPort(u.Host); err != nil && u.Port() != "" {
		return fmt.Sprintf("jwksUri %q: bad host: %v", raw, err)
	}
	return ""
}

// jwksProblem checks that jwks is a JSON Web Key Set: an object with a
// non-empty "keys" list of objects that each name their "kty" (Istio parses
// it with a JWK library and reports its error).
func jwksProblem(s string) string {
	var doc struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal([]byte(s), &doc); err != nil {
		return "jwks parse error: not a JSON Web Key Set: " + err.Error()
	}
	if len(doc.Keys) == 0 {
		return `jwks parse error: the key set has no "keys"`
	}
	for i, k := range doc.Keys {
		if kty, _ := k["kty"].(string); kty == "" {
			return fmt.Sprintf(`jwks parse error: keys[%d] has no "kty"`, i)
		}
	}
	return ""
}
