package config

import (
	"fmt"
	"strconv"
	"strings"

	security "istio.io/api/security/v1beta1"
)

// validateAuthorizationPolicy applies Istio's rules for AuthorizationPolicy
// (pkg/config/validation ValidateAuthorizationPolicy and
// pkg/config/security ValidateAttribute):
//
//   - selector labels as for every workload selector; selector and
//     targetRef(s) are exclusive (Istio's CRD rule);
//   - CUSTOM is rejected until weft supports external authorization: a
//     policy that would not be enforced must not look as if it were;
//   - DENY without rules is rejected (it could never match: Istio asks for
//     an empty rule {} to deny everything); ALLOW without rules is valid
//     and allows nothing;
//   - a rule's from/to lists, when written, are not empty; each source and
//     operation sets at least one field; no value is the empty string;
//   - ipBlocks / remoteIpBlocks are IPs or CIDR blocks, ports are numbers
//     0-65535 written as strings;
//   - when keys are the documented attributes only, with values or
//     notValues; experimental.* keys are rejected (weft does not read
//     Envoy filter metadata).
func validateAuthorizationPolicy(_ Meta, ap *security.AuthorizationPolicy, is *issues) {
	if sel := ap.GetSelector(); sel != nil {
		selectorProblems(is, specPath.f("selector").f("matchLabels"), sel.GetMatchLabels())
		if ap.GetTargetRef() != nil || len(ap.GetTargetRefs()) > 0 {
			is.err(specPath.f("selector"), "only one of selector, targetRef or targetRefs can be set")
		}
	}
	if ap.GetTargetRef() != nil && len(ap.GetTargetRefs()) > 0 {
		is.err(specPath.f("targetRef"), "only one of selector, targetRef or targetRefs can be set")
	}
	switch ap.GetAction() {
	case security.AuthorizationPolicy_CUSTOM:
		is.err(specPath.f("action"), "CUSTOM (external authorization) is not supported by weft yet: use ALLOW, DENY or AUDIT")
	case security.AuthorizationPolicy_DENY:
		if len(ap.GetRules()) == 0 {
			is.err(specPath.f("rules"), "DENY action without rules is meaningless as it will never be triggered: add an empty rule {} to deny every request")
		}
	}
	if ap.GetProvider() != nil && ap.GetAction() != security.AuthorizationPolicy_CUSTOM {
		is.err(specPath.f("provider"), fmt.Sprintf("provider is only valid with the CUSTOM action, found %s", ap.GetAction()))
	}
	for i, r := range ap.GetRules() {
		validateAuthzRule(specPath.f("rules").i(i), r, is)
	}
}

// validateAuthzRule checks one rule: its sources, operations and
// conditions.
func validateAuthzRule(p fieldPath, r *security.Rule, is *issues) {
	if r == nil {
		is.err(p, "a rule may not be null: write {} for a rule that matches everything")
		return
	}
	if r.From != nil && len(r.From) == 0 {
		is.err(p.f("from"), "from must not be empty: remove it to match any source")
	}
	for j, from := range r.GetFrom() {
		fp := p.f("from").i(j)
		if from.GetSource() == nil {
			is.err(fp.f("source"), "from.source must be set")
			continue
		}
		validateAuthzSource(fp.f("source"), from.GetSource(), is)
	}
	if r.To != nil && len(r.To) == 0 {
		is.err(p.f("to"), "to must not be empty: remove it to match any operation")
	}
	for j, to := range r.GetTo() {
		tp := p.f("to").i(j)
		if to.GetOperation() == nil {
			is.err(tp.f("operation"), "to.operation must be set")
			continue
		}
		validateAuthzOperation(tp.f("operation"), to.GetOperation(), is)
	}
	for j, c := range r.GetWhen() {
		validateAuthzCondition(p.f("when").i(j), c, is)
	}
}

// stringList is one list field of a source or operation, with its JSON
// name and Istio's value rule.
type stringList struct {
	name   string
	values []string
	check  func(string) string // an error, or ""
	warn   func(string) string // a warning, or ""
}

