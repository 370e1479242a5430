package rbac

import (
	"net/netip"
	"strings"
	"testing"

	"google.golang.org/protobuf/types/known/structpb"

	"github.com/weftmesh/weft/internal/proxy/headers"
)

// policy wraps permissions and principals (JSON) into a one-policy RBAC.
func onePolicy(action, perm, princ string) string {
	return `{"action": "` + action + `", "policies": {"p": {"permissions": [` + perm + `], "principals": [` + princ + `]}}}`
}

const (
	anyJSON     = `{"any": true}`
	sleepURI    = "spiffe://cluster.local/ns/default/sa/sleep"
	otherURI    = "spiffe://cluster.local/ns/dev/sa/other"
	sleepPrinc  = `{"authenticated": {"principalName": {"exact": "` + sleepURI + `"}}}`
	nsFooPrinc  = `{"authenticated": {"principalName": {"safeRegex": {"regex": ".*/ns/foo/.*"}}}}`
	adminPath   = `{"urlPath": {"path": {"prefix": "/admin"}}}`
	getMethod   = `{"header": {"name": ":method", "stringMatch": {"exact": "GET"}}}`
	port8000    = `{"destinationPort": 8000}`
	tenNet      = `{"directRemoteIp": {"addressPrefix": "10.0.0.0", "prefixLen": 8}}`
	clientNet   = `{"remoteIp": {"addressPrefix": "192.0.2.0", "prefixLen": 24}}`
	hostExample = `{"header": {"name": ":authority", "stringMatch": {"suffix": ".example.com", "ignoreCase": true}}}`
)

// attrCase is one request of the policy matrix.
type attrCase struct {
	name    string
	conn    connOpts
	req     *headers.Request // nil: a TCP connection
	remote  string           // Attributes.RemoteIP (x-forwarded-for)
	md      map[string]*structpb.Struct
	allowed bool
	policy  string // the matched policy
}

