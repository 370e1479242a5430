package config

import (
	"fmt"

	telemetry "istio.io/api/telemetry/v1alpha1"
)

// validateTelemetry applies Istio's rules for Telemetry
// (pkg/config/validation validateTelemetry): selector and targetRef(s) are
// exclusive; at most one tracing entry with at most one provider (Istio:
// "multiple providers is not currently supported"); the sampling
// percentage is within [0, 100]; a custom tag has a name and exactly one
// non-empty source; provider references are named; tag overrides name a
// tag and UPSERT carries a value. Access log filters are CEL expressions,
// which weft-proxy cannot evaluate: they are accepted with a warning and
// every entry is logged.
func validateTelemetry(t *telemetry.Telemetry, is *issues) {
	if sel := t.GetSelector(); sel != nil {
		selectorProblems(is, specPath.f("selector").f("matchLabels"), sel.GetMatchLabels())
		if t.GetTargetRef() != nil || len(t.GetTargetRefs()) > 0 {
			is.err(specPath, "set selector or targetRef(s), not both")
		}
	}
	if t.GetTargetRef() != nil && len(t.GetTargetRefs()) > 0 {
		is.err(specPath, "set targetRef or targetRefs, not both")
	}
	if len(t.GetTracing()) > 1 {
		is.err(specPath.f("tracing"), "multiple tracing entries are not supported (as in Istio): merge them into one")
	}
	for i, tr := range t.GetTracing() {
		validateTracing(specPath.f("tracing").i(i), tr, is)
	}
	for i, al := range t.GetAccessLogging() {
		p := specPath.f("accessLogging").i(i)
		if al == nil {
			is.err(p, "an accessLogging entry may not be null")
			continue
		}
		providerRefProblems(p.f("providers"), al.GetProviders(), is)
		if al.GetFilter().GetExpression() != "" {
			is.warn(p.f("filter").f("expression"), "not applied: weft-proxy does not evaluate CEL expressions yet; every request is logged")
		}
	}
	for i, m := range t.GetMetrics() {
		p := specPath.f("metrics").i(i)
		if m == nil {
			is.err(p, "a metrics entry may not be null")
			continue
		}
		providerRefProblems(p.f("providers"), m.GetProviders(), is)
		for j, o := range m.GetOverrides() {
			for _, name := range sortedKeys(o.GetTagOverrides()) {
				tp := p.f("overrides").i(j).f("tagOverrides").k(name)
				if name == "" {
					is.err(tp, "a tag override needs a tag name")
				}
				if to := o.GetTagOverrides()[name]; to.GetOperation() == telemetry.MetricsOverrides_TagOverride_UPSERT && to.GetValue() == "" {
					is.err(tp.f("value"), "UPSERT needs a value (a CEL expression)")
				}
			}
		}
	}
}

// validateTracing checks one tracing entry.
func validateTracing(p fieldPath, tr *telemetry.Tracing, is *issues) {
	if tr == nil {
		is.err(p, "a tracing entry may not be null")
		return
	}
	if len(tr.GetProviders()) > 1 {
		is.err(p.f("providers"), "multiple providers are not supported (as in Istio): name one")
	}
	providerRefProblems(p.f("providers"), tr.GetProviders(), is)
	if s := tr.GetRandomSamplingPercentage(); s != nil && (s.GetValue() < 0 || s.GetValue() > 100) {
		is.err(p.f("randomSamplingPercentage"), fmt.Sprintf("%v is out of range: use 0 to 100", s.GetValue()))
	}
	for _, name := range sortedKeys(tr.GetCustomTags()) {
		tp := p.f("customTags").k(name)
		tag := tr.GetCustomTags()[name]
		switch {
		case name == "":
			is.err(tp, "a custom tag needs a name")
		case tag == nil || tag.GetType() == nil:
			is.err(tp, "a custom tag needs one of literal, environment or header")
		case tag.GetLiteral() != nil && tag.GetLiteral().GetValue() == "":
			is.err(tp.f("literal").f("value"), "a literal tag needs a value")
		case tag.GetEnvironment() != nil && tag.GetEnvironment().GetName() == "":
			is.err(tp.f("environment").f("name"), "an environment tag needs a variable name")
		case tag.GetHeader() != nil && tag.GetHeader().GetName() == "":
			is.err(tp.f("header").f("name"), "a header tag needs a header name")
		case tag.GetFormatter() != nil:
			is.warn(tp.f("formatter"), "not applied: formatter tags are not supported yet")
		}
	}
}

// providerRefProblems checks provider references: each names a provider
// (the mesh configuration's extensionProviders, checked when translating).
func providerRefProblems(p fieldPath, refs []*telemetry.ProviderRef, is *issues) {
	for i, r := range refs {
		if r.GetName() == "" {
			is.err(p.i(i).f("name"), "a provider reference needs the name of one of the mesh configuration's extensionProviders")
		}
	}
}
