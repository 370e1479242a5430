// Package mesh tests weft end to end on loopback: weft-control reading a
// directory of Istio YAML, weft-proxy sidecars that take their whole
// configuration from it over ADS, real upstream servers (net/http, h2c,
// grpc-go) and a proxyless grpc-go client using the xds:/// resolver.
package mesh

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/h2c"
	"google.golang.org/grpc"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	meshv1alpha1 "istio.io/api/mesh/v1alpha1"

	"github.com/weftmesh/weft/internal/ca"
	"github.com/weftmesh/weft/internal/controlplane"
	"github.com/weftmesh/weft/internal/meshtest"
	"github.com/weftmesh/weft/internal/proxy/agent"
	"github.com/weftmesh/weft/internal/proxy/server"
)

// quiet discards the components' logs: failing tests report what they
// observed instead.
var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// controlPlane is a running weft-control over a temporary config dir.
type controlPlane struct {
	t   *testing.T
	dir string
	cp  *controlplane.ControlPlane
}

// startControlPlane writes files (name → YAML) to a new directory and
// serves it on loopback ports chosen by the kernel.
func startControlPlane(t *testing.T, files map[string]string) *controlPlane {
	t.Helper()
	return startControlPlaneWith(t, files, false)
}

// startControlPlaneWith is startControlPlane, with the mesh CA and its
// secure port when withCA is set.
func startControlPlaneWith(t *testing.T, files map[string]string, withCA bool) *controlPlane {
	t.Helper()
	return startControlPlaneMesh(t, files, withCA, nil)
}

// startControlPlaneMesh is startControlPlaneWith with Istio's mesh
// configuration (weft-control --mesh-config; nil: Istio's defaults).
func startControlPlaneMesh(t *testing.T, files map[string]string, withCA bool, mesh *meshv1alpha1.MeshConfig) *controlPlane {
	t.Helper()
	c := &controlPlane{t: t, dir: t.TempDir()}
	for name, content := range files {
		c.write(name, content)
	}
	o := controlplane.Options{
		ConfigDir:   c.dir,
		XDSAddress:  "127.0.0.1:0",
		HTTPAddress: "127.0.0.1:0",
		Debounce:    50 * time.Millisecond,
		Logger:      quiet,
		Mesh:        mesh,
	}
	if withCA {
		o.SecureAddress = "127.0.0.1:0"
		o.CA = ca.Options{Dir: t.TempDir(), Logger: quiet}
	}
	c.cp = meshtest.RunControlPlane(t, o)
	return c
}

// write replaces a config file atomically (a temporary name the loader
// ignores, then a rename), as editors and kubectl-style tools do.
func (c *controlPlane) write(name, content string) {
	c.t.Helper()
	tmp := filepath.Join(c.dir, "."+name+".tmp")
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		c.t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(c.dir, name)); err != nil {
		c.t.Fatal(err)
	}
}

func (c *controlPlane) remove(name string) {
	c.t.Helper()
	if err := os.Remove(filepath.Join(c.dir, name)); err != nil {
		c.t.Fatal(err)
	}
}

func (c *controlPlane) xdsAddr() string { return c.cp.XDSAddr().String() }

// sidecar is a running weft-proxy sidecar.
type sidecar struct {
	t     *testing.T
	srv   *server.Server
	proxy string // the HTTP proxy listener's address
}

// sidecarOptions place a sidecar: its workload identity and the port of
// its outbound HTTP proxy listener (on 127.0.0.1).
type sidecarOptions struct {
	Type     string // "sidecar" (default) or "router"
	Name, IP string
	// ServiceAccount, with a control plane that runs the CA, gives the
	// sidecar a workload certificate (mTLS), as `weft-proxy sidecar
	// --ca-root --token` does.
	ServiceAccount string
	Labels         map[string]string
	ProxyPort      int
	// MetricsAddress, ip:port, serves /stats/prometheus as `weft-proxy
	// sidecar --metrics-address` does; the admin then listens on IP and a
	// free port (the metrics listener routes to it).
	MetricsAddress string
}

