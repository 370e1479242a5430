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
	"os"
	"path/filepath"
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
	o := controlplane.Options{Debounce: 50 * time.Millisecond, Logger: quiet, Mesh: mesh}
	if withCA {
		o.SecureAddress = "127.0.0.1:0"
		o.CA = ca.Options{Dir: t.TempDir(), Logger: quiet}
	}
	c := &controlPlane{t: t}
	c.cp, c.dir = meshtest.RunConfigDir(t, o, files)
	return c
}

// write replaces a config file atomically (a temporary name the loader
// ignores, then a rename), as editors and kubectl-style tools do.
func (c *controlPlane) write(name, content string) {
	c.t.Helper()
	meshtest.WriteConfig(c.t, c.dir, name, content)
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

// sidecarOptions place a sidecar (meshtest.SidecarOptions; the harness
// sets DrainTime and Logger).
type sidecarOptions = meshtest.SidecarOptions

// startSidecar builds the bootstrap the way `weft-proxy sidecar` does,
// waits until the proxy has its initial configuration from weft-control
// and, for a sidecar, checks that its HTTP proxy listener is bound.
func startSidecar(t *testing.T, c *controlPlane, o sidecarOptions) *sidecar {
	t.Helper()
	o.DrainTime, o.Logger = 5*time.Second, quiet
	ms := meshtest.StartSidecar(t, c.cp, o)
	s := &sidecar{t: t, srv: ms.Server, proxy: ms.Proxy}
	if o.Type == "router" {
		return s // gateways have no HTTP proxy listener
	}
	_, port, _ := net.SplitHostPort(s.proxy)
	name := "127.0.0.1_" + port
	if a := s.srv.ListenerAddr(name); a == nil || a.String() != s.proxy {
		t.Fatalf("sidecar %s: HTTP proxy listener %s not bound (have %v)", o.Name, name, s.srv.ListenerAddrs())
	}
	return s
}

// client returns an HTTP client that sends every request through the
// sidecar's outbound HTTP proxy listener, as `curl -x` does.
func (s *sidecar) client() *http.Client { return (&meshtest.Sidecar{Proxy: s.proxy}).Client() }

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
	// Cleanups run last-registered first: close(a.hold), the HTTP server,
	// then gs.
	t.Cleanup(gs.Stop)
	a.port = meshtest.ServeHTTP(t, h2c.NewHandler(h, &http2.Server{}))
	t.Cleanup(func() { close(a.hold) })
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
