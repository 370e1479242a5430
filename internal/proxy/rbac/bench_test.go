package rbac

import (
	"testing"

	"github.com/weftmesh/weft/internal/proxy/headers"
	"github.com/weftmesh/weft/internal/proxy/stats"
)

// istioLike is the shape translate emits for a DENY and an ALLOW policy
// with paths, methods, headers, namespaces and IP blocks.
const istioLike = `{"action": "ALLOW", "policies": {
  "ns[foo]-policy[a]-rule[0]": {
    "permissions": [{"andRules": {"rules": [
      {"orRules": {"rules": [{"header": {"name": ":method", "stringMatch": {"exact": "GET"}}}]}},
      {"orRules": {"rules": [{"urlPath": {"path": {"prefix": "/info"}}}, {"urlPath": {"path": {"suffix": ".png"}}}]}},
      {"notRule": {"orRules": {"rules": [{"destinationPort": 15020}]}}}]}}],
    "principals": [{"andIds": {"ids": [
      {"orIds": {"ids": [{"directRemoteIp": {"addressPrefix": "10.0.0.0", "prefixLen": 8}}]}},
      {"orIds": {"ids": [{"header": {"name": "x-user", "stringMatch": {"prefix": "alice"}}}]}}]}}]},
  "ns[foo]-policy[b]-rule[0]": {
    "permissions": [{"andRules": {"rules": [{"any": true}]}}],
    "principals": [{"andIds": {"ids": [{"orIds": {"ids": [{"authenticated": {"principalName": {"safeRegex": {"regex": ".*/ns/test/.*"}}}}]}}]}}]}
}}`

func benchFilter(b testing.TB) (*HTTPFilter, *headers.Request) {
	f := httpFilter(b, istioLike, "", stats.NewStore())
	return f, testReq("GET", "/info/page?x=1", "svc:8000", "user-agent", "curl", "x-user", "alice-1", "accept", "*/*")
}

// TestDecideAllocationFree: evaluating a request (plaintext) allocates
// nothing.
func TestDecideAllocationFree(t *testing.T) {
	f, req := benchFilter(t)
	s, w, st := serve(f, req)
	if st != 0 || w.sent {
		t.Fatal("request denied")
	}
	allocs := testing.AllocsPerRun(1000, func() {
		if f.DecodeHeaders(s) != 0 {
			t.Fatal("denied")
		}
	})
	if allocs != 0 {
		t.Errorf("DecodeHeaders allocates %.1f times per request, want 0", allocs)
	}
}

func BenchmarkHTTPFilterAllow(b *testing.B) {
	f, req := benchFilter(b)
	s, _, _ := serve(f, req)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if f.DecodeHeaders(s) != 0 {
			b.Fatal("denied")
		}
	}
}

func BenchmarkHTTPFilterDenyLocalReply(b *testing.B) {
	f, _ := benchFilter(b)
	s, w, _ := serve(f, testReq("POST", "/", "svc:8000"))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		w.sent = false
		w.body.Reset()
		if f.DecodeHeaders(s) != 1 {
			b.Fatal("allowed")
		}
	}
}
