package upstream

import (
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"

	"github.com/weftmesh/weft/internal/proxy/codec/http1"
	"github.com/weftmesh/weft/internal/proxy/upstream/breaker"
	"github.com/weftmesh/weft/internal/proxy/upstream/healthcheck"
	"github.com/weftmesh/weft/internal/proxy/upstream/lb"
	"github.com/weftmesh/weft/internal/proxy/upstream/outlier"
	"github.com/weftmesh/weft/internal/proxy/upstream/pool"
)

// Protocol is the HTTP version a cluster speaks to its hosts.
type Protocol uint8

// Upstream protocols.
const (
	HTTP1 Protocol = iota
	HTTP2
	// Downstream uses the protocol the request came in with
	// (use_downstream_protocol_config).
	Downstream
)

const httpProtocolOptionsKey = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"

// Cluster is one upstream cluster: its hosts, load balancer, circuit
// breakers and connection settings. Safe for concurrent use; the host set is
// swapped atomically when discovery changes it.
type Cluster struct {
	name     string
	config   *clusterv3.Cluster
	Stats    *ClusterStats
	Breakers *breaker.Breakers
	protocol Protocol

	policy     lb.Policy
	setOpts    hostSetOptions
	poolOpts   pool.Options
	h2opts     pool.H2Options
	codecOpts  http1.Options
	locWeights map[Locality]uint32
	transports *transports

	set atomic.Pointer[hostSet]
	// orig is set for an ORIGINAL_DST cluster: hosts made on demand from
	// the downstream's original destination (origdst.go).
	orig *origDst

	// Health (health.go): the outlier detector and the active health
	// check, both nil when not configured, and the health goroutine's
	// wake-up channel.
	detector    *outlier.Detector
	hc          *healthcheck.Config
	hcStats     *healthcheck.Stats
	wake        chan struct{}
	healthDirty atomic.Bool
	healthDone  chan struct{}

	mu      sync.Mutex // serializes host-set updates
	stop    chan struct{}
	stopped sync.Once
	ready   chan struct{}
	readyMu sync.Once
	updated time.Time
}

// Name returns the cluster's name.
func (c *Cluster) Name() string { return c.name }

// Config returns the cluster's configuration (read-only).
func (c *Cluster) Config() *clusterv3.Cluster { return c.config }

// Protocol returns the cluster's upstream protocol setting.
func (c *Cluster) Protocol() Protocol { return c.protocol }

// Hosts returns every host of the cluster (read-only).
func (c *Cluster) Hosts() []*Host { return c.set.Load().hosts }

// LastUpdated returns when the host set last changed.
func (c *Cluster) LastUpdated() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.updated
}

// Choose picks a host for a request. It returns nil when no host can take
// it (Envoy: 503 with response flag UH).
func (c *Cluster) Choose(ctx *lb.Context) *Host {
	if c.orig != nil {
		return c.orig.choose(ctx.OriginalDst)
	}
	h, panicked := c.set.Load().choose(ctx)
	if panicked {
		c.Stats.LbHealthyPanc.Inc()
	}
	if h == nil {
		c.Stats.CxNoneHealthy.Inc()
	}
	return h
}

// Ready is closed when the cluster has its first host set (after the
// first DNS resolution for DNS clusters).
func (c *Cluster) Ready() <-chan struct{} { return c.ready }

func (c *Cluster) markReady() { c.readyMu.Do(func() { close(c.ready) }) }

// setHosts publishes a new host set built from hosts and tells the health
// goroutine, which checks the new hosts.
func (c *Cluster) setHosts(hosts []*Host) {
	c.publish(hosts)
	c.poke()
}

// publish builds the host set of hosts with their current health and
// swaps it in.
func (c *Cluster) publish(hosts []*Host) {
	s := buildHostSet(hosts, c.setOpts)
	c.set.Store(s)
	var healthy, degraded int
	for _, h := range hosts {
		switch {
		case h.healthy():
			healthy++
		case h.Health() == HealthDegraded:
			degraded++
		}
	}
	c.Stats.MembershipTotal.Set(int64(len(hosts)))
	c.Stats.MembershipHealthy.Set(int64(healthy))
	c.Stats.MembershipDegraded.Set(int64(degraded))
	c.updated = time.Now()
}

// newHost makes a host of this cluster with its pools.
func (c *Cluster) newHost(addr, hostname string, ep endpointMeta) *Host {
	h := &Host{cluster: c}
	h.meta.Store(&hostMeta{hostname: hostname, weight: ep.weight, priority: ep.priority, locality: ep.locality, metadata: ep.metadata})
	h.addr.Store(&addr)
	h.health.Store(uint32(ep.health))
	if c.detector != nil {
		h.outlier = c.detector.NewMonitor()
	}
	// Envoy marks a new host of a cluster with a health checker
	// FAILED_ACTIVE_HC until its first check passes.
	h.hcFailed.Store(c.hc != nil)
	po := c.poolOpts
	po.Addr = h.Address
	ps := c.Stats.Pool
	ps.HostCxActive = &h.Stats.CxActive
	ps.HostCxTotal = &h.Stats.CxTotal
	ps.HostCxFail = &h.Stats.CxConnectFail
	po.Stats = &ps
	h.tls = c.transports.forEndpoint(ep.metadata)
	po.Handshake = handshake(h.tls)
	if h.tls != nil {
		po.LocalPrincipal = h.tls.LocalPrincipal
	}
	h.popts = po
	h.h1 = pool.NewH1(po, c.codecOpts)
	h.h2 = pool.NewH2(po, c.h2opts)
	return h
}

