package controlplane

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	networking "istio.io/api/networking/v1alpha3"
	"net"
	"net/http"
	"time"

	"github.com/weftmesh/weft/internal/ca"
	"github.com/weftmesh/weft/internal/config"
	"github.com/weftmesh/weft/internal/config/kube"
	"github.com/weftmesh/weft/internal/inject"
)

// configSource is where the configuration comes from: the directory
// watcher or the Kubernetes source. Both were loaded once by New; Run
// reacts to changes until ctx ends; Close stops them when Run is not
// called.
type configSource interface {
	Run(ctx context.Context) error
	Close()
}

// dirSource adapts config.Watcher to configSource.
type dirSource struct{ *config.Watcher }

func (d dirSource) Close() { _ = d.Watcher.Close() }

// newConfigSource builds the configuration source of the options and
// loads it once into the store: Kubernetes when Options.Kubernetes is set
// and ConfigDir is not (a ConfigDir, when given, is the configuration),
// else the directory.
func (c *ControlPlane) newConfigSource() (configSource, error) {
	if c.o.ConfigDir == "" && c.o.Kubernetes != nil {
		return c.newKubeSource()
	}
	w, err := config.NewWatcher(config.WatcherOptions{
		Dir:      c.o.ConfigDir,
		Debounce: c.o.Debounce,
		Store:    c.store,
		OnChange: c.onConfigChange,
		OnError:  func(err error) { c.log.Warn("watching the configuration directory", "err", err) },
	})
	if err != nil {
		return nil, fmt.Errorf("watch %s: %w", c.o.ConfigDir, err)
	}
	if _, err := w.Reload(); err != nil {
		w.Close()
		return nil, fmt.Errorf("load %s: %w", c.o.ConfigDir, err)
	}
	return dirSource{w}, nil
}

// newKubeSource watches the Istio custom resources of the cluster and
// loads them once (the initial lists are awaited, at most a minute).
func (c *ControlPlane) newKubeSource() (configSource, error) {
	var hosts func(string) ([]*networking.ServicePort, bool, bool)
	if c.kube != nil {
		hosts = c.platformHosts
	}
	s, err := kube.New(kube.Options{
		Config:        c.o.Kubernetes.Config,
		PlatformHosts: hosts,
		Store:         c.store,
		Debounce:      c.o.Debounce,
		OnChange:      c.onConfigChange,
		OnError:       func(err error) { c.log.Warn("watching the Kubernetes configuration", "err", err) },
	})
	if err != nil {
		return nil, err
	}
	if err := s.Sync(context.Background()); err != nil {
		s.Close()
		return nil, err
	}
	c.kubeConfig = s
	return s, nil
}

// webhookServer serves the validating admission webhook (kube.Webhook on
// kube.WebhookPath) over TLS.
type webhookServer struct {
	ln  net.Listener
	srv *http.Server
}

// newWebhookServer binds Options.WebhookAddress with the certificate of
// WebhookCertFile/WebhookKeyFile, or one issued by the mesh CA for
// WebhookDNSNames (the API server then trusts the mesh root: the
// ValidatingWebhookConfiguration's caBundle).
func (c *ControlPlane) newWebhookServer() (*webhookServer, error) {
	var cert *tls.Certificate
	switch {
	case c.o.WebhookCertFile != "" || c.o.WebhookKeyFile != "":
		kp, err := tls.LoadX509KeyPair(c.o.WebhookCertFile, c.o.WebhookKeyFile)
		if err != nil {
			return nil, fmt.Errorf("webhook certificate (--webhook-cert, --webhook-key): %w", err)
		}
		cert = &kp
	case c.ca != nil:
		// In Kubernetes mode, the API server trusts it through the
		// webhook configurations' caBundle (kubecabundle.go).
		names := c.o.WebhookDNSNames
		if len(names) == 0 {
			names = webhookDNSNames(c.namespace())
		}
		issued, err := c.ca.IssueServing(ca.ServingOptions{DNSNames: names, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}})
		if err != nil {
			return nil, fmt.Errorf("webhook certificate from the mesh CA: %w", err)
		}
		cert = issued
	default:
		return nil, errors.New("the webhook needs a certificate: pass --webhook-cert and --webhook-key, or keep the mesh CA on (--secure-address)")
	}
	ln, err := net.Listen("tcp", c.o.WebhookAddress)
	if err != nil {
		return nil, fmt.Errorf("webhook address %s: %w", c.o.WebhookAddress, err)
	}
	mux := http.NewServeMux()
	mux.Handle(kube.WebhookPath, kube.Webhook{})
	if c.o.Injection != nil {
		// Sidecar injection (charts/weft/templates/mutatingwebhook.yaml).
		io := *c.o.Injection
		if io.DiscoveryAddress == "" {
			// weft-control's Service in its namespace (the chart's).
			io.DiscoveryAddress = "weft-control." + c.namespace() + ".svc:15010"
		}
		if io.ProxyMetadata == nil {
			// meshConfig.defaultConfig.proxyMetadata (DNS capture, ...).
			io.ProxyMetadata = c.o.Mesh.GetDefaultConfig().GetProxyMetadata()
		}
		inj, err := inject.New(io)
		if err != nil {
			ln.Close()
			return nil, fmt.Errorf("sidecar injection: %w", err)
		}
		mux.Handle(inject.WebhookPath, inject.Handler(inj, c.log))
	}
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		TLSConfig:         &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{*cert}},
	}
	return &webhookServer{ln: tls.NewListener(ln, srv.TLSConfig), srv: srv}, nil
}

// webhookDNSNames are the default names of the webhook certificate the
// mesh CA issues: weft-control's Service in its namespace, as the chart's
// webhook configurations reach it.
func webhookDNSNames(namespace string) []string {
	svc := "weft-control." + namespace + ".svc"
	return []string{svc, svc + ".cluster.local", "localhost"}
}

// WebhookAddr returns the bound webhook address, nil without
// Options.WebhookAddress.
func (c *ControlPlane) WebhookAddr() net.Addr {
	if c.webhook == nil {
		return nil
	}
	return c.webhook.ln.Addr()
}

// serve serves until Shutdown.
func (w *webhookServer) serve() error {
	if err := w.srv.Serve(w.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("webhook: %w", err)
	}
	return nil
}