func TestPolicyMatrix(t *testing.T) {
	sleep, other, foo := peerCert(t, sleepURI), peerCert(t, otherURI), peerCert(t, "spiffe://cluster.local/ns/foo/sa/x")
	get := func(path string, kv ...string) *headers.Request { return testReq("GET", path, "svc:8000", kv...) }
	jwt := func(iss string, groups ...any) map[string]*structpb.Struct {
		s, err := structpb.NewStruct(map[string]any{"payload": map[string]any{"iss": iss, "groups": groups}})
		if err != nil {
			t.Fatal(err)
		}
		return map[string]*structpb.Struct{"envoy.filters.http.jwt_authn": s}
	}
	matrix := []struct {
		name  string
		rbac  string
		cases []attrCase
	}{
		{"allow by principal", onePolicy("ALLOW", anyJSON, sleepPrinc), []attrCase{
			{name: "the principal", conn: connOpts{cert: sleep}, req: get("/"), allowed: true, policy: "p"},
			{name: "another identity", conn: connOpts{cert: other}, req: get("/")},
			{name: "plaintext", req: get("/")},
			{name: "tcp with the principal", conn: connOpts{cert: sleep}, allowed: true, policy: "p"},
		}},
		{"deny by namespace", onePolicy("DENY", anyJSON, nsFooPrinc), []attrCase{
			{name: "from foo", conn: connOpts{cert: foo}, req: get("/"), policy: "p"},
			{name: "from default", conn: connOpts{cert: sleep}, req: get("/"), allowed: true},
			{name: "plaintext", req: get("/"), allowed: true},
		}},
		{"deny by path", onePolicy("DENY", adminPath, anyJSON), []attrCase{
			{name: "admin", req: get("/admin/users"), policy: "p"},
			{name: "admin with query", req: get("/admin?x=1"), policy: "p"},
			{name: "public", req: get("/public/admin"), allowed: true},
			{name: "tcp never matches a path", allowed: true},
		}},
		{"allow by method", onePolicy("ALLOW", getMethod, anyJSON), []attrCase{
			{name: "GET", req: get("/"), allowed: true, policy: "p"},
			{name: "POST", req: testReq("POST", "/", "svc")},
		}},
		{"deny by header", onePolicy("DENY", anyJSON, `{"header": {"name": "X-User", "stringMatch": {"prefix": "banned"}}}`), []attrCase{
			{name: "banned", req: get("/", "x-user", "banned-bob"), policy: "p"},
			{name: "alice", req: get("/", "x-user", "alice"), allowed: true},
			{name: "absent", req: get("/"), allowed: true},
			{name: "repeated: joined with commas", req: get("/", "x-user", "banned", "x-user", "alice"), policy: "p"},
		}},
		{"allow by port", onePolicy("ALLOW", port8000, anyJSON), []attrCase{
			{name: "8000", req: get("/"), allowed: true, policy: "p"},
			{name: "9000", conn: connOpts{local: "10.0.0.1:9000"}, req: get("/")},
			{name: "tcp 8000", allowed: true, policy: "p"},
		}},
		{"allow by port range", onePolicy("ALLOW", `{"destinationPortRange": {"start": 8000, "end": 8002}}`, anyJSON), []attrCase{
			{name: "8001", conn: connOpts{local: "10.0.0.1:8001"}, allowed: true, policy: "p"},
			{name: "8002 (end excluded)", conn: connOpts{local: "10.0.0.1:8002"}},
		}},
		{"allow by direct remote ip", onePolicy("ALLOW", anyJSON, tenNet), []attrCase{
			{name: "10.1.2.3", allowed: true, policy: "p"},
			{name: "192.0.2.1", conn: connOpts{remote: "192.0.2.1:1"}},
			{name: "IPv4-mapped", conn: connOpts{remote: "[::ffff:10.9.9.9]:1"}, allowed: true, policy: "p"},
			{name: "XFF does not change the direct peer", conn: connOpts{remote: "192.0.2.1:1"}, remote: "10.0.0.9"},
		}},
		{"allow by remote ip", onePolicy("ALLOW", anyJSON, clientNet), []attrCase{
			{name: "client from XFF", req: get("/"), remote: "192.0.2.9", allowed: true, policy: "p"},
			{name: "no XFF: the peer", conn: connOpts{remote: "192.0.2.7:1"}, req: get("/"), allowed: true, policy: "p"},
			{name: "other client", req: get("/"), remote: "198.51.100.1"},
		}},
		{"destination ip and sni", onePolicy("ALLOW",
			`{"andRules": {"rules": [{"destinationIp": {"addressPrefix": "10.0.0.1", "prefixLen": 32}}, {"requestedServerName": {"suffix": ".example.com"}}]}}`, anyJSON), []attrCase{
			{name: "both", conn: connOpts{sni: "a.example.com"}, allowed: true, policy: "p"},
			{name: "other sni", conn: connOpts{sni: "a.example.org"}},
			{name: "other destination", conn: connOpts{local: "10.0.0.2:8000", sni: "a.example.com"}},
		}},
		{"host ignore case", onePolicy("ALLOW", hostExample, anyJSON), []attrCase{
			{name: "match", req: testReq("GET", "/", "API.Example.COM"), allowed: true, policy: "p"},
			{name: "no match", req: testReq("GET", "/", "api.example.org")},
		}},
		{"not, and, or", onePolicy("ALLOW",
			`{"andRules": {"rules": [{"orRules": {"rules": [`+getMethod+`, {"header": {"name": ":method", "stringMatch": {"exact": "HEAD"}}}]}}, {"notRule": `+adminPath+`}]}}`,
			`{"notId": `+tenNet+`}`), []attrCase{
			{name: "GET public from outside", conn: connOpts{remote: "192.0.2.1:1"}, req: get("/x"), allowed: true, policy: "p"},
			{name: "HEAD public from outside", conn: connOpts{remote: "192.0.2.1:1"}, req: testReq("HEAD", "/x", "a"), allowed: true, policy: "p"},
			{name: "GET admin", conn: connOpts{remote: "192.0.2.1:1"}, req: get("/admin")},
			{name: "from 10/8", req: get("/x")},
		}},
		{"header presence and invert", onePolicy("ALLOW",
			`{"andRules": {"rules": [{"header": {"name": "x-token", "presentMatch": true}}, {"header": {"name": "x-debug", "presentMatch": true, "invertMatch": true}}]}}`, anyJSON), []attrCase{
			{name: "token, no debug", req: get("/", "x-token", ""), allowed: true, policy: "p"},
			{name: "token and debug", req: get("/", "x-token", "t", "x-debug", "1")},
			{name: "no token", req: get("/")},
		}},
		{"authenticated without a name", onePolicy("ALLOW", anyJSON, `{"authenticated": {}}`), []attrCase{
			{name: "mTLS", conn: connOpts{cert: other}, allowed: true, policy: "p"},
			{name: "plaintext"},
		}},
		{"jwt claims in metadata", onePolicy("ALLOW", anyJSON, `{"andIds": {"ids": [
			{"metadata": {"filter": "envoy.filters.http.jwt_authn", "path": [{"key": "payload"}, {"key": "iss"}], "value": {"stringMatch": {"exact": "https://issuer"}}}},
			{"metadata": {"filter": "envoy.filters.http.jwt_authn", "path": [{"key": "payload"}, {"key": "groups"}], "value": {"listMatch": {"oneOf": {"stringMatch": {"exact": "admin"}}}}}}]}}`), []attrCase{
			{name: "admin", req: get("/"), md: jwt("https://issuer", "dev", "admin"), allowed: true, policy: "p"},
			{name: "not admin", req: get("/"), md: jwt("https://issuer", "dev")},
			{name: "other issuer", req: get("/"), md: jwt("https://other", "admin")},
			{name: "no token", req: get("/")},
		}},
		{"log allows everything", onePolicy("LOG", adminPath, anyJSON), []attrCase{
			{name: "logged", req: get("/admin"), allowed: true, policy: "p"},
			{name: "not logged", req: get("/"), allowed: true},
		}},
		{"first policy by name", `{"action": "DENY", "policies": {"b": {"permissions": [{"any": true}], "principals": [{"any": true}]}, "a": {"permissions": [` + adminPath + `], "principals": [{"any": true}]}}}`, []attrCase{
			{name: "both match: a", req: get("/admin"), policy: "a"},
			{name: "only b", req: get("/"), policy: "b"},
		}},
		{"allow with no policy denies", `{"action": "ALLOW"}`, []attrCase{
			{name: "anything", req: get("/")},
		}},
	}
	for _, m := range matrix {
		e := mustEngine(t, m.rbac)
		for _, c := range m.cases {
			t.Run(m.name+"/"+c.name, func(t *testing.T) {
				a := &Attributes{Conn: testConn(c.conn), Req: c.req, Metadata: c.md}
				if c.remote != "" {
					a.RemoteIP = netip.MustParseAddr(c.remote)
				}
				ok, p := e.Allowed(a)
				if ok != c.allowed || p != c.policy {
					t.Errorf("Allowed = %v, %q; want %v, %q", ok, p, c.allowed, c.policy)
				}
			})
		}
	}
}

