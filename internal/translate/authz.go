package translate

import (
	"fmt"
	typev1beta1 "istio.io/api/type/v1beta1"
	"strconv"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	rbachttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	rbactcpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/rbac/v3"
	security "istio.io/api/security/v1beta1"

	"github.com/weftmesh/weft/internal/config"
	"github.com/weftmesh/weft/internal/model"
)

// AuthorizationPolicy → Envoy RBAC, as Istio's
// pilot/pkg/security/authz/builder does for a sidecar's inbound listeners:
//
//   - the policies that apply to a proxy are those of the root namespace
//     (mesh-wide) and of its namespace whose selector matches its labels
//     (no selector: every workload); policies with targetRef(s) are for
//     gateways and waypoints, not sidecars;
//   - one RBAC filter per action, in Istio's order: AUDIT (Envoy's LOG),
//     DENY, then ALLOW; each rule is a policy named
//     "ns[NS]-policy[NAME]-rule[I]";
//   - a policy without rules contributes a policy that never matches:
//     ALLOW without rules allows nothing (its ALLOW filter exists and
//     matches nothing), DENY without rules (rejected by validation anyway)
//     denies nothing;
//   - policies annotated istio.io/dry-run: "true" become shadow rules
//     (stats only), with Istio's shadow stat prefixes;
//   - HTTP listeners get envoy.filters.http.rbac before the router, TCP
//     listeners envoy.filters.network.rbac (stat prefix "tcp.") before
//     tcp_proxy; on TCP, an ALLOW rule with HTTP-only attributes is
//     dropped and a DENY/AUDIT rule loses those attributes (see
//     generateRule).

// Envoy's filter names.
const (
	rbacHTTPFilterName    = "envoy.filters.http.rbac"
	rbacNetworkFilterName = "envoy.filters.network.rbac"
	// dryRunAnnotation makes a policy shadow (Istio's istio.io/dry-run).
	dryRunAnnotation = "istio.io/dry-run"
)

// authzFilters are the RBAC filters of one proxy's inbound listeners.
type authzFilters struct {
	http []*hcmv3.HttpFilter
	tcp  []*listenerv3.Filter
}

// authzPolicy is one policy that applies to a proxy.
type authzPolicy struct {
	obj  *config.Object
	spec *security.AuthorizationPolicy
}

// authzFor builds the RBAC filters of proxy p (none when no policy
// applies).
func (st *snapState) authzFor(p *model.Proxy) authzFilters {
	byAction := map[security.AuthorizationPolicy_Action][]authzPolicy{}
	for _, obj := range st.snap.List(config.AuthorizationPolicy) {
		spec, ok := obj.Spec.(*security.AuthorizationPolicy)
		if !ok || !policyApplies(obj, spec, p, st.snap.RootNamespace) {
			continue
		}
		byAction[spec.GetAction()] = append(byAction[spec.GetAction()], authzPolicy{obj, spec})
	}
	var out authzFilters
	for _, a := range []struct {
		istio security.AuthorizationPolicy_Action
		envoy rbacv3.RBAC_Action
	}{
		{security.AuthorizationPolicy_AUDIT, rbacv3.RBAC_LOG},
		{security.AuthorizationPolicy_DENY, rbacv3.RBAC_DENY},
		{security.AuthorizationPolicy_ALLOW, rbacv3.RBAC_ALLOW},
	} {
		policies := byAction[a.istio]
		if len(policies) == 0 {
			continue
		}
		o := buildOpts{action: a.envoy, trustDomain: st.opts.TrustDomain}
		out.http = append(out.http, rbacHTTPFilter(buildRBAC(policies, o)))
		o.forTCP = true
		out.tcp = append(out.tcp, rbacNetworkFilter(buildRBAC(policies, o)))
	}
	return out
}

// workloadPolicy is a security.istio.io policy that selects workloads
// (AuthorizationPolicy, RequestAuthentication).
type workloadPolicy interface {
	GetSelector() *typev1beta1.WorkloadSelector
	GetTargetRef() *typev1beta1.PolicyTargetReference
	GetTargetRefs() []*typev1beta1.PolicyTargetReference
}

