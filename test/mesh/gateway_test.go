package mesh

import (
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
