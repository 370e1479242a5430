package rbac

import "github.com/weftmesh/weft/internal/proxy/stats"

// counters are Envoy's RBAC filter stats: allowed and denied (rules),
// shadow_allowed and shadow_denied (shadow rules). The HTTP filter writes
// them under http.<connection manager stat_prefix>.rbac., with
// rules_stat_prefix / shadow_rules_stat_prefix in front of the counter
// name; the network filter under <stat_prefix>rbac.
type counters struct {
	allowed, denied             *stats.Counter
	shadowAllowed, shadowDenied *stats.Counter
}

func newCounters(sc *stats.Scope, rulesPrefix, shadowPrefix string) counters {
	return counters{
		allowed:       sc.Counter(rulesPrefix + "allowed"),
		denied:        sc.Counter(rulesPrefix + "denied"),
		shadowAllowed: sc.Counter(shadowPrefix + "shadow_allowed"),
		shadowDenied:  sc.Counter(shadowPrefix + "shadow_denied"),
	}
}

// engines are the compiled rules and shadow rules of one filter.
type engines struct {
	rules  *Engine // nil: nothing enforced
	shadow *Engine // nil: no shadow evaluation
	c      counters
}

// noneDetails are the details of a denial no policy matched.
const noneDetails = "rbac_access_denied_matched_policy[none]"

// decide evaluates both engines and records the stats: whether the
// request or connection may continue and, when not, Envoy's details.
func (e *engines) decide(a *Attributes) (bool, string) {
	if e.shadow != nil {
		if ok, _ := e.shadow.decide(a); ok {
			e.c.shadowAllowed.Inc()
		} else {
			e.c.shadowDenied.Inc()
		}
	}
	if e.rules == nil {
		return true, ""
	}
	ok, p := e.rules.decide(a)
	if ok {
		e.c.allowed.Inc()
		return true, ""
	}
	e.c.denied.Inc()
	if p == nil {
		return false, noneDetails
	}
	return false, p.details
}

// DeniedDetails is Envoy's response code details (and connection
// termination details) of a denial: rbac_access_denied_matched_policy[NAME],
// NAME "none" when no policy matched (an ALLOW engine).
func DeniedDetails(policy string) string {
	if policy == "" {
		policy = "none"
	}
	return "rbac_access_denied_matched_policy[" + policy + "]"
}
