package mesh

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/config"
)

// accessLogMeshConfig declares a file access log provider writing the
// authority, status, upstream cluster and the sidecar's listener address
// (which tells the two sidecars apart) to {{.log}}.
const accessLogMeshConfig = `
extensionProviders:
- name: file-log
  envoyFileAccessLog:
    path: {{.log}}
    logFormat:
      text: "%REQ(:AUTHORITY)% %RESPONSE_CODE% %UPSTREAM_CLUSTER% %DOWNSTREAM_LOCAL_ADDRESS%"
`

// accessLogTelemetry turns access logs on mesh-wide (root namespace) and
// off for the workload "quiet".
const accessLogTelemetry = `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: web, namespace: default}
spec:
  hosts: [web.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
  - {number: 8080, name: http, protocol: HTTP}
  endpoints:
  - {address: 127.0.0.1, ports: {http: {{.web}}}}
---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: mesh-default, namespace: istio-system}
spec:
  accessLogging:
  - providers:
    - name: file-log
---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: quiet, namespace: default}
spec:
  selector:
    matchLabels: {app: quiet}
  accessLogging:
  - disabled: true
`

// startControlPlaneMeshYAML is startControlPlane with a mesh configuration
// (YAML, as weft-control --mesh-config reads it).
func startControlPlaneMeshYAML(t *testing.T, files map[string]string, meshYAML string) *controlPlane {
	t.Helper()
	m, errs := config.ParseMeshConfig("mesh.yaml", []byte(meshYAML))
	for _, e := range errs {
		if !e.Warning {
			t.Fatalf("mesh configuration: %v", e)
		}
	}
	return startControlPlaneMesh(t, files, false, m)
}

// TestTelemetryAccessLogs: a mesh-wide Telemetry turns access logs on for
// every sidecar and a workload Telemetry turns them off for "quiet": the
// sleep sidecar writes its request to the provider's file in the
// provider's format; the quiet sidecar gets no access log at all.
func TestTelemetryAccessLogs(t *testing.T) {
	web := startApp(t, "web")
	logFile := filepath.Join(t.TempDir(), "access.log")
	cp := startControlPlaneMeshYAML(t,
		map[string]string{"mesh.yaml": render(t, accessLogTelemetry, map[string]any{"web": web.port})},
		render(t, accessLogMeshConfig, map[string]any{"log": logFile}))
	sleep := startSidecar(t, cp, sidecarOptions{Name: "sleep", IP: "127.0.0.3", Labels: map[string]string{"app": "sleep"},
		ProxyPort: freePort(t, "127.0.0.1")})
	quietSC := startSidecar(t, cp, sidecarOptions{Name: "quiet", IP: "127.0.0.4", Labels: map[string]string{"app": "quiet"},
		ProxyPort: freePort(t, "127.0.0.1")})

	url := "http://web.default.svc.cluster.local:8080/"
	if code, body, err := get(quietSC.client(), url); err != nil || code != 200 || body != "web" {
		t.Fatalf("quiet → web: %d %q %v", code, body, err)
	}
	if code, body, err := get(sleep.client(), url); err != nil || code != 200 || body != "web" {
		t.Fatalf("sleep → web: %d %q %v", code, body, err)
	}

	want := "web.default.svc.cluster.local:8080 200 outbound|8080||web.default.svc.cluster.local " + sleep.proxy
	var content string
	waitFor(t, "the sleep sidecar's access log line", 10*time.Second, func() bool {
		b, _ := os.ReadFile(logFile)
		content = string(b)
		return strings.Contains(content, want+"\n")
	})
	if strings.Contains(content, quietSC.proxy) {
		t.Errorf("the quiet sidecar logged although its Telemetry disables access logs:\n%s", content)
	}
	if lines := strings.Count(content, "\n"); lines != 1 {
		t.Errorf("%d lines, want 1:\n%s", lines, content)
	}
	// The quiet sidecar's configuration carries no access log at all.
	if dump := quietSC.admin("/config_dump"); strings.Contains(dump, "access_log") || strings.Contains(dump, "accessLog") {
		t.Errorf("quiet sidecar configuration has an access log")
	}
	if dump := sleep.admin("/config_dump"); !strings.Contains(dump, logFile) {
		t.Errorf("sleep sidecar configuration lacks the access log to %s", logFile)
	}
	if n := quietSC.srv.Stats().CounterValue("filesystem.write_buffered"); n != 0 {
		t.Errorf("quiet sidecar buffered %d access log lines", n)
	}
}