// validateAuthzSource checks from.source.
func validateAuthzSource(p fieldPath, s *security.Source, is *issues) {
	lists := []stringList{
		{"principals", s.Principals, nil, wildcardWarning},
		{"notPrincipals", s.NotPrincipals, nil, wildcardWarning},
		{"requestPrincipals", s.RequestPrincipals, nil, wildcardWarning},
		{"notRequestPrincipals", s.NotRequestPrincipals, nil, wildcardWarning},
		{"namespaces", s.Namespaces, nil, nil},
		{"notNamespaces", s.NotNamespaces, nil, nil},
		{"serviceAccounts", s.ServiceAccounts, serviceAccountProblem, nil},
		{"notServiceAccounts", s.NotServiceAccounts, serviceAccountProblem, nil},
		{"trustDomains", s.TrustDomains, nil, nil},
		{"notTrustDomains", s.NotTrustDomains, nil, nil},
		{"ipBlocks", s.IpBlocks, subnetProblem, nil},
		{"notIpBlocks", s.NotIpBlocks, subnetProblem, nil},
		{"remoteIpBlocks", s.RemoteIpBlocks, subnetProblem, nil},
		{"notRemoteIpBlocks", s.NotRemoteIpBlocks, subnetProblem, nil},
	}
	if !checkLists(p, lists, is) {
		is.err(p, "from.source must set at least one field")
	}
	if len(s.ServiceAccounts)+len(s.NotServiceAccounts) > 0 &&
		len(s.Principals)+len(s.NotPrincipals)+len(s.Namespaces)+len(s.NotNamespaces) > 0 {
		is.err(p.f("serviceAccounts"), "cannot set serviceAccounts with namespaces or principals")
	}
}

// validateAuthzOperation checks to.operation.
func validateAuthzOperation(p fieldPath, o *security.Operation, is *issues) {
	lists := []stringList{
		{"hosts", o.Hosts, nil, wildcardWarning},
		{"notHosts", o.NotHosts, nil, wildcardWarning},
		{"ports", o.Ports, authzPortProblem, nil},
		{"notPorts", o.NotPorts, authzPortProblem, nil},
		{"methods", o.Methods, nil, wildcardWarning},
		{"notMethods", o.NotMethods, nil, wildcardWarning},
		{"paths", o.Paths, pathTemplateProblem, wildcardWarning},
		{"notPaths", o.NotPaths, pathTemplateProblem, wildcardWarning},
	}
	if !checkLists(p, lists, is) {
		is.err(p, "to.operation must set at least one field")
	}
}

// checkLists checks every value of every list (no empty string, then the
// list's rule) and reports whether any list is set.
func checkLists(p fieldPath, lists []stringList, is *issues) bool {
	set := false
	for _, l := range lists {
		if len(l.values) > 0 {
			set = true
		}
		for k, v := range l.values {
			vp := p.f(l.name).i(k)
			if v == "" {
				is.err(vp, "empty value not allowed")
				continue
			}
			if l.check != nil {
				if msg := l.check(v); msg != "" {
					is.err(vp, msg)
					continue
				}
			}
			if l.warn != nil {
				if msg := l.warn(v); msg != "" {
					is.warn(vp, msg)
				}
			}
		}
	}
	return set
}

// wildcardWarning flags a "*" that Istio's matching does not treat as a
// wildcard: Istio reads "*" alone (presence), a leading "*" (suffix match)
// or else a trailing "*" (prefix match); any other "*" is matched
// literally, which is rarely what was meant. Valid, with a warning.
func wildcardWarning(v string) string {
	if v == "*" {
		return ""
	}
	inner := v
	if strings.HasPrefix(inner, "*") {
		inner = inner[1:]
	} else {
		inner = strings.TrimSuffix(inner, "*")
	}
	if strings.Contains(inner, "*") {
		return fmt.Sprintf("%q: only a leading * (suffix match), a trailing * (prefix match) or * alone is a wildcard; the other * are matched literally", v)
	}
	return ""
}

