// Package capture tests transparent traffic capture end to end, as in an
// Istio pod: network namespaces joined by veth pairs, `weft iptables`
// (iptables in one workload, nftables in the other) redirecting TCP to
// weft-proxy sidecars that run as UID/GID 1337 and take Istio's
// capture-mode listeners from weft-control (virtualOutbound,
// virtualInbound), and applications that know nothing of the mesh: a plain
// net/http client calling http://hello.default.svc.cluster.local:8080 (the
// name in the namespace's /etc/hosts, resolving to the ServiceEntry's
// address) and a plain net/http server on :8080.
//
// The test needs root (namespaces, netfilter, switching user); it installs
// Debian's iptables and nftables packages when they are missing.
package capture

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/ca"
	"github.com/weftmesh/weft/internal/controlplane"
	"github.com/weftmesh/weft/internal/netnstest"
	"github.com/weftmesh/weft/internal/syncbuf"
)

// The helper processes are this test binary run again with
// WEFT_CAPTURE_HELPER set: "server" serves :8080, "client" GETs
// WEFT_CAPTURE_URL once.
const (
	helperEnv = "WEFT_CAPTURE_HELPER"
	urlEnv    = "WEFT_CAPTURE_URL"
	vip       = "240.240.0.10" // hello's ServiceEntry address
	proxyUID  = "1337"
)

func TestMain(m *testing.M) {
	switch os.Getenv(helperEnv) {
	case "server":
		os.Exit(serveApp())
	case "client":
		os.Exit(callApp(os.Getenv(urlEnv)))
	}
	os.Exit(m.Run())
}

// echo is what the application server answers: what it saw of the caller.
type echo struct {
	Remote string `json:"remote"`
	XFCC   string `json:"xfcc"`
}

// serveApp is an application that knows nothing of the mesh.
func serveApp() int {
	ln, err := net.Listen("tcp", ":8080")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println("ready")
	err = http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(echo{Remote: r.RemoteAddr, XFCC: r.Header.Get("X-Forwarded-Client-Cert")})
	}))
	fmt.Fprintln(os.Stderr, err)
	return 1
}

// callApp is a plain net/http client: it prints the body, exit status 0
// for a 200.
func callApp(url string) int {
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		fmt.Fprintf(os.Stderr, "status %d %v: %s", resp.StatusCode, resp.Header, body)
		return 1
	}
	io.Copy(os.Stdout, resp.Body)
	return 0
}

// config is the mesh: hello.default.svc.cluster.local on 240.240.0.10:8080,
// one workload with a sidecar (service account hello) at the B namespace's
// address; Istio's default PERMISSIVE mTLS.
const config = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: hello, namespace: default}
spec:
  hosts: [hello.default.svc.cluster.local]
  addresses: [` + vip + `]
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
  - {number: 8080, name: http, protocol: HTTP}
  workloadSelector:
    labels: {app: hello}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: hello-1, namespace: default}
spec:
  address: %s
  labels: {app: hello}
  serviceAccount: hello
