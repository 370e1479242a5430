// Package upstream is weft-proxy's cluster manager: clusters built from
// Envoy Cluster resources, their hosts (static or discovered through DNS),
// host selection through the cluster's load-balancing policy with Envoy's
// priority, panic-threshold and locality rules, circuit breakers and the
// per-host connection pools.
//
// Configuration flows in through Manager.AddOrUpdate (bootstrap clusters and
// CDS) and Cluster.UpdateAssignment (EDS); requests reach a host through
// Manager.Get(name).Choose(ctx). Updates never reset requests in flight:
// replaced clusters and removed hosts drain their connection pools.
package upstream

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"

	"github.com/weftmesh/weft/internal/proxy/stats"
	"github.com/weftmesh/weft/internal/proxy/tlsctx"
	"github.com/weftmesh/weft/internal/proxy/upstream/breaker"
	"github.com/weftmesh/weft/internal/proxy/upstream/pool"
)

// Resolver looks up the addresses of a name. *net.Resolver implements it.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// Options configure a Manager.
type Options struct {
	Stats *stats.Store
	// Resolver resolves STRICT_DNS and LOGICAL_DNS hostnames
	// (net.DefaultResolver when nil).
	Resolver Resolver
	// Dial overrides how upstream connections are made (nil: net.Dialer).
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// Logf reports discovery problems (nil: discard).
	Logf func(format string, args ...any)
	// Secrets provides the SDS secrets of clusters' TLS transport sockets
	// (nil: clusters may not reference SDS secrets).
	Secrets tlsctx.Provider
	// NoDiscovery builds clusters without resolving names (validation).
	NoDiscovery bool
}

// Manager owns the clusters. Get is lock-free; updates are serialized.
type Manager struct {
	o        Options
	mu       sync.Mutex
	clusters atomic.Pointer[map[string]*Cluster]
	closed   bool
}

// NewManager returns a manager with no clusters.
func NewManager(o Options) *Manager {
	if o.Resolver == nil {
		o.Resolver = net.DefaultResolver
	}
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	m := &Manager{o: o}
	empty := map[string]*Cluster{}
	m.clusters.Store(&empty)
	return m
}

// Get returns the cluster named name, or nil.
func (m *Manager) Get(name string) *Cluster { return (*m.clusters.Load())[name] }

