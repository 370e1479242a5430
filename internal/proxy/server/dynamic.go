package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sort"
	"sync"
	"time"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/proto"

	"github.com/weftmesh/weft/internal/proxy/upstream"
	"github.com/weftmesh/weft/internal/proxy/upstream/lb"
	"github.com/weftmesh/weft/internal/proxy/xdsclient"
)

// adsConfig is what the bootstrap's dynamic_resources says.
type adsConfig struct {
	// cluster is the static cluster of the control plane
	// (ads_config.grpc_services[0].envoy_grpc.cluster_name).
	cluster  string
	nodeOnce bool
	lds, cds bool
	// ldsTimeout and cdsTimeout are the config sources'
	// initial_fetch_timeout: how long the first response may take before
	// the server goes LIVE without it (0: wait for ever).
	ldsTimeout, cdsTimeout time.Duration
}

// defaultFetchTimeout is Envoy's initial_fetch_timeout default.
const defaultFetchTimeout = 15 * time.Second

// fetchTimeout returns a config source's initial_fetch_timeout.
func fetchTimeout(cs *corev3.ConfigSource) time.Duration {
	if d := cs.GetInitialFetchTimeout(); d != nil {
		return d.AsDuration()
	}
	return defaultFetchTimeout
}

// parseADS checks dynamic_resources (nil, nil without it). Envoy's rules:
// the gRPC service is a statically defined cluster; weft-proxy speaks the
// v3 state-of-the-world protocol over ADS only.
func parseADS(b *bootstrapv3.Bootstrap) (*adsConfig, error) {
	dr := b.GetDynamicResources()
	if dr == nil {
		return nil, nil
	}
	const p = "dynamic_resources"
	c := &adsConfig{lds: dr.GetLdsConfig() != nil, cds: dr.GetCdsConfig() != nil}
	for _, src := range []struct {
		name string
		cs   *corev3.ConfigSource
	}{{"lds_config", dr.GetLdsConfig()}, {"cds_config", dr.GetCdsConfig()}} {
		if src.cs == nil {
			continue
		}
		if src.cs.GetAds() == nil {
			return nil, fmt.Errorf("%s.%s: set ads {} (weft-proxy receives its configuration over ADS only)", p, src.name)
		}
		if src.cs.GetResourceApiVersion() != corev3.ApiVersion_V3 {
			return nil, fmt.Errorf("%s.%s.resource_api_version: set V3 (the only xDS version, as in current Envoy)", p, src.name)
		}
	}
	if !c.lds && !c.cds {
		return nil, fmt.Errorf("%s: set lds_config or cds_config", p)
	}
	c.ldsTimeout, c.cdsTimeout = fetchTimeout(dr.GetLdsConfig()), fetchTimeout(dr.GetCdsConfig())
	ads := dr.GetAdsConfig()
	if ads == nil {
		return nil, fmt.Errorf("%s.ads_config: required by lds_config/cds_config ads {}", p)
	}
	if ads.GetTransportApiVersion() != corev3.ApiVersion_V3 {
		return nil, fmt.Errorf("%s.ads_config.transport_api_version: set V3", p)
	}
	gs := ads.GetGrpcServices()
	if len(gs) != 1 || gs[0].GetEnvoyGrpc().GetClusterName() == "" {
		return nil, fmt.Errorf("%s.ads_config.grpc_services: exactly one envoy_grpc {cluster_name} is required", p)
	}
	c.cluster = gs[0].GetEnvoyGrpc().GetClusterName()
	c.nodeOnce = ads.GetSetNodeOnFirstMessageOnly()
	var found bool
	for _, cl := range b.GetStaticResources().GetClusters() {
		found = found || cl.GetName() == c.cluster
	}
	if !found {
		return nil, fmt.Errorf("%s.ads_config.grpc_services[0].envoy_grpc.cluster_name: %q is not a cluster of static_resources (the control plane's cluster must be static, as in Envoy)", p, c.cluster)
	}
	return c, nil
}

// resourceState is one resource as the proxy holds it.
type resourceState struct {
	msg     proto.Message
	version string
	updated time.Time
}

// failure is a resource's last rejected update (config dump error_state).
type failure struct {
	msg     proto.Message // nil when it did not decode
	version string
	when    time.Time
	details string
}

