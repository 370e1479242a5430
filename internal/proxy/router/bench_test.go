package router

import (
	"fmt"
	"strings"
	"testing"

	"github.com/weftmesh/weft/internal/proxy/headers"
	"github.com/weftmesh/weft/internal/proxy/upstream/lb"
)

// benchYAML is 10 virtual hosts of 5 routes each (50 routes): prefix, exact
// path, regex, header and query matchers, like a mid-sized ingress.
func benchYAML() string {
	var b strings.Builder
	b.WriteString(`
name: bench
request_headers_to_add:
- {header: {key: x-proxy, value: weft}}
response_headers_to_add:
- {header: {key: x-served-by, value: "%HOSTNAME%"}}
virtual_hosts:
`)
	for v := 0; v < 10; v++ {
		domains := fmt.Sprintf(`["svc%d.example.com", "svc%d.example.com:8080", "*.svc%d.internal"]`, v, v, v)
		if v == 9 {
			domains = `["*"]`
		}
		fmt.Fprintf(&b, `- name: vhost%d
  domains: %s
  request_headers_to_add:
  - {header: {key: x-vhost, value: vhost%d}, append_action: OVERWRITE_IF_EXISTS_OR_ADD}
  routes:
  - {name: v%d-exact, match: {path: "/healthz"}, direct_response: {status: 200}}
  - {name: v%d-grpc, match: {prefix: "/pkg.Service/", grpc: {}}, route: {cluster: grpc%d, timeout: 0s}}
  - name: v%d-regex
    match: {safe_regex: {regex: "/users/[0-9]+/orders"}}
    route: {cluster: users%d, prefix_rewrite: "/orders"}
  - name: v%d-header
    match: {prefix: "/api/", headers: [{name: x-canary, string_match: {exact: "true"}}], query_parameters: [{name: v, string_match: {prefix: "2"}}]}
    route:
      weighted_clusters:
        clusters: [{name: canary%d, weight: 10}, {name: stable%d, weight: 90}]
      hash_policy: [{header: {header_name: x-user}}, {connection_properties: {source_ip: true}}]
    request_headers_to_add:
    - {header: {key: x-client, value: "%%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%%"}}
  - {name: v%d-root, match: {prefix: "/"}, route: {cluster: web%d, prefix_rewrite: "/site/"}}
`, v, domains, v, v, v, v, v, v, v, v, v, v, v)
	}
	return b.String()
}

func benchRequests() map[string]*headers.Request {
	return map[string]*headers.Request{
		"first-vhost-exact": newReq("svc0.example.com", "/healthz"),
		"mid-vhost-regex":   newReq("svc5.example.com:8080", "/users/12345/orders?limit=10"),
		"wildcard-header": newReq("a.svc7.internal", "/api/items?v=2.1&x=y",
			"x-canary", "true", "x-user", "u-42", "accept", "*/*", "user-agent", "bench"),
		"default-vhost-last-route": newReq("unknown.example.net", "/static/app.js",
			"content-type", "text/plain", "accept", "*/*"),
		"grpc": newReq("svc3.example.com", "/pkg.Service/Call", "content-type", "application/grpc", "te", "trailers"),
	}
}

func BenchmarkTableRoute(b *testing.B) {
	tab := compileYAML(b, benchYAML())
	reqs := benchRequests()
	for _, name := range []string{"first-vhost-exact", "mid-vhost-regex", "wildcard-header", "default-vhost-last-route", "grpc"} {
		req := reqs[name]
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if r, _ := tab.Route(req); r == nil {
					b.Fatal("no route")
				}
			}
		})
	}
}

func BenchmarkTableRouteParallel(b *testing.B) {
	tab := compileYAML(b, benchYAML())
	req := benchRequests()["wildcard-header"]
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if r, _ := tab.Route(req); r == nil {
				b.Fatal("no route")
			}
		}
	})
}