// Clusters returns every cluster sorted by name.
func (m *Manager) Clusters() []*Cluster {
	cs := *m.clusters.Load()
	out := make([]*Cluster, 0, len(cs))
	for _, c := range cs {
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

// AddOrUpdate builds a cluster from cfg and publishes it, replacing a
// cluster of the same name. cfg must have passed bootstrap validation;
// errors here name the field, and nothing is published on error. An EDS
// cluster starts with no hosts and is not Ready until its first
// UpdateAssignment; AddOrUpdateWithAssignment gives it its endpoints before
// it is published.
//
// A replaced cluster's connection pools drain, as Envoy's do on a CDS
// update: requests in flight finish on their connections, new requests go
// to the new cluster.
func (m *Manager) AddOrUpdate(cfg *clusterv3.Cluster) error {
	return m.AddOrUpdateWithAssignment(cfg, nil)
}

// AddOrUpdateWithAssignment is AddOrUpdate for an EDS cluster whose
// ClusterLoadAssignment is known: the cluster is published with the hosts
// of cla (nil: none yet). cla is ignored for other cluster types.
func (m *Manager) AddOrUpdateWithAssignment(cfg *clusterv3.Cluster, cla *endpointv3.ClusterLoadAssignment) error {
	c, err := m.build(cfg, cla)
	if err != nil {
		return fmt.Errorf("cluster %q: %w", cfg.GetName(), err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		c.close()
		return fmt.Errorf("cluster %q: manager closed", cfg.GetName())
	}
	old := *m.clusters.Load()
	next := make(map[string]*Cluster, len(old)+1)
	for k, v := range old {
		next[k] = v
	}
	prev := next[c.name]
	next[c.name] = c
	m.clusters.Store(&next)
	c.start(m.o)
	if prev != nil {
		prev.drain()
	}
	return nil
}

// Check builds cfg as AddOrUpdate would and reports the same errors,
// without publishing anything or touching the manager's stats.
func (m *Manager) Check(cfg *clusterv3.Cluster) error {
	tmp := &Manager{o: m.o}
	tmp.o.Stats = stats.NewStore()
	tmp.o.NoDiscovery = true
	c, err := tmp.build(cfg, nil)
	if err != nil {
		return fmt.Errorf("cluster %q: %w", cfg.GetName(), err)
	}
	c.close()
	return nil
}

// Remove removes a cluster. Its connection pools drain: requests in flight
// finish, as Envoy's do when CDS removes a cluster.
func (m *Manager) Remove(name string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	old := *m.clusters.Load()
	c, ok := old[name]
	if !ok {
		return
	}
	next := make(map[string]*Cluster, len(old))
	for k, v := range old {
		if k != name {
			next[k] = v
		}
	}
	m.clusters.Store(&next)
	c.drain()
}

// WaitReady waits until every cluster has its first host set or ctx ends.
func (m *Manager) WaitReady(ctx context.Context) error {
	for _, c := range m.Clusters() {
		select {
		case <-c.Ready():
		case <-ctx.Done():
			return fmt.Errorf("cluster %q: waiting for its first DNS resolution: %w", c.name, ctx.Err())
		}
	}
	return nil
}

// Close stops discovery and closes every connection at once (the server's
// drain is over).
func (m *Manager) Close() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	for _, c := range *m.clusters.Load() {
		c.close()
	}
}

func (m *Manager) build(cfg *clusterv3.Cluster, cla *endpointv3.ClusterLoadAssignment) (*Cluster, error) {
	policy, err := clusterPolicy(cfg)
	if err != nil {
		return nil, err
	}
	proto, h2opts, common, err := protocolOptions(cfg)
	if err != nil {
		return nil, err
	}
	c := &Cluster{
		name:     cfg.GetName(),
		config:   cfg,
		protocol: proto,
		policy:   policy,
		h2opts:   h2opts,
		stop:     make(chan struct{}),
		ready:    make(chan struct{}),
	}
	if c.transports, err = compileTransports(cfg, m.o.Secrets); err != nil {
		return nil, err
	}
	c.Stats = newClusterStats(m.o.Stats.Root(), c.name)
	c.Breakers = breaker.New(thresholds(cfg), m.o.Stats.Root().Tagged("cluster", "envoy_cluster_name", c.name))
	if err := c.initHealth(); err != nil {
		return nil, err
	}
	panicThreshold := 50.0
	if p := cfg.GetCommonLbConfig().GetHealthyPanicThreshold(); p != nil {
		panicThreshold = p.GetValue()
	}
	c.locWeights = map[Locality]uint32{}
	for _, loc := range cfg.GetLoadAssignment().GetEndpoints() {
		l := metaOf(loc, nil).locality
		c.locWeights[l] = max(1, loc.GetLoadBalancingWeight().GetValue())
	}
	c.setOpts = hostSetOptions{
		policy:           policy,
		panicThreshold:   panicThreshold,
		localityWeighted: cfg.GetCommonLbConfig().GetLocalityWeightedLbConfig() != nil,
		localityWeight:   func(h *Host) uint32 { return c.locWeights[h.Locality()] },
	}
	c.poolOpts = pool.Options{
		ConnectTimeout: 5 * time.Second,
		IdleTimeout:    time.Hour,
		Breakers:       c.Breakers,
		Dial:           m.o.Dial,
	}
	if d := cfg.GetConnectTimeout(); d != nil {
		c.poolOpts.ConnectTimeout = d.AsDuration()
	}
	if err := c.bindConfig(cfg.GetUpstreamBindConfig()); err != nil {
		return nil, err
	}
	if ka := cfg.GetUpstreamConnectionOptions().GetTcpKeepalive(); ka != nil {
		c.poolOpts.KeepAlive = keepAlive(ka)
	}
	if common != nil {
		if d := common.GetIdleTimeout(); d != nil {
			c.poolOpts.IdleTimeout = d.AsDuration()
		}
		c.poolOpts.MaxRequestsPerConnection = int(common.GetMaxRequestsPerConnection().GetValue())
	}
	if v := cfg.GetMaxRequestsPerConnection(); v != nil { //nolint:staticcheck // deprecated, still common
		c.poolOpts.MaxRequestsPerConnection = int(v.GetValue())
	}
	if v := cfg.GetPerConnectionBufferLimitBytes(); v != nil && v.GetValue() > 0 {
		c.codecOpts.BufferSize = int(min(v.GetValue(), 1<<20))
	}
	c.set.Store(buildHostSet(nil, c.setOpts))
	switch cfg.GetType() {
	case clusterv3.Cluster_STATIC:
		hosts, err := c.staticHosts()
		if err != nil {
			return nil, err
		}
		c.setHosts(hosts)
		c.markReady()
	case clusterv3.Cluster_STRICT_DNS, clusterv3.Cluster_LOGICAL_DNS:
		if err := c.checkDNSConfig(); err != nil {
			return nil, err
		}
	case clusterv3.Cluster_EDS:
		if err := c.initEDS(cla); err != nil {
			return nil, err
		}
	case clusterv3.Cluster_ORIGINAL_DST:
		c.initOrigDst()
	default:
		return nil, fmt.Errorf("type: %s is not supported (STATIC, STRICT_DNS, LOGICAL_DNS, EDS, ORIGINAL_DST)", cfg.GetType())
	}
	return c, nil
}

// UnixPrefix starts the Address of a host with a pipe address: "unix:" +
// the socket's path.
const UnixPrefix = "unix:"

// DialHost connects to a host address: "ip:port" over TCP, or a Unix
// socket for "unix:PATH". dial overrides TCP dialing (nil: net.Dialer).
func DialHost(ctx context.Context, dial func(ctx context.Context, network, addr string) (net.Conn, error), addr string) (net.Conn, error) {
	var d net.Dialer
	if path, ok := strings.CutPrefix(addr, UnixPrefix); ok {
		return d.DialContext(ctx, "unix", path)
	}
	if dial != nil {
		return dial(ctx, "tcp", addr)
	}
	return d.DialContext(ctx, "tcp", addr)
}

// staticHosts makes the hosts of a STATIC cluster: every address must be an
// IP, as Envoy requires.
func (c *Cluster) staticHosts() ([]*Host, error) {
	var hosts []*Host
	for i, loc := range c.config.GetLoadAssignment().GetEndpoints() {
		for j, ep := range loc.GetLbEndpoints() {
			if pipe := ep.GetEndpoint().GetAddress().GetPipe(); pipe != nil {
				// A Unix socket (Istio's sds-grpc cluster).
				hosts = append(hosts, c.newHost(UnixPrefix+pipe.GetPath(), ep.GetEndpoint().GetHostname(), metaOf(loc, ep)))
				continue
			}
			sa := ep.GetEndpoint().GetAddress().GetSocketAddress()
			path := fmt.Sprintf("load_assignment.endpoints[%d].lb_endpoints[%d].endpoint.address.socket_address", i, j)
			if sa == nil {
				return nil, fmt.Errorf("%s: a socket address is required", path)
			}
			ip, err := netip.ParseAddr(sa.GetAddress())
			if err != nil {
				return nil, fmt.Errorf("%s.address: %q is not an IP address (a STATIC cluster needs IPs; use STRICT_DNS for names)", path, sa.GetAddress())
			}
			addr := netip.AddrPortFrom(ip, uint16(sa.GetPortValue())).String()
			hosts = append(hosts, c.newHost(addr, ep.GetEndpoint().GetHostname(), metaOf(loc, ep)))
		}
	}
	return hosts, nil
}

func (c *Cluster) start(o Options) {
	if o.NoDiscovery {
		return
	}
	switch c.config.GetType() {
	case clusterv3.Cluster_STRICT_DNS, clusterv3.Cluster_LOGICAL_DNS:
		go c.resolveLoop(o)
	}
	if c.detector != nil || c.hc != nil {
		go c.healthLoop()
	}
	if c.orig != nil {
		go c.orig.cleanupLoop()
	}
}