// dynamic is the configuration received from the control plane and the
// xDS client that brings it. It implements xdsclient.Handler: updates are
// built off the request path and swapped in. mu guards everything below
// it; Apply runs on the client's goroutine, warming timers on their own.
type dynamic struct {
	s      *Server
	cfg    *adsConfig
	client *xdsclient.Client
	cancel context.CancelFunc
	done   chan struct{}

	mu        sync.Mutex
	stopped   bool
	clusters  map[string]*dynCluster
	endpoints map[string]*resourceState // by EDS service name
	routes    map[string]*resourceState
	listeners map[string]*dynListener
	// versions is the last version_info processed per type; received
	// records the types that had a response.
	versions map[string]string
	received map[string]bool
	failures map[string]map[string]*failure // type → name → last failure
}

// newDynamic sets up the xDS client when the bootstrap has
// dynamic_resources.
func (s *Server) newDynamic() error {
	cfg, err := parseADS(s.o.Bootstrap)
	if err != nil || cfg == nil {
		return err
	}
	cl := s.clusters.Get(cfg.cluster)
	if cl.Protocol() != upstream.HTTP2 {
		return fmt.Errorf("dynamic_resources.ads_config: cluster %q must speak HTTP/2 (gRPC): set typed_extension_protocol_options explicit_http_config http2_protocol_options", cfg.cluster)
	}
	d := &dynamic{
		s: s, cfg: cfg,
		clusters:  map[string]*dynCluster{},
		endpoints: map[string]*resourceState{},
		routes:    map[string]*resourceState{},
		listeners: map[string]*dynListener{},
		versions:  map[string]string{},
		received:  map[string]bool{},
		failures:  map[string]map[string]*failure{},
	}
	d.client, err = xdsclient.New(xdsclient.Options{
		Node:                      s.xdsNode(),
		Target:                    cfg.cluster,
		Dial:                      d.dial,
		Handler:                   d,
		Clusters:                  cfg.cds,
		Listeners:                 cfg.lds,
		SetNodeOnFirstMessageOnly: cfg.nodeOnce,
		Backoff:                   s.o.XDSBackoff,
		Stats:                     s.stats,
		Logger:                    s.log,
	})
	if err != nil {
		return fmt.Errorf("dynamic_resources: %w", err)
	}
	s.dyn = d
	return nil
}

// dial connects to a host of the control plane's cluster.
func (d *dynamic) dial(ctx context.Context) (net.Conn, error) {
	cl := d.s.clusters.Get(d.cfg.cluster)
	if cl == nil {
		return nil, fmt.Errorf("cluster %q is gone", d.cfg.cluster)
	}
	h := cl.Choose(&lb.Context{})
	if h == nil {
		return nil, fmt.Errorf("cluster %q has no healthy host", d.cfg.cluster)
	}
	return upstream.DialHost(ctx, d.s.o.Dial, h.Address())
}

// start runs the xDS client, and ends initialization at the latest when
// the first responses' initial_fetch_timeout passed (none when either is
// 0, as Envoy waits for ever then).
func (d *dynamic) start() {
	ctx, cancel := context.WithCancel(context.Background())
	d.cancel = cancel
	d.done = make(chan struct{})
	go func() {
		defer close(d.done)
		d.client.Run(ctx)
	}()
	var wait time.Duration
	for _, src := range []struct {
		on      bool
		timeout time.Duration
	}{{d.cfg.lds, d.cfg.ldsTimeout}, {d.cfg.cds, d.cfg.cdsTimeout}} {
		switch {
		case !src.on:
		case src.timeout == 0:
			return // wait for ever
		default:
			wait = max(wait, src.timeout)
		}
	}
	if wait > 0 {
		t := time.AfterFunc(wait, func() {
			select {
			case <-d.s.initialized:
				return
			default:
			}
			d.s.log.Warn("xds: initial configuration incomplete after initial_fetch_timeout; going LIVE")
			d.s.markInitialized()
		})
		context.AfterFunc(ctx, func() { t.Stop() })
	}
}

// stop ends the xDS client and the warming timers; the configuration in
// force stays (the server is shutting down).
func (d *dynamic) stop() {
	d.mu.Lock()
	d.stopped = true
	for _, c := range d.clusters {
		c.stopTimer()
	}
	for _, l := range d.listeners {
		l.stopTimer()
	}
	d.mu.Unlock()
	if d.cancel != nil {
		d.cancel()
		<-d.done
	}
}

