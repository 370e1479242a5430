package router

import (
	"math/bits"
	"net/netip"
	"strings"
	"testing"

	"github.com/cespare/xxhash/v2"

	"github.com/weftmesh/weft/internal/proxy/upstream/lb"
)

const hashYAML = `
virtual_hosts:
- name: v
  domains: ["*"]
  routes:
  - {name: header, match: {prefix: "/header"}, route: {cluster: c, hash_policy: [{header: {header_name: X-User}}]}}
  - {name: authority, match: {prefix: "/authority"}, route: {cluster: c, hash_policy: [{header: {header_name: ":authority"}}]}}
  - {name: cookie, match: {prefix: "/cookie"}, route: {cluster: c, hash_policy: [{cookie: {name: session}}]}}
  - {name: cookie-ttl, match: {prefix: "/gen"}, route: {cluster: c, hash_policy: [{cookie: {name: sticky, ttl: 3600.5s, path: /app}}]}}
  - {name: cookie-ttl0, match: {prefix: "/session0"}, route: {cluster: c, hash_policy: [{cookie: {name: sticky, ttl: 0s}}]}}
  - {name: ip, match: {prefix: "/ip"}, route: {cluster: c, hash_policy: [{connection_properties: {source_ip: true}}]}}
  - {name: query, match: {prefix: "/query"}, route: {cluster: c, hash_policy: [{query_parameter: {name: user}}]}}
  - name: combo
    match: {prefix: "/combo"}
    route:
      cluster: c
      hash_policy:
      - {header: {header_name: x-a}}
      - {header: {header_name: x-b}, terminal: true}
      - {connection_properties: {source_ip: true}}
  - {name: none, match: {prefix: "/"}, route: {cluster: c}}
`

func hashOf(t *testing.T, tab *Table, vars Vars, path string, hdrs ...string) (lb.Context, [][]byte) {
	t.Helper()
	req := newReq("host.example", path, hdrs...)
	r, _ := tab.Route(req)
	if r == nil {
		t.Fatalf("%s: no route", path)
	}
	var ctx lb.Context
	cookies := r.Hash(req, vars, &ctx, nil)
	return ctx, cookies
}

func TestHashPolicies(t *testing.T) {
	tab := compileYAML(t, hashYAML)
	vars := defaultVars()
	sum := xxhash.Sum64String

	// Known-answer check that the hash is xxHash64 with seed 0 (Envoy's HashUtil::xxHash64).
	if got := sum("hello"); got != 0x26c7827d889f6da3 {
		t.Fatalf("xxhash64(hello) = %#x", got)
	}
	tests := []struct {
		name string
		path string
		hdrs []string
		vars Vars
		want uint64
		has  bool
	}{
		{"header", "/header", []string{"x-user", "alice"}, vars, sum("alice"), true},
		{"header missing", "/header", nil, vars, 0, false},
		{"pseudo header", "/authority", nil, vars, sum("host.example"), true},
		{"cookie", "/cookie", []string{"cookie", `a=1; session="s1"; b=2`}, vars, sum("s1"), true},
		{"cookie second header", "/cookie", []string{"cookie", "a=1", "cookie", " session=s2"}, vars, sum("s2"), true},
		{"cookie absent no ttl", "/cookie", []string{"cookie", "sessionx=1"}, vars, 0, false},
		{"source ip", "/ip", nil, vars, sum("10.0.0.1"), true},
		{"source ip without vars", "/ip", nil, nil, 0, false},
		{"query", "/query?x=1&user=bob&user=eve", nil, vars, sum("bob"), true},
		{"query encoded", "/query?user=a%20b", nil, vars, sum("a%20b"), true},
		{"no policy", "/none", []string{"x-user", "alice"}, vars, 0, false},
		// combo: x-a, then x-b (terminal), then source ip.
		{"combo all", "/combo", []string{"x-a", "1", "x-b", "2"}, vars, bits.RotateLeft64(sum("1"), 1) ^ sum("2"), true},
		// A terminal policy stops once any hash exists, even one it did not produce.
		{"combo terminal after earlier hash", "/combo", []string{"x-a", "1"}, vars, sum("1"), true},
		{"combo terminal own hash", "/combo", []string{"x-b", "2"}, vars, sum("2"), true},
		{"combo only ip", "/combo", nil, vars, sum("10.0.0.1"), true},
	}
	for _, tc := range tests {
		ctx, cookies := hashOf(t, tab, tc.vars, tc.path, tc.hdrs...)
		if ctx.HasHash != tc.has || ctx.Hash != tc.want {
			t.Errorf("%s: hash %#x (has %v), want %#x (has %v)", tc.name, ctx.Hash, ctx.HasHash, tc.want, tc.has)
		}
		if len(cookies) != 0 {
			t.Errorf("%s: unexpected cookies %q", tc.name, cookies)
		}
	}
}

