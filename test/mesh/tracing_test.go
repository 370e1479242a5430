package mesh

import (
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"testing"
	"time"

	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/weftmesh/weft/internal/config"
	"github.com/weftmesh/weft/internal/proxy/tracing/otlptest"
)

// tracingMeshConfig is weft-control's --mesh-config: two OpenTelemetry
// providers for the receiver the test runs (OTLP/gRPC and OTLP/HTTP, both
// at 127.0.0.1, so weft-control generates dedicated collector clusters),
// the gRPC one the default.
const tracingMeshConfig = `
enableTracing: true
defaultProviders: {tracing: [otel]}
extensionProviders:
- name: otel
  opentelemetry: {service: 127.0.0.1, port: {{.grpc}}}
- name: otel-http
  opentelemetry: {service: 127.0.0.1, port: {{.httpPort}}, http: {path: /v1/traces}}
`

// tracingMesh: front (127.0.0.22) calls backend (127.0.0.21) through its
// sidecar; a root-namespace Telemetry samples 100 %; backend's sidecar
// reports through the OTLP/HTTP provider (a workload Telemetry).
const tracingMesh = `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: front, namespace: default}
spec:
  hosts: [front.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: {{.front}}, name: http, protocol: HTTP}]
  workloadSelector: {labels: {app: front}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: front-1, namespace: default}
spec: {address: 127.0.0.22, labels: {app: front}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: backend, namespace: default}
spec:
  hosts: [backend.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: {{.backend}}, name: http, protocol: HTTP}]
  workloadSelector: {labels: {app: backend}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: backend-1, namespace: default}
spec: {address: 127.0.0.21, labels: {app: backend}}
---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: mesh-default, namespace: istio-system}
spec:
  tracing:
  - randomSamplingPercentage: 100
---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: backend, namespace: default}
spec:
  selector: {matchLabels: {app: backend}}
  tracing:
  - providers: [{name: otel-http}]
`

// propagated are the headers an application copies from the request it
// serves to the requests it makes, as Istio asks applications to.
var propagated = []string{"x-request-id", "traceparent", "tracestate", "b3",
	"x-b3-traceid", "x-b3-spanid", "x-b3-parentspanid", "x-b3-sampled", "x-b3-flags"}

// startFront serves the front app on 127.0.0.1:port: each request calls
// backend through the front sidecar's HTTP proxy, propagating the trace
// headers, and answers "front>" + backend's body.
func startFront(t *testing.T, port int, proxy string, backendURL string) {
	t.Helper()
	pu, _ := url.Parse("http://" + proxy)
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: http.ProxyURL(pu)}}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req, _ := http.NewRequest("GET", backendURL, nil)
		for _, k := range propagated {
			if v := r.Header.Get(k); v != "" {
				req.Header.Set(k, v)
			}
		}
		resp, err := c.Do(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		io.WriteString(w, "front>"+string(b))
	})
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go hs.Serve(l)
	t.Cleanup(func() { hs.Close() })
}

