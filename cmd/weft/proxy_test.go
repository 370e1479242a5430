package main

import (
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/controlplane"
	"github.com/weftmesh/weft/internal/meshtest"
	"github.com/weftmesh/weft/internal/proxy/agent"
	"github.com/weftmesh/weft/internal/proxy/server"
	"github.com/weftmesh/weft/internal/xds"
	"github.com/weftmesh/weft/internal/xds/xdstest"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// meshConfig is a service with one workload (no sidecar: nothing binds
// its address), its subsets and a VirtualService to v1.
var meshConfig = func() string {
	hello := meshtest.Service{Name: "hello", Port: 8080,
		Workloads: []meshtest.Workload{{Name: "hello-v1", Address: "127.0.0.2", Port: 18080, Version: "v1"}}}
	return hello.YAML() + "---\n" + hello.VirtualServiceYAML("hello", meshtest.Route{To: []meshtest.Destination{{Subset: "v1"}}})
}()

// testMesh is a running weft-control and the ports tests mask.
type testMesh struct {
	cp *controlplane.ControlPlane
	// masks are replaced in outputs compared with goldens.
	masks map[string]string
}

// startMesh runs weft-control over meshConfig on loopback ports.
func startMesh(t *testing.T) *testMesh {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "mesh.yaml"), []byte(meshConfig), 0o644); err != nil {
		t.Fatal(err)
	}
	cp := meshtest.RunControlPlane(t, controlplane.Options{ConfigDir: dir, XDSAddress: "127.0.0.1:0", HTTPAddress: "127.0.0.1:0",
		Debounce: 20 * time.Millisecond, Logger: quiet, ID: "weft-control-test"})
	_, xdsPort, _ := net.SplitHostPort(cp.XDSAddr().String())
	return &testMesh{cp: cp, masks: map[string]string{xdsPort: "XDSPORT"}}
}

// cpAddr is the --control-plane-address flag for the mesh.
func (m *testMesh) cpAddr() string { return "--control-plane-address=" + m.cp.HTTPAddr().String() }

// mask replaces the run's ports in out.
func (m *testMesh) mask(out string) string {
	for from, to := range m.masks {
		out = strings.ReplaceAll(out, from, to)
	}
	return out
}

// freePort is meshtest.FreePort.
func freePort(t *testing.T, ip string) int { return meshtest.FreePort(t, ip) }

// startSidecar runs a weft-proxy sidecar in dynamic mode (the bootstrap
// `weft-proxy sidecar` builds) and waits for its initial configuration.
// admin "": a fixed free port on ip, reported in the node metadata.
func (m *testMesh) startSidecar(t *testing.T, name, ip, admin string) *server.Server {
	t.Helper()
	if admin == "" {
		port := freePort(t, ip)
		admin = net.JoinHostPort(ip, strconv.Itoa(port))
		m.masks[strconv.Itoa(port)] = "ADMINPORT"
	}
	proxyPort := freePort(t, "127.0.0.1")
	m.masks[strconv.Itoa(proxyPort)] = "PROXYPORT"
	return meshtest.StartProxy(t, meshtest.ProxyOptions{Agent: &agent.Options{DiscoveryAddress: m.cp.XDSAddr().String(), Type: "sidecar", IP: ip, Name: name,
		Namespace: "default", ServiceAccount: "default", HTTPProxyPort: strconv.Itoa(proxyPort), AdminAddress: admin},
		DrainTime: time.Second, Logger: quiet})
}

// waitSynced waits until weft-control has every type of n proxies ACKed.
func (m *testMesh) waitSynced(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st := m.cp.XDS().SyncStatus()
		synced := len(st) == n
		for _, ps := range st {
			for _, typ := range statusTypes {
				synced = synced && ps.Types[typ.url].State == xds.StateSynced
			}
		}
		if synced {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("proxies not synced within 10 s: %+v", st)
		}
		time.Sleep(10 * time.Millisecond) // polling a condition with a deadline
	}
}

