// Package controlplane wires weft-control together: the configuration
// directory (watched, validated, last good version kept) and the service
// registries feed an immutable model.Snapshot, which the xDS server
// translates for each connected proxy and pushes over ADS.
//
// Config flows one way: files → config.Store → registry → model.Snapshot →
// translate → xds. A change anywhere upstream triggers one debounced push.
package controlplane

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	meshv1alpha1 "istio.io/api/mesh/v1alpha1"

	"github.com/weftmesh/weft/internal/ca"
	"github.com/weftmesh/weft/internal/config"
	configkube "github.com/weftmesh/weft/internal/config/kube"
	"github.com/weftmesh/weft/internal/dashboard"
	"github.com/weftmesh/weft/internal/inject"
	"github.com/weftmesh/weft/internal/model"
	"github.com/weftmesh/weft/internal/registry"
	"github.com/weftmesh/weft/internal/translate"
	"github.com/weftmesh/weft/internal/xds"
)

// Options configure a control plane.
type Options struct {
	// ConfigDir is the directory of Istio YAML (required unless
	// Kubernetes is set; when both are set, the directory is the
	// configuration).
	ConfigDir string
	// WebhookAddress serves the validating admission webhook for the Istio
	// kinds (POST /validate, TLS) when set (Istio's port is 15017).
	WebhookAddress string
	// WebhookCertFile and WebhookKeyFile are the webhook's certificate and
	// key (PEM); without them the mesh CA issues one for WebhookDNSNames
	// (default weft-control.NAMESPACE.svc[.cluster.local] and localhost), which needs SecureAddress.
	WebhookCertFile, WebhookKeyFile string
	WebhookDNSNames                 []string
	// Injection, when set, also serves the sidecar injection webhook
	// (inject.WebhookPath) on WebhookAddress.
	Injection *inject.Options
	// XDSAddress is where ADS is served (default 127.0.0.1:15010).
	XDSAddress string
	// HTTPAddress serves /debug/syncz, /debug/configz, /metrics, /ready
	// and the dashboard, /dashboard/ (default 127.0.0.1:15014).
	HTTPAddress string
	// Debounce is how long the configuration directory must stay quiet
	// before it is reloaded and pushed (default 100 ms): an editor's or a
	// deployment tool's burst of writes becomes one push.
	Debounce time.Duration
	// RootNamespace is the mesh-wide configuration namespace (default
	// istio-system).
	RootNamespace string
	// Mesh is Istio's mesh configuration (nil: config.DefaultMeshConfig).
	Mesh *meshv1alpha1.MeshConfig
	// SecureAddress serves the mesh CA (Istio's IstioCertificateService)
	// and ADS on one gRPC server over TLS, with a certificate issued by
	// the CA (weft-control's default: DefaultSecureAddress, Istio's
	// 15012). Empty: no secure port and no CA.
	SecureAddress string
	// CA configures the mesh CA when SecureAddress is set (CA.Dir is then
	// required; CA.Logger defaults to Logger).
	CA ca.Options
	// Dashboard configures how the dashboard (/dashboard/ on HTTPAddress)
	// scrapes the proxies' Istio metrics (defaults: every 5 s, port 15090).
	Dashboard dashboard.ScrapeOptions
	Logger    *slog.Logger
	// ID names this instance in /debug/syncz and `weft proxy-status`
	// (Istio's ISTIOD column); default "weft-control-" and the host name.
	ID string
	// Kubernetes, when set, reaches the cluster's API server (nil: file
	// mode only): its Services and EndpointSlices join the mesh, the CA
	// authenticates pods by their service account tokens (kube.go), and,
	// without ConfigDir, the configuration is the cluster's Istio custom
	// resources (internal/config/kube, kubeconfig.go): watched live, the
	// last good version of a rejected object kept, problems written into
	// each object's status.validationMessages.
	Kubernetes *KubernetesOptions
}

// Defaults.
const (
	DefaultXDSAddress  = "127.0.0.1:15010"
	DefaultHTTPAddress = "127.0.0.1:15014"
	DefaultDebounce    = 100 * time.Millisecond
)