// Apply implements xdsclient.Handler.
func (d *dynamic) Apply(u *xdsclient.Update) map[string]error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.stopped {
		return nil
	}
	var errs map[string]error
	switch u.TypeURL {
	case xdsclient.ClusterType:
		errs = d.applyClusters(u)
	case xdsclient.EndpointType:
		errs = d.applyEndpoints(u)
	case xdsclient.ListenerType:
		errs = d.applyListeners(u)
	case xdsclient.RouteType:
		errs = d.applyRoutes(u)
	case xdsclient.SecretType:
		errs = d.applyADSSecrets(u)
	default:
		return map[string]error{u.TypeURL: errors.New("unsupported type")}
	}
	d.resubscribeSecrets()
	d.recordFailures(u, errs)
	d.versions[u.TypeURL] = u.Version
	d.received[u.TypeURL] = true
	d.checkInitialized()
	return errs
}

// Names implements xdsclient.Handler.
func (d *dynamic) Names(typeURL string) []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	switch typeURL {
	case xdsclient.EndpointType:
		return d.edsNames()
	case xdsclient.RouteType:
		return d.rdsNames()
	case xdsclient.SecretType:
		return d.adsSecretNames()
	}
	return nil
}

// versionOf returns the version in force of a resource, "" when there is
// none.
func (d *dynamic) versionOf(typeURL, name string) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var rs *resourceState
	switch typeURL {
	case xdsclient.ClusterType:
		if e := d.clusters[name]; e != nil {
			rs = e.active
		}
	case xdsclient.EndpointType:
		rs = d.endpoints[name]
	case xdsclient.ListenerType:
		if e := d.listeners[name]; e != nil {
			rs = e.activeState
		}
	case xdsclient.RouteType:
		rs = d.routes[name]
	}
	if rs == nil {
		return ""
	}
	return rs.version
}

// recordFailures keeps, per resource, the last rejected update (cleared
// when an update of the resource is accepted).
func (d *dynamic) recordFailures(u *xdsclient.Update, errs map[string]error) {
	fs := d.failures[u.TypeURL]
	if fs == nil {
		fs = map[string]*failure{}
		d.failures[u.TypeURL] = fs
	}
	for name := range u.Resources {
		if _, bad := errs[name]; !bad {
			delete(fs, name)
		}
	}
	now := time.Now()
	record := func(name string, err error) {
		f := &failure{version: u.Version, when: now, details: err.Error(), msg: u.Resources[name]}
		if f.msg == nil {
			f.msg = u.InvalidResources[name]
		}
		fs[name] = f
	}
	for name, err := range u.Invalid {
		record(name, err)
	}
	for name, err := range errs {
		record(name, err)
	}
}

// checkInitialized marks the server initialized once the first clusters
// and listeners arrived and none is warming.
func (d *dynamic) checkInitialized() {
	if d.cfg.cds && !d.received[xdsclient.ClusterType] || d.cfg.lds && !d.received[xdsclient.ListenerType] {
		return
	}
	for _, c := range d.clusters {
		if c.warming != nil {
			return
		}
	}
	for _, l := range d.listeners {
		if l.warming != nil {
			return
		}
	}
	d.s.markInitialized()
}

// sortedNames returns a map's keys in order, so updates apply in a stable
// order.
func sortedNames[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// warmTimer is the initial-fetch timer of a warming resource.
type warmTimer struct{ timer *time.Timer }

func (w *warmTimer) stopTimer() {
	if w.timer != nil {
		w.timer.Stop()
		w.timer = nil
	}
}

// applySotW applies a state-of-the-world response to the resources in
// have: those the response no longer lists (and did not reject) are
// removed first, then every listed one is updated, in name order. It
// returns the update errors by name.
func applySotW[V any](have map[string]V, u *xdsclient.Update, remove func(string), update func(string, proto.Message) error) map[string]error {
	errs := map[string]error{}
	for _, name := range sortedNames(have) {
		_, keep := u.Resources[name]
		_, rejected := u.Invalid[name]
		if !keep && !rejected {
			remove(name)
		}
	}
	for _, name := range sortedNames(u.Resources) {
		if err := update(name, u.Resources[name]); err != nil {
			errs[name] = err
		}
	}
	return errs
}

// warmTimer runs f under d.mu after timeout (0: never), unless the client
// stopped meanwhile.
func (d *dynamic) warmTimer(timeout time.Duration, f func()) *time.Timer {
	if timeout <= 0 {
		return nil
	}
	return time.AfterFunc(timeout, func() {
		d.mu.Lock()
		defer d.mu.Unlock()
		if d.stopped {
			return
		}
		f()
		d.checkInitialized()
	})
}
