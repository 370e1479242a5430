package translate

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	security "istio.io/api/security/v1beta1"
)

// One AuthorizationPolicy rule becomes one Envoy RBAC policy, as Istio's
// pilot/pkg/security/authz/model builds it: every from entry is one
// principal (an and_ids of its conditions), every to entry one permission
// (an and_rules of its conditions); a list of values is an or, its not
// form a not(or); when conditions join the principal or the permission
// they belong to. A rule without from (or to) matches any principal (or
// permission).

// errHTTPOnly is returned for an HTTP attribute in a policy translated for
// a TCP filter chain.
var errHTTPOnly = errors.New("HTTP only")

// authzCond is one condition of a rule: an attribute with values and not
// values.
type authzCond struct {
	key       string
	values    []string
	notValues []string
}

// authzRuleCtx is what generators need besides the values.
type authzRuleCtx struct {
	forTCP      bool
	policyNS    string // the policy's namespace (service accounts without one)
	trustDomain string // the mesh trust domain (principals in cluster.local are rewritten to it)
	action      rbacv3.RBAC_Action
}

// generate builds the RBAC policy of one rule. For a TCP filter chain an
// HTTP-only attribute is an error for ALLOW (the rule is skipped: a smaller
// allow), and is ignored for DENY and AUDIT (the condition is dropped: a
// wider deny), as Istio's checkError does.
func generateRule(r *security.Rule, c authzRuleCtx) (*rbacv3.Policy, error) {
	var when []authzCond
	for _, w := range r.GetWhen() {
		when = append(when, authzCond{w.GetKey(), w.GetValues(), w.GetNotValues()})
	}
	var basePerm, basePrin []authzCond
	for _, w := range when {
		if isPermissionKey(w.key) {
			basePerm = append(basePerm, w)
		} else {
			basePrin = append(basePrin, w)
		}
	}
	policy := &rbacv3.Policy{}
	for _, from := range r.GetFrom() {
		p, err := c.principal(append(sourceConds(from.GetSource()), basePrin...))
		if err != nil {
			return nil, err
		}
		policy.Principals = append(policy.Principals, p)
	}
	if len(r.GetFrom()) == 0 {
		p, err := c.principal(basePrin)
		if err != nil {
			return nil, err
		}
		policy.Principals = append(policy.Principals, p)
	}
	for _, to := range r.GetTo() {
		p, err := c.permission(append(operationConds(to.GetOperation()), basePerm...))
		if err != nil {
			return nil, err
		}
		policy.Permissions = append(policy.Permissions, p)
	}
	if len(r.GetTo()) == 0 {
		p, err := c.permission(basePerm)
		if err != nil {
			return nil, err
		}
		policy.Permissions = append(policy.Permissions, p)
	}
	return policy, nil
}

// isPermissionKey reports whether a when key is about the destination.
func isPermissionKey(k string) bool {
	return k == "destination.ip" || k == "destination.port" || k == "connection.sni"
}

// sourceConds lists a source's conditions in Istio's order.
func sourceConds(s *security.Source) []authzCond {
	all := []authzCond{
		{"source.principal", s.GetPrincipals(), s.GetNotPrincipals()},
		{"request.auth.principal", s.GetRequestPrincipals(), s.GetNotRequestPrincipals()},
		{"source.namespace", s.GetNamespaces(), s.GetNotNamespaces()},
		{"source.serviceAccount", s.GetServiceAccounts(), s.GetNotServiceAccounts()},
		{"source.trustDomain", s.GetTrustDomains(), s.GetNotTrustDomains()},
		{"remote.ip", s.GetRemoteIpBlocks(), s.GetNotRemoteIpBlocks()},
		{"source.ip", s.GetIpBlocks(), s.GetNotIpBlocks()},
	}
	return nonEmpty(all)
}

// operationConds lists an operation's conditions in Istio's order.
func operationConds(o *security.Operation) []authzCond {
	all := []authzCond{
		{":authority", o.GetHosts(), o.GetNotHosts()},
		{":method", o.GetMethods(), o.GetNotMethods()},
		{"url_path", o.GetPaths(), o.GetNotPaths()},
		{"destination.port", o.GetPorts(), o.GetNotPorts()},
	}
	return nonEmpty(all)
}

func nonEmpty(cs []authzCond) []authzCond {
	out := cs[:0]
	for _, c := range cs {
		if len(c.values)+len(c.notValues) > 0 {
			out = append(out, c)
		}
	}
	return out
}

