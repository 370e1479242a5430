package upstream

import (
	"errors"
	"fmt"
	"maps"
	"net/netip"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
)

// EDSServiceName returns the name under which an EDS cluster's
// ClusterLoadAssignment is requested: eds_cluster_config.service_name, or
// the cluster's name when that is empty (Envoy's rule). It returns "" for a
// cluster that is not of type EDS.
func EDSServiceName(cfg *clusterv3.Cluster) string {
	if cfg.GetType() != clusterv3.Cluster_EDS {
		return ""
	}
	if n := cfg.GetEdsClusterConfig().GetServiceName(); n != "" {
		return n
	}
	return cfg.GetName()
}

// errNotEDS is returned by UpdateAssignment on a cluster of another type.
var errNotEDS = errors.New("not an EDS cluster: its endpoints come from its own configuration")

// initEDS checks an EDS cluster's configuration and, when cla is known,
// gives the cluster its hosts before it is published.
func (c *Cluster) initEDS(cla *endpointv3.ClusterLoadAssignment) error {
	if c.config.GetEdsClusterConfig().GetEdsConfig().GetAds() == nil {
		return fmt.Errorf("eds_cluster_config.eds_config: set ads {} (weft-proxy receives endpoints over the ADS stream only)")
	}
	if c.config.GetLoadAssignment() != nil {
		return fmt.Errorf("load_assignment: an EDS cluster's endpoints come from EDS; remove load_assignment")
	}
	if cla == nil {
		return nil
	}
	return c.applyAssignment(cla)
}

// UpdateAssignment replaces an EDS cluster's endpoints with those of cla
// (Envoy's EDS update). Hosts are matched by address: an endpoint already
// present keeps its Host object, connection pools and active requests, and
// a change of its weight, priority, locality, hostname or health is applied
// to it in place. New endpoints get new hosts. Removed endpoints stop
// getting new requests at once and their pools drain: requests in flight
// finish. A cla that does not parse changes nothing. The first update makes
// the cluster Ready. Safe for concurrent use with requests.
func (c *Cluster) UpdateAssignment(cla *endpointv3.ClusterLoadAssignment) error {
	if c.config.GetType() != clusterv3.Cluster_EDS {
		return errNotEDS
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.applyAssignment(cla)
}

// edsEndpoint is one lb_endpoint of a ClusterLoadAssignment.
type edsEndpoint struct {
	addr     string
	hostname string
	meta     endpointMeta
}

// parseAssignment reads a ClusterLoadAssignment: its endpoints (each must
// be an IP socket address: EDS hands over resolved addresses, as Envoy
// requires) and the load_balancing_weight of each locality.
func parseAssignment(cla *endpointv3.ClusterLoadAssignment) ([]edsEndpoint, map[Locality]uint32, error) {
	var eps []edsEndpoint
	weights := map[Locality]uint32{}
	for i, loc := range cla.GetEndpoints() {
		weights[metaOf(loc, nil).locality] = max(1, loc.GetLoadBalancingWeight().GetValue())
		for j, lbe := range loc.GetLbEndpoints() {
			path := fmt.Sprintf("endpoints[%d].lb_endpoints[%d].endpoint.address.socket_address", i, j)
			sa := lbe.GetEndpoint().GetAddress().GetSocketAddress()
			if sa == nil {
				return nil, nil, fmt.Errorf("%s: a socket address is required", path)
			}
			ip, err := netip.ParseAddr(sa.GetAddress())
			if err != nil {
				return nil, nil, fmt.Errorf("%s.address: %q is not an IP address (EDS endpoints are resolved addresses)", path, sa.GetAddress())
			}
			eps = append(eps, edsEndpoint{
				addr:     netip.AddrPortFrom(ip.Unmap(), uint16(sa.GetPortValue())).String(),
				hostname: lbe.GetEndpoint().GetHostname(),
				meta:     metaOf(loc, lbe),
			})
		}
	}
	return eps, weights, nil
}

// applyAssignment publishes the hosts of cla; the caller holds c.mu or
// owns the unpublished cluster.
func (c *Cluster) applyAssignment(cla *endpointv3.ClusterLoadAssignment) error {
	c.Stats.UpdateAttempt.Inc()
	eps, weights, err := parseAssignment(cla)
	if err != nil {
		c.Stats.UpdateFailure.Inc()
		return err
	}
	c.Stats.UpdateSuccess.Inc()
	old := c.set.Load().hosts
	byAddr := make(map[string][]*Host, len(old))
	for _, h := range old {
		byAddr[h.Address()] = append(byAddr[h.Address()], h)
	}
	hosts := make([]*Host, 0, len(eps))
	changed := len(old) != len(eps) || !maps.Equal(weights, c.locWeights)
	for _, ep := range eps {
		// A host whose transport socket changes (its tlsMode metadata did)
		// is replaced: its pools hold connections of the old kind.
		if list := byAddr[ep.addr]; len(list) > 0 && list[0].tls == c.transports.forEndpoint(ep.meta.metadata) {
			h := list[0]
			byAddr[ep.addr] = list[1:]
			changed = h.update(ep) || changed
			hosts = append(hosts, h)
			continue
		}
		changed = true
		hosts = append(hosts, c.newHost(ep.addr, ep.hostname, ep.meta))
	}
	if changed {
		c.locWeights = weights
		c.setHosts(hosts)
	}
	c.markReady()
	for _, list := range byAddr {
		for _, h := range list {
			h.drain()
		}
	}
	return nil
}

// update stores what ep says about the host when it differs, and reports
// whether anything changed.
func (h *Host) update(ep edsEndpoint) bool {
	next := hostMeta{hostname: ep.hostname, weight: ep.meta.weight, priority: ep.meta.priority, locality: ep.meta.locality, metadata: ep.meta.metadata}
	changed := false
	if !h.meta.Load().equal(&next) {
		h.meta.Store(&next)
		changed = true
	}
	if h.health.Swap(uint32(ep.meta.health)) != uint32(ep.meta.health) {
		changed = true
	}
	return changed
}
