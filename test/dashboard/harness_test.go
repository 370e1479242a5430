package dashboard

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/ca"
	"github.com/weftmesh/weft/internal/controlplane"
	"github.com/weftmesh/weft/internal/proxy/agent"
	"github.com/weftmesh/weft/internal/proxy/agent/certs"
	"github.com/weftmesh/weft/internal/proxy/bootstrap"
	"github.com/weftmesh/weft/internal/proxy/server"
)

// A real mesh, as test/mesh runs it: weft-control with its CA, weft-proxy
// sidecars (server.Server from the bootstrap the agent builds, with the
// agent's certificate manager and SDS server) and net/http applications.

// runControlPlane runs weft-control with o over a new directory holding
// files (name → YAML) until the test ends.
func runControlPlane(t *testing.T, o controlplane.Options, files map[string]string) *controlplane.ControlPlane {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	o.ConfigDir, o.XDSAddress, o.HTTPAddress, o.Logger = dir, "127.0.0.1:0", "127.0.0.1:0", quiet
	cp, err := controlplane.New(o)
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
	return cp
}

// sidecarOptions place a real sidecar: its workload (name, IP, labels),
// its service account (it gets a workload certificate from the CA: mTLS)
// and its Istio metrics listener on IP:15090.
type sidecarOptions struct {
	Name, IP, ServiceAccount string
	Labels                   map[string]string
}

// realSidecar is a running weft-proxy sidecar.
type realSidecar struct {
	srv     *server.Server
	proxy   string // the outbound HTTP proxy listener, 127.0.0.1:port
	metrics string // IP:15090
}

// startRealSidecar builds the bootstrap the way `weft-proxy sidecar
// --ca-root --token --metrics-address IP:15090` does and waits until the
// proxy has its initial configuration.
func startRealSidecar(t *testing.T, cp *controlplane.ControlPlane, o sidecarOptions) *realSidecar {
	t.Helper()
	port := freePort(t, "127.0.0.1")
	labels := map[string]string{"security.istio.io/tlsMode": "istio"}
	for k, v := range o.Labels {
		labels[k] = v
	}
	s := &realSidecar{proxy: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), metrics: net.JoinHostPort(o.IP, "15090")}
	ao := &agent.Options{
		DiscoveryAddress: cp.XDSAddr().String(),
		Type:             "sidecar",
		IP:               o.IP,
		Name:             o.Name,
		Namespace:        "default",
		Labels:           labels,
		ServiceAccount:   o.ServiceAccount,
		HTTPProxyPort:    strconv.Itoa(port),
		// The metrics listener routes to the admin: both on the IP.
		AdminAddress:   net.JoinHostPort(o.IP, strconv.Itoa(freePort(t, o.IP))),
		MetricsAddress: s.metrics,
		SDSSocket:      startAgent(t, cp, o.ServiceAccount),
	}
	yaml, err := agent.BootstrapYAML(ao)
	if err != nil {
		t.Fatalf("bootstrap: %v", err)
	}
	b, err := bootstrap.ParseAndValidate(yaml, o.Name+".yaml")
	if err != nil {
		t.Fatalf("bootstrap: %v\n%s", err, yaml)
	}
	srv, err := server.New(server.Options{Bootstrap: b, DrainTime: time.Second, Logger: quiet})
	if err != nil {
		t.Fatalf("server.New: %v", err)
	}
	srv.Start()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	select {
	case <-srv.Initialized():
	case <-time.After(10 * time.Second):
		t.Fatalf("sidecar %s: no initial configuration from weft-control within 10 s", o.Name)
	}
	s.srv = srv
	return s
}

// startAgent runs the sidecar agent's certificate manager and SDS server
// for service account sa of namespace default, with a bootstrap token
// minted by weft-control's CA, and returns the SDS socket.
func startAgent(t *testing.T, cp *controlplane.ControlPlane, sa string) string {
	t.Helper()
	authority := cp.CA()
	if authority == nil {
		t.Fatal("sidecars with certificates need weft-control with its CA (Options.SecureAddress)")
	}
	token, err := authority.Tokens().Mint(ca.Identity{Namespace: "default", ServiceAccount: sa}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	socket := filepath.Join(t.TempDir(), "sds", "sds.sock")
	sec, err := agent.StartSecurity(agent.SecurityOptions{
		SDSSocket: socket,
		Logger:    quiet,
		Certs: certs.Options{
			CAAddress:      cp.SecureAddr().String(),
			RootCAs:        authority.Roots(),
			Token:          certs.StaticToken(token),
			TrustDomain:    "cluster.local",
			Namespace:      "default",
			ServiceAccount: sa,
		},
	})
	if err != nil {
		t.Fatalf("agent: %v", err)
	}
	t.Cleanup(sec.Stop)
	return socket
}

// client sends every request through the sidecar's outbound HTTP proxy
// listener, as `curl -x` does.
func (s *realSidecar) client() *http.Client {
	pu, _ := url.Parse("http://" + s.proxy)
	return &http.Client{
		Timeout:   10 * time.Second,
		Transport: &http.Transport{Proxy: http.ProxyURL(pu), MaxIdleConnsPerHost: 16},
	}
}

// freePort returns a TCP port that was free on ip a moment ago (a
// sidecar's ports are in its bootstrap before its listeners exist).
func freePort(t *testing.T, ip string) int {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startHello serves name as the body of every request on 127.0.0.1 and a
// port the kernel picks, and returns the port.
func startHello(t *testing.T, name string) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, name)
	})}
	go hs.Serve(l)
	t.Cleanup(func() { hs.Close() })
	return l.Addr().(*net.TCPAddr).Port
}