func TestCompileErrors(t *testing.T) {
	for _, tc := range []struct{ js, want string }{
		{`{"policies": {"p": {"permissions": [{"urlPath": {"path": {"safeRegex": {"regex": "("}}}}], "principals": [{"any": true}]}}}`,
			`policies["p"].permissions[0].url_path.path.safe_regex.regex: invalid RE2: error parsing regexp`},
		{`{"policies": {"p": {"permissions": [{"any": true}], "principals": [{"andIds": {"ids": [{"filterState": {"key": "k", "stringMatch": {"exact": "v"}}}]}}]}}}`,
			`policies["p"].principals[0].and_ids.ids[0]: principal *rbacv3.Principal_FilterState is not supported by weft-proxy`},
		{`{"policies": {"p": {"permissions": [{"any": true}], "principals": [{"any": true}], "condition": {"constExpr": {"boolValue": true}}}}}`,
			`policies["p"].condition: CEL conditions are not supported by weft-proxy`},
	} {
		_, err := Compile(mustRBAC(t, tc.js))
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("Compile(%s) = %v, want %q...", tc.js, err, tc.want)
		}
	}
	if e, err := Compile(nil); e != nil || err != nil {
		t.Errorf("Compile(nil) = %v, %v; want nil, nil", e, err)
	}
}
