package config

import "testing"

// TestValidateTelemetry runs Istio's Telemetry rules: the reference page's
// examples are valid; each broken field is reported at its path.
func TestValidateTelemetry(t *testing.T) {
	runValidation(t, Telemetry, []vcase{
		{name: "doc: mesh-wide tracing", spec: `
tracing:
- providers: [{name: otel}]
  randomSamplingPercentage: 10.0
  customTags:
    my_new_foo_tag: {literal: {value: "foo"}}
    env_tag: {environment: {name: POD_NAME, defaultValue: unknown}}
    header_tag: {header: {name: x-user, defaultValue: anonymous}}
`},
		{name: "doc: access logging with a selector", spec: `
selector: {matchLabels: {service.istio.io/canonical-name: frontend}}
accessLogging:
- providers: [{name: envoy}]
  disabled: false
`},
		{name: "doc: metrics overrides", spec: `
metrics:
- providers: [{name: prometheus}]
  overrides:
  - match: {metric: REQUEST_COUNT, mode: CLIENT_AND_SERVER}
    tagOverrides:
      request_host: {value: "request.host"}
      response_code: {operation: REMOVE}
`},
		{name: "two tracing entries, two providers, bad sampling", spec: `
tracing:
- providers: [{name: a}, {name: b}]
  randomSamplingPercentage: 120
- providers: [{name: a}]
`, want: []string{
			"spec.tracing: multiple tracing entries are not supported (as in Istio): merge them into one",
			"spec.tracing[0].providers: multiple providers are not supported (as in Istio): name one",
			"spec.tracing[0].randomSamplingPercentage: 120 is out of range: use 0 to 100",
		}},
		{name: "custom tags without a source or value", spec: `
tracing:
- customTags:
    a: {}
    b: {literal: {value: ""}}
    c: {header: {name: ""}}
`, want: []string{
			"spec.tracing[0].customTags[\"a\"]: a custom tag needs one of literal, environment or header",
			"spec.tracing[0].customTags[\"b\"].literal.value: a literal tag needs a value",
			"spec.tracing[0].customTags[\"c\"].header.name: a header tag needs a header name",
		}},
		{name: "unnamed provider, CEL filter, UPSERT without value", spec: `
accessLogging:
- providers: [{name: ""}]
  filter: {expression: "response.code >= 400"}
metrics:
- overrides:
  - tagOverrides: {request_host: {operation: UPSERT}}
`, want: []string{
			"spec.accessLogging[0].providers[0].name: a provider reference needs the name of one of the mesh configuration's extensionProviders",
			"W spec.accessLogging[0].filter.expression: not applied: weft-proxy does not evaluate CEL expressions yet; every request is logged",
			"spec.metrics[0].overrides[0].tagOverrides[\"request_host\"].value: UPSERT needs a value (a CEL expression)",
		}},
		{name: "selector and targetRef", spec: `
selector: {matchLabels: {app: a}}
targetRef: {kind: Gateway, group: gateway.networking.k8s.io, name: gw}
`, want: []string{"spec: set selector or targetRef(s), not both"}},
	})
}
