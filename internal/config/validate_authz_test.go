package config

import (
	"fmt"
	"testing"
)

// runAuthzValidation is runValidation for AuthorizationPolicy objects
// (security.istio.io/v1).
func runAuthzValidation(t *testing.T, cases []vcase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			doc := fmt.Sprintf("apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: x, namespace: ns}\nspec:\n%s", indent(tc.spec))
			items, _ := decodeFile("t.yaml", []byte(doc))
			if len(items) != 1 {
				t.Fatalf("%d items", len(items))
			}
			var got []string
			for _, e := range items[0].errs {
				s := e.Path + ": " + e.Message
				if e.Warning {
					s = "W " + s
				}
				got = append(got, s)
			}
			assertLines(t, got, tc.want)
			if valid := items[0].valid(); valid == hasError(tc.want) {
				t.Errorf("object valid = %v with problems %q", valid, got)
			}
		})
	}
}

func TestValidateAuthorizationPolicy(t *testing.T) {
	runAuthzValidation(t, []vcase{
		// The examples of Istio's AuthorizationPolicy reference page.
		{name: "doc: allow from principals and namespace", spec: `
action: ALLOW
rules:
- from:
  - source: {principals: ["cluster.local/ns/default/sa/sleep"]}
  - source: {namespaces: ["test"]}
  to:
  - operation: {methods: ["GET"], paths: ["/info*"]}
  - operation: {methods: ["POST"], paths: ["/data"]}
  when:
  - key: request.auth.claims[iss]
    values: ["https://accounts.google.com"]
`},
		{name: "doc: deny not from foo", spec: `
action: DENY
rules:
- from: [{source: {notNamespaces: ["foo"]}}]
`},
		{name: "doc: allow nothing", spec: "{}\n"},
		{name: "doc: deny all", spec: "action: DENY\nrules: [{}]\n"},
		{name: "doc: allow all", spec: "rules: [{}]\n"},
		{name: "doc: selector and ip blocks", spec: `
selector: {matchLabels: {app: httpbin, version: v1}}
action: ALLOW
rules:
- from: [{source: {ipBlocks: ["1.2.3.4", "5.6.0.0/16"], notRemoteIpBlocks: ["2001:db8::/32"]}}]
  to: [{operation: {ports: ["8080"], notHosts: ["*.example.com"], notMethods: ["DELETE"], notPaths: ["/admin*"]}}]
  when:
  - {key: "request.headers[User-Agent]", values: ["Mozilla/*"]}
  - {key: source.ip, values: ["10.1.2.3"], notValues: ["10.2.0.0/16"]}
  - {key: destination.port, values: ["443"]}
  - {key: connection.sni, values: ["www.example.com"]}
  - {key: "request.auth.claims[groups][admin]", values: ["true"]}
  - {key: request.auth.audiences, values: ["aud"]}
`},
		{name: "audit", spec: "action: AUDIT\nrules: [{to: [{operation: {paths: [\"/user/profile/*\"]}}]}]\n"},
		{name: "custom rejected", spec: "action: CUSTOM\nprovider: {name: ext}\nrules: [{}]\n", want: []string{
			"spec.action: CUSTOM (external authorization) is not supported by weft yet: use ALLOW, DENY or AUDIT"}},
		{name: "provider without custom", spec: "provider: {name: ext}\nrules: [{}]\n", want: []string{
			"spec.provider: provider is only valid with the CUSTOM action, found ALLOW"}},
		{name: "deny without rules", spec: "action: DENY\n", want: []string{
			"spec.rules: DENY action without rules is meaningless as it will never be triggered: add an empty rule {} to deny every request"}},
		{name: "selector with targetRef", spec: "selector: {matchLabels: {app: a}}\ntargetRef: {kind: Gateway, group: gateway.networking.k8s.io, name: gw}\n", want: []string{
			"spec.selector: only one of selector, targetRef or targetRefs can be set"}},
		{name: "empty from and to", spec: "rules: [{from: [{}], to: [{}]}]\n", want: []string{
			"spec.rules[0].from[0].source: from.source must be set",
			"spec.rules[0].to[0].operation: to.operation must be set"}},
		{name: "empty source and operation", spec: "rules: [{from: [{source: {}}], to: [{operation: {}}]}]\n", want: []string{
			"spec.rules[0].from[0].source: from.source must set at least one field",
			"spec.rules[0].to[0].operation: to.operation must set at least one field"}},
		{name: "empty strings", spec: `rules: [{from: [{source: {principals: [""], notNamespaces: ["a", ""]}}], to: [{operation: {methods: [""]}}]}]` + "\n", want: []string{
			"spec.rules[0].from[0].source.principals[0]: empty value not allowed",
			"spec.rules[0].from[0].source.notNamespaces[1]: empty value not allowed",
			"spec.rules[0].to[0].operation.methods[0]: empty value not allowed"}},
		{name: "bad ip blocks", spec: `rules: [{from: [{source: {ipBlocks: ["1.2.3.4/33", "x"], remoteIpBlocks: ["10.0.0.0/8"], notIpBlocks: ["::1/200"]}}]}]` + "\n", want: []string{
			`spec.rules[0].from[0].source.ipBlocks[0]: "1.2.3.4/33" is not a valid CIDR block`,
			`spec.rules[0].from[0].source.ipBlocks[1]: "x" is not a valid IP address`,
			`spec.rules[0].from[0].source.notIpBlocks[0]: "::1/200" is not a valid CIDR block`}},
		{name: "bad ports", spec: `rules: [{to: [{operation: {ports: ["80", "http", "65536"], notPorts: ["-1"]}}]}]` + "\n", want: []string{
			`spec.rules[0].to[0].operation.ports[1]: bad port "http": write a number from 0 to 65535`,
			`spec.rules[0].to[0].operation.ports[2]: bad port "65536": write a number from 0 to 65535`,
			`spec.rules[0].to[0].operation.notPorts[0]: bad port "-1": write a number from 0 to 65535`}},
		{name: "wildcards", spec: `rules: [{to: [{operation: {paths: ["*", "/a/*", "*.html", "/a*b"], hosts: ["*.*.com"], methods: ["G*T"]}}]}]` + "\n", want: []string{
			`W spec.rules[0].to[0].operation.hosts[0]: "*.*.com": only a leading * (suffix match)...`,
			`W spec.rules[0].to[0].operation.methods[0]: "G*T": only a leading * (suffix match)...`,
			`W spec.rules[0].to[0].operation.paths[3]: "/a*b": only a leading * (suffix match)...`}},
		{name: "path template", spec: `rules: [{to: [{operation: {paths: ["/foo/{*}/bar"]}}]}]` + "\n", want: []string{
			`spec.rules[0].to[0].operation.paths[0]: "/foo/{*}/bar": path templates ({*}, {**}) are not supported by weft yet...`}},
		{name: "service accounts with principals", spec: `rules: [{from: [{source: {serviceAccounts: ["ns/sa", "a/b/c"], principals: ["x"]}}]}]` + "\n", want: []string{
			`spec.rules[0].from[0].source.serviceAccounts[1]: "a/b/c": write a service account as NAME or NAMESPACE/NAME`,
			"spec.rules[0].from[0].source.serviceAccounts: cannot set serviceAccounts with namespaces or principals"}},
		{name: "when keys", spec: `
rules:
- when:
  - {key: "", values: [a]}
  - {key: request.headers, values: [a]}
  - {key: "request.headers[]", values: [a]}
  - {key: "experimental.envoy.filters.a.b[c]", values: [a]}
  - {key: source.user, values: [a]}
  - {key: source.ip, values: [a]}
  - {key: destination.port, notValues: ["99999"]}
  - {key: "request.auth.claims[iss]"}
  - {key: remote.ip, values: [""]}
  - {key: "request.auth.claims[a][]", values: [x]}
`, want: []string{
			"spec.rules[0].when[0].key: key must not be empty",
			`spec.rules[0].when[1].key: bad key "request.headers": should have the form request.headers[NAME]`,
			`spec.rules[0].when[2].key: bad key "request.headers[]": should have the form request.headers[NAME]`,
			"spec.rules[0].when[3].key: experimental.envoy.filters.a.b[c]: experimental attributes are not supported by weft",
			`spec.rules[0].when[4].key: unknown attribute "source.user": use request.headers[NAME]...`,
			`spec.rules[0].when[5].values[0]: "a" is not a valid IP address`,
			`spec.rules[0].when[6].notValues[0]: bad port "99999": write a number from 0 to 65535`,
			"spec.rules[0].when[7]: at least one of values or notValues must be set for key request.auth.claims[iss]",
			"spec.rules[0].when[8].values[0]: empty value not allowed",
			`spec.rules[0].when[9].key: bad key "request.auth.claims[a][]": should have the form request.auth.claims[NAME]`}},
		{name: "empty selector warns", spec: "selector: {}\nrules: [{}]\n", want: []string{
			"W spec.selector.matchLabels: workload selector without labels: it applies to every workload in the namespace"}},
	})
}
