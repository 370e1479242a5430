package translate

import (
	"testing"

	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	"google.golang.org/protobuf/encoding/protojson"
	security "istio.io/api/security/v1beta1"
	typev1beta1 "istio.io/api/type/v1beta1"

	"github.com/weftmesh/weft/internal/config"
	"github.com/weftmesh/weft/internal/model"
)

func TestPolicyApplies(t *testing.T) {
	p := &model.Proxy{Namespace: "foo", Labels: map[string]string{"app": "a", "version": "v1"}}
	sel := func(kv ...string) *typev1beta1.WorkloadSelector {
		m := map[string]string{}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return &typev1beta1.WorkloadSelector{MatchLabels: m}
	}
	for _, tc := range []struct {
		name string
		ns   string
		spec *security.AuthorizationPolicy
		want bool
	}{
		{"namespace-wide", "foo", &security.AuthorizationPolicy{}, true},
		{"mesh-wide (root namespace)", "istio-system", &security.AuthorizationPolicy{}, true},
		{"other namespace", "bar", &security.AuthorizationPolicy{}, false},
		{"matching selector", "foo", &security.AuthorizationPolicy{Selector: sel("app", "a")}, true},
		{"selector with a label the proxy lacks", "foo", &security.AuthorizationPolicy{Selector: sel("app", "a", "tier", "x")}, false},
		{"root namespace with selector", "istio-system", &security.AuthorizationPolicy{Selector: sel("version", "v1")}, true},
		{"targetRef: gateways only", "foo", &security.AuthorizationPolicy{TargetRefs: []*typev1beta1.PolicyTargetReference{{Kind: "Gateway", Name: "gw"}}}, false},
	} {
		obj := &config.Object{Meta: config.Meta{Namespace: tc.ns, Name: "p"}}
		if got := policyApplies(obj, tc.spec, p, "istio-system"); got != tc.want {
			t.Errorf("%s: applies = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// rule decodes an Istio rule from JSON.
func rule(t *testing.T, js string) *security.Rule {
	t.Helper()
	var r security.Rule
	if err := protojson.Unmarshal([]byte(js), &r); err != nil {
		t.Fatal(err)
	}
	return &r
}

// TestGenerateRule checks single generators against the Envoy JSON Istio
// emits for them.
func TestGenerateRule(t *testing.T) {
	for _, tc := range []struct {
		name   string
		rule   string
		ctx    authzRuleCtx
		want   string // the policy's first principal or permission, JSON
		permit bool   // want is a permission
		err    bool
	}{
		{name: "trust domain cluster.local is the mesh's", rule: `{"from": [{"source": {"principals": ["cluster.local/ns/a/sa/b", "other.td/ns/a/sa/b"]}}]}`,
			ctx:  authzRuleCtx{trustDomain: "example.org"},
			want: `{"andIds":{"ids":[{"orIds":{"ids":[{"authenticated":{"principalName":{"exact":"spiffe://example.org/ns/a/sa/b"}}},{"authenticated":{"principalName":{"exact":"spiffe://other.td/ns/a/sa/b"}}}]}}]}}`},
		{name: "principal suffix keeps the spiffe scheme", rule: `{"from": [{"source": {"principals": ["*/sa/b"]}}]}`,
			want: `{"andIds":{"ids":[{"orIds":{"ids":[{"authenticated":{"principalName":{"safeRegex":{"regex":"spiffe://.*/sa/b"}}}}]}}]}}`},
		{name: "service account in the policy's namespace", rule: `{"from": [{"source": {"serviceAccounts": ["sleep"]}}]}`, ctx: authzRuleCtx{policyNS: "foo"},
			want: `{"andIds":{"ids":[{"orIds":{"ids":[{"authenticated":{"principalName":{"safeRegex":{"regex":"spiffe://.+/ns/foo/(.+/|)sa/sleep(/.+)?"}}}}]}}]}}`},
		{name: "namespace wildcard", rule: `{"from": [{"source": {"notNamespaces": ["team-*"]}}]}`,
			want: `{"andIds":{"ids":[{"notId":{"orIds":{"ids":[{"authenticated":{"principalName":{"safeRegex":{"regex":".*/ns/team-.*/.*"}}}}]}}}]}}`},
		{name: "request principal issuer/subject", rule: `{"from": [{"source": {"requestPrincipals": ["https://iss.example.com/u1"]}}]}`,
			want: `{"andIds":{"ids":[{"andIds":{"ids":[{"metadata":{"filter":"envoy.filters.http.jwt_authn","path":[{"key":"payload"},{"key":"iss"}],"value":{"stringMatch":{"exact":"https://iss.example.com"}}}},{"metadata":{"filter":"envoy.filters.http.jwt_authn","path":[{"key":"payload"},{"key":"sub"}],"value":{"stringMatch":{"exact":"u1"}}}}]}}]}}`},
		{name: "methods and paths for TCP: ALLOW rule dropped", rule: `{"to": [{"operation": {"methods": ["GET"]}}]}`,
			ctx: authzRuleCtx{forTCP: true, action: rbacv3.RBAC_ALLOW}, err: true},
		{name: "methods for TCP: DENY condition dropped", rule: `{"to": [{"operation": {"methods": ["GET"], "ports": ["80"]}}]}`,
			ctx: authzRuleCtx{forTCP: true, action: rbacv3.RBAC_DENY}, permit: true,
			want: `{"andRules":{"rules":[{"orRules":{"rules":[{"destinationPort":80}]}}]}}`},
		{name: "presence", rule: `{"to": [{"operation": {"paths": ["*"], "hosts": ["*"]}}]}`, permit: true,
			want: `{"andRules":{"rules":[{"orRules":{"rules":[{"header":{"name":":authority","presentMatch":true}}]}},{"orRules":{"rules":[{"urlPath":{"path":{"safeRegex":{"regex":".+"}}}}]}}]}}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pol, err := generateRule(rule(t, tc.rule), tc.ctx)
			if tc.err {
				if err == nil {
					t.Fatalf("want an error, got %v", pol)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []byte
			if tc.permit {
				got, _ = protojson.Marshal(pol.Permissions[0])
			} else {
				got, _ = protojson.Marshal(pol.Principals[0])
			}
			if normJSON(t, got) != normJSON(t, []byte(tc.want)) {
				t.Errorf("got  %s\nwant %s", normJSON(t, got), normJSON(t, []byte(tc.want)))
			}
		})
	}
}

// normJSON reformats JSON compactly (protojson varies its spacing).
func normJSON(t *testing.T, b []byte) string {
	t.Helper()
	var m rbacv3.Principal
	var p rbacv3.Permission
	if protojson.Unmarshal(b, &m) == nil {
		out, _ := protojson.MarshalOptions{}.Marshal(&m)
		return compact(out)
	}
	if err := protojson.Unmarshal(b, &p); err != nil {
		t.Fatalf("bad JSON %s: %v", b, err)
	}
	out, _ := protojson.Marshal(&p)
	return compact(out)
}

func compact(b []byte) string {
	out := make([]byte, 0, len(b))
	for _, c := range b {
		if c != ' ' && c != '\n' {
			out = append(out, c)
		}
	}
	return string(out)
}
