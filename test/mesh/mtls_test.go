package mesh

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/meshtest"
)

// mtlsMesh is the service hello.default.svc.cluster.local:8080 (HTTP)
// with one workload, hello-v1 at 127.0.0.2 behind its own sidecar with a
// workload certificate (service account hello; the WorkloadEntry says so
// with security.istio.io/tlsMode=istio, as Istio's injector labels pods).
func mtlsMesh(v1 int) string {
	return meshtest.Service{Name: "hello", Port: 8080, Workloads: []meshtest.Workload{
		{Name: "hello-v1", Address: "127.0.0.2", Port: v1, ServiceAccount: "hello", MTLS: true},
	}}.YAML()
}

const strictHello = `
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: hello, namespace: default}
spec:
  selector:
    matchLabels: {app: hello}
  mtls: {mode: STRICT}
`

const onlySleep = `
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: hello, namespace: default}
spec:
  selector:
    matchLabels: {app: hello}
  action: ALLOW
  rules:
  - from:
    - source:
        principals: [cluster.local/ns/default/sa/sleep]
`

// TestMutualTLSBetweenSidecars: sidecars with certificates from
// weft-control's CA talk mTLS automatically (auto mTLS, PERMISSIVE by
// default); the application behind the server sidecar sees its caller's
// SPIFFE identity; STRICT refuses plaintext while mesh traffic goes on;
// an AuthorizationPolicy on the caller's principal admits sleep and denies
// a workload with another identity.
func TestMutualTLSBetweenSidecars(t *testing.T) {
	v1 := startApp(t, "v1")
	cp := startControlPlaneWith(t, map[string]string{"hello.yaml": mtlsMesh(v1.port)}, true)
	startSidecar(t, cp, sidecarOptions{Name: "hello-v1", IP: "127.0.0.2", ServiceAccount: "hello",
		Labels: map[string]string{"app": "hello"}})
	sleep := startSidecar(t, cp, sidecarOptions{Name: "sleep", IP: "127.0.0.3", ServiceAccount: "sleep",
		Labels: map[string]string{"app": "sleep"}})
	other := startSidecar(t, cp, sidecarOptions{Name: "other", IP: "127.0.0.4", ServiceAccount: "other",
		Labels: map[string]string{"app": "other"}})

	const url = "http://hello.default.svc.cluster.local:8080"
	// The caller's identity reaches the application (XFCC), so the hop
	// between the sidecars was mutual TLS with sleep's certificate.
	var body string
	waitFor(t, "an mTLS request from sleep to hello", 10*time.Second, func() bool {
		code, b, err := get(sleep.client(), url+"/xfcc")
		body = b
		return err == nil && code == 200 && strings.Contains(b, "URI=spiffe://cluster.local/ns/default/sa/sleep")
	})
	if !strings.Contains(body, "By=spiffe://cluster.local/ns/default/sa/hello") {
		t.Errorf("x-forwarded-client-cert %q: want By= the server's identity", body)
	}

	// PERMISSIVE (the mesh default): plaintext straight to the server
	// sidecar's inbound port is accepted too.
	direct := fmt.Sprintf("http://127.0.0.2:%d/", v1.port)
	plain := &http.Client{Timeout: 5 * time.Second}
	if code, _, err := get(plain, direct); err != nil || code != 200 {
		t.Fatalf("PERMISSIVE: plaintext to the inbound port: %d %v, want 200", code, err)
	}

	// STRICT: plaintext is refused, mesh traffic continues.
	cp.write("strict.yaml", strictHello)
	waitFor(t, "plaintext refused under STRICT", 5*time.Second, func() bool {
		resp, err := plain.Get(direct)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			plain.CloseIdleConnections()
		}
		return err != nil
	})
	if got := count(t, sleep.client(), url+"/", 20); got["v1"] != 20 {
		t.Fatalf("mesh traffic under STRICT: %v, want 20 × v1", got)
	}

	// AuthorizationPolicy on the caller's principal.
	cp.write("authz.yaml", onlySleep)
	waitFor(t, "other denied by the AuthorizationPolicy", 5*time.Second, func() bool {
		code, _, err := get(other.client(), url+"/")
		return err == nil && code == 403
	})
	code, b, err := get(other.client(), url+"/")
	if err != nil || code != 403 || b != "RBAC: access denied" {
		t.Fatalf("other → hello: %d %q %v, want 403 \"RBAC: access denied\"", code, b, err)
	}
	if got := count(t, sleep.client(), url+"/", 20); got["v1"] != 20 {
		t.Fatalf("sleep → hello under the policy: %v, want 20 × v1", got)
	}
}
