// Package rbac enforces Envoy's role-based access control
// (envoy.config.rbac.v3) in weft-proxy: the HTTP filter
// envoy.filters.http.rbac and the network filter envoy.filters.network.rbac.
//
// A configuration is compiled once, off the request path, into an Engine:
// policies sorted by name (Envoy keeps them in an ordered map, so the
// first matching policy in name order is the one reported), each a tree of
// permission and principal matchers. Evaluation walks the tree over the
// request's Attributes without allocating, except to read the peer
// certificate's SANs when a policy names an authenticated principal.
//
// Semantics follow Envoy (docs: configuration/http/http_filters/rbac_filter
// and api-v3/config/rbac/v3/rbac.proto): a policy matches when any of its
// permissions and any of its principals match; ALLOW allows a request that
// matches a policy, DENY denies it, LOG allows every request (it only
// marks the matches). Shadow rules are evaluated for stats only.
package rbac

import (
	"fmt"
	"sort"

	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
)

// Action is what an engine does with a request that matches a policy.
type Action uint8

// The actions of envoy.config.rbac.v3.RBAC.
const (
	Allow Action = iota
	Deny
	Log
)

// Engine is a compiled RBAC configuration. It is immutable and safe for
// concurrent use.
type Engine struct {
	action   Action
	policies []policy
}

// policy is one named policy.
type policy struct {
	name    string
	details string // DeniedDetails(name), built once
	perms   []matcher
	princs  []matcher
}

// Compile builds an engine from an envoy.config.rbac.v3.RBAC. A nil
// configuration gives a nil engine (no rules). Errors name the field
// ("policies[\"name\"].permissions[0].header...").
func Compile(cfg *rbacv3.RBAC) (*Engine, error) {
	if cfg == nil {
		return nil, nil
	}
	e := &Engine{}
	switch cfg.GetAction() {
	case rbacv3.RBAC_ALLOW:
		e.action = Allow
	case rbacv3.RBAC_DENY:
		e.action = Deny
	case rbacv3.RBAC_LOG:
		e.action = Log
	default:
		return nil, fmt.Errorf("action: %s is not supported (ALLOW, DENY, LOG)", cfg.GetAction())
	}
	if cfg.GetAuditLoggingOptions() != nil {
		return nil, fmt.Errorf("audit_logging_options: not supported by weft-proxy")
	}
	names := make([]string, 0, len(cfg.GetPolicies()))
	for n := range cfg.GetPolicies() {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		p, err := compilePolicy(n, cfg.GetPolicies()[n])
		if err != nil {
			return nil, fmt.Errorf("policies[%q].%w", n, err)
		}
		e.policies = append(e.policies, p)
	}
	return e, nil
}

func compilePolicy(name string, p *rbacv3.Policy) (policy, error) {
	out := policy{name: name, details: DeniedDetails(name)}
	if p.GetCondition() != nil || p.GetCheckedCondition() != nil {
		return out, fmt.Errorf("condition: CEL conditions are not supported by weft-proxy")
	}
	for i, perm := range p.GetPermissions() {
		m, err := compilePermission(perm)
		if err != nil {
			return out, fmt.Errorf("permissions[%d]%w", i, err)
		}
		out.perms = append(out.perms, m)
	}
	for i, pr := range p.GetPrincipals() {
		m, err := compilePrincipal(pr)
		if err != nil {
			return out, fmt.Errorf("principals[%d]%w", i, err)
		}
		out.princs = append(out.princs, m)
	}
	return out, nil
}

// Action returns the engine's action.
func (e *Engine) Action() Action { return e.action }

// Match returns the name of the first policy (in name order) that a
// matches, or "" when none does.
func (e *Engine) Match(a *Attributes) string {
	if p := e.match(a); p != nil {
		return p.name
	}
	return ""
}

func (e *Engine) match(a *Attributes) *policy {
	for i := range e.policies {
		p := &e.policies[i]
		if anyMatch(p.perms, a) && anyMatch(p.princs, a) {
			return p
		}
	}
	return nil
}

// Allowed applies the engine to a: whether the request may continue, and
// the matched policy ("" for none), as Envoy's handleAction: ALLOW allows
// a match, DENY denies a match, LOG allows everything.
func (e *Engine) Allowed(a *Attributes) (bool, string) {
	ok, p := e.decide(a)
	if p == nil {
		return ok, ""
	}
	return ok, p.name
}

// decide is Allowed returning the matched policy (nil for none).
func (e *Engine) decide(a *Attributes) (bool, *policy) {
	p := e.match(a)
	switch e.action {
	case Allow:
		return p != nil, p
	case Deny:
		return p == nil, p
	}
	return true, p
}

func anyMatch(ms []matcher, a *Attributes) bool {
	for _, m := range ms {
		if m.match(a) {
			return true
		}
	}
	return false
}