// resetRequest rebuilds req's regular headers from fields without allocating
// once req's storage has grown.
func resetRequest(req *headers.Request, path []byte, fields []headers.Field) {
	req.Map.Reset()
	req.Path = path
	for _, f := range fields {
		req.AddRef(f.Name, f.Value)
	}
}

func BenchmarkFinalizeRequest(b *testing.B) {
	tab := compileYAML(b, benchYAML())
	req := benchRequests()["wildcard-header"]
	path := req.Path
	fields := append([]headers.Field(nil), req.Map.Fields...)
	vars := defaultVars()
	r, _ := tab.Route(req)
	b.ReportAllocs()
	for b.Loop() {
		resetRequest(req, path, fields)
		target := r.PickCluster(12345)
		var ctx lb.Context
		r.Hash(req, vars, &ctx, nil)
		r.FinalizeRequest(req, target, vars)
	}
}

func BenchmarkPrefixRewrite(b *testing.B) {
	tab := compileYAML(b, benchYAML())
	req := benchRequests()["default-vhost-last-route"]
	path := req.Path
	fields := append([]headers.Field(nil), req.Map.Fields...)
	r, _ := tab.Route(req)
	b.ReportAllocs()
	for b.Loop() {
		resetRequest(req, path, fields)
		r.ApplyPathRewrite(req)
	}
}

func BenchmarkApplyResponseHeaders(b *testing.B) {
	tab := compileYAML(b, benchYAML())
	req := benchRequests()["wildcard-header"]
	r, _ := tab.Route(req)
	target := r.PickCluster(1)
	vars := defaultVars()
	var resp headers.Response
	b.ReportAllocs()
	for b.Loop() {
		resp.Reset()
		resp.Status = 200
		r.ApplyResponseHeaders(&resp, req, target, vars)
	}
}

// TestHotPathAllocations pins the zero-allocation claims of the package doc.
func TestHotPathAllocations(t *testing.T) {
	tab := compileYAML(t, benchYAML())
	vars := defaultVars()
	for name, req := range benchRequests() {
		if n := testing.AllocsPerRun(200, func() { tab.Route(req) }); n != 0 {
			t.Errorf("Route %s: %v allocs", name, n)
		}
	}
	req := benchRequests()["wildcard-header"]
	path := req.Path
	fields := append([]headers.Field(nil), req.Map.Fields...)
	r, _ := tab.Route(req)
	if n := testing.AllocsPerRun(200, func() {
		resetRequest(req, path, fields)
		var ctx lb.Context
		r.Hash(req, vars, &ctx, nil)
		r.FinalizeRequest(req, r.PickCluster(3), vars)
	}); n != 0 {
		t.Errorf("Hash+FinalizeRequest: %v allocs", n)
	}
	var resp headers.Response
	if n := testing.AllocsPerRun(200, func() {
		resp.Reset()
		r.ApplyResponseHeaders(&resp, req, r.PickCluster(3), vars)
	}); n != 0 {
		t.Errorf("ApplyResponseHeaders: %v allocs", n)
	}
	redirect := compileYAML(t, `
virtual_hosts:
- {name: v, domains: ["*"], routes: [{match: {prefix: "/"}, redirect: {https_redirect: true, prefix_rewrite: "/new"}}]}`)
	rreq := newReq("example.com:80", "/old?x=1", headers.XForwardedProto, "http")
	rr, _ := redirect.Route(rreq)
	buf := make([]byte, 0, 256)
	if n := testing.AllocsPerRun(200, func() { rr.RedirectLocation(rreq, buf[:0]) }); n != 0 {
		t.Errorf("RedirectLocation: %v allocs", n)
	}
	// A repeated header joined for a matcher uses a pooled buffer.
	multi := compileYAML(t, headerMatchYAML)
	mreq := newReq("h", "/multi", "x-a", "1", "x-a", "2")
	if n := testing.AllocsPerRun(200, func() { multi.Route(mreq) }); n != 0 {
		t.Errorf("Route with a repeated header: %v allocs", n)
	}
}