// pathTemplateProblem rejects Istio's path templates ({*}, {**}), which
// weft does not translate yet (Envoy's uri_template matcher).
func pathTemplateProblem(v string) string {
	if strings.ContainsAny(v, "{}") {
		return fmt.Sprintf("%q: path templates ({*}, {**}) are not supported by weft yet: use a prefix (/api/*) or suffix (*.html) match", v)
	}
	return ""
}

// serviceAccountProblem checks "name" or "namespace/name".
func serviceAccountProblem(v string) string {
	if strings.Count(v, "/") > 1 || strings.HasPrefix(v, "/") || strings.HasSuffix(v, "/") {
		return fmt.Sprintf("%q: write a service account as NAME or NAMESPACE/NAME", v)
	}
	return ""
}

// authzPortProblem checks a port written as a string (security.ValidatePorts).
func authzPortProblem(v string) string {
	if n, err := strconv.ParseUint(v, 10, 32); err != nil || n > 65535 {
		return fmt.Sprintf("bad port %q: write a number from 0 to 65535", v)
	}
	return ""
}

// Condition keys (Istio's security/authz model attributes).
const (
	attrRequestHeaders = "request.headers"
	attrRequestClaims  = "request.auth.claims"
	attrExperimental   = "experimental."
)

// validateAuthzCondition checks one when condition.
func validateAuthzCondition(p fieldPath, c *security.Condition, is *issues) {
	key := c.GetKey()
	if key == "" {
		is.err(p.f("key"), "key must not be empty")
		return
	}
	check, msg := conditionRule(key)
	if msg != "" {
		is.err(p.f("key"), msg)
		return
	}
	if len(c.GetValues()) == 0 && len(c.GetNotValues()) == 0 {
		is.err(p, fmt.Sprintf("at least one of values or notValues must be set for key %s", key))
		return
	}
	checkLists(p, []stringList{{"values", c.GetValues(), check, nil}, {"notValues", c.GetNotValues(), check, nil}}, is)
}

// conditionRule returns the value rule of a condition key, or why the key
// is not accepted.
func conditionRule(key string) (func(string) string, string) {
	switch key {
	case "source.ip", "remote.ip", "destination.ip":
		return subnetProblem, ""
	case "destination.port":
		return authzPortProblem, ""
	case "source.namespace", "source.principal", "request.auth.principal",
		"request.auth.audiences", "request.auth.presenter", "connection.sni":
		return nil, ""
	}
	switch {
	case strings.HasPrefix(key, attrRequestHeaders):
		return nil, bracketKeyProblem(key, attrRequestHeaders)
	case strings.HasPrefix(key, attrRequestClaims):
		return nil, bracketKeyProblem(key, attrRequestClaims)
	case strings.HasPrefix(key, attrExperimental):
		return nil, fmt.Sprintf("%s: experimental attributes are not supported by weft", key)
	}
	return nil, fmt.Sprintf("unknown attribute %q: use request.headers[NAME], source.ip, remote.ip, source.namespace, source.principal, "+
		"request.auth.principal, request.auth.audiences, request.auth.presenter, request.auth.claims[NAME], destination.ip, destination.port or connection.sni", key)
}

// bracketKeyProblem checks a key of the form prefix[name] (claims may be
// nested: request.auth.claims[a][b]).
func bracketKeyProblem(key, prefix string) string {
	rest := key[len(prefix):]
	if len(rest) < 3 || rest[0] != '[' || rest[len(rest)-1] != ']' {
		return fmt.Sprintf("bad key %q: should have the form %s[NAME]", key, prefix)
	}
	for _, part := range strings.Split(rest[1:len(rest)-1], "][") {
		if part == "" || strings.ContainsAny(part, "[]") {
			return fmt.Sprintf("bad key %q: should have the form %s[NAME]", key, prefix)
		}
	}
	return ""
}
