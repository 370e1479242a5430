// Package meshtest runs the parts of a mesh for end-to-end tests, on
// loopback: weft-control (internal/controlplane), the sidecar agent's
// certificate manager and SDS server, and weft-proxy (internal/proxy/server)
// from the bootstrap the agent builds, exactly as `weft-proxy sidecar`
// does. test/mesh and test/dashboard build their harnesses on it.
package meshtest

import (
	"context"
	"log/slog"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/ca"
	"github.com/weftmesh/weft/internal/controlplane"
	"github.com/weftmesh/weft/internal/proxy/agent"
	"github.com/weftmesh/weft/internal/proxy/agent/certs"
	"github.com/weftmesh/weft/internal/proxy/bootstrap"
	"github.com/weftmesh/weft/internal/proxy/server"
)

// RunControlPlane builds weft-control from o and runs it until the test
// ends (the cleanup fails the test if Run returned an error).
func RunControlPlane(t testing.TB, o controlplane.Options) *controlplane.ControlPlane {
	t.Helper()
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

// AgentOptions identify the workload whose certificate an agent obtains.
type AgentOptions struct {
	Namespace, ServiceAccount string       // Namespace default "default"
	Logger                    *slog.Logger // nil: discarded
}

// StartAgent runs the sidecar agent's certificate manager and SDS server
// for the workload, with a bootstrap token minted by cp's CA, until the
// test ends, and returns the SDS socket for agent.Options.SDSSocket.
func StartAgent(t testing.TB, cp *controlplane.ControlPlane, o AgentOptions) string {
	t.Helper()
	authority := cp.CA()
	if authority == nil {
		t.Fatal("a sidecar with a certificate needs weft-control with its CA (Options.SecureAddress)")
	}
	if o.Namespace == "" {
		o.Namespace = "default"
	}
	token, err := authority.Tokens().Mint(ca.Identity{Namespace: o.Namespace, ServiceAccount: o.ServiceAccount}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	socket := filepath.Join(t.TempDir(), "sds", "sds.sock")
	sec, err := agent.StartSecurity(agent.SecurityOptions{
		SDSSocket: socket,
		Logger:    o.Logger,
		Certs: certs.Options{
			CAAddress:      cp.SecureAddr().String(),
			RootCAs:        authority.Roots(),
			Token:          certs.StaticToken(token),
			TrustDomain:    "cluster.local",
			Namespace:      o.Namespace,
			ServiceAccount: o.ServiceAccount,
		},
	})
	if err != nil {
		t.Fatalf("agent: %v", err)
	}
	t.Cleanup(sec.Stop)
	return socket
}

// ProxyOptions run one weft-proxy.
type ProxyOptions struct {
	Agent     *agent.Options // the bootstrap, as `weft-proxy sidecar` builds it
	DrainTime time.Duration
	Logger    *slog.Logger // nil: discarded
}

// StartProxy builds the bootstrap of o.Agent, starts weft-proxy, and waits
// (10 s at most) until it has its initial configuration; the test's
// cleanup shuts it down.
func StartProxy(t testing.TB, o ProxyOptions) *server.Server {
	t.Helper()
	yaml, err := agent.BootstrapYAML(o.Agent)
	if err != nil {
		t.Fatalf("bootstrap: %v", err)
	}
	b, err := bootstrap.ParseAndValidate(yaml, o.Agent.Name+".yaml")
	if err != nil {
		t.Fatalf("bootstrap: %v\n%s", err, yaml)
	}
	if o.Logger == nil {
		o.Logger = discard()
	}
	srv, err := server.New(server.Options{Bootstrap: b, DrainTime: o.DrainTime, Logger: o.Logger})
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
		t.Fatalf("proxy %s: no initial configuration from weft-control within 10 s", o.Agent.Name)
	}
	return srv
}

// FreePort returns a TCP port that was free on ip a moment ago: for a port
// that must be known before the listener taking it exists (a sidecar's
// ports are in its bootstrap).
func FreePort(t testing.TB, ip string) int {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
