package dashboard

import (
	"net"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/controlplane"
	"github.com/weftmesh/weft/internal/meshtest"
)

// A real mesh, as test/mesh runs it (internal/meshtest): weft-control with
// its CA, weft-proxy sidecars (server.Server from the bootstrap the agent
// builds, with the agent's certificate manager and SDS server) and
// net/http applications.

// helloService is hello.default.svc.cluster.local:8080 (HTTP) with
// workloads hello-v1 and hello-v2 at v1 and v2 (address, port), service
// account hello, subsets v1 and v2; mtls labels them
// security.istio.io/tlsMode=istio.
func helloService(v1, v2 meshtest.Workload, mtls bool) meshtest.Service {
	v1.Name, v1.Version, v1.ServiceAccount, v1.MTLS = "hello-v1", "v1", "hello", mtls
	v2.Name, v2.Version, v2.ServiceAccount, v2.MTLS = "hello-v2", "v2", "hello", mtls
	return meshtest.Service{Name: "hello", Port: 8080, Workloads: []meshtest.Workload{v1, v2}}
}

// brokenRoute is a VirtualService on hello to a subset that does not
// exist: it is rejected, a configuration problem for the page to show.
func brokenRoute(s meshtest.Service) string {
	return s.VirtualServiceYAML("broken", meshtest.Route{To: []meshtest.Destination{{Subset: "v3"}}})
}

// runControlPlane runs weft-control with o over a new directory holding
// files (name → YAML) until the test ends.
func runControlPlane(t *testing.T, o controlplane.Options, files map[string]string) *controlplane.ControlPlane {
	t.Helper()
	o.Logger = quiet
	cp, _ := meshtest.RunConfigDir(t, o, files)
	return cp
}

// sidecarOptions place a real sidecar: its workload (name, IP, labels),
// its service account (it gets a workload certificate from the CA: mTLS)
// and its Istio metrics listener on IP:15090.
type sidecarOptions struct {
	Name, IP, ServiceAccount string
	Labels                   map[string]string
}

// startRealSidecar builds the bootstrap the way `weft-proxy sidecar
// --ca-root --token --metrics-address IP:15090` does and waits until the
// proxy has its initial configuration.
func startRealSidecar(t *testing.T, cp *controlplane.ControlPlane, o sidecarOptions) *meshtest.Sidecar {
	t.Helper()
	return meshtest.StartSidecar(t, cp, meshtest.SidecarOptions{
		Name: o.Name, IP: o.IP, ServiceAccount: o.ServiceAccount, Labels: o.Labels,
		MetricsAddress: net.JoinHostPort(o.IP, "15090"),
		DrainTime:      time.Second,
		Logger:         quiet,
	})
}

// startHello serves name as the body of every request on 127.0.0.1 and a
// port the kernel picks, and returns the port.
func startHello(t *testing.T, name string) int { return meshtest.ServeName(t, name) }