func TestHashDeterministicAndDistinct(t *testing.T) {
	tab := compileYAML(t, hashYAML)
	vars := defaultVars()
	a1, _ := hashOf(t, tab, vars, "/header", "x-user", "alice")
	a2, _ := hashOf(t, tab, vars, "/header", "x-user", "alice")
	b, _ := hashOf(t, tab, vars, "/header", "x-user", "bob")
	if a1 != a2 || a1.Hash == b.Hash {
		t.Fatalf("same input %#x/%#x, different input %#x", a1.Hash, a2.Hash, b.Hash)
	}
	// Repeated header values hash the same whatever their order (Envoy sorts them).
	m1, _ := hashOf(t, tab, vars, "/header", "x-user", "b", "x-user", "a")
	m2, _ := hashOf(t, tab, vars, "/header", "x-user", "a", "x-user", "b")
	var d xxhash.Digest
	d.ResetWithSeed(xxhash.Sum64String("a"))
	_, _ = d.WriteString("b")
	if m1 != m2 || m1.Hash != d.Sum64() {
		t.Fatalf("multi-value hash %#x / %#x, want %#x", m1.Hash, m2.Hash, d.Sum64())
	}
	// Source IP hashing ignores the port.
	other := defaultVars()
	other.remote = netip.MustParseAddrPort("10.0.0.1:9999")
	i1, _ := hashOf(t, tab, vars, "/ip")
	i2, _ := hashOf(t, tab, other, "/ip")
	if i1 != i2 {
		t.Fatalf("source ip hash depends on port: %#x %#x", i1.Hash, i2.Hash)
	}
}

func TestHashGeneratedCookie(t *testing.T) {
	tab := compileYAML(t, hashYAML)
	vars := defaultVars()
	ctx, cookies := hashOf(t, tab, vars, "/gen")
	if len(cookies) != 1 {
		t.Fatalf("cookies %q", cookies)
	}
	value := generatedCookieValue(vars.remote, vars.local)
	wantValue := xxhash.Sum64String("10.0.0.1:5555" + "10.0.0.2:8080")
	if len(value) != 16 || parseHex(t, string(value)) != wantValue {
		t.Fatalf("cookie value %q, want hex of %#x", value, wantValue)
	}
	want := `sticky="` + string(value) + `"; Max-Age=3600; Path=/app; HttpOnly`
	if string(cookies[0]) != want {
		t.Fatalf("Set-Cookie %q, want %q", cookies[0], want)
	}
	if !ctx.HasHash || ctx.Hash != xxhash.Sum64(value) {
		t.Fatalf("hash %#x, want hash of the generated value", ctx.Hash)
	}
	// The client sends the cookie back: same hash, no new cookie.
	ctx2, cookies2 := hashOf(t, tab, vars, "/gen", "cookie", "sticky="+string(value))
	if len(cookies2) != 0 || ctx2 != ctx {
		t.Fatalf("returning client: cookies %q hash %#x", cookies2, ctx2.Hash)
	}
	// ttl 0: a session cookie, without Max-Age.
	_, cookies0 := hashOf(t, tab, vars, "/session0")
	if len(cookies0) != 1 || strings.Contains(string(cookies0[0]), "Max-Age") || !strings.HasSuffix(string(cookies0[0]), `"; HttpOnly`) {
		t.Fatalf("ttl 0 cookie %q", cookies0)
	}
}

func parseHex(t *testing.T, s string) uint64 {
	t.Helper()
	var v uint64
	for _, c := range s {
		v <<= 4
		switch {
		case c >= '0' && c <= '9':
			v |= uint64(c - '0')
		case c >= 'a' && c <= 'f':
			v |= uint64(c-'a') + 10
		default:
			t.Fatalf("not lower-case hex: %q", s)
		}
	}
	return v
}