// TestTracingMultiHop: a request from a client sidecar to front, which
// calls backend, reaches a real OTLP receiver as ONE trace of four spans
// (client sidecar CLIENT → front sidecar SERVER → front sidecar CLIENT →
// backend sidecar SERVER), each the parent of the next, exported over
// OTLP/gRPC and, for backend's sidecar, OTLP/HTTP; configured from
// --mesh-config and Telemetry at 100 % sampling.
func TestTracingMultiHop(t *testing.T) {
	rcv := otlptest.Start(t)
	backend := startApp(t, "backend")
	frontPort := freePort(t, "127.0.0.1")
	frontProxy := freePort(t, "127.0.0.1")
	vars := map[string]any{"grpc": rcv.GRPCAddr.Port, "httpPort": rcv.HTTPAddr.Port, "front": frontPort, "backend": backend.port}
	mc, errs := config.ParseMeshConfig("mesh-config.yaml", []byte(render(t, tracingMeshConfig, vars)))
	if len(errs) > 0 {
		t.Fatalf("mesh config: %v", errs)
	}
	cp := startControlPlaneMesh(t, map[string]string{"mesh.yaml": render(t, tracingMesh, vars)}, false, mc)
	startSidecar(t, cp, sidecarOptions{Name: "backend-1", IP: "127.0.0.21", Labels: map[string]string{"app": "backend"},
		ProxyPort: freePort(t, "127.0.0.1")})
	startSidecar(t, cp, sidecarOptions{Name: "front-1", IP: "127.0.0.22", Labels: map[string]string{"app": "front"},
		ProxyPort: frontProxy})
	client := startSidecar(t, cp, sidecarOptions{Name: "client-1", IP: "127.0.0.23", Labels: map[string]string{"app": "client"},
		ProxyPort: freePort(t, "127.0.0.1")})
	startFront(t, frontPort, net.JoinHostPort("127.0.0.1", strconv.Itoa(frontProxy)),
		"http://backend.default.svc.cluster.local:"+strconv.Itoa(backend.port)+"/b")

	code, body, err := get(client.client(), "http://front.default.svc.cluster.local:"+strconv.Itoa(frontPort)+"/f")
	if err != nil || code != 200 || body != "front>backend" {
		t.Fatalf("request: %d %q %v, want 200 front>backend", code, body, err)
	}

	// Spans are exported by each sidecar's batch span processor within
	// its flush interval (Envoy's 5 s).
	var spans []otlptest.Span
	waitFor(t, "four spans at the OTLP receiver", 20*time.Second, func() bool {
		spans = rcv.Spans()
		return len(spans) >= 4
	})
	if len(spans) != 4 {
		t.Fatalf("received %d spans, want 4: %+v", len(spans), spans)
	}
	byParent := map[string]otlptest.Span{}
	var root otlptest.Span
	for _, s := range spans {
		if s.TraceID != spans[0].TraceID {
			t.Fatalf("spans of several traces: %+v", spans)
		}
		if s.ParentID == "" {
			root = s
			continue
		}
		byParent[s.ParentID] = s
	}
	want := []struct {
		kind    tracepb.Span_SpanKind
		name    string
		service string
		via     string
	}{
		{tracepb.Span_SPAN_KIND_CLIENT, "egress front.default.svc.cluster.local:" + strconv.Itoa(frontPort), "client.default", "grpc"},
		{tracepb.Span_SPAN_KIND_SERVER, "ingress", "front.default", "grpc"},
		{tracepb.Span_SPAN_KIND_CLIENT, "egress backend.default.svc.cluster.local:" + strconv.Itoa(backend.port), "front.default", "grpc"},
		{tracepb.Span_SPAN_KIND_SERVER, "ingress", "backend.default", "http"},
	}
	cur := root
	for i, w := range want {
		if cur.SpanID == "" {
			t.Fatalf("hop %d: no span (the chain of parents is broken): %+v", i, spans)
		}
		if cur.Kind != w.kind || cur.Name != w.name || cur.Service != w.service || cur.Via != w.via {
			t.Errorf("hop %d: %s %q service %q via %s, want %s %q %q via %s", i, cur.Kind, cur.Name, cur.Service, cur.Via,
				w.kind, w.name, w.service, w.via)
		}
		if cur.Attributes["http.status_code"] != "200" || cur.Attributes["component"] != "proxy" {
			t.Errorf("hop %d: tags %v", i, cur.Attributes)
		}
		cur = byParent[cur.SpanID]
	}
	// One x-request-id along the whole path, as Envoy's guid tag shows.
	for _, s := range spans {
		if s.Attributes["guid:x-request-id"] != root.Attributes["guid:x-request-id"] || s.Attributes["guid:x-request-id"] == "" {
			t.Errorf("span %s: x-request-id %q, want %q on every hop", s.Name, s.Attributes["guid:x-request-id"], root.Attributes["guid:x-request-id"])
		}
	}
}
