package meshtest

import (
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/controlplane"
	"github.com/weftmesh/weft/internal/proxy/agent"
	"github.com/weftmesh/weft/internal/proxy/server"
)

// SidecarOptions place one weft-proxy of the mesh, as `weft-proxy sidecar`
// flags do.
type SidecarOptions struct {
	// Type is "sidecar" (default) or "router" (a gateway).
	Type     string
	Name, IP string
	// ServiceAccount, with a control plane that runs the CA, gives the
	// proxy a workload certificate (mTLS) as `weft-proxy sidecar --ca-root
	// --token` does, and the label security.istio.io/tlsMode=istio (Labels
	// may override it). Empty: service account "default", no certificate.
	ServiceAccount string
	Labels         map[string]string
	// ProxyPort is the outbound HTTP proxy listener's port on 127.0.0.1;
	// 0 for a sidecar: a free port (a router's stays 0: it has none).
	ProxyPort int
	// MetricsAddress, ip:port, serves /stats/prometheus as `weft-proxy
	// sidecar --metrics-address` does; the admin then listens on IP and a
	// free port (the metrics listener routes to it). Empty: the admin on
	// 127.0.0.1:0 and no metrics listener.
	MetricsAddress string
	DrainTime      time.Duration
	Logger         *slog.Logger // nil: discarded
}

// Sidecar is a running weft-proxy of the mesh.
type Sidecar struct {
	Server *server.Server
	// Proxy is the outbound HTTP proxy listener's address, 127.0.0.1:port.
	Proxy string
}

// StartSidecar builds the bootstrap of o the way `weft-proxy sidecar` does
// (namespace default), starts the agent when o.ServiceAccount is set, and
// starts the proxy (StartProxy: it has its initial configuration from cp
// on return). The test's cleanup stops both.
func StartSidecar(t testing.TB, cp *controlplane.ControlPlane, o SidecarOptions) *Sidecar {
	t.Helper()
	if o.Type == "" {
		o.Type = "sidecar"
	}
	if o.Logger == nil {
		o.Logger = discard()
	}
	if o.ProxyPort == 0 && o.Type == "sidecar" {
		o.ProxyPort = FreePort(t, "127.0.0.1")
	}
	ao := &agent.Options{
		DiscoveryAddress: cp.XDSAddr().String(),
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
		ao.AdminAddress = net.JoinHostPort(o.IP, strconv.Itoa(FreePort(t, o.IP)))
	}
	if o.ServiceAccount != "" {
		ao.ServiceAccount = o.ServiceAccount
		ao.SDSSocket = StartAgent(t, cp, AgentOptions{ServiceAccount: o.ServiceAccount, Logger: o.Logger})
		ao.Labels = map[string]string{"security.istio.io/tlsMode": "istio"}
		for k, v := range o.Labels {
			ao.Labels[k] = v
		}
	}
	srv := StartProxy(t, ProxyOptions{Agent: ao, DrainTime: o.DrainTime, Logger: o.Logger})
	return &Sidecar{Server: srv, Proxy: net.JoinHostPort("127.0.0.1", strconv.Itoa(o.ProxyPort))}
}

// Client returns an HTTP client that sends every request through the
// sidecar's outbound HTTP proxy listener, as `curl -x` does.
func (s *Sidecar) Client() *http.Client {
	pu, _ := url.Parse("http://" + s.Proxy)
	return &http.Client{
		Timeout:   10 * time.Second,
		Transport: &http.Transport{Proxy: http.ProxyURL(pu), MaxIdleConnsPerHost: 16},
	}
}

// ServeHTTP serves h on 127.0.0.1 and a port the kernel picks until the
// test ends, and returns the port.
func ServeHTTP(t testing.TB, h http.Handler) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go hs.Serve(l)
	t.Cleanup(func() { hs.Close() })
	return l.Addr().(*net.TCPAddr).Port
}

// ServeName serves name as the body of every request (ServeHTTP).
func ServeName(t testing.TB, name string) int {
	return ServeHTTP(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, name)
	}))
}

// discard is a logger that drops everything.
func discard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