// TestProxyStatus: one row per connected proxy with the state of each
// type; a NACKing client shows NACKED and its reason; one proxy by name;
// JSON and YAML.
func TestProxyStatus(t *testing.T) {
	m := startMesh(t)
	m.startSidecar(t, "sleep", "127.0.0.3", "")
	m.startSidecar(t, "other", "127.0.0.5", "127.0.0.1:0")
	m.waitSynced(t, 2)

	code, out, errOut := weft("proxy-status", m.cpAddr())
	if code != 0 {
		t.Fatalf("status %d: %s", code, errOut)
	}
	golden(t, "proxy-status.golden.txt", m.mask(out))

	// A client that rejects every route configuration.
	c, err := xdstest.NewADS(xdstest.Options{Address: m.cp.XDSAddr().String(),
		Node: xdstest.NodeFor("sidecar~127.0.0.9~picky.default~default.svc.cluster.local", nil, map[string]string{"HTTP_PROXY_PORT": "0"}),
		Reject: func(r *xdstest.Response) error {
			if r.TypeURL == xdstest.RouteType {
				return errors.New("route http_proxy: not today")
			}
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	waitFor(t, "picky's NACK", func() bool {
		return m.cp.XDS().SyncStatus()["sidecar~127.0.0.9~picky.default~default.svc.cluster.local"].Types[xdstest.RouteType].State == xds.StateNACKed
	})
	code, out, _ = weft("proxy-status", m.cpAddr(), "picky")
	if code != 0 || !strings.Contains(out, "picky.default") || strings.Contains(out, "sleep.default") {
		t.Fatalf("proxy-status picky: status %d\n%s", code, out)
	}
	for _, want := range []string{"NACKED", "Rejected configuration (the proxy keeps its last good one):", "picky.default RDS (version ", "): route http_proxy: not today"} {
		if !strings.Contains(out, want) {
			t.Errorf("proxy-status picky lacks %q:\n%s", want, out)
		}
	}

	code, out, _ = weft("proxy-status", m.cpAddr(), "-o", "json")
	var st map[string]xds.ProxyStatus
	if err := json.Unmarshal([]byte(out), &st); code != 0 || err != nil || len(st) != 3 {
		t.Fatalf("-o json: status %d, %v, %d proxies\n%s", code, err, len(st), out)
	}
	ps := st["sidecar~127.0.0.3~sleep.default~default.svc.cluster.local"]
	if ps.Name != "sleep" || ps.ControlPlane != "weft-control-test" || !strings.HasPrefix(ps.AdminAddress, "127.0.0.3:") {
		t.Errorf("-o json sleep: %+v", ps)
	}
	code, out, _ = weft("proxy-status", m.cpAddr(), "sleep.default", "-o", "yaml")
	if code != 0 || !strings.Contains(out, "control_plane: weft-control-test") || !strings.Contains(out, "state: SYNCED") {
		t.Errorf("-o yaml: status %d\n%s", code, out)
	}
}

// waitFor polls cond for up to 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10 s", what)
		}
		time.Sleep(10 * time.Millisecond) // polling a condition with a deadline
	}
}

