package upstream

import (
	"context"
	"fmt"
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
// until the cluster closes. A failed resolution keeps the previous hosts.
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
		results, err := c.resolveAll(o, targets)
		if err != nil {
			c.Stats.UpdateFailure.Inc()
			o.Logf("cluster %q: DNS resolution failed, keeping %d previous hosts: %v", c.name, len(c.Hosts()), err)
		} else {
			c.Stats.UpdateSuccess.Inc()
			c.applyDNS(targets, results)
		}
		c.markReady()
		t.Reset(c.refreshRate())
	}
}

func (c *Cluster) resolveAll(o Options, targets []dnsTarget) ([][]netip.Addr, error) {
	out := make([][]netip.Addr, len(targets))
	for i, tg := range targets {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		addrs, err := lookup(ctx, o.Resolver, tg.name, c.config.GetDnsLookupFamily())
		cancel()
		if err != nil {
			return nil, fmt.Errorf("resolve %q: %w", tg.name, err)
		}
		out[i] = addrs
	}
	return out, nil
}

// lookup resolves name with Envoy's dns_lookup_family semantics. An IP
// literal resolves to itself.
func lookup(ctx context.Context, r Resolver, name string, family clusterv3.Cluster_DnsLookupFamily) ([]netip.Addr, error) {
	if ip, err := netip.ParseAddr(name); err == nil {
		return []netip.Addr{ip}, nil
	}
	try := func(network string) ([]netip.Addr, error) { return r.LookupNetIP(ctx, network, name) }
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
	addrs, err := try(first)
	if (err != nil || len(addrs) == 0) && second != "" {
		addrs, err = try(second)
	}
	if err != nil {
		return nil, err
	}
	if len(addrs) == 0 {
		return nil, fmt.Errorf("no addresses")
	}
	for i := range addrs {
		addrs[i] = addrs[i].Unmap()
	}
	return addrs, nil
}

// applyDNS publishes hosts for new resolution results, keeping the Host
// objects (and their connection pools) of addresses that did not change.
func (c *Cluster) applyDNS(targets []dnsTarget, results [][]netip.Addr) {
	c.mu.Lock()
	defer c.mu.Unlock()
	old := c.set.Load().hosts
	if c.config.GetType() == clusterv3.Cluster_LOGICAL_DNS {
		// One host whose address follows the first resolved address.
		addr := netip.AddrPortFrom(results[0][0], targets[0].port).String()
		if len(old) == 1 {
			if old[0].Address() != addr {
				old[0].addr.Store(&addr)
			}
			return
		}
		c.setHosts([]*Host{c.newHost(addr, targets[0].name, targets[0].meta)})
		return
	}
	byKey := make(map[string]*Host, len(old))
	for _, h := range old {
		byKey[hostKey(h.Address(), h.hostname, h.priority, h.locality, h.weight)] = h
	}
	var hosts []*Host
	changed := false
	for i, tg := range targets {
		for _, ip := range results[i] {
			addr := netip.AddrPortFrom(ip, tg.port).String()
			k := hostKey(addr, tg.name, tg.meta.priority, tg.meta.locality, tg.meta.weight)
			if h, ok := byKey[k]; ok {
				hosts = append(hosts, h)
				delete(byKey, k)
				continue
			}
			changed = true
			hosts = append(hosts, c.newHost(addr, tg.name, tg.meta))
		}
	}
	if !changed && len(byKey) == 0 && len(hosts) == len(old) {
		return
	}
	c.setHosts(hosts)
	for _, h := range byKey {
		h.close()
	}
}

func hostKey(addr, name string, prio uint32, l Locality, w uint32) string {
	return addr + "|" + name + "|" + strconv.Itoa(int(prio)) + "|" + l.Region + "/" + l.Zone + "/" + l.SubZone + "|" + strconv.Itoa(int(w))
}