// permission builds an and_rules of the conditions (any when none).
func (c authzRuleCtx) permission(conds []authzCond) (*rbacv3.Permission, error) {
	var and []*rbacv3.Permission
	for _, cond := range conds {
		for i, vals := range [][]string{cond.values, cond.notValues} {
			var or []*rbacv3.Permission
			for _, v := range vals {
				p, err := c.permissionOf(cond.key, v)
				if err != nil {
					if c.action == rbacv3.RBAC_ALLOW {
						return nil, fmt.Errorf("%s: %w", cond.key, err)
					}
					continue
				}
				or = append(or, p)
			}
			if len(or) == 0 {
				continue
			}
			if i == 0 {
				and = append(and, permOr(or))
			} else {
				and = append(and, permNot(permOr(or)))
			}
		}
	}
	if len(and) == 0 {
		and = append(and, permAny())
	}
	return permAnd(and), nil
}

// permissionOf is one value of a destination attribute.
func (c authzRuleCtx) permissionOf(key, v string) (*rbacv3.Permission, error) {
	switch key {
	case "destination.ip":
		r, ok := cidr(v)
		if !ok {
			return nil, fmt.Errorf("bad IP %q", v)
		}
		return &rbacv3.Permission{Rule: &rbacv3.Permission_DestinationIp{DestinationIp: r}}, nil
	case "destination.port":
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil || n > 65535 {
			return nil, fmt.Errorf("bad port %q", v)
		}
		return &rbacv3.Permission{Rule: &rbacv3.Permission_DestinationPort{DestinationPort: uint32(n)}}, nil
	case "connection.sni":
		return &rbacv3.Permission{Rule: &rbacv3.Permission_RequestedServerName{RequestedServerName: authzStringMatcher(v, "", false)}}, nil
	}
	if c.forTCP {
		return nil, errHTTPOnly
	}
	switch key {
	case ":authority":
		// Hosts match case-insensitively (Istio's HostMatcher).
		return permHeader(authzHeaderMatcher(key, v, true)), nil
	case ":method":
		return permHeader(authzHeaderMatcher(key, v, false)), nil
	case "url_path":
		return &rbacv3.Permission{Rule: &rbacv3.Permission_UrlPath{UrlPath: &matcherv3.PathMatcher{
			Rule: &matcherv3.PathMatcher_Path{Path: authzStringMatcher(v, "", false)},
		}}}, nil
	}
	return nil, fmt.Errorf("unknown attribute %q", key)
}

// principal builds an and_ids of the conditions (any when none).
func (c authzRuleCtx) principal(conds []authzCond) (*rbacv3.Principal, error) {
	var and []*rbacv3.Principal
	for _, cond := range conds {
		for i, vals := range [][]string{cond.values, cond.notValues} {
			if len(vals) == 0 {
				continue
			}
			p, err := c.principalOf(cond.key, vals)
			if err != nil {
				if c.action == rbacv3.RBAC_ALLOW {
					return nil, fmt.Errorf("%s: %w", cond.key, err)
				}
				continue
			}
			if i == 0 {
				and = append(and, p)
			} else {
				and = append(and, idNot(p))
			}
		}
	}
	if len(and) == 0 {
		and = append(and, idAny())
	}
	return idAnd(and), nil
}

// principalOf is the or of the values of one source attribute.
func (c authzRuleCtx) principalOf(key string, values []string) (*rbacv3.Principal, error) {
	if key == "source.principal" {
		values = c.withTrustDomain(values)
	}
	isJWT := key == "request.auth.principal" || key == "request.auth.audiences" || key == "request.auth.presenter" ||
		strings.HasPrefix(key, "request.auth.claims[") || strings.HasPrefix(key, "request.headers[")
	if isJWT && c.forTCP {
		return nil, errHTTPOnly
	}
	switch {
	case key == "request.auth.audiences":
		return idMetadata(jwtClaimMatcher([]string{"aud"}, values)), nil
	case key == "request.auth.presenter":
		return idMetadata(jwtClaimMatcher([]string{"azp"}, values)), nil
	case strings.HasPrefix(key, "request.auth.claims["):
		inner := strings.TrimSuffix(strings.TrimPrefix(key, "request.auth.claims["), "]")
		return idMetadata(jwtClaimMatcher(strings.Split(inner, "]["), values)), nil
	}
	var or []*rbacv3.Principal
	for _, v := range values {
		p, err := c.principalValue(key, v)
		if err != nil {
			return nil, err
		}
		or = append(or, p)
	}
	if key == "request.auth.principal" && len(or) == 1 {
		return or[0], nil // Istio does not wrap a single request principal
	}
	return idOr(or), nil
}

