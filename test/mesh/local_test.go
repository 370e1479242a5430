package mesh

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestLocalMeshMutualTLSByDefault runs the one-machine mesh the way the
// README does, from the built binaries: weft-control and two
// `weft-proxy sidecar` processes given only their identity and ports —
// no CA root, no token. The sidecars find weft-control's CA directory
// (the default one, under XDG_CONFIG_HOME) and obtain certificates on
// their own (local mode), so sidecar-to-sidecar traffic is mTLS with
// SPIFFE identities by default. weft-control issues 10-second
// certificates, so under continuous load both sidecars renew several
// times; no request may fail across the rotations, and the application
// must see the client's new certificates (x-forwarded-client-cert Hash).
func TestLocalMeshMutualTLSByDefault(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binaries; -short skips it")
	}
	bin := buildBinaries(t, "weft-control", "weft-proxy")
	home := t.TempDir() // XDG_CONFIG_HOME: weft/ca is created under it
	env := append(os.Environ(), "XDG_CONFIG_HOME="+home, "WEFT_CA_DIR=")

	// The application behind the server sidecar echoes the caller's
	// certificate details.
	appPort := freePort(t, "127.0.0.1")
	appLn, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(appPort)))
	if err != nil {
		t.Fatal(err)
	}
	app := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "xfcc=%s\n", r.Header.Get("X-Forwarded-Client-Cert"))
	})}
	go app.Serve(appLn)
	t.Cleanup(func() { app.Close() })

	cfg := t.TempDir()
	writeFile(t, filepath.Join(cfg, "hello.yaml"), fmt.Sprintf(localMeshConfig, appPort))
	xds, secure, debug := freePort(t, "127.0.0.1"), freePort(t, "127.0.0.1"), freePort(t, "127.0.0.1")
	addr := func(port int) string { return "127.0.0.1:" + strconv.Itoa(port) }
	control := startProcess(t, env, bin["weft-control"], "--config-dir", cfg, "--xds-address", addr(xds),
		"--secure-address", addr(secure), "--http-address", addr(debug), "--cert-ttl", "10s")
	waitFor(t, "weft-control's CA root under XDG_CONFIG_HOME", 20*time.Second, func() bool {
		_, err := os.Stat(filepath.Join(home, "weft", "ca", "root-cert.pem"))
		return err == nil
	})

	startSidecarProcess := func(name, ip, sa, labels string) (*process, int) {
		proxyPort := freePort(t, "127.0.0.1")
		args := []string{"sidecar", "--name", name, "--ip", ip, "--service-account", sa,
			"--discovery-address", addr(xds), "--ca-address", addr(secure),
			"--admin-address", net.JoinHostPort(ip, strconv.Itoa(freePort(t, ip))),
			"--http-proxy-port", strconv.Itoa(proxyPort), "--drain-time-s", "1",
			"--metrics-address=", "--dns-address=", "--health-address=", "--status-address="} // ports fixed per IP: off, so a weft up on this machine does not collide
		if labels != "" {
			args = append(args, "--labels", labels)
		}
		return startProcess(t, env, bin["weft-proxy"], args...), proxyPort
	}
	server, _ := startSidecarProcess("hello-v1", "127.0.0.4", "hello", "app=hello,version=v1")
	client, proxyPort := startSidecarProcess("sleep", "127.0.0.3", "sleep", "app=sleep")
	c := (&sidecar{proxy: addr(proxyPort)}).client()
	url := "http://hello.default.svc.cluster.local:8080/"

	const (
		clientID = "URI=spiffe://cluster.local/ns/default/sa/sleep"
		serverID = "By=spiffe://cluster.local/ns/default/sa/hello"
	)
	waitFor(t, "an mTLS request from sleep to hello", 30*time.Second, func() bool {
		code, body, err := get(c, url)
		return err == nil && code == 200 && strings.Contains(body, clientID) && strings.Contains(body, serverID)
	})

	// Continuous load from 4 workers until both sidecars renewed twice and
	// the app saw at least three client certificates (new connections
	// every 10 requests, DestinationRule maxRequestsPerConnection).
	var (
		mu       sync.Mutex
		hashes   = map[string]bool{}
		failures []string
		total    atomic.Int64
		stop     atomic.Bool
		wg       sync.WaitGroup
	)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				code, body, err := get(c, url)
				total.Add(1)
				mu.Lock()
				switch {
				case err != nil:
					failures = append(failures, err.Error())
				case code != 200 || !strings.Contains(body, clientID):
					failures = append(failures, fmt.Sprintf("%d %q", code, body))
				default:
					hashes[field(body, "Hash=")] = true
				}
				mu.Unlock()
			}
		}()
	}
	issued := func(p *process) int { return strings.Count(p.output(), "workload certificate issued") }
	took := waitFor(t, "three certificates in each sidecar and three client certificates seen by the app", 60*time.Second, func() bool {
		mu.Lock()
		n := len(hashes)
		mu.Unlock()
		return issued(server) >= 3 && issued(client) >= 3 && n >= 3
	})
	stop.Store(true)
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	t.Logf("%d requests over %v: %d client certificates seen, %d/%d certificates issued to hello/sleep, %d failures",
		total.Load(), took.Round(time.Millisecond), len(hashes), issued(server), issued(client), len(failures))
	if len(failures) > 0 {
		t.Errorf("%d of %d requests failed across certificate rotations; first: %s", len(failures), total.Load(), failures[0])
	}
	if strings.Contains(control.output()+server.output()+client.output(), "BEGIN") {
		t.Error("a process logged PEM material")
	}
}

