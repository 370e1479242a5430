package upstream

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
)

// dnsTarget is one lb_endpoint of a DNS cluster: a name to resolve and what
// the resulting hosts inherit.
type dnsTarget struct {
	name string
	port uint16
	meta endpointMeta
	// endpoint hostname field, if any (auto_host_rewrite prefers the DNS name)
}

func (c *Cluster) dnsTargets() []dnsTarget {
	var out []dnsTarget
	for _, loc := range c.config.GetLoadAssignment().GetEndpoints() {
		for _, ep := range loc.GetLbEndpoints() {
			sa := ep.GetEndpoint().GetAddress().GetSocketAddress()
			out = append(out, dnsTarget{name: sa.GetAddress(), port: uint16(sa.GetPortValue()), meta: metaOf(loc, ep)})
		}
	}
	return out
}

// checkDNSConfig applies Envoy's rules for DNS clusters.
func (c *Cluster) checkDNSConfig() error {
	targets := 0
	for i, loc := range c.config.GetLoadAssignment().GetEndpoints() {
		for j, ep := range loc.GetLbEndpoints() {
			if ep.GetEndpoint().GetAddress().GetSocketAddress() == nil {
				return fmt.Errorf("load_assignment.endpoints[%d].lb_endpoints[%d].endpoint.address.socket_address: a socket address is required", i, j)
			}
			targets++
		}
	}
	if c.config.GetType() == clusterv3.Cluster_LOGICAL_DNS && targets != 1 {
		return fmt.Errorf("load_assignment: a LOGICAL_DNS cluster must have exactly one endpoint, it has %d", targets)
	}
	if c.config.GetRespectDnsTtl() {
		return fmt.Errorf("respect_dns_ttl: not supported by weft-proxy (the refresh rate is dns_refresh_rate)")
	}
	return nil
}

func (c *Cluster) refreshRate() time.Duration {
	if d := c.config.GetDnsRefreshRate(); d != nil && d.AsDuration() > 0 {
		return d.AsDuration()
	}
	return 5 * time.Second // Envoy's default
}

// resolveLoop resolves the cluster's names now and every refresh interval
// until the cluster closes. Each name is resolved on its own, as Envoy's
// STRICT_DNS resolve targets are: a failed lookup keeps that name's
// previous hosts; a name that no longer exists (or has no address of the
// family asked for) removes them, as Envoy's resolver reports such an
// answer as a completed, empty resolution.
func (c *Cluster) resolveLoop(o Options) {
	targets := c.dnsTargets()
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
		}
		c.Stats.UpdateAttempt.Inc()
		results, failed := c.resolveAll(o, targets)
		if failed > 0 {
			c.Stats.UpdateFailure.Inc()
		} else {
			c.Stats.UpdateSuccess.Inc()
		}
		if failed < len(targets) {
			c.applyDNS(targets, results)
		}
		c.markReady()
		t.Reset(c.refreshRate())
	}
}

// resolveAll resolves every target. results[i] is nil when target i's
// lookup failed (its hosts are to be kept), and empty when the name has no
// address.
func (c *Cluster) resolveAll(o Options, targets []dnsTarget) (results [][]netip.Addr, failed int) {
	results = make([][]netip.Addr, len(targets))
	for i, tg := range targets {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		addrs, err := lookup(ctx, o.Resolver, tg.name, c.config.GetDnsLookupFamily())
		cancel()
		if err != nil {
			failed++
			o.Logf("cluster %q: resolving %q failed, keeping its previous hosts: %v", c.name, tg.name, err)
			continue
		}
		results[i] = addrs
	}
	return results, failed
}