// ControlPlane is a running weft-control.
type ControlPlane struct {
	o      Options
	log    *slog.Logger
	store  *config.Store
	config configSource // kubeconfig.go
	// kubeConfig is config when it is the Kubernetes source (nil
	// otherwise): told to check again when the cluster's Services change.
	kubeConfig *configkube.Source
	webhook    *webhookServer
	files      *registry.File
	translator *translate.Translator
	xds        *xds.Server

	// services is the source of the snapshot's services: files alone, or
	// merged with the Kubernetes registry (kube.go).
	services registry.Source
	kube     *kubeState // nil without Options.Kubernetes

	xdsLn  net.Listener
	httpLn net.Listener
	http   *http.Server
	ca     *ca.CA        // nil without SecureAddress
	secure *secureServer // nil without SecureAddress
	dash   *dashboard.Dashboard

	metrics *metrics
	pushes  chan struct{}
	// changed is when the configuration changed (Unix nanoseconds) since
	// the last push; 0: no pending change.
	changed atomic.Int64
	// reasonsMu guards reasons: the push triggers (Istio's reasons) of
	// the changes since the last push.
	reasonsMu sync.Mutex
	reasons   map[string]bool
	version   atomic.Uint64
	ready     atomic.Bool
	cur       atomic.Pointer[model.Snapshot]
	// overlay is the in-memory configuration of SetOverlay (generated.go).
	overlay atomic.Pointer[Overlay]

	warnMu sync.Mutex
	warned map[string]bool
}