`

// TestTransparentCapture: outbound capture (the client's request crosses
// both sidecars over mTLS: the server sees the client's SPIFFE identity in
// x-forwarded-client-cert and a connection from its sidecar), inbound
// capture of a caller without sidecar, passthrough of a destination
// outside the mesh (ORIGINAL_DST) without the proxy's own connection
// looping back into it, and cleanup of both backends' rules.
func TestTransparentCapture(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("transparent capture needs root (network namespaces, netfilter rules, switching the proxy's user): run go test as root")
	}
	netnstest.EnsureTools(t, netnstest.IPTables, netnstest.NFTables)
	bin := netnstest.BuildCommands(t, "../../cmd/weft", "../../cmd/weft-proxy")
	tp := netnstest.New(t, netnstest.Options{Prefix: "wc", Subnet: 213})
	a := tp.Add("a", 2, map[string]string{"hello.default.svc.cluster.local": vip, "weft-control": tp.HostIP()}, netnstest.NSOptions{})
	b := tp.Add("b", 3, map[string]string{"weft-control": tp.HostIP()}, netnstest.NSOptions{})
	cp := startControlPlane(t, tp.HostIP(), fmt.Sprintf(config, b.IP))

	installRules(t, bin, a, "iptables")
	installRules(t, bin, b, "nftables", "--families", "ipv4,ipv6")
	startApp(t, b)
	startSidecar(t, bin, cp, a, "sleep-1", "sleep", "app=sleep")
	startSidecar(t, bin, cp, b, "hello-1", "hello", "app=hello")

	t.Run("outbound", func(t *testing.T) {
		e := waitCall(t, a, "http://hello.default.svc.cluster.local:8080/")
		t.Logf("the server saw %+v", e)
		if !strings.HasPrefix(e.Remote, "127.0.0.1:") {
			t.Errorf("the server saw a connection from %s, want its sidecar (127.0.0.1)", e.Remote)
		}
		if !strings.Contains(e.XFCC, "URI=spiffe://cluster.local/ns/default/sa/sleep") || !strings.Contains(e.XFCC, "By=spiffe://cluster.local/ns/default/sa/hello") {
			t.Errorf("x-forwarded-client-cert %q: want the client's identity (sa/sleep) checked by the server's sidecar (sa/hello)", e.XFCC)
		}
	})
	t.Run("inbound", func(t *testing.T) {
		// The test process has no sidecar: plain text, accepted by
		// PERMISSIVE, captured into the server's sidecar all the same.
		resp, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://" + net.JoinHostPort(b.IP, "8080") + "/")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var e echo
		if err := json.NewDecoder(resp.Body).Decode(&e); err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(e.Remote, "127.0.0.1:") || e.XFCC != "" {
			t.Errorf("server saw %+v; want a plaintext connection from its sidecar (127.0.0.1, no client certificate)", e)
		}
	})
	t.Run("passthrough without loop", func(t *testing.T) {
		testPassthrough(t, tp, a)
	})
	t.Run("cleanup", func(t *testing.T) {
		testCleanup(t, bin, a, b)
	})
}

// testPassthrough: a destination outside the mesh (a server in the root
// namespace) goes through virtualOutbound and PassthroughCluster to its
// original address, over exactly one upstream connection made by the
// sidecar: its own connection is not captured again.
func testPassthrough(t *testing.T, tp *netnstest.Topology, a netnstest.Namespace) {
	ln, err := net.Listen("tcp4", net.JoinHostPort(tp.HostIP(), "0"))
	if err != nil {
		t.Fatal(err)
	}
	var conns atomic.Int32
	var mu sync.Mutex
	var from []string
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, `{"remote":"`+r.RemoteAddr+`"}`) }),
		ConnState: func(c net.Conn, s http.ConnState) {
			if s == http.StateNew {
				conns.Add(1)
				mu.Lock()
				from = append(from, c.RemoteAddr().String())
				mu.Unlock()
			}
		},
	}
	go srv.Serve(ln)
	defer srv.Close()
	before := adminStats(t, a)
	e := waitCall(t, a, "http://"+ln.Addr().String()+"/")
	after := adminStats(t, a)
	if host, _, _ := net.SplitHostPort(e.Remote); host != a.IP || conns.Load() != 1 {
		mu.Lock()
		t.Errorf("the outside server saw %d connections from %v, want one from the workload (%s)", conns.Load(), from, a.IP)
		mu.Unlock()
	}
	for _, stat := range []string{"cluster.PassthroughCluster.upstream_cx_total", "listener.0.0.0.0_15001.downstream_cx_total"} {
		if d := after[stat] - before[stat]; d != 1 {
			t.Errorf("%s grew by %d, want 1 (the client's connection, through the sidecar once)", stat, d)
		}
	}
}

// testCleanup: `weft iptables cleanup` removes both backends' rules.
func testCleanup(t *testing.T, bin string, a, b netnstest.Namespace) {
	if out, err := a.InNS(filepath.Join(bin, "weft"), "iptables", "cleanup", "--backend", "iptables").CombinedOutput(); err != nil {
		t.Fatalf("cleanup (iptables): %v\n%s", err, out)
	}
	if out, _ := a.InNS("iptables-save", "-t", "nat").CombinedOutput(); bytes.Contains(out, []byte("ISTIO_")) {
		t.Errorf("ISTIO chains left after cleanup:\n%s", out)
	}
	if out, err := b.InNS(filepath.Join(bin, "weft"), "iptables", "cleanup", "--backend", "nftables").CombinedOutput(); err != nil {
		t.Fatalf("cleanup (nftables): %v\n%s", err, out)
	}
	if out, err := b.InNS("nft", "list", "table", "inet", "weft").CombinedOutput(); err == nil {
		t.Errorf("table inet weft left after cleanup:\n%s", out)
	}
}

// waitCall runs the client application in w until it gets a 200 (the
// sidecars warm up: certificates, listeners), for at most 60 s, and
// decodes the server's echo.
func waitCall(t *testing.T, w netnstest.Namespace, url string) echo {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		cmd := w.InNS(os.Args[0])
		cmd.Env = append(os.Environ(), helperEnv+"=client", urlEnv+"="+url)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		if err == nil {
			var e echo
			if err := json.Unmarshal(stdout.Bytes(), &e); err != nil {
				t.Fatalf("%s: %v: %q", url, err, stdout.String())
			}
			return e
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s from %s: %v\n%s%s", url, w.Name, err, stdout.String(), stderr.String())
		}
		t.Logf("GET %s from %s: %v: %s (retrying)", url, w.Name, err, strings.TrimSpace(stderr.String()))
		time.Sleep(200 * time.Millisecond) // polling interval, not synchronisation
	}
}

// adminStats reads the sidecar's counters from its admin (127.0.0.1:15000
// in w: loopback traffic of the application is never captured).
func adminStats(t *testing.T, w netnstest.Namespace) map[string]int64 {
	t.Helper()
	cmd := w.InNS(os.Args[0])
	cmd.Env = append(os.Environ(), helperEnv+"=client", urlEnv+"=http://127.0.0.1:15000/stats")
	body, err := cmd.Output()
	if err != nil {
		t.Fatalf("admin /stats in %s: %v", w.Name, err)
	}
	stats := map[string]int64{}
	for _, line := range strings.Split(string(body), "\n") {
		name, v, ok := strings.Cut(line, ": ")
		if n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64); ok && err == nil {
			stats[name] = n
		}
	}
	return stats
}

// controlPlane is weft-control serving on the root namespace's address.
type controlPlane struct {
	xds, ca string // host:port
	caDir   string
}

func startControlPlane(t *testing.T, ip, yaml string) *controlPlane {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "mesh.yaml"), []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	caDir := t.TempDir()
	cp, err := controlplane.New(controlplane.Options{
		ConfigDir:     dir,
		XDSAddress:    net.JoinHostPort(ip, "0"),
		HTTPAddress:   "127.0.0.1:0",
		SecureAddress: net.JoinHostPort(ip, "0"),
		CA:            ca.Options{Dir: caDir, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))},
		Debounce:      50 * time.Millisecond,
		Logger:        slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatalf("controlplane.New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- cp.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("weft-control: %v", err)
		}
	})
	_, caPort, _ := net.SplitHostPort(cp.SecureAddr().String())
	// The CA's serving certificate names "weft-control": the workloads'
	// /etc/hosts map it to the root namespace's address.
	return &controlPlane{xds: cp.XDSAddr().String(), ca: net.JoinHostPort("weft-control", caPort), caDir: caDir}
}

// installRules runs `weft iptables` in w with backend and extra flags.
func installRules(t *testing.T, bin string, w netnstest.Namespace, backend string, extra ...string) {
	t.Helper()
	args := append([]string{"iptables", "--backend", backend, "--proxy-uid", proxyUID, "--proxy-gid", proxyUID}, extra...)
	out, err := w.InNS(filepath.Join(bin, "weft"), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("weft iptables in %s: %v\n%s", w.Name, err, out)
	}
}

// startApp starts the application server in w and waits for it to listen.
func startApp(t *testing.T, w netnstest.Namespace) {
	t.Helper()
	cmd := w.InNS(os.Args[0])
	cmd.Env = append(os.Environ(), helperEnv+"=server")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr syncbuf.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stop(t, cmd, "app in "+w.Name, &stderr)
	line := make([]byte, 6)
	if _, err := io.ReadFull(stdout, line); err != nil || string(line) != "ready\n" {
		t.Fatalf("app in %s did not start: %v %q\n%s", w.Name, err, line, stderr.String())
	}
}

// startSidecar runs `weft-proxy sidecar --capture` in w as UID/GID 1337,
// in local CA mode (mTLS), with its SDS socket in a directory of that
// user (mode 0700, as the agent requires).
func startSidecar(t *testing.T, bin string, cp *controlPlane, w netnstest.Namespace, name, sa, labels string) {
	t.Helper()
	run, err := os.MkdirTemp("", "weft-capture-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(run) })
	uid, _ := strconv.Atoi(proxyUID)
	if err := os.Chown(run, uid, uid); err != nil {
		t.Fatal(err)
	}
	cmd := w.InNS(filepath.Join(bin, "weft-proxy"), "sidecar", "--capture", "--uid", proxyUID, "--gid", proxyUID,
		"--name", name, "--namespace", "default", "--ip", w.IP, "--service-account", sa, "--labels", labels,
		"--discovery-address", cp.xds, "--ca-address", cp.ca, "--ca-dir", cp.caDir,
		"--sds-socket", filepath.Join(run, "sds.sock"), "--admin-address", "127.0.0.1:15000", "--metrics-address=", "--health-address=",
		"--drain-time-s", "1", "-l", "info")
	var out syncbuf.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stop(t, cmd, "sidecar "+name, &out)
}

// stop ends cmd at the test's end (SIGTERM, then SIGKILL after 10 s) and
// shows its output when the test failed.
func stop(t *testing.T, cmd *exec.Cmd, what string, out *syncbuf.Buffer) {
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("%s output:\n%s", what, out.String())
		}
	})
}
