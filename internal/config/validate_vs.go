package config

import (
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"

	"google.golang.org/protobuf/proto"
	networking "istio.io/api/networking/v1alpha3"
)

// validateVirtualService applies Istio's VirtualService rules
// (pkg/config/validation: ValidateVirtualService, validateHTTPRoute, ...).
//
// weft differs on purpose in two places: a VirtualService without hosts (a
// delegate) and http[].delegate are rejected, because weft does not
// implement delegation; and route weights that do not sum to 100 are a
// warning (Istio treats weights as relative proportions, so such YAML is
// valid Istio and must load, but it is usually a mistake).
func validateVirtualService(meta Meta, vs *networking.VirtualService, is *issues) {
	gateway := boundToGateway(vs.GetGateways())
	validateVSHosts(vs, gateway, is)
	gatewayNamesProblems(is, specPath.f("gateways"), vs.GetGateways())
	if len(vs.GetHttp()) == 0 && len(vs.GetTcp()) == 0 && len(vs.GetTls()) == 0 {
		is.err(specPath, "http, tcp or tls must be provided in a virtual service")
	}
	for i, r := range vs.GetHttp() {
		p := specPath.f("http").i(i)
		if r == nil {
			is.err(p, "an http route may not be null")
			continue
		}
		validateHTTPRoute(r, gateway, p, is)
	}
	for i, r := range vs.GetTls() {
		validateTLSRoute(r, vs, gateway, specPath.f("tls").i(i), is)
	}
	for i, r := range vs.GetTcp() {
		validateTCPRoute(r, specPath.f("tcp").i(i), is)
	}
	exportToProblems(is, specPath.f("exportTo"), meta.Namespace, vs.GetExportTo(), false)
	unreachableHTTPRules(vs.GetHttp(), is)
}

// boundToGateway reports whether a VirtualService applies to gateways only
// (gateways listed, "mesh" not among them).
func boundToGateway(gateways []string) bool {
	for _, g := range gateways {
		if g == "mesh" {
			return false
		}
	}
	return len(gateways) > 0
}

// validateVSHosts checks hosts: present, valid (wildcards allowed, IPs
// tolerated), "*" only for gateways, no duplicates.
func validateVSHosts(vs *networking.VirtualService, gateway bool, is *issues) {
	hosts := vs.GetHosts()
	p := specPath.f("hosts")
	if len(hosts) == 0 {
		is.err(p, "at least one host is required (delegate virtual services without hosts are not supported by weft)")
		return
	}
	valid := true
	for i, h := range hosts {
		if msg := wildcardDomainProblem(h); msg != "" && !isIP(h) {
			is.err(p.i(i), msg)
			valid = false
		} else if h == "*" && !gateway {
			is.err(p.i(i), `the wildcard host "*" is only allowed in a virtual service bound to gateways (not the mesh)`)
			valid = false
		}
	}
	if !valid {
		return
	}
	for i := 0; i < len(hosts); i++ {
		for j := i + 1; j < len(hosts); j++ {
			if hostMatches(hosts[i], hosts[j]) || hostMatches(hosts[j], hosts[i]) {
				is.err(p.i(j), fmt.Sprintf("duplicate hosts in virtual service: %s and %s", hosts[i], hosts[j]))
			}
		}
	}
}

// gatewayNamesProblems checks gateway references: "mesh", "namespace/name",
// or the legacy "name" / "name.namespace" forms (with a warning).
func gatewayNamesProblems(is *issues, p fieldPath, gateways []string) {
	for i, g := range gateways {
		if g == "mesh" {
			continue
		}
		ns, name, ok := strings.Cut(g, "/")
		if !ok {
			if first, rest, dotted := strings.Cut(g, "."); dotted {
				is.warn(p.i(i), fmt.Sprintf("legacy gateway name format %q; prefer namespace/name: %q", g, strings.SplitN(rest, ".", 2)[0]+"/"+first))
			}
			is.check(p.i(i), fqdnProblem(g))
			continue
		}
		switch {
		case ns == "" || name == "":
			is.err(p.i(i), "the namespace and the gateway name cannot be empty")
		case !isDNSLabel(ns):
			is.err(p.i(i), fmt.Sprintf("invalid namespace %q", ns))
		case !isDNSLabel(name):
			is.err(p.i(i), fmt.Sprintf("invalid gateway name %q", name))
		}
	}
}

