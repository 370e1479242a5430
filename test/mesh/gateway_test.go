package mesh

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"io"
	"math/big"
	"net/http"
	"strconv"
	"testing"
	"time"
)

// ingress is a Gateway for router proxies labelled istio=ingressgateway,
// bound to loopback on {{.port}}, and a VirtualService attached to it:
// hello.example.com goes to subset v2, /v1 to subset v1.
const ingress = `
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: ingress, namespace: default}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: {{.port}}, name: http, protocol: HTTP}
    bind: 127.0.0.1
    hosts: ["*/hello.example.com"]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: hello-ingress, namespace: default}
spec:
  hosts: [hello.example.com]
  gateways: [ingress]
  http:
  - match:
    - uri: {prefix: /v1}
    route:
    - destination: {host: hello.default.svc.cluster.local, subset: v1}
  - route:
    - destination: {host: hello.default.svc.cluster.local, subset: v2}
`

// TestIngressGateway: a router proxy gets the Gateway's listener and the
// VirtualServices bound to it, and nothing of the mesh-only routes.
func TestIngressGateway(t *testing.T) {
	h := startHello(t, 100, 0)
	port := freePort(t, "127.0.0.1")
	h.cp.write("ingress.yaml", render(t, ingress, map[string]any{"port": port}))
	gw := startSidecar(t, h.cp, sidecarOptions{
		Type: "router", Name: "ingressgateway", IP: "127.0.0.5",
		Labels: map[string]string{"istio": "ingressgateway"},
	})
	name := "127.0.0.1_" + strconv.Itoa(port)
	waitFor(t, "the gateway listener "+name, 5*time.Second, func() bool { return gw.srv.ListenerAddr(name) != nil })
	url := "http://127.0.0.1:" + strconv.Itoa(port)
	c := &http.Client{Timeout: 10 * time.Second}
	for _, tc := range []struct{ host, path, want string }{
		{"hello.example.com", "/", "v2"},
		{"hello.example.com", "/v1/x", "v1"},
		{"hello.example.com:" + strconv.Itoa(port), "/", "v2"},
	} {
		req, _ := http.NewRequest("GET", url+tc.path, nil)
		req.Host = tc.host
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("%s%s through the gateway: %v", tc.host, tc.path, err)
		}
		b := make([]byte, 16)
		n, _ := resp.Body.Read(b)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(b[:n]) != tc.want {
			t.Errorf("%s%s through the gateway: %d %q, want 200 %q", tc.host, tc.path, resp.StatusCode, b[:n], tc.want)
		}
	}
	// The mesh's own host is not exposed by the gateway.
	req, _ := http.NewRequest("GET", url+"/", nil)
	req.Host = "hello.default.svc.cluster.local:8080"
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Errorf("a mesh host through the gateway: %d, want 404", resp.StatusCode)
	}
}

// gatewayPolicies are Istio's "Authorization on Ingress Gateway" and "JWT
// on ingress" shapes: policies in the gateway's namespace that select its
// workload. /admin is denied to everyone; /v1 needs a valid JWT.
const gatewayPolicies = `
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-admin, namespace: default}
spec:
  selector:
    matchLabels: {istio: ingressgateway}
  action: DENY
  rules:
  - to:
    - operation:
        paths: ["/admin*"]
---
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: ingress-jwt, namespace: default}
spec:
  selector:
    matchLabels: {istio: ingressgateway}
  jwtRules:
  - issuer: https://issuer.weft.test
    jwks: '{{.jwks}}'
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: v1-needs-jwt, namespace: default}
spec:
  selector:
    matchLabels: {istio: ingressgateway}
  action: DENY
  rules:
  - from:
    - source:
        notRequestPrincipals: ["*"]
    to:
    - operation:
        paths: ["/v1*"]
`

// TestIngressGatewayPolicies: AuthorizationPolicy and RequestAuthentication
// that select the gateway workload are enforced by the gateway itself:
// 403 "RBAC: access denied" for a denied path or a request without a
// token, 401 for an invalid token, 200 otherwise.
func TestIngressGatewayPolicies(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	jwks, _ := json.Marshal(map[string]any{"keys": []any{map[string]any{
		"kty": "RSA", "kid": "k1", "alg": "RS256", "use": "sig",
		"n": b64url(key.N.Bytes()), "e": b64url(big.NewInt(int64(key.E)).Bytes()),
	}}})
	h := startHello(t, 100, 0)
	port := freePort(t, "127.0.0.1")
	h.cp.write("ingress.yaml", render(t, ingress, map[string]any{"port": port}))
	h.cp.write("policies.yaml", render(t, gatewayPolicies, map[string]any{"jwks": string(jwks)}))
	gw := startSidecar(t, h.cp, sidecarOptions{
		Type: "router", Name: "ingressgateway", IP: "127.0.0.5",
		Labels: map[string]string{"istio": "ingressgateway"},
	})
	url := "http://127.0.0.1:" + strconv.Itoa(port)
	c := &http.Client{Timeout: 10 * time.Second}
	do := func(path, token string) (int, string) {
		req, _ := http.NewRequest("GET", url+path, nil)
		req.Host = "hello.example.com"
		if token != "" {
			req.Header.Set("authorization", "Bearer "+token)
		}
		resp, err := c.Do(req)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	waitFor(t, "the gateway enforcing deny-admin", 10*time.Second, func() bool {
		code, _ := do("/admin", "")
		return code == 403
	})
	now := time.Now().Unix()
	valid := signRS256(t, key, map[string]any{"iss": "https://issuer.weft.test", "sub": "alice", "exp": now + 3600})
	expired := signRS256(t, key, map[string]any{"iss": "https://issuer.weft.test", "sub": "alice", "exp": now - 3600})
	for _, tc := range []struct {
		path, token string
		want        int
		body        string
	}{
		{"/", "", 200, "v2"},
		{"/admin/users", "", 403, "RBAC: access denied"},
		{"/admin", valid, 403, "RBAC: access denied"},
		{"/v1/x", "", 403, "RBAC: access denied"},
		{"/v1/x", valid, 200, "v1"},
		{"/v1/x", expired, 401, "Jwt is expired"},
	} {
		if code, body := do(tc.path, tc.token); code != tc.want || body != tc.body {
			t.Errorf("GET %s (token %v): %d %q, want %d %q", tc.path, tc.token != "", code, body, tc.want, tc.body)
		}
	}
	prefix := "http.outbound_127.0.0.1_" + strconv.Itoa(port) + ".rbac."
	if n := gw.srv.Stats().CounterValue(prefix + "denied"); n < 3 {
		t.Errorf("%sdenied = %d, want at least 3", prefix, n)
	}
}
