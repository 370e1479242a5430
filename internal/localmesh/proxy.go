package localmesh

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"strconv"
	"time"

	"github.com/weftmesh/weft/internal/ca"
	"github.com/weftmesh/weft/internal/proxy/agent"
	"github.com/weftmesh/weft/internal/proxy/agent/certs"
	"github.com/weftmesh/weft/internal/proxy/bootstrap"
	"github.com/weftmesh/weft/internal/proxy/server"
)

// proxyOptions describe one in-process proxy: a replica's sidecar or the
// ingress gateway.
type proxyOptions struct {
	Type           string // "sidecar" or "router"
	Name           string
	Namespace      string
	IP             string
	Labels         map[string]string
	ServiceAccount string
	// Outbound sets the sidecar's outbound HTTP proxy listener at
	// IP:OutboundPort (routers have none).
	Outbound bool
	// XDS is weft-control's xDS address; CA its CA and CAAddress the
	// secure (TLS) address it serves the CA on.
	XDS       string
	CA        *ca.CA
	CAAddress string
	// RunDir is where the SDS socket goes (a directory per proxy below).
	RunDir    string
	DrainTime time.Duration
	Logger    *slog.Logger
}

// proxy is a running in-process proxy: the agent's certificate manager
// and SDS server, and weft-proxy's server.
type proxy struct {
	name string
	srv  *server.Server
	sec  *agent.Security
}

// localTokenTTL is the lifetime of the bootstrap tokens minted in process
// for each certificate request (never written anywhere).
const localTokenTTL = 5 * time.Minute

// startProxy starts the certificate manager (tokens minted in process
// with the CA's key: no token on disk), then the proxy, as `weft-proxy
// sidecar` does in local mode. It does not wait for the configuration.
func startProxy(o proxyOptions) (*proxy, error) {
	socket := filepath.Join(o.RunDir, o.Name+"."+o.Namespace, "sds.sock")
	id := ca.Identity{Namespace: o.Namespace, ServiceAccount: o.ServiceAccount}
	tokens := o.CA.Tokens()
	sec, err := agent.StartSecurity(agent.SecurityOptions{
		SDSSocket: socket,
		Logger:    o.Logger,
		Certs: certs.Options{
			CAAddress:      o.CAAddress,
			RootCAs:        o.CA.Roots(),
			Token:          func(context.Context) (string, error) { return tokens.Mint(id, localTokenTTL) },
			TrustDomain:    o.CA.TrustDomain(),
			Namespace:      o.Namespace,
			ServiceAccount: o.ServiceAccount,
		},
	})
	if err != nil {
		return nil, fmt.Errorf("%s's agent: %w", o.Name, err)
	}
	ao := &agent.Options{
		DiscoveryAddress: o.XDS,
		Type:             o.Type,
		IP:               o.IP,
		Name:             o.Name,
		Namespace:        o.Namespace,
		Labels:           o.Labels,
		ServiceAccount:   o.ServiceAccount,
		AdminAddress:     net.JoinHostPort(o.IP, strconv.Itoa(AdminPort)),
		MetricsAddress:   net.JoinHostPort(o.IP, strconv.Itoa(MetricsPort)),
		SDSSocket:        socket,
	}
	if o.Outbound {
		ao.HTTPProxyAddress, ao.HTTPProxyPort = o.IP, strconv.Itoa(OutboundPort)
	}
	srv, err := newServer(ao, o)
	if err != nil {
		sec.Stop()
		return nil, fmt.Errorf("%s's proxy: %w", o.Name, err)
	}
	srv.Start()
	return &proxy{name: o.Name, srv: srv, sec: sec}, nil
}

// newServer builds the proxy from the agent's bootstrap.
func newServer(ao *agent.Options, o proxyOptions) (*server.Server, error) {
	yml, err := agent.BootstrapYAML(ao)
	if err != nil {
		return nil, err
	}
	b, err := bootstrap.ParseAndValidate(yml, o.Name+" bootstrap")
	if err != nil {
		return nil, err
	}
	return server.New(server.Options{Bootstrap: b, DrainTime: o.DrainTime, Logger: o.Logger})
}

// stop drains the proxy (for at most its drain time or ctx), then stops
// its agent.
func (p *proxy) stop(ctx context.Context) {
	_ = p.srv.Shutdown(ctx) // drain errors: connections cut at the deadline, nothing to report
	p.sec.Stop()
}