// startSidecar builds the bootstrap the way `weft-proxy sidecar` does and
// waits until the proxy has its initial configuration from weft-control.
func startSidecar(t *testing.T, c *controlPlane, o sidecarOptions) *sidecar {
	t.Helper()
	if o.Type == "" {
		o.Type = "sidecar"
	}
	ao := &agent.Options{
		DiscoveryAddress: c.xdsAddr(),
		Type:             o.Type,
		IP:               o.IP,
		Name:             o.Name,
		Namespace:        "default",
		Labels:           o.Labels,
		ServiceAccount:   "default",
		HTTPProxyPort:    strconv.Itoa(o.ProxyPort),
		AdminAddress:     "127.0.0.1:0",
	}
	if o.MetricsAddress != "" {
		ao.MetricsAddress = o.MetricsAddress
		ao.AdminAddress = net.JoinHostPort(o.IP, strconv.Itoa(freePort(t, o.IP)))
	}
	if o.ServiceAccount != "" {
		ao.ServiceAccount = o.ServiceAccount
		ao.SDSSocket = meshtest.StartAgent(t, c.cp, meshtest.AgentOptions{ServiceAccount: o.ServiceAccount, Logger: quiet})
		ao.Labels = map[string]string{"security.istio.io/tlsMode": "istio"}
		for k, v := range o.Labels {
			ao.Labels[k] = v
		}
	}
	srv := meshtest.StartProxy(t, meshtest.ProxyOptions{Agent: ao, DrainTime: 5 * time.Second, Logger: quiet})
	s := &sidecar{t: t, srv: srv, proxy: net.JoinHostPort("127.0.0.1", strconv.Itoa(o.ProxyPort))}
	if o.Type == "router" {
		return s // gateways have no HTTP proxy listener
	}
	name := "127.0.0.1_" + strconv.Itoa(o.ProxyPort)
	if a := srv.ListenerAddr(name); a == nil || a.String() != s.proxy {
		t.Fatalf("sidecar %s: HTTP proxy listener %s not bound (have %v)", o.Name, name, srv.ListenerAddrs())
	}
	return s
}

// client returns an HTTP client that sends every request through the
// sidecar's outbound HTTP proxy listener, as `curl -x` does.
func (s *sidecar) client() *http.Client {
	pu, _ := url.Parse("http://" + s.proxy)
	return &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			Proxy:               http.ProxyURL(pu),
			MaxIdleConnsPerHost: 16,
		},
	}
}

// admin GETs an admin path.
func (s *sidecar) admin(path string) string {
	s.t.Helper()
	resp, err := http.Get("http://" + s.srv.AdminAddr().String() + path)
	if err != nil {
		s.t.Fatalf("admin %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// waitFor polls cond until it holds or the deadline passes, and returns
// how long it took.
func waitFor(t *testing.T, what string, within time.Duration, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > within {
			t.Fatalf("%s: not within %v", what, within)
		}
		time.Sleep(10 * time.Millisecond) // polling a condition with a deadline
	}
	return time.Since(start)
}

// freePort is meshtest.FreePort.
func freePort(t *testing.T, ip string) int { return meshtest.FreePort(t, ip) }

// app is a workload: one port serving plain HTTP (the body is its name)
// and gRPC (grpc.testing.TestService.UnaryCall answers with server_id =
// its name), over HTTP/1.1 and h2c.
type app struct {
	name string
	port int
	// hold, when set, blocks requests to /hold until it is closed; each
	// such request is announced on held first.
	hold chan struct{}
	held chan struct{}
}

type unaryServer struct {
	testpb.UnimplementedTestServiceServer
	name string
}

func (s *unaryServer) UnaryCall(context.Context, *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	return &testpb.SimpleResponse{ServerId: s.name}, nil
}

// startApp serves an app on 127.0.0.1 and a port the kernel picks.
func startApp(t *testing.T, name string) *app {
	t.Helper()
	a := &app{name: name, hold: make(chan struct{}), held: make(chan struct{}, 16)}
	gs := grpc.NewServer()
	testpb.RegisterTestServiceServer(gs, &unaryServer{name: name})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor == 2 && strings.HasPrefix(r.Header.Get("Content-Type"), "application/grpc") {
			gs.ServeHTTP(w, r)
			return
		}
		if r.URL.Path == "/xfcc" {
			io.WriteString(w, r.Header.Get("x-forwarded-client-cert"))
			return
		}
		if r.URL.Path == "/hold" {
			a.held <- struct{}{}
			<-a.hold
		}
		w.Header().Set("x-app", name)
		io.WriteString(w, name)
	})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a.port = l.Addr().(*net.TCPAddr).Port
	hs := &http.Server{Handler: h2c.NewHandler(h, &http2.Server{}), ReadHeaderTimeout: 10 * time.Second}
	go hs.Serve(l)
	t.Cleanup(func() {
		close(a.hold)
		hs.Close()
		gs.Stop()
	})
	return a
}

// get sends GET url through c and returns the status and body, or an
// error for a transport failure.
func get(c *http.Client, url string, hdr ...string) (int, string, error) {
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		return 0, "", err
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, string(b), fmt.Errorf("reading the body: %w", err)
	}
	return resp.StatusCode, string(b), nil
}

// count sends n requests and counts the bodies; any non-200 or transport
// error fails the test.
func count(t *testing.T, c *http.Client, url string, n int, hdr ...string) map[string]int {
	t.Helper()
	out := map[string]int{}
	for i := 0; i < n; i++ {
		code, body, err := get(c, url, hdr...)
		if err != nil || code != 200 {
			t.Fatalf("request %d to %s: %d %q %v", i, url, code, body, err)
		}
		out[body]++
	}
	return out
}