// validateHTTPRoute checks one http route.
func validateHTTPRoute(r *networking.HTTPRoute, gateway bool, p fieldPath, is *issues) {
	httpRouteConflicts(r, p, is)
	for i, m := range r.GetMatch() {
		validateHTTPMatch(m, gateway, p.f("match").i(i), is)
	}
	headerOperationProblems(r.GetHeaders(), p.f("headers"), is)
	validateCORSPolicy(r.GetCorsPolicy(), p.f("corsPolicy"), is)
	validateFault(r.GetFault(), p.f("fault"), is)
	validateMirrors(r, p, is)
	validateRedirect(r.GetRedirect(), p.f("redirect"), is)
	validateDirectResponse(r.GetDirectResponse(), p.f("directResponse"), is)
	validateRetries(r.GetRetries(), p.f("retries"), is)
	validateRewrite(r.GetRewrite(), p.f("rewrite"), is)
	authorityRewriteConflict(r, p, is)
	httpRouteDestinations(r.GetRoute(), p.f("route"), is)
	is.check(p.f("timeout"), durationProblem(r.GetTimeout()))
}

// httpRouteConflicts: exactly one of route, redirect and directResponse;
// fault and rewrite need a route; mirror and mirrors are exclusive.
func httpRouteConflicts(r *networking.HTTPRoute, p fieldPath, is *issues) {
	if r.GetDelegate() != nil {
		is.err(p.f("delegate"), "virtual service delegation is not supported by weft")
	}
	actions := 0
	for _, set := range []bool{len(r.GetRoute()) > 0, r.GetRedirect() != nil, r.GetDirectResponse() != nil} {
		if set {
			actions++
		}
	}
	switch {
	case actions == 0 && r.GetDelegate() == nil:
		is.err(p, "an http route needs one of route, redirect or directResponse")
	case actions > 1:
		is.err(p, "an http route may have only one of route, redirect and directResponse")
	}
	if len(r.GetRoute()) == 0 && (r.GetRedirect() != nil || r.GetDirectResponse() != nil) {
		if r.GetFault() != nil {
			is.err(p.f("fault"), "fault injection needs a route (not a redirect or directResponse)")
		}
		if r.GetRewrite() != nil {
			is.err(p.f("rewrite"), "rewrite needs a route (not a redirect or directResponse)")
		}
	}
	if r.GetMirror() != nil && len(r.GetMirrors()) > 0 {
		is.err(p.f("mirrors"), "an http route cannot have both mirror and mirrors")
	}
}

// validateHTTPMatch checks one match request.
func validateHTTPMatch(m *networking.HTTPMatchRequest, gateway bool, p fieldPath, is *issues) {
	if m == nil {
		return
	}
	for _, name := range sortedKeys(m.GetHeaders()) {
		hp := p.f("headers").k(name)
		headerMatchName(name, gateway, hp, is)
		if m.GetHeaders()[name] == nil {
			is.err(hp, "a header match cannot be null")
			continue
		}
		stringMatchProblems(m.GetHeaders()[name], hp, true, is)
	}
	for _, name := range sortedKeys(m.GetWithoutHeaders()) {
		hp := p.f("withoutHeaders").k(name)
		headerMatchName(name, gateway, hp, is)
		// "*" is not a regex here: it means "the header is present".
		if sm := m.GetWithoutHeaders()[name]; sm != nil && sm.GetRegex() != "*" {
			stringMatchProblems(sm, hp, true, is)
		}
	}
	// uri may have an empty prefix (Envoy's route prefix ""), the others
	// may not (Envoy's StringMatcher).
	stringMatchProblems(m.GetUri(), p.f("uri"), false, is)
	stringMatchProblems(m.GetScheme(), p.f("scheme"), true, is)
	stringMatchProblems(m.GetMethod(), p.f("method"), true, is)
	stringMatchProblems(m.GetAuthority(), p.f("authority"), true, is)
	for _, name := range sortedKeys(m.GetQueryParams()) {
		stringMatchProblems(m.GetQueryParams()[name], p.f("queryParams").k(name), true, is)
	}
	if m.GetPort() != 0 {
		is.check(p.f("port"), portProblem(m.GetPort()))
	}
	labelsProblems(is, p.f("sourceLabels"), m.GetSourceLabels())
	gatewayNamesProblems(is, p.f("gateways"), m.GetGateways())
	if ns := m.GetSourceNamespace(); ns != "" && !isDNSLabel(ns) {
		is.err(p.f("sourceNamespace"), fmt.Sprintf("invalid sourceNamespace %q", ns))
	}
}