// New loads the configuration directory and binds the xDS and HTTP ports.
// Configuration problems are logged, not fatal: invalid objects are
// skipped, as they are later.
func New(o Options) (*ControlPlane, error) {
	if o.ConfigDir == "" && o.Kubernetes == nil {
		return nil, errors.New("a configuration directory (--config-dir) or a cluster (--kubeconfig) is required")
	}
	if o.XDSAddress == "" {
		o.XDSAddress = DefaultXDSAddress
	}
	if o.HTTPAddress == "" {
		o.HTTPAddress = DefaultHTTPAddress
	}
	if o.Debounce <= 0 {
		o.Debounce = DefaultDebounce
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Mesh == nil {
		o.Mesh = config.DefaultMeshConfig()
	}
	if o.ID == "" {
		o.ID = defaultID()
	}
	c := &ControlPlane{
		o:          o,
		log:        o.Logger,
		store:      config.NewStore(),
		files:      registry.NewFile(registry.FileOptions{}),
		translator: translate.New(translate.Options{TrustDomain: o.CA.TrustDomain}),
		pushes:     make(chan struct{}, 1),
		warned:     map[string]bool{},
		reasons:    map[string]bool{},
	}
	if err := c.setupKubernetes(); err != nil {
		return nil, err
	}
	var err error
	c.xds, err = xds.New(xds.Options{Generator: c.translator, Logger: c.log, ID: o.ID})
	if err != nil {
		return nil, err
	}
	c.metrics = newMetrics(c.xds.Registry())
	if c.dash, err = c.newDashboard(); err != nil {
		return nil, err
	}
	if c.config, err = c.newConfigSource(); err != nil {
		return nil, err
	}
	c.logProblems(c.store.Errors())
	c.metrics.currentProblems(c.store.Errors())
	if c.xdsLn, err = net.Listen("tcp", o.XDSAddress); err != nil {
		c.config.Close()
		return nil, fmt.Errorf("xDS address %s: %w", o.XDSAddress, err)
	}
	if c.httpLn, err = net.Listen("tcp", o.HTTPAddress); err != nil {
		c.config.Close()
		c.xdsLn.Close()
		return nil, fmt.Errorf("HTTP address %s: %w", o.HTTPAddress, err)
	}
	if o.SecureAddress != "" {
		if err := c.startCA(); err != nil {
			c.config.Close()
			c.xdsLn.Close()
			c.httpLn.Close()
			return nil, err
		}
	}
	if o.WebhookAddress != "" {
		if c.webhook, err = c.newWebhookServer(); err != nil {
			c.config.Close()
			c.xdsLn.Close()
			c.httpLn.Close()
			if c.secure != nil {
				c.secure.stop()
			}
			return nil, err
		}
	}
	// The mesh root in each namespace and in the webhook configurations
	// (Kubernetes mode with the CA; kube.go).
	if err := c.setupCABundle(c.webhook != nil && o.WebhookCertFile == ""); err != nil {
		c.closeUnserved()
		if c.webhook != nil {
			c.webhook.ln.Close()
		}
		return nil, err
	}
	mux := http.NewServeMux()
	c.xds.Mount(mux, c.configz)
	mux.HandleFunc("/ready", c.handleReady)
	c.dash.Mount(mux)
	// Go's profiles, as istiod serves them on its debug port: this port
	// binds to loopback unless configured otherwise.
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	c.http = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	return c, nil
}

// startCA loads or creates the mesh CA and binds the secure port.
func (c *ControlPlane) startCA() error {
	co := c.o.CA
	if co.Logger == nil {
		co.Logger = c.log
	}
	var err error
	if c.ca, err = c.newCA(co); err != nil { // kube.go
		return fmt.Errorf("CA: %w", err)
	}
	auth, err := c.authenticator() // kube.go
	if err != nil {
		return err
	}
	c.secure, err = newSecureServer(c.o.SecureAddress, c.ca, auth, c.xds, servingOptions(c.namespace()), c.log)
	return err
}

// SecureAddr returns the bound secure (TLS: CA and ADS) address, nil
// without Options.SecureAddress.
func (c *ControlPlane) SecureAddr() net.Addr {
	if c.secure == nil {
		return nil
	}
	return c.secure.ln.Addr()
}

// CA returns the mesh CA, nil without Options.SecureAddress.
func (c *ControlPlane) CA() *ca.CA { return c.ca }

// XDSAddr returns the bound xDS address.
func (c *ControlPlane) XDSAddr() net.Addr { return c.xdsLn.Addr() }

// HTTPAddr returns the bound monitoring address.
func (c *ControlPlane) HTTPAddr() net.Addr { return c.httpLn.Addr() }

// XDS returns the xDS server (tests and status).
func (c *ControlPlane) XDS() *xds.Server { return c.xds }

// Snapshot returns the configuration pushed last (nil before the first).
func (c *ControlPlane) Snapshot() *model.Snapshot { return c.cur.Load() }

// Run serves until ctx ends, then stops everything.
func (c *ControlPlane) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// One slot per goroutine that may report: xDS, HTTP, secure port,
	// webhook, configuration source, Kubernetes registry, mesh root
	// publisher, and spare.
	errc := make(chan error, 8)
	if err := c.startKubernetes(ctx, errc); err != nil { // kube.go
		c.closeUnserved()
		return err
	}
	select {
	case <-c.pushes: // the initial load's trigger: the push below covers it
	default:
	}
	c.takeReasons() // the initial load's changes: the global push below covers them
	c.metrics.pushed(map[string]bool{triggerGlobal: true})
	c.push() // the initial configuration, before any proxy is answered
	go func() { errc <- c.xds.Serve(c.xdsLn) }()
	go func() {
		if err := c.http.Serve(c.httpLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errc <- err
			return
		}
		errc <- nil
	}()
	go func() { errc <- c.config.Run(ctx) }()
	c.runCABundle(ctx, errc) // kube.go
	if c.webhook != nil {
		go func() { errc <- c.webhook.serve() }()
	}
	if c.secure != nil {
		go func() { errc <- c.secure.serve(ctx) }()
	}
	go c.pushLoop(ctx)
	go c.dash.Run(ctx)
	go c.trimLoop(ctx)
	c.log.Info("weft-control serving", "xds", c.XDSAddr().String(), "http", c.HTTPAddr().String(), "config", c.o.ConfigDir)
	if c.secure != nil {
		c.log.Info("CA and ADS over TLS", "secure", c.SecureAddr().String(), "trust_domain", c.ca.TrustDomain(), "root_serial", c.ca.Root().SerialNumber.String())
	}
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	cancel()
	c.xds.Stop()
	if c.secure != nil {
		c.secure.stop()
	}
	shut, done := context.WithTimeout(context.Background(), 5*time.Second)
	c.http.Shutdown(shut)
	if c.webhook != nil {
		c.webhook.srv.Shutdown(shut)
	}
	done()
	c.config.Close()
	return err
}

// onConfigChange runs after the watcher applied a reload to the store.
func (c *ControlPlane) onConfigChange(ch config.Changes, problems []*config.Error) {
	c.logProblems(problems)
	c.reasonsMu.Lock()
	c.metrics.configChanged(ch, c.reasons)
	c.reasonsMu.Unlock()
	c.metrics.currentProblems(c.store.Errors())
	c.changed.CompareAndSwap(0, time.Now().UnixNano())
	c.log.Info("configuration changed", "added", len(ch.Added), "updated", len(ch.Updated), "removed", len(ch.Removed), "kept_last_good", len(ch.Kept))
	c.trigger()
}

