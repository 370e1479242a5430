package upstream

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"

	"github.com/weftmesh/weft/internal/proxy/upstream/lb"
)

// origDst is the host registry of an ORIGINAL_DST cluster (Envoy's
// original destination cluster, Istio's PassthroughCluster and
// InboundPassthroughCluster): a request goes to the downstream
// connection's original destination; a host is made the first time an
// address is seen and removed when it went unused for a whole
// cleanup_interval (default 5 s), its pools draining.
type origDst struct {
	c        *Cluster
	interval time.Duration

	hosts atomic.Pointer[map[netip.AddrPort]*origHost] // copy on write
	mu    sync.Mutex                                   // serializes writers
}

type origHost struct {
	h    *Host
	used atomic.Bool
}

// clusterPolicy returns the cluster's load-balancing policy. ORIGINAL_DST
// clusters need CLUSTER_PROVIDED, as Envoy requires ("only
// CLUSTER_PROVIDED is allowed with cluster type ORIGINAL_DST"); their host
// is never picked by a policy.
func clusterPolicy(cfg *clusterv3.Cluster) (lb.Policy, error) {
	provided := cfg.GetLbPolicy() == clusterv3.Cluster_CLUSTER_PROVIDED
	switch {
	case cfg.GetType() == clusterv3.Cluster_ORIGINAL_DST && !provided:
		return nil, fmt.Errorf("lb_policy: %s is not valid for type ORIGINAL_DST: set CLUSTER_PROVIDED", cfg.GetLbPolicy())
	case cfg.GetType() != clusterv3.Cluster_ORIGINAL_DST && provided:
		return nil, errors.New("lb_policy: CLUSTER_PROVIDED needs type ORIGINAL_DST")
	case provided:
		return clusterProvided{}, nil
	}
	return lb.New(cfg)
}

// clusterProvided is the policy of ORIGINAL_DST clusters: the cluster
// chooses (origDst.choose); the host set built for the admin's view picks
// its first host.
type clusterProvided struct{}

func (clusterProvided) Name() string { return "CLUSTER_PROVIDED" }

func (clusterProvided) Build(hosts []lb.Host) lb.Picker { return firstPicker(len(hosts)) }

type firstPicker int

func (n firstPicker) Pick(*lb.Context) int {
	if n == 0 {
		return -1
	}
	return 0
}

// initOrigDst makes c an ORIGINAL_DST cluster: ready at once, no host yet.
func (c *Cluster) initOrigDst() {
	o := &origDst{c: c, interval: 5 * time.Second}
	if d := c.config.GetCleanupInterval(); d != nil && d.AsDuration() > 0 {
		o.interval = d.AsDuration()
	}
	o.hosts.Store(&map[netip.AddrPort]*origHost{})
	c.orig = o
	c.markReady()
}

// choose returns the host for addr, making it on first use; nil when the
// connection has no original destination (Envoy: no host, 503 UH).
// Lock-free and allocation-free once the host exists.
func (o *origDst) choose(addr netip.AddrPort) *Host {
	if !addr.IsValid() {
		o.c.Stats.CxNoneHealthy.Inc()
		return nil
	}
	if oh := (*o.hosts.Load())[addr]; oh != nil {
		oh.used.Store(true)
		return oh.h
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	cur := *o.hosts.Load()
	if oh := cur[addr]; oh != nil {
		oh.used.Store(true)
		return oh.h
	}
	next := maps.Clone(cur)
	oh := &origHost{h: o.c.newHost(addr.String(), "", endpointMeta{weight: 1})}
	oh.used.Store(true)
	next[addr] = oh
	o.hosts.Store(&next)
	o.publish(next)
	return oh.h
}

// publish shows the hosts in the cluster's host set (admin /clusters,
// membership stats). Callers hold o.mu.
func (o *origDst) publish(m map[netip.AddrPort]*origHost) {
	hosts := make([]*Host, 0, len(m))
	for _, k := range slices.SortedFunc(maps.Keys(m), func(a, b netip.AddrPort) int { return a.Compare(b) }) {
		hosts = append(hosts, m[k].h)
	}
	o.c.mu.Lock()
	o.c.publish(hosts)
	o.c.mu.Unlock()
}

// cleanupLoop removes, every interval, the hosts unused since the last
// round (Envoy's cleanup_interval), until the cluster stops.
func (o *origDst) cleanupLoop() {
	t := time.NewTicker(o.interval)
	defer t.Stop()
	for {
		select {
		case <-o.c.stop:
			return
		case <-t.C:
			o.cleanup()
		}
	}
}

func (o *origDst) cleanup() {
	o.mu.Lock()
	defer o.mu.Unlock()
	cur := *o.hosts.Load()
	next := make(map[netip.AddrPort]*origHost, len(cur))
	var gone []*Host
	for a, oh := range cur {
		if oh.used.Swap(false) {
			next[a] = oh
		} else {
			gone = append(gone, oh.h)
		}
	}
	if len(gone) == 0 {
		return
	}
	o.hosts.Store(&next)
	o.publish(next)
	for _, h := range gone {
		h.drain()
	}
}

// bindConfig applies upstream_bind_config: connections to the cluster's
// hosts are made from source_address (Istio binds the
// InboundPassthroughCluster to 127.0.0.6, which its capture rules never
// redirect). It replaces the server's Dial override for this cluster.
func (c *Cluster) bindConfig(bc *corev3.BindConfig) error {
	if bc == nil {
		return nil
	}
	sa := bc.GetSourceAddress()
	ip, err := netip.ParseAddr(sa.GetAddress())
	if err != nil {
		return fmt.Errorf("upstream_bind_config.source_address.address: %q is not an IP address", sa.GetAddress())
	}
	d := &net.Dialer{LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(ip, uint16(sa.GetPortValue())))}
	c.poolOpts.Dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
		return d.DialContext(ctx, network, addr)
	}
	return nil
}
