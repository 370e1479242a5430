package controlplane

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

const serviceYAML = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: hello, namespace: default}
spec:
  hosts: [hello.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 8080, name: http, protocol: HTTP}]
  endpoints: [{address: 127.0.0.1}]
`

const routeYAML = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: hello, namespace: default}
spec:
  hosts: [hello.default.svc.cluster.local]
  http: [{route: [{destination: {host: hello.default.svc.cluster.local}}], timeout: %s}]
`

// startPlain runs a control plane over dir without the CA.
func startPlain(t *testing.T, dir string) *ControlPlane {
	t.Helper()
	cp, err := New(Options{ConfigDir: dir, XDSAddress: "127.0.0.1:0", HTTPAddress: "127.0.0.1:0",
		Debounce: 20 * time.Millisecond, Logger: quiet, ID: "weft-control-test"})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- cp.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return cp
}

// scrape GETs /metrics on the monitoring port: series → value.
func scrape(t *testing.T, cp *ControlPlane) map[string]float64 {
	t.Helper()
	resp, err := http.Get("http://" + cp.HTTPAddr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	out := map[string]float64{}
	sc := bufio.NewScanner(strings.NewReader(string(b)))
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			out[line[:i]] = v
		}
	}
	return out
}

// waitMetrics polls /metrics until cond holds, or fails after 10 s.
func waitMetrics(t *testing.T, cp *ControlPlane, what string, cond func(map[string]float64) bool) map[string]float64 {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		m := scrape(t, cp)
		if cond(m) {
			return m
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10 s; metrics: %v", what, m)
		}
		time.Sleep(10 * time.Millisecond) // polling a condition with a deadline
	}
}

func writeFile(t *testing.T, dir, name, content string) {
	t.Helper()
	tmp := filepath.Join(dir, "."+name+".tmp")
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		t.Fatal(err)
	}
}

// TestControlPlaneMetrics: pilot_* configuration metrics after known
// events — the initial push, a valid change, a configuration error — and
// the Go runtime and process collectors.
func TestControlPlaneMetrics(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "svc.yaml", serviceYAML)
	writeFile(t, dir, "vs.yaml", strings.Replace(routeYAML, "%s", "5s", 1))
	cp := startPlain(t, dir)
	m := waitMetrics(t, cp, "the initial push", func(m map[string]float64) bool {
		return m[`pilot_push_triggers{type="global"}`] == 1 && m["pilot_pushcontext_init_seconds_count"] == 1 &&
			m["pilot_services"] == 1 && m["pilot_virt_services"] == 1
	})
	for series, want := range map[string]float64{
		"pilot_services":                         1,
		"pilot_virt_services":                    1,
		"pilot_pushcontext_init_seconds_count":   1,
		`weft_config_problems{severity="error"}`: 0,
	} {
		if m[series] != want {
			t.Errorf("initially: %s = %v, want %v", series, m[series], want)
		}
	}
	for _, series := range []string{"go_goroutines", "process_cpu_seconds_total"} {
		if _, ok := m[series]; !ok {
			t.Errorf("no %s (Go runtime and process collectors)", series)
		}
	}
	if !hasPrefix(m, `istio_build{component="pilot"`) {
		t.Errorf("no istio_build{component=\"pilot\"}")
	}

	// A valid update: a config event and a config-triggered push.
	// The initial load counts as add events.
	if m[`pilot_k8s_cfg_events{event="add",type="VirtualService"}`] != 1 {
		t.Errorf("initial add events: %v, want 1", m[`pilot_k8s_cfg_events{event="add",type="VirtualService"}`])
	}
	writeFile(t, dir, "vs.yaml", strings.Replace(routeYAML, "%s", "7s", 1))
	m = waitMetrics(t, cp, "the update's push", func(m map[string]float64) bool {
		return m["pilot_pushcontext_init_seconds_count"] == 2 && m[`pilot_push_triggers{type="config"}`] >= 1 &&
			m[`pilot_k8s_cfg_events{event="update",type="VirtualService"}`] >= 1
	})
	if m[`pilot_k8s_cfg_events{event="update",type="VirtualService"}`] != 1 || m[`pilot_push_triggers{type="config"}`] != 1 {
		t.Errorf("after an update: cfg events %v, config triggers %v; want 1 and 1",
			m[`pilot_k8s_cfg_events{event="update",type="VirtualService"}`], m[`pilot_push_triggers{type="config"}`])
	}

	// An invalid update: rejected (the last good version stays), counted
	// once, and the problem gauge shows it.
	writeFile(t, dir, "vs.yaml", strings.Replace(routeYAML, "%s", "5x", 1))
	m = waitMetrics(t, cp, "the rejection", func(m map[string]float64) bool {
		return m[`pilot_total_rejected_configs{name="default/hello",type="VirtualService"}`] == 1 &&
			m[`weft_config_problems{severity="error"}`] >= 1
	})
	if m[`weft_config_problems{severity="error"}`] != 1 || m["pilot_virt_services"] != 1 {
		t.Errorf("after a rejected update: problems %v, virtual services %v; want 1 and 1 (the last good version)",
			m[`weft_config_problems{severity="error"}`], m["pilot_virt_services"])
	}
	// A new service: a service-triggered push.
	writeFile(t, dir, "svc2.yaml", strings.ReplaceAll(serviceYAML, "hello", "world"))
	// The gauge and the counters are set at different moments of one
	// reload: wait for all of them.
	m = waitMetrics(t, cp, "the new service", func(m map[string]float64) bool {
		return m["pilot_services"] == 2 && m[`pilot_push_triggers{type="service"}`] >= 1 &&
			m[`pilot_k8s_cfg_events{event="add",type="ServiceEntry"}`] >= 2
	})
	if m[`pilot_push_triggers{type="service"}`] != 1 || m[`pilot_k8s_cfg_events{event="add",type="ServiceEntry"}`] != 2 {
		t.Errorf("after a new ServiceEntry: service triggers %v, add events %v; want 1 and 2 (with the initial load)",
			m[`pilot_push_triggers{type="service"}`], m[`pilot_k8s_cfg_events{event="add",type="ServiceEntry"}`])
	}
	if m[`pilot_total_rejected_configs{name="default/hello",type="VirtualService"}`] != 1 {
		t.Errorf("a standing rejection is counted once, got %v", m[`pilot_total_rejected_configs{name="default/hello",type="VirtualService"}`])
	}
}

func hasPrefix(m map[string]float64, prefix string) bool {
	for k := range m {
		if strings.HasPrefix(k, prefix) {
			return true
		}
	}
	return false
}
