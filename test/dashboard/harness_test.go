package dashboard

import (
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/controlplane"
	"github.com/weftmesh/weft/internal/meshtest"
	"github.com/weftmesh/weft/internal/proxy/agent"
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
	return meshtest.RunControlPlane(t, o)
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
		SDSSocket:      meshtest.StartAgent(t, cp, meshtest.AgentOptions{ServiceAccount: o.ServiceAccount, Logger: quiet}),
	}
	srv := meshtest.StartProxy(t, meshtest.ProxyOptions{Agent: ao, DrainTime: time.Second, Logger: quiet})
	s.srv = srv
	return s
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

// freePort is meshtest.FreePort.
func freePort(t *testing.T, ip string) int { return meshtest.FreePort(t, ip) }

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