// jwtClaimPrefix marks Istio's JWT claim routing pseudo-header.
const jwtClaimPrefix = "@request.auth.claims."

// headerMatchName checks a header name in a match; JWT claim routing is
// only for gateways (as in Istio).
func headerMatchName(name string, gateway bool, p fieldPath, is *issues) {
	if strings.HasPrefix(name, jwtClaimPrefix) && len(name) > len(jwtClaimPrefix) {
		if !gateway {
			is.err(p, fmt.Sprintf("JWT claim based routing (%s) is only supported for gateways", name))
		}
		return
	}
	is.check(p, headerNameProblem(name))
}

// stringMatchProblems checks a StringMatch: a valid RE2 regex of at most
// 1024 characters, and (unless emptyPrefixOK) a non-empty prefix.
func stringMatchProblems(sm *networking.StringMatch, p fieldPath, requirePrefix bool, is *issues) {
	switch t := sm.GetMatchType().(type) {
	case *networking.StringMatch_Prefix:
		if requirePrefix && t.Prefix == "" {
			is.err(p.f("prefix"), "a prefix match must not be empty")
		}
	case *networking.StringMatch_Regex:
		is.check(p.f("regex"), regexProblem(t.Regex))
	}
}

// regexProblem checks a regex the way Istio does: RE2 (Go's regexp
// syntax), at most 1024 characters (Envoy's program size limit,
// approximated by length).
func regexProblem(re string) string {
	switch {
	case re == "":
		return "a regex match must not be empty"
	case len(re) > 1024:
		return "the regex is too long (at most 1024 characters)"
	}
	if _, err := regexp.Compile(re); err != nil {
		return fmt.Sprintf("%v; Istio uses RE2 regular expressions (https://github.com/google/re2/wiki/Syntax)", err)
	}
	return ""
}

// headerOperationProblems checks request/response header set/add/remove.
func headerOperationProblems(h *networking.Headers, p fieldPath, is *issues) {
	for _, dir := range []struct {
		name    string
		ops     *networking.Headers_HeaderOperations
		request bool
	}{{"request", h.GetRequest(), true}, {"response", h.GetResponse(), false}} {
		dp := p.f(dir.name)
		for _, op := range []struct {
			name string
			m    map[string]string
		}{{"set", dir.ops.GetSet()}, {"add", dir.ops.GetAdd()}} {
			for _, name := range sortedKeys(op.m) {
				hp := dp.f(op.name).k(name)
				is.check(hp, headerOperationNameProblem(name, dir.request))
				is.check(hp, headerValueProblem(op.m[name]))
			}
		}
		for i, name := range dir.ops.GetRemove() {
			is.check(dp.f("remove").i(i), headerOperationNameProblem(name, false))
		}
	}
}

// headerOperationNameProblem checks a header name to set, add or remove:
// pseudo-headers and Host cannot be changed, except that a request may set
// the authority (:authority or Host) to rewrite it.
func headerOperationNameProblem(name string, setRequest bool) string {
	switch {
	case name == "":
		return "a header name cannot be empty"
	case setRequest && isAuthorityHeader(name):
		return ""
	case strings.EqualFold(name, "host"):
		return fmt.Sprintf("invalid header %q: the Host header cannot be changed here", name)
	case strings.HasPrefix(name, ":"):
		return fmt.Sprintf("invalid header %q: pseudo-headers (\":\" prefix) cannot be changed", name)
	}
	return ""
}

// isAuthorityHeader reports whether a header name is the authority.
func isAuthorityHeader(name string) bool {
	return strings.EqualFold(name, ":authority") || strings.EqualFold(name, "host")
}