func (c *ControlPlane) trigger() {
	select {
	case c.pushes <- struct{}{}:
	default: // a push is already due
	}
}

// takeReasons returns the push reasons gathered since the last call.
func (c *ControlPlane) takeReasons() map[string]bool {
	c.reasonsMu.Lock()
	defer c.reasonsMu.Unlock()
	r := c.reasons
	c.reasons = map[string]bool{}
	return r
}

// pushLoop runs the pushes, one at a time: triggers that arrive during a
// push become one push after it. Debouncing happens at the source: the
// watcher reloads once the directory was quiet for Debounce, so a burst of
// file writes is already one trigger (a second debounce here would only
// add latency).
func (c *ControlPlane) pushLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.pushes:
			c.metrics.pushed(c.takeReasons())
			c.push()
		}
	}
}

// trimDelay is how long the xDS server must stay idle (every response
// answered) before trimLoop returns memory to the OS.
const trimDelay = 2 * time.Second

// trimLoop returns the memory of a push to the operating system once the
// push is over. A push to hundreds of proxies leaves hundreds of MiB of
// garbage and of gRPC's pooled message buffers (sync.Pool, which only
// empties over two collections); an idle Go process would keep that
// resident until the runtime's forced collections every two minutes. So,
// trimDelay after the xDS server went idle, and still idle: two
// collections and a scavenge (debug.FreeOSMemory). The cost is one CPU
// burst per push wave, off the push path; measured in docs/PERFORMANCE.md.
func (c *ControlPlane) trimLoop(ctx context.Context) {
	t := time.NewTimer(trimDelay)
	t.Stop()
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.xds.Idle():
			t.Reset(trimDelay)
		case <-t.C:
			if c.xds.PendingBytes() == 0 {
				runtime.GC()
				debug.FreeOSMemory()
			}
		}
	}
}

// push builds a snapshot from the store and the registries and hands it to
// the xDS server.
func (c *ControlPlane) push() {
	start := time.Now()
	var changed time.Time
	if ns := c.changed.Swap(0); ns != 0 {
		changed = time.Unix(0, ns)
	}
	objs := c.withOverlay(c.store.List()) // generated.go
	problems, _ := c.files.Update(objs)
	c.logProblems(problems)
	snap := model.NewSnapshot(model.SnapshotOptions{
		Version:       strconv.FormatUint(c.version.Add(1), 10),
		RootNamespace: c.o.RootNamespace,
		Mesh:          c.o.Mesh,
		Services:      c.currentServices(), // kube.go
		Configs:       objs,
	})
	c.metrics.snapshotBuilt(snap, time.Since(start))
	c.cur.Store(snap)
	c.xds.PushSince(snap, changed)
	c.logProblems(c.translator.Warnings(snap))
	c.translator.Retain(snap) // every connected proxy has been generated for snap
	c.ready.Store(true)
	c.log.Info("pushed", "version", snap.Version, "services", len(snap.Services), "proxies", c.xds.Connected(), "took", time.Since(start).Round(time.Microsecond))
}

// logProblems logs each problem once per distinct text.
func (c *ControlPlane) logProblems(ps []*config.Error) {
	c.warnMu.Lock()
	defer c.warnMu.Unlock()
	for _, p := range ps {
		s := p.Error()
		if c.warned[s] {
			continue
		}
		c.warned[s] = true
		c.metrics.newProblem(p)
		if p.Warning {
			c.log.Warn(s)
		} else {
			c.log.Error(s)
		}
	}
}

// defaultID is "weft-control-" and the host name (Istio's ISTIOD column
// shows the istiod pod's name).
func defaultID() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		return xds.DefaultID
	}
	return xds.DefaultID + "-" + h
}

func (c *ControlPlane) handleReady(w http.ResponseWriter, _ *http.Request) {
	if !c.ready.Load() {
		http.Error(w, "not ready: no configuration pushed yet", http.StatusServiceUnavailable)
		return
	}
	fmt.Fprintln(w, "ready")
}
