package config

import (
	"fmt"
	"testing"
)

// TestValidateRequestAuthentication runs Istio's RequestAuthentication
// rules: the reference page's examples are valid; each broken field is
// reported at its path.
func TestValidateRequestAuthentication(t *testing.T) {
	const jwks = `'{"keys": [{"kty": "RSA", "n": "xA", "e": "AQAB"}]}'`
	cases := []vcase{
		{name: "doc: jwksUri with selector", spec: `
selector: {matchLabels: {app: httpbin}}
jwtRules:
- issuer: "issuer-foo"
  jwksUri: https://example.com/.well-known/jwks.json
`},
		{name: "doc: locations, outputs, inline jwks", spec: `
jwtRules:
- issuer: "issuer-foo"
  audiences: ["bookstore_android.appspot.com"]
  jwks: ` + jwks + `
  fromHeaders: [{name: x-jwt-assertion, prefix: "Bearer "}]
  fromParams: ["my_token"]
  outputPayloadToHeader: x-jwt-payload
  outputClaimToHeaders: [{header: x-jwt-claim-group, claim: group}]
  forwardOriginalToken: true
  timeout: 3s
`},
		{name: "missing issuer", spec: "jwtRules: [{jwksUri: 'https://a/j'}]\n",
			want: []string{"spec.jwtRules[0].issuer: issuer is required"}},
		{name: "jwks and jwksUri", spec: "jwtRules: [{issuer: i, jwksUri: 'https://a/j', jwks: " + jwks + "}]\n",
			want: []string{"spec.jwtRules[0]: set jwks or jwksUri, not both"}},
		{name: "bad jwksUri scheme", spec: "jwtRules: [{issuer: i, jwksUri: 'ftp://a/j'}]\n",
			want: []string{`spec.jwtRules[0].jwksUri: jwksUri "ftp://a/j": the scheme must be http or https`}},
		{name: "jwksUri without host", spec: "jwtRules: [{issuer: i, jwksUri: 'https:///j'}]\n",
			want: []string{`spec.jwtRules[0].jwksUri: jwksUri "https:///j" has no host`}},
		{name: "jwksUri bad port", spec: "jwtRules: [{issuer: i, jwksUri: 'https://a:70000/j'}]\n",
			want: []string{`spec.jwtRules[0].jwksUri: jwksUri "https://a:70000/j": port "70000" must be in the range 1..65535`}},
		{name: "jwks not a key set", spec: "jwtRules: [{issuer: i, jwks: '{\"keys\": []}'}]\n",
			want: []string{`spec.jwtRules[0].jwks: jwks parse error: the key set has no "keys"`}},
		{name: "empty locations and outputs", spec: `
jwtRules:
- issuer: i
  jwksUri: https://a/j
  audiences: [""]
  fromHeaders: [{prefix: "Bearer "}]
  fromParams: [""]
  outputClaimToHeaders: [{header: "", claim: sub}, {header: "bad header", claim: sub}]
  timeout: 0s
`, want: []string{
			"spec.jwtRules[0].audiences[0]: an audience must be a non-empty string",
			"spec.jwtRules[0].fromHeaders[0].name: the header name must be a non-empty string",
			"spec.jwtRules[0].fromParams[0]: a query parameter name must be a non-empty string",
			"spec.jwtRules[0].outputClaimToHeaders[0]: outputClaimToHeaders needs a non-empty header and claim",
			`spec.jwtRules[0].outputClaimToHeaders[1].header: "bad header" is not a valid header name`,
			"spec.jwtRules[0].timeout: duration 0s must be at least 1ms",
		}},
		{name: "selector and targetRef", spec: `
selector: {matchLabels: {app: a}}
targetRef: {kind: Gateway, group: gateway.networking.k8s.io, name: gw}
`, want: []string{"spec: set selector or targetRef(s), not both"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			doc := fmt.Sprintf("apiVersion: security.istio.io/v1\nkind: RequestAuthentication\nmetadata: {name: x, namespace: ns}\nspec:\n%s", indent(tc.spec))
			items, _ := decodeFile("t.yaml", []byte(doc))
			if len(items) != 1 {
				t.Fatalf("%d items", len(items))
			}
			var got []string
			for _, e := range items[0].errs {
				got = append(got, e.Path+": "+e.Message)
			}
			assertLines(t, got, tc.want)
			if valid := items[0].valid(); valid == hasError(tc.want) {
				t.Errorf("object valid = %v with problems %q", valid, got)
			}
		})
	}
}