// authorityRewriteConflict: the authority may be rewritten in one place
// only (rewrite.authority or a request header set/add).
func authorityRewriteConflict(r *networking.HTTPRoute, p fieldPath, is *issues) {
	current := r.GetRewrite().GetAuthority()
	req := r.GetHeaders().GetRequest()
	for _, op := range []struct {
		name string
		m    map[string]string
	}{{"set", req.GetSet()}, {"add", req.GetAdd()}} {
		for _, k := range sortedKeys(op.m) {
			if !isAuthorityHeader(k) {
				continue
			}
			if current != "" {
				is.err(p.f("headers").f("request").f(op.name).k(k),
					fmt.Sprintf("the authority is set more than once: have %q, setting %q", current, op.m[k]))
				return
			}
			current = op.m[k]
		}
	}
}

// supportedMethods are the HTTP methods accepted in corsPolicy.allowMethods.
var supportedMethods = map[string]bool{
	http.MethodGet: true, http.MethodHead: true, http.MethodPost: true, http.MethodPut: true,
	http.MethodPatch: true, http.MethodDelete: true, http.MethodConnect: true,
	http.MethodOptions: true, http.MethodTrace: true,
}

// validateCORSPolicy checks origins, methods, header names and maxAge.
func validateCORSPolicy(c *networking.CorsPolicy, p fieldPath, is *issues) {
	if c == nil {
		return
	}
	for i, o := range c.GetAllowOrigins() {
		op := p.f("allowOrigins").i(i)
		if o.GetExact() == "" && o.GetPrefix() == "" && o.GetRegex() == "" {
			is.err(op, "an allowed origin needs a non-empty exact, prefix or regex")
			continue
		}
		stringMatchProblems(o, op, true, is)
	}
	for i, m := range c.GetAllowMethods() {
		if !supportedMethods[m] {
			is.err(p.f("allowMethods").i(i), fmt.Sprintf("%q is not a supported HTTP method", m))
		}
	}
	for _, list := range []struct {
		name  string
		names []string
	}{{"allowHeaders", c.GetAllowHeaders()}, {"exposeHeaders", c.GetExposeHeaders()}} {
		for i, h := range list.names {
			if h != "*" {
				is.check(p.f(list.name).i(i), headerNameProblem(h))
			}
		}
	}
	if c.GetMaxAge() != nil {
		is.check(p.f("maxAge"), durationProblem(c.GetMaxAge()))
		if c.GetMaxAge().GetNanos() > 0 {
			is.err(p.f("maxAge"), "maxAge is accurate only to seconds")
		}
	}
}

// validateRedirect checks a redirect.
func validateRedirect(r *networking.HTTPRedirect, p fieldPath, is *issues) {
	if r == nil {
		return
	}
	if r.GetUri() == "" && r.GetAuthority() == "" && r.GetRedirectPort() == nil && r.GetScheme() == "" && r.GetPrefixRewrite() == "" {
		is.err(p, "a redirect must specify uri, authority, scheme, port or derivePort")
	}
	if c := r.GetRedirectCode(); c != 0 && (c < 300 || c > 399) {
		is.err(p.f("redirectCode"), fmt.Sprintf("%d is not a valid redirect code: it must be 3xx", c))
	}
	if s := r.GetScheme(); s != "" && s != "http" && s != "https" {
		is.err(p.f("scheme"), fmt.Sprintf("invalid redirect scheme %q: it must be http or https", s))
	}
	if _, ok := r.GetRedirectPort().(*networking.HTTPRedirect_Port); ok {
		is.check(p.f("port"), portProblem(r.GetPort()))
	}
}

// validateDirectResponse checks the status and the size of the body.
func validateDirectResponse(d *networking.HTTPDirectResponse, p fieldPath, is *issues) {
	if d == nil {
		return
	}
	size := len(d.GetBody().GetString_()) + len(d.GetBody().GetBytes())
	switch {
	case size > 1<<20:
		is.err(p.f("body"), "a direct response body must be smaller than 1 MiB")
	case size > 100<<10:
		is.warn(p.f("body"), "a direct response body over 100 KiB makes the configuration large")
	}
	is.check(p.f("status"), httpStatusProblem(d.GetStatus()))
}

// httpStatusProblem checks a response status.
func httpStatusProblem(s uint32) string {
	if s < 200 || s > 599 {
		return fmt.Sprintf("HTTP status %d is not in the range 200..599", s)
	}
	return ""
}