// lookup resolves name with Envoy's dns_lookup_family semantics. An IP
// literal resolves to itself. A name that does not exist, or has no
// address of the families asked for, resolves to no address (a non-nil
// empty slice); other failures (timeouts, server errors) are errors.
func lookup(ctx context.Context, r Resolver, name string, family clusterv3.Cluster_DnsLookupFamily) ([]netip.Addr, error) {
	if ip, err := netip.ParseAddr(name); err == nil {
		return []netip.Addr{ip}, nil
	}
	try := func(network string) ([]netip.Addr, error) {
		addrs, err := r.LookupNetIP(ctx, network, name)
		var de *net.DNSError
		if errors.As(err, &de) && de.IsNotFound {
			return []netip.Addr{}, nil
		}
		return addrs, err
	}
	first, second := "", ""
	switch family {
	case clusterv3.Cluster_V4_ONLY:
		first = "ip4"
	case clusterv3.Cluster_V6_ONLY:
		first = "ip6"
	case clusterv3.Cluster_V4_PREFERRED:
		first, second = "ip4", "ip6"
	case clusterv3.Cluster_ALL:
		first = "ip"
	default: // AUTO: IPv6 first, IPv4 when there is none
		first, second = "ip6", "ip4"
	}
	// Envoy's resolver falls back to the second family when the first
	// fails or has no address.
	addrs, err := try(first)
	if (err != nil || len(addrs) == 0) && second != "" {
		addrs, err = try(second)
	}
	if err != nil {
		return nil, err
	}
	out := make([]netip.Addr, 0, len(addrs))
	for _, a := range addrs {
		out = append(out, a.Unmap())
	}
	return out, nil
}

// applyDNS publishes hosts for new resolution results, keeping the Host
// objects (and their connection pools) of addresses that did not change,
// and every host of a target whose lookup failed (results[i] == nil).
func (c *Cluster) applyDNS(targets []dnsTarget, results [][]netip.Addr) {
	c.mu.Lock()
	defer c.mu.Unlock()
	select {
	case <-c.stop: // removed or replaced while resolving
		return
	default:
	}
	old := c.set.Load().hosts
	if c.config.GetType() == clusterv3.Cluster_LOGICAL_DNS {
		c.applyLogical(targets[0], results[0], old)
		return
	}
	byKey := make(map[string]*Host, len(old))
	for _, h := range old {
		m := h.meta.Load()
		byKey[hostKey(h.Address(), m.hostname, m.priority, m.locality, m.weight)] = h
	}
	var hosts []*Host
	changed := false
	keep := func(addr string, tg dnsTarget) {
		k := hostKey(addr, tg.name, tg.meta.priority, tg.meta.locality, tg.meta.weight)
		if h, ok := byKey[k]; ok {
			hosts = append(hosts, h)
			delete(byKey, k)
			return
		}
		changed = true
		hosts = append(hosts, c.newHost(addr, tg.name, tg.meta))
	}
	for i, tg := range targets {
		if results[i] == nil { // lookup failed: keep what the target had
			for _, h := range old {
				if tg.owns(h) {
					keep(h.Address(), tg)
				}
			}
			continue
		}
		for _, ip := range results[i] {
			keep(netip.AddrPortFrom(ip, tg.port).String(), tg)
		}
	}
	if !changed && len(byKey) == 0 && len(hosts) == len(old) {
		return
	}
	c.setHosts(hosts)
	for _, h := range byKey {
		h.drain()
	}
}

// applyLogical updates a LOGICAL_DNS cluster: one host whose address
// follows the first resolved address (new connections go there; pooled
// ones stay, as in Envoy). An empty or failed resolution keeps the current
// address.
func (c *Cluster) applyLogical(tg dnsTarget, addrs []netip.Addr, old []*Host) {
	if len(addrs) == 0 {
		return
	}
	addr := netip.AddrPortFrom(addrs[0], tg.port).String()
	if len(old) == 1 {
		if old[0].Address() != addr {
			old[0].addr.Store(&addr)
		}
		return
	}
	c.setHosts([]*Host{c.newHost(addr, tg.name, tg.meta)})
}

// owns reports whether h was made from this target.
func (tg dnsTarget) owns(h *Host) bool {
	m := h.meta.Load()
	return m.hostname == tg.name && h.AddrPort().Port() == tg.port && m.priority == tg.meta.priority &&
		m.locality == tg.meta.locality && m.weight == tg.meta.weight
}

func hostKey(addr, name string, prio uint32, l Locality, w uint32) string {
	return addr + "|" + name + "|" + strconv.Itoa(int(prio)) + "|" + l.Region + "/" + l.Zone + "/" + l.SubZone + "|" + strconv.Itoa(int(w))
}