// TestProxyConfig: each table of a real sidecar found through
// weft-control, the filters, raw JSON and YAML, and --admin-address.
func TestProxyConfig(t *testing.T) {
	m := startMesh(t)
	srv := m.startSidecar(t, "sleep", "127.0.0.3", "")
	m.waitSynced(t, 1)

	for _, kind := range []string{"clusters", "listeners", "routes", "endpoints", "secrets"} {
		code, out, errOut := weft("proxy-config", kind, "sleep.default", m.cpAddr())
		if code != 0 {
			t.Fatalf("%s: status %d: %s", kind, code, errOut)
		}
		golden(t, "proxy-config-"+kind+".golden.txt", m.mask(out))
	}
	code, all, _ := weft("pc", "all", "sleep", m.cpAddr())
	if code != 0 || strings.Count(all, "SERVICE FQDN") != 1 || strings.Count(all, "VHOST NAME") != 1 || strings.Count(all, "OUTLIER CHECK") != 1 {
		t.Errorf("all: status %d\n%s", code, all)
	}

	// Filters, as istioctl's.
	code, out, _ := weft("proxy-config", "clusters", "sleep", m.cpAddr(), "--fqdn", "hello.default.svc.cluster.local", "--subset", "v1", "--direction", "outbound", "--port", "8080")
	if lines := strings.Split(strings.TrimSpace(out), "\n"); code != 0 || len(lines) != 2 || !strings.Contains(lines[1], "v1") {
		t.Errorf("filtered clusters: status %d\n%s", code, out)
	}

	// Raw: the clusters themselves.
	code, out, _ = weft("proxy-config", "clusters", "sleep", m.cpAddr(), "--fqdn", "hello.default.svc.cluster.local", "-o", "json")
	var raw []map[string]any
	if err := json.Unmarshal([]byte(out), &raw); code != 0 || err != nil || len(raw) != 2 || raw[0]["name"] != "outbound|8080||hello.default.svc.cluster.local" {
		t.Errorf("clusters -o json: status %d, %v\n%s", code, err, out)
	}
	code, out, _ = weft("proxy-config", "routes", "sleep", m.cpAddr(), "-o", "yaml")
	if code != 0 || !strings.Contains(out, "virtual_hosts:") {
		t.Errorf("routes -o yaml: status %d\n%s", code, out)
	}

	// Straight to the admin interface, without weft-control.
	code, out, _ = weft("proxy-config", "endpoints", "--admin-address", srv.AdminAddr().String())
	if code != 0 || m.mask(out) != golden0(t, "proxy-config-endpoints.golden.txt") {
		t.Errorf("--admin-address: status %d\n%s", code, out)
	}
}

// TestProxyCLIErrors: each failure says what to do next.
func TestProxyCLIErrors(t *testing.T) {
	m := startMesh(t)
	m.startSidecar(t, "sleep", "127.0.0.3", "")
	m.startSidecar(t, "other", "127.0.0.5", "127.0.0.1:0")
	m.waitSynced(t, 2)
	closed := "127.0.0.1:" + strconv.Itoa(freePort(t, "127.0.0.1"))
	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"unknown proxy", []string{"proxy-status", "nobody", m.cpAddr()},
			[]string{`weft: proxy "nobody" is not connected to weft-control at `, "; connected proxies: other.default, sleep.default"}},
		{"control plane down", []string{"proxy-status", "--control-plane-address", closed},
			[]string{"weft: cannot reach weft-control at http://" + closed + "/debug/syncz: ", "--control-plane-address HOST:PORT"}},
		{"config: control plane down", []string{"proxy-config", "clusters", "sleep", "--control-plane-address", closed},
			[]string{"weft: cannot reach weft-control at http://" + closed}},
		{"no admin address", []string{"proxy-config", "clusters", "other", m.cpAddr()},
			[]string{"weft: proxy other.default does not report its admin address", "pass --admin-address IP:PORT"}},
		{"admin down", []string{"proxy-config", "routes", "--admin-address", closed},
			[]string{"weft: cannot reach the admin interface of proxy " + closed, "Pass its admin address with --admin-address IP:PORT."}},
		{"no proxy", []string{"proxy-config", "clusters", m.cpAddr()},
			[]string{"weft: name the proxy (weft proxy-status lists them), or pass --admin-address IP:PORT"}},
		{"bad output", []string{"proxy-status", "-o", "csv", m.cpAddr()},
			[]string{`weft: unknown output format "csv": use -o table, -o json, -o yaml`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := weft(tc.args...)
			if code != 1 || out != "" {
				t.Fatalf("status %d, stdout %q, stderr %q; want status 1 and only stderr", code, out, errOut)
			}
			for _, w := range tc.want {
				if !strings.Contains(errOut, w) {
					t.Errorf("stderr %q lacks %q", errOut, w)
				}
			}
		})
	}
}
