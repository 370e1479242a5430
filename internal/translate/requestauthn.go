package translate

import (
	"fmt"
	"net/url"
	"sort"
	"strconv"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	jwtv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/emptypb"
	security "istio.io/api/security/v1beta1"

	"github.com/weftmesh/weft/internal/config"
	"github.com/weftmesh/weft/internal/model"
)

// RequestAuthentication → envoy.filters.http.jwt_authn, as Istio's
// pilot/pkg/security/authn (policy_applier.go, convertToEnvoyJwtConfig)
// builds it for a sidecar's inbound HTTP connection managers:
//
//   - the policies that apply are those of the root namespace (mesh-wide)
//     and of the proxy's namespace whose selector matches its labels
//     (targetRef(s) select Gateway API gateways and waypoints: not applied,
//     warned; a selector selects a gateway workload like any other);
//   - their JWT rules, sorted by issuer, become providers "origins-I" with
//     issuer, audiences, forward (forwardOriginalToken),
//     forward_payload_header (outputPayloadToHeader), claim_to_headers
//     (outputClaimToHeaders), from_headers (name + prefix), from_params,
//     payload_in_metadata "payload" and normalize_payload_in_metadata
//     (spaceDelimitedClaims plus Istio's "permission" and "scope");
//   - keys: jwks inline as local_jwks; jwksUri as remote_jwks through the
//     outbound cluster of the URI's host and port (Istio's
//     "outbound|PORT||HOST", as with PILOT_JWT_ENABLE_REMOTE_JWKS), timeout
//     (default 5 s) and a 5-minute cache; weft-proxy dials the URI itself
//     when that cluster does not exist;
//   - one rule on prefix "/": one provider → requires_any {provider,
//     allow_missing}; several → requires_any {P1, ..., Pn, requires_all
//     {requires_any {Pi, allow_missing}...}}: an invalid token is rejected
//     (401), a missing one passes (AuthorizationPolicy decides);
//     bypass_cors_preflight.
//
// The filter goes before the RBAC filters, which match request principals
// and request.auth.* against its metadata (authz_match.go: filter
// envoy.filters.http.jwt_authn, path payload/iss, payload/sub, ...).

const (
	jwtFilterName   = "envoy.filters.http.jwt_authn"
	jwksCacheSecs   = 5 * 60
	jwksTimeoutSecs = 5
)

// istioSpaceDelimitedClaims are always normalised to lists (Istio's
// buildSpaceDelimitedClaims defaults).
var istioSpaceDelimitedClaims = []string{"permission", "scope"}

// requestAuthnFor builds proxy p's jwt_authn filter; nil when no
// RequestAuthentication applies.
func (st *snapState) requestAuthnFor(p *model.Proxy) *hcmv3.HttpFilter {
	var rules []*security.JWTRule
	for _, obj := range st.snap.List(config.RequestAuthentication) {
		spec, ok := obj.Spec.(*security.RequestAuthentication)
		if !ok || !policyApplies(obj, spec, p, st.snap.RootNamespace) {
			continue
		}
		for _, r := range spec.GetJwtRules() {
			if r.GetJwks() != "" || r.GetJwksUri() != "" {
				rules = append(rules, r)
			}
		}
	}
	if len(rules) == 0 {
		return nil
	}
	sort.SliceStable(rules, func(i, j int) bool { return rules[i].GetIssuer() < rules[j].GetIssuer() })
	cfg := jwtAuthentication(rules)
	return &hcmv3.HttpFilter{Name: jwtFilterName, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(cfg)}}
}

// jwtAuthentication is Istio's convertToEnvoyJwtConfig for sorted rules.
func jwtAuthentication(rules []*security.JWTRule) *jwtv3.JwtAuthentication {
	cfg := &jwtv3.JwtAuthentication{Providers: map[string]*jwtv3.JwtProvider{}, BypassCorsPreflight: true}
	var inner, outer []*jwtv3.JwtRequirement
	for i, r := range rules {
		name := fmt.Sprintf("origins-%d", i)
		cfg.Providers[name] = jwtProvider(r)
		byName := &jwtv3.JwtRequirement{RequiresType: &jwtv3.JwtRequirement_ProviderName{ProviderName: name}}
		inner = append(inner, requiresAny(byName, &jwtv3.JwtRequirement{
			RequiresType: &jwtv3.JwtRequirement_AllowMissing{AllowMissing: &emptypb.Empty{}},
		}))
		outer = append(outer, proto.Clone(byName).(*jwtv3.JwtRequirement))
	}
	req := inner[0]
	if len(inner) > 1 {
		outer = append(outer, &jwtv3.JwtRequirement{RequiresType: &jwtv3.JwtRequirement_RequiresAll{
			RequiresAll: &jwtv3.JwtRequirementAndList{Requirements: inner},
		}})
		req = requiresAny(outer...)
	}
	cfg.Rules = []*jwtv3.RequirementRule{{
		Match:           &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
		RequirementType: &jwtv3.RequirementRule_Requires{Requires: req},
	}}
	return cfg
}