// principalValue is one value of a source attribute.
func (c authzRuleCtx) principalValue(key, v string) (*rbacv3.Principal, error) {
	switch key {
	case "source.principal":
		return idAuthenticated(authzStringMatcher(v, spiffePrefix, false)), nil
	case "source.namespace":
		return idAuthenticated(regexMatcher(".*/ns/" + wildcardRegex(v) + "/.*")), nil
	case "source.serviceAccount":
		ns, sa, ok := strings.Cut(v, "/")
		if !ok {
			ns, sa = c.policyNS, v
		}
		return idAuthenticated(regexMatcher("spiffe://.+/ns/" + regexp.QuoteMeta(ns) + "/(.+/|)sa/" + regexp.QuoteMeta(sa) + "(/.+)?")), nil
	case "source.trustDomain":
		if v == "*" {
			return idAuthenticated(regexMatcher("spiffe://.+")), nil
		}
		return idAuthenticated(authzStringMatcher(v+"/*", spiffePrefix, false)), nil
	case "source.ip", "remote.ip":
		r, ok := cidr(v)
		if !ok {
			return nil, fmt.Errorf("bad IP %q", v)
		}
		if key == "source.ip" {
			return &rbacv3.Principal{Identifier: &rbacv3.Principal_DirectRemoteIp{DirectRemoteIp: r}}, nil
		}
		return &rbacv3.Principal{Identifier: &rbacv3.Principal_RemoteIp{RemoteIp: r}}, nil
	case "request.auth.principal":
		return requestPrincipal(v), nil
	}
	if name, ok := strings.CutPrefix(key, "request.headers["); ok {
		return &rbacv3.Principal{Identifier: &rbacv3.Principal_Header{
			Header: authzHeaderMatcher(strings.TrimSuffix(name, "]"), v, false),
		}}, nil
	}
	return nil, fmt.Errorf("unknown attribute %q", key)
}

// requestPrincipal matches "ISS/SUB" against the JWT's iss and sub claims
// (the last "/" separates them: the issuer may be a URL), with Istio's
// wildcards on either side.
func requestPrincipal(v string) *rbacv3.Principal {
	anyValue := regexMatcher(".+")
	idx := strings.LastIndex(v, "/")
	iss, sub, found := v, "", idx >= 0
	if found {
		iss, sub = v[:idx], v[idx+1:]
	}
	exact := func(s string) *matcherv3.StringMatcher {
		return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: s}}
	}
	var mi, ms *matcherv3.StringMatcher
	switch {
	case v == "*":
		mi, ms = anyValue, anyValue
	case strings.HasPrefix(v, "*") && found:
		mi, ms = authzStringMatcher(iss, "", false), exact(sub)
	case strings.HasPrefix(v, "*"):
		mi, ms = anyValue, authzStringMatcher(v, "", false)
	case strings.HasSuffix(v, "*") && found:
		mi, ms = exact(iss), authzStringMatcher(sub, "", false)
	case strings.HasSuffix(v, "*"):
		mi, ms = authzStringMatcher(v, "", false), anyValue
	default:
		mi, ms = exact(iss), exact(sub)
	}
	return idAnd([]*rbacv3.Principal{idMetadata(jwtStringMatcher("iss", mi)), idMetadata(jwtStringMatcher("sub", ms))})
}

// wildcardRegex quotes v for a regex, a "*" matching anything.
func wildcardRegex(v string) string {
	parts := strings.Split(v, "*")
	for i, p := range parts {
		parts[i] = regexp.QuoteMeta(p)
	}
	return strings.Join(parts, ".*")
}

// withTrustDomain applies Istio's trust-domain handling to source
// principals ("TD/ns/NS/sa/SA"): "cluster.local" stands for the mesh's own
// trust domain, so a principal in it is rewritten to the configured trust
// domain; other trust domains and wildcard trust domains stay as written
// (trustdomain.Bundle.ReplaceTrustDomainAliases without aliases).
func (c authzRuleCtx) withTrustDomain(values []string) []string {
	if c.trustDomain == "" || c.trustDomain == "cluster.local" {
		return values
	}
	out := make([]string, len(values))
	for i, v := range values {
		out[i] = v
		parts := strings.Split(v, "/")
		if len(parts) == 5 && parts[0] == "cluster.local" && parts[1] == "ns" && parts[3] == "sa" {
			out[i] = c.trustDomain + strings.TrimPrefix(v, "cluster.local")
		}
	}
	return out
}