// endpointMeta is what an lb_endpoint says about the hosts made from it.
type endpointMeta struct {
	weight   uint32
	priority uint32
	locality Locality
	health   Health
	// metadata selects the transport socket (transport_socket_matches).
	metadata *corev3.Metadata
}

func metaOf(loc *endpointv3.LocalityLbEndpoints, ep *endpointv3.LbEndpoint) endpointMeta {
	m := endpointMeta{weight: 1, priority: loc.GetPriority(), health: Health(ep.GetHealthStatus()), metadata: metadataOf(ep)}
	if w := ep.GetLoadBalancingWeight(); w != nil && w.GetValue() > 0 {
		m.weight = w.GetValue()
	}
	if l := loc.GetLocality(); l != nil {
		m.locality = Locality{Region: l.GetRegion(), Zone: l.GetZone(), SubZone: l.GetSubZone()}
	}
	return m
}

// close stops discovery and closes every host's pools at once.
func (c *Cluster) close() {
	c.stopped.Do(func() { close(c.stop) })
	for _, h := range c.set.Load().hosts {
		h.close()
	}
}

// drain stops discovery and drains every host's pools: requests in flight
// finish (the cluster was replaced or removed).
func (c *Cluster) drain() {
	c.stopped.Do(func() { close(c.stop) })
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, h := range c.set.Load().hosts {
		h.drain()
	}
}

// protocolOptions reads the cluster's upstream HTTP protocol settings.
func protocolOptions(cfg *clusterv3.Cluster) (Protocol, pool.H2Options, *corev3.HttpProtocolOptions, error) {
	proto := HTTP1
	var h2 *corev3.Http2ProtocolOptions
	var common *corev3.HttpProtocolOptions
	if cfg.GetHttp2ProtocolOptions() != nil { //nolint:staticcheck // deprecated field still used by many configs
		proto, h2 = HTTP2, cfg.GetHttp2ProtocolOptions() //nolint:staticcheck
	}
	common = cfg.GetCommonHttpProtocolOptions() //nolint:staticcheck
	if anyOpts, ok := cfg.GetTypedExtensionProtocolOptions()[httpProtocolOptionsKey]; ok {
		var o httpv3.HttpProtocolOptions
		if err := anyOpts.UnmarshalTo(&o); err != nil {
			return 0, pool.H2Options{}, nil, fmt.Errorf("typed_extension_protocol_options[%q]: %w", httpProtocolOptionsKey, err)
		}
		if o.GetCommonHttpProtocolOptions() != nil {
			common = o.GetCommonHttpProtocolOptions()
		}
		switch {
		case o.GetExplicitHttpConfig() != nil:
			if e := o.GetExplicitHttpConfig(); e.GetHttp2ProtocolOptions() != nil {
				proto, h2 = HTTP2, e.GetHttp2ProtocolOptions()
			} else {
				proto = HTTP1
			}
		case o.GetUseDownstreamProtocolConfig() != nil:
			proto, h2 = Downstream, o.GetUseDownstreamProtocolConfig().GetHttp2ProtocolOptions()
		default:
			return 0, pool.H2Options{}, nil, fmt.Errorf("typed_extension_protocol_options[%q]: set explicit_http_config or use_downstream_protocol_config (auto_config is not supported)", httpProtocolOptionsKey)
		}
	}
	opt := pool.H2Options{
		MaxConcurrentStreams:        h2.GetMaxConcurrentStreams().GetValue(),
		InitialStreamWindowSize:     h2.GetInitialStreamWindowSize().GetValue(),
		InitialConnectionWindowSize: h2.GetInitialConnectionWindowSize().GetValue(),
	}
	return proto, opt, common, nil
}

func thresholds(cfg *clusterv3.Cluster) breaker.Thresholds {
	t := breaker.Defaults()
	for _, th := range cfg.GetCircuitBreakers().GetThresholds() {
		if th.GetPriority() != corev3.RoutingPriority_DEFAULT {
			continue // HIGH priority routes are not supported; DEFAULT applies to all
		}
		if v := th.GetMaxConnections(); v != nil {
			t.MaxConnections = int64(v.GetValue())
		}
		if v := th.GetMaxPendingRequests(); v != nil {
			t.MaxPendingRequests = int64(v.GetValue())
		}
		if v := th.GetMaxRequests(); v != nil {
			t.MaxRequests = int64(v.GetValue())
		}
		if v := th.GetMaxRetries(); v != nil {
			t.MaxRetries = int64(v.GetValue())
		}
		t.RetryBudget = retryBudget(th.GetRetryBudget())
	}
	return t
}

// keepAlive converts Envoy's TcpKeepalive: SO_KEEPALIVE on, and each of
// probes, time and interval (seconds) set when given, else left to the
// operating system (Envoy's semantics; negative values tell Go not to set
// the option).
func keepAlive(ka *corev3.TcpKeepalive) *net.KeepAliveConfig {
	cfg := &net.KeepAliveConfig{Enable: true, Idle: -1, Interval: -1, Count: -1}
	if v := ka.GetKeepaliveTime(); v != nil {
		cfg.Idle = time.Duration(v.GetValue()) * time.Second
	}
	if v := ka.GetKeepaliveInterval(); v != nil {
		cfg.Interval = time.Duration(v.GetValue()) * time.Second
	}
	if v := ka.GetKeepaliveProbes(); v != nil {
		cfg.Count = int(v.GetValue())
	}
	return cfg
}
