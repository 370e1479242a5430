package mesh

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// slowMesh is slow.default.svc.cluster.local:9090 (HTTP/1.1) with two
// workloads without sidecars, a and b, in a file of their own each.
const slowService = `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: slow, namespace: default}
spec:
  hosts: [slow.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
  - {number: 9090, name: http, protocol: HTTP}
  workloadSelector:
    labels: {app: slow}
`

const slowWorkload = `
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: slow-{{.name}}, namespace: default}
spec:
  address: 127.0.0.1
  ports: {http: {{.port}}}
  labels: {app: slow}
`

// TestEndpointRemovalDrains: a request in flight to an endpoint that the
// registry drops completes normally (the endpoint's connection is drained,
// not reset), while new requests go only to the remaining endpoint.
func TestEndpointRemovalDrains(t *testing.T) {
	a, b := startApp(t, "a"), startApp(t, "b")
	cp := startControlPlane(t, map[string]string{
		"slow.yaml":   slowService,
		"slow-a.yaml": render(t, slowWorkload, map[string]any{"name": "a", "port": a.port}),
		"slow-b.yaml": render(t, slowWorkload, map[string]any{"name": "b", "port": b.port}),
	})
	client := startSidecar(t, cp, sidecarOptions{Name: "sleep", IP: "127.0.0.3", ProxyPort: freePort(t, "127.0.0.1")})
	c := client.client()
	const svc = "http://slow.default.svc.cluster.local:9090"
	hostOf := func(app *app) string { return fmt.Sprintf("127.0.0.1:%d", app.port) }
	clusters := func() string { return client.admin("/clusters") }
	waitFor(t, "both endpoints in the client sidecar", 5*time.Second, func() bool {
		s := clusters()
		return strings.Contains(s, hostOf(a)) && strings.Contains(s, hostOf(b))
	})

	// Park one request on b: requests to /hold are sent one at a time; one
	// that lands on a is released at once.
	type reply struct {
		code int
		body string
		err  error
	}
	var onB chan reply
	for i := 0; i < 50 && onB == nil; i++ {
		ch := make(chan reply, 1)
		go func() {
			code, body, err := get(c, svc+"/hold")
			ch <- reply{code, body, err}
		}()
		select {
		case <-b.held:
			onB = ch
		case <-a.held:
			a.hold <- struct{}{}
			if r := <-ch; r.err != nil || r.code != 200 || r.body != "a" {
				t.Fatalf("request on a: %+v", r)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("a /hold request reached neither app")
		}
	}
	if onB == nil {
		t.Fatal("50 requests and none landed on b")
	}

	cp.remove("slow-b.yaml")
	waitFor(t, "b gone from the client sidecar", 2*time.Second, func() bool { return !strings.Contains(clusters(), hostOf(b)) })
	if got := count(t, c, svc+"/", 50); got["a"] != 50 {
		t.Fatalf("after removing b: %v, want all 50 on a", got)
	}
	select {
	case r := <-onB:
		t.Fatalf("the request in flight on b ended when b was removed: %+v", r)
	default:
	}
	b.hold <- struct{}{}
	select {
	case r := <-onB:
		if r.err != nil || r.code != 200 || r.body != "b" {
			t.Fatalf("the request in flight on b: %+v, want 200 \"b\" (drained, not reset)", r)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the request in flight on b did not complete after its release")
	}
}