// policyApplies reports whether a policy selects proxy p: it is in the
// root namespace (mesh-wide) or p's, has no targetRef (those select
// gateways and waypoints) and its selector matches p's labels.
func policyApplies(obj *config.Object, spec workloadPolicy, p *model.Proxy, root string) bool {
	if obj.Meta.Namespace != root && obj.Meta.Namespace != p.Namespace {
		return false
	}
	if spec.GetTargetRef() != nil || len(spec.GetTargetRefs()) > 0 {
		return false
	}
	return model.SelectorMatches(spec.GetSelector().GetMatchLabels(), p.Labels)
}

// buildOpts say what a set of rules is built for.
type buildOpts struct {
	action      rbacv3.RBAC_Action
	forTCP      bool
	trustDomain string
}

// builtRBAC are the enforced and shadow rules of one action; either may
// be nil.
type builtRBAC struct {
	action rbacv3.RBAC_Action
	rules  *rbacv3.RBAC
	shadow *rbacv3.RBAC
}

// buildRBAC builds the rules of the policies of one action.
func buildRBAC(policies []authzPolicy, o buildOpts) builtRBAC {
	out := builtRBAC{action: o.action}
	for _, ap := range policies {
		target := &out.rules
		if ap.obj.Meta.Annotations[dryRunAnnotation] == "true" {
			target = &out.shadow
		}
		if *target == nil {
			*target = &rbacv3.RBAC{Action: o.action, Policies: map[string]*rbacv3.Policy{}}
		}
		rules := ap.spec.GetRules()
		if len(rules) == 0 {
			(*target).Policies[policyName(ap.obj, 0)] = matchNever()
			continue
		}
		ctx := authzRuleCtx{forTCP: o.forTCP, policyNS: ap.obj.Meta.Namespace, trustDomain: o.trustDomain, action: o.action}
		for i, r := range rules {
			if r == nil {
				continue
			}
			if pol, err := generateRule(r, ctx); err == nil {
				(*target).Policies[policyName(ap.obj, i)] = pol
			}
		}
	}
	return out
}

// policyName is Istio's RBAC policy name of rule i of a policy.
func policyName(obj *config.Object, i int) string {
	return fmt.Sprintf("ns[%s]-policy[%s]-rule[%s]", obj.Meta.Namespace, obj.Meta.Name, strconv.Itoa(i))
}

// matchNever is Istio's policy that matches nothing.
func matchNever() *rbacv3.Policy {
	return &rbacv3.Policy{
		Permissions: []*rbacv3.Permission{permNot(permAny())},
		Principals:  []*rbacv3.Principal{idNot(idAny())},
	}
}

// shadowPrefix is Istio's shadow rules stat prefix of an action.
func shadowPrefix(b builtRBAC) string {
	if b.shadow == nil {
		return ""
	}
	switch b.action {
	case rbacv3.RBAC_ALLOW:
		return "istio_dry_run_allow_"
	case rbacv3.RBAC_DENY:
		return "istio_dry_run_deny_"
	}
	return ""
}

func rbacHTTPFilter(b builtRBAC) *hcmv3.HttpFilter {
	cfg := &rbachttpv3.RBAC{Rules: b.rules, ShadowRules: b.shadow, ShadowRulesStatPrefix: shadowPrefix(b)}
	return &hcmv3.HttpFilter{Name: rbacHTTPFilterName, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(cfg)}}
}

func rbacNetworkFilter(b builtRBAC) *listenerv3.Filter {
	cfg := &rbactcpv3.RBAC{Rules: b.rules, ShadowRules: b.shadow, ShadowRulesStatPrefix: shadowPrefix(b), StatPrefix: "tcp."}
	return &listenerv3.Filter{Name: rbacNetworkFilterName, ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(cfg)}}
}

// authzWarnings reports the AuthorizationPolicy settings translation does
// not apply: targetRef(s) select gateways and waypoints, which weft does
// not enforce policies on yet (sidecars are selected by selector).
// Request principals and request.auth.* conditions match the tokens a
// RequestAuthentication verified (jwt_authn metadata), as in Istio.
func authzWarnings(w *warnSet, objs []*config.Object) {
	for _, obj := range objs {
		spec, ok := obj.Spec.(*security.AuthorizationPolicy)
		if !ok {
			continue
		}
		if spec.GetTargetRef() != nil || len(spec.GetTargetRefs()) > 0 {
			field := "spec.targetRef"
			if spec.GetTargetRef() == nil {
				field = "spec.targetRefs"
			}
			w.warnObject(obj, field, "not applied: targetRef selects Kubernetes Gateway API gateways and waypoints, which weft does not run; select the gateway workload with selector instead")
		}
	}
}