func requiresAny(rs ...*jwtv3.JwtRequirement) *jwtv3.JwtRequirement {
	return &jwtv3.JwtRequirement{RequiresType: &jwtv3.JwtRequirement_RequiresAny{
		RequiresAny: &jwtv3.JwtRequirementOrList{Requirements: rs},
	}}
}

// jwtProvider is one rule's provider.
func jwtProvider(r *security.JWTRule) *jwtv3.JwtProvider {
	p := &jwtv3.JwtProvider{
		Issuer:               r.GetIssuer(),
		Audiences:            r.GetAudiences(),
		Forward:              r.GetForwardOriginalToken(),
		ForwardPayloadHeader: r.GetOutputPayloadToHeader(),
		PayloadInMetadata:    jwtPayload,
		NormalizePayloadInMetadata: &jwtv3.JwtProvider_NormalizePayload{
			SpaceDelimitedClaims: spaceDelimitedClaims(r.GetSpaceDelimitedClaims()),
		},
		FromParams: r.GetFromParams(),
	}
	for _, ch := range r.GetOutputClaimToHeaders() {
		p.ClaimToHeaders = append(p.ClaimToHeaders, &jwtv3.JwtClaimToHeader{HeaderName: ch.GetHeader(), ClaimName: ch.GetClaim()})
	}
	for _, h := range r.GetFromHeaders() {
		p.FromHeaders = append(p.FromHeaders, &jwtv3.JwtHeader{Name: h.GetName(), ValuePrefix: h.GetPrefix()})
	}
	if r.GetJwks() != "" {
		p.JwksSourceSpecifier = &jwtv3.JwtProvider_LocalJwks{LocalJwks: &corev3.DataSource{
			Specifier: &corev3.DataSource_InlineString{InlineString: r.GetJwks()},
		}}
		return p
	}
	timeout := &durationpb.Duration{Seconds: jwksTimeoutSecs}
	if r.GetTimeout() != nil {
		timeout = r.GetTimeout()
	}
	p.JwksSourceSpecifier = &jwtv3.JwtProvider_RemoteJwks{RemoteJwks: &jwtv3.RemoteJwks{
		HttpUri: &corev3.HttpUri{
			Uri:              r.GetJwksUri(),
			HttpUpstreamType: &corev3.HttpUri_Cluster{Cluster: jwksCluster(r.GetJwksUri())},
			Timeout:          timeout,
		},
		CacheDuration: &durationpb.Duration{Seconds: jwksCacheSecs},
	}}
	return p
}

// jwksCluster is the outbound cluster of a JWKS URI's host and port (the
// scheme's default port when none is given), as Istio names it.
func jwksCluster(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "outbound|80||" + raw
	}
	port := u.Port()
	if port == "" {
		port = "80"
		if u.Scheme == "https" {
			port = "443"
		}
	}
	n, _ := strconv.Atoi(port)
	return fmt.Sprintf("outbound|%d||%s", n, u.Hostname())
}

// spaceDelimitedClaims is Istio's buildSpaceDelimitedClaims: the rule's
// claims plus "permission" and "scope", deduplicated and sorted.
func spaceDelimitedClaims(extra []string) []string {
	set := map[string]bool{}
	for _, c := range append(append([]string{}, extra...), istioSpaceDelimitedClaims...) {
		set[c] = true
	}
	out := make([]string, 0, len(set))
	for c := range set {
		out = append(out, c)
	}
	sort.Strings(out)
	return out
}

// requestAuthnWarnings reports what translation does not apply.
func requestAuthnWarnings(w *warnSet, objs []*config.Object) {
	for _, obj := range objs {
		spec, ok := obj.Spec.(*security.RequestAuthentication)
		if !ok {
			continue
		}
		if spec.GetTargetRef() != nil || len(spec.GetTargetRefs()) > 0 {
			w.warnObject(obj, "spec.targetRef", "not applied: targetRef selects Kubernetes Gateway API gateways and waypoints, which weft does not run; select the gateway workload with selector instead")
		}
		for i, r := range spec.GetJwtRules() {
			p := fmt.Sprintf("spec.jwtRules[%d]", i)
			if r.GetJwks() == "" && r.GetJwksUri() == "" {
				w.warnObject(obj, p, "not applied: weft-control does not discover keys from the issuer (OpenID discovery) yet: set jwks or jwksUri")
			}
			if len(r.GetFromCookies()) > 0 {
				w.warnObject(obj, p+".fromCookies", msgProxy)
			}
			if r.GetPresence() != security.JWTRule_OPTIONAL {
				w.warnObject(obj, p+".presence", "not applied yet: a request without a token passes; require one with an AuthorizationPolicy (requestPrincipals: [\"*\"])")
			}
		}
	}
}