// localMeshConfig is the README's example, with the hello workload behind
// its own sidecar at 127.0.0.4: a WorkloadEntry with a serviceAccount is a
// workload with a sidecar (Istio's rule), so other sidecars use mTLS to it.
const localMeshConfig = `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: hello, namespace: default}
spec:
  hosts: [hello.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 8080, name: http, protocol: HTTP}]
  workloadSelector: {labels: {app: hello}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: hello-v1, namespace: default}
spec:
  address: 127.0.0.4
  ports: {http: %d}
  labels: {app: hello, version: v1}
  serviceAccount: hello
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: hello, namespace: default}
spec:
  host: hello.default.svc.cluster.local
  trafficPolicy:
    connectionPool: {http: {maxRequestsPerConnection: 10}}
`

// field returns the value after key in an XFCC element (up to ';').
func field(s, key string) string {
	_, v, _ := strings.Cut(s, key)
	v, _, _ = strings.Cut(v, ";")
	return v
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// buildBinaries builds the named commands (./cmd/NAME) into a temporary
// directory, in one go build, with the release build tags (Makefile
// BUILDFLAGS).
func buildBinaries(t *testing.T, names ...string) map[string]string {
	t.Helper()
	dir := t.TempDir()
	args := []string{"build", "-tags", "grpcnotrace", "-o", dir + string(filepath.Separator)}
	out := map[string]string{}
	for _, n := range names {
		args = append(args, "./cmd/"+n)
		out[n] = filepath.Join(dir, n)
	}
	cmd := exec.Command(goBinary(), args...)
	cmd.Dir = filepath.Join("..", "..")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, b)
	}
	return out
}

func goBinary() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return filepath.Join(os.Getenv("GOROOT"), "bin", "go")
}

// process is a running binary whose combined output is kept.
type process struct {
	cmd *exec.Cmd
	mu  sync.Mutex
	out bytes.Buffer
}

func (p *process) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.Write(b)
}

func (p *process) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

// startProcess starts bin with args and environment env; the test's
// cleanup interrupts it and waits for it to exit (killing it after 10 s),
// and shows its output if the test failed.
func startProcess(t *testing.T, env []string, bin string, args ...string) *process {
	t.Helper()
	p := &process{cmd: exec.Command(bin, args...)}
	p.cmd.Env = env
	p.cmd.Stdout, p.cmd.Stderr = p, p
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { p.cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		p.cmd.Process.Signal(os.Interrupt)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			p.cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("%s %s:\n%s", filepath.Base(bin), strings.Join(args, " "), p.output())
		}
	})
	return p
}