// retryOnPolicies are the x-envoy-retry-on and x-envoy-retry-grpc-on
// policies (Envoy's router filter documentation).
var retryOnPolicies = map[string]bool{
	"5xx": true, "gateway-error": true, "reset": true, "reset-before-request": true,
	"connect-failure": true, "retriable-4xx": true, "refused-stream": true,
	"retriable-status-codes": true, "retriable-headers": true, "envoy-ratelimited": true,
	"http3-post-connect-failure": true, "cancelled": true, "deadline-exceeded": true,
	"internal": true, "resource-exhausted": true, "unavailable": true,
}

// validateRetries checks a retry policy.
func validateRetries(r *networking.HTTPRetry, p fieldPath, is *issues) {
	if r == nil {
		return
	}
	if r.GetAttempts() < 0 {
		is.err(p.f("attempts"), "attempts cannot be negative")
	}
	if r.GetAttempts() == 0 && (r.GetPerTryTimeout() != nil || r.GetRetryOn() != "" || r.GetRetryRemoteLocalities() != nil) {
		is.err(p.f("attempts"), "a retry policy is configured while attempts is 0 (retries disabled)")
	}
	is.check(p.f("perTryTimeout"), durationProblem(r.GetPerTryTimeout()))
	is.check(p.f("backoff"), durationProblem(r.GetBackoff()))
	if r.GetRetryOn() != "" {
		for _, policy := range strings.Split(r.GetRetryOn(), ",") {
			code, err := strconv.Atoi(policy)
			if (err != nil || http.StatusText(code) == "") && !retryOnPolicies[policy] {
				is.err(p.f("retryOn"), fmt.Sprintf("%q is not a valid retryOn policy", policy))
			}
		}
	}
}

// validateRewrite checks a rewrite: uri or uriRegexRewrite (not both), or
// authority.
func validateRewrite(r *networking.HTTPRewrite, p fieldPath, is *issues) {
	if r == nil {
		return
	}
	rr := r.GetUriRegexRewrite()
	switch {
	case r.GetUri() != "" && rr != nil:
		is.err(p, "a rewrite may have only one of uri and uriRegexRewrite")
	case r.GetUri() == "" && rr == nil && r.GetAuthority() == "":
		is.err(p, "a rewrite must specify uri, uriRegexRewrite or authority")
	}
	if rr != nil {
		if rr.GetMatch() == "" || rr.GetRewrite() == "" {
			is.err(p.f("uriRegexRewrite"), "uriRegexRewrite needs both match and rewrite")
		} else {
			is.check(p.f("uriRegexRewrite").f("match"), regexProblem(rr.GetMatch()))
		}
	}
}

// unreachableHTTPRules warns about rules that can never match (Istio's
// VirtualServiceUnreachableRule / VirtualServiceIneffectiveMatch): a rule
// after one without matches, and matches identical to an earlier rule's.
func unreachableHTTPRules(routes []*networking.HTTPRoute, is *issues) {
	catchAll := -1
	var seen []*networking.HTTPMatchRequest
	var seenRule []int
	for i, r := range routes {
		p := specPath.f("http").i(i)
		if r == nil {
			continue
		}
		if catchAll >= 0 {
			is.warn(p, fmt.Sprintf("this rule is never used: rule %d before it has no match and takes all traffic", catchAll))
			continue
		}
		if len(r.GetMatch()) == 0 {
			catchAll = i
			continue
		}
		dups := 0
		for j, m := range r.GetMatch() {
			if k := indexOfMatch(seen, m); k >= 0 {
				is.warn(p.f("match").i(j), fmt.Sprintf("this match is never used: rule %d has the same match", seenRule[k]))
				dups++
				continue
			}
			seen, seenRule = append(seen, m), append(seenRule, i)
		}
		if dups == len(r.GetMatch()) {
			is.warn(p, "this rule is never used: all its matches are used by earlier rules")
		}
	}
}

// indexOfMatch finds a match equal to m (ignoring its name).
func indexOfMatch(list []*networking.HTTPMatchRequest, m *networking.HTTPMatchRequest) int {
	unnamed := func(x *networking.HTTPMatchRequest) *networking.HTTPMatchRequest {
		if x.GetName() == "" {
			return x
		}
		c := proto.Clone(x).(*networking.HTTPMatchRequest)
		c.Name = ""
		return c
	}
	mu := unnamed(m)
	for i, x := range list {
		if proto.Equal(unnamed(x), mu) {
			return i
		}
	}
	return -1
}
