package translate

import (
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/weftmesh/weft/internal/config"
	"github.com/weftmesh/weft/internal/model"
)

// clusterMemoKey identifies the clusters of one service: they depend on the
// service, the DestinationRule that applies and the kind of client only.
// Services and rules are immutable and keep their identity from one
// snapshot to the next while unchanged (the registry reuses unchanged
// services; a rule's spec is the stored object's, or a new merge when
// several rules of a namespace and host are merged), so the key is valid
// across snapshots: a push after a VirtualService change reuses every
// cluster (see cache.state).
type clusterMemoKey struct {
	svc       *model.Service
	dr        *networking.DestinationRule // the rule's spec; nil for none
	proxyless bool
	mtls      bool
}

// clusterSet is the clusters of one service and the load assignments of
// its EDS clusters, with their content hashes, and the warnings building
// them gave (recorded again when the set is reused for a new snapshot).
type clusterSet struct {
	clusters []hashed[*clusterv3.Cluster]
	clas     []hashed[*endpointv3.ClusterLoadAssignment]
	warns    []*config.Error
}

// warn records a warning of the set.
func (cs *clusterSet) warn(e *config.Error) { cs.warns = append(cs.warns, e) }

// serviceClusters returns svc's clusters for this scope, shared with every
// scope that resolves the same DestinationRule.
func (s *scope) serviceClusters(svc *model.Service) *clusterSet {
	dr := s.destRule(svc.Hostname)
	k := clusterMemoKey{svc: svc, proxyless: s.key.proxyless, mtls: s.key.mtls}
	if dr != nil {
		k.dr = dr.spec
	}
	s.st.mu.Lock()
	cs := s.st.clusters[k]
	s.st.mu.Unlock()
	if cs != nil {
		return cs
	}
	cs = s.buildServiceClusters(svc, dr)
	s.st.mu.Lock()
	defer s.st.mu.Unlock()
	if prev := s.st.clusters[k]; prev != nil {
		return prev
	}
	s.st.clusters[k] = cs
	for _, w := range cs.warns {
		s.st.warns.add(w)
	}
	return cs
}

// buildServiceClusters builds, for each port of svc, the cluster
// outbound|PORT||HOST and one per subset of its DestinationRule
// (outbound|PORT|SUBSET|HOST, endpoints filtered by the subset's labels),
// with the rule's traffic policy merged for the port and subset.
func (s *scope) buildServiceClusters(svc *model.Service, dr *drEntry) *clusterSet {
	cs := &clusterSet{}
	if svc.Resolution == model.Passthrough {
		return cs // needs ORIGINAL_DST, not supported by weft-proxy yet: a static warning says so
	}
	var subsets []*networking.Subset
	var rule *networking.DestinationRule
	if dr != nil {
		rule, subsets = dr.spec, dr.spec.Subsets
	}
	for _, p := range svc.Ports {
		var pol *networking.TrafficPolicy
		if rule != nil {
			pol = mergedPolicy(rule, p.Number, "")
		}
		s.addCluster(cs, "", svc, p, dr, pol, svc.Endpoints)
		for _, sub := range subsets {
			pol := mergedPolicy(rule, p.Number, sub.Name)
			s.addCluster(cs, sub.Name, svc, p, dr, pol, subsetEndpoints(svc.Endpoints, sub.Labels))
		}
	}
	return cs
}

// subsetEndpoints returns the endpoints carrying every label of sel.
func subsetEndpoints(eps []*model.Endpoint, sel map[string]string) []*model.Endpoint {
	var out []*model.Endpoint
	for _, ep := range eps {
		if ep.MatchesLabels(sel) {
			out = append(out, ep)
		}
	}
	return out
}

// addCluster builds the cluster of one port and subset ("" for the whole
// service), and its load assignment for EDS, with the traffic policy pol
// of rule dr (nil when no rule applies).
func (s *scope) addCluster(cs *clusterSet, subset string, svc *model.Service, p model.Port,
	dr *drEntry, pol *networking.TrafficPolicy, eps []*model.Endpoint,
) {
	name := outboundCluster(p.Number, subset, svc.Hostname)
	c, cla := s.newCluster(cs, name, svc, p, eps)
	if c == nil {
		return
	}
	if dr != nil && !s.key.proxyless {
		// Istio's istio.config: the DestinationRule in force (istioctl's
		// DESTINATION RULE column).
		c.Metadata.FilterMetadata[istioMetadataKey].Fields["config"] = configMetadata(dr.obj, "destination-rule").FilterMetadata[istioMetadataKey].Fields["config"]
	}
	if s.key.proxyless {
		applyProxylessPolicy(c, pol)
		warnProxylessPolicy(cs, dr, pol)
	} else {
		applyConnectionPool(c, pol.GetConnectionPool(), p)
		applyRetryBudget(c, pol.GetRetryBudget())           // resilience_cluster.go
		applyOutlierDetection(c, pol.GetOutlierDetection()) // resilience_cluster.go
		applyLoadBalancer(c, pol.GetLoadBalancer(), lbOptions{})
		s.applyClusterTLS(c, pol.GetTls(), clusterTLS{port: p, subset: subset, svc: svc, eps: eps, h2: p.Protocol.IsHTTP2()})
	}
	cs.clusters = append(cs.clusters, hash(name, c))
	if cla != nil {
		cs.clas = append(cs.clas, hash(name, cla))
	}
}

// newCluster sets the discovery type from the service's resolution:
//   - STATIC (client-side load balancing): EDS over ADS, the load
//     assignment named as the cluster;
//   - DNS: STRICT_DNS over the endpoints' names (no cluster when there is
//     none, as Istio);
//   - DNS_ROUND_ROBIN: LOGICAL_DNS over the first endpoint's name.
//
// Proxyless gRPC clients accept EDS and LOGICAL_DNS only (grpc-go's
// xdsresource validation): DNS services become LOGICAL_DNS on their first
// endpoint there.
func (s *scope) newCluster(cs *clusterSet, name string, svc *model.Service, p model.Port, eps []*model.Endpoint) (*clusterv3.Cluster, *endpointv3.ClusterLoadAssignment) {
	c := &clusterv3.Cluster{Name: name, Metadata: clusterServiceMetadata(svc)} // stats.go
	switch svc.Resolution {
	case model.ClientSideLB:
		c.ClusterDiscoveryType = &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS}
		c.EdsClusterConfig = &clusterv3.Cluster_EdsClusterConfig{ServiceName: name, EdsConfig: adsSource()}
		return c, loadAssignment(name, eps, p)
	case model.DNS, model.DNSRoundRobin:
		if len(eps) == 0 {
			return nil, nil
		}
		typ := clusterv3.Cluster_STRICT_DNS
		if svc.Resolution == model.DNSRoundRobin || s.key.proxyless {
			typ = clusterv3.Cluster_LOGICAL_DNS
			if len(eps) > 1 && svc.Resolution == model.DNS {
				cs.warn(s.idx.serviceWarning(svc, "spec.endpoints",
					"proxyless gRPC clients resolve only the first DNS endpoint (grpc-go accepts LOGICAL_DNS clusters, not STRICT_DNS)"))
			}
			eps = eps[:1]
		}
		c.ClusterDiscoveryType = &clusterv3.Cluster_Type{Type: typ}
		c.LoadAssignment = loadAssignment(name, eps, p)
		if !s.key.proxyless {
			// Istio sets V4_ONLY for IPv4-only proxies; clusters here are
			// shared by proxies of either family, so IPv4 is preferred
			// with IPv6 as the fallback.
			c.DnsLookupFamily = clusterv3.Cluster_V4_PREFERRED
			c.DnsRefreshRate = defaultDNSRefreshRate
		}
	}
	return c, nil
}

// applyProxylessPolicy applies what grpc-go reads of a traffic policy: the
// load-balancing policy and the max_requests circuit breaker.
func applyProxylessPolicy(c *clusterv3.Cluster, pol *networking.TrafficPolicy) {
	applyLoadBalancer(c, pol.GetLoadBalancer(), lbOptions{proxyless: true})
	if n := pol.GetConnectionPool().GetHttp().GetHttp2MaxRequests(); n > 0 {
		c.CircuitBreakers = &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{{
			MaxRequests: wrapperspb.UInt32(uint32(n)),
		}}}
	}
}

// warnProxylessPolicy records the load-balancing settings grpc-go lacks
// (the cluster falls back to ROUND_ROBIN, or RING_HASH for Maglev).
func warnProxylessPolicy(cs *clusterSet, dr *drEntry, pol *networking.TrafficPolicy) {
	if dr == nil {
		return
	}
	lb := pol.GetLoadBalancer()
	if lb.GetSimple() == networking.LoadBalancerSettings_RANDOM {
		cs.warn(objectWarning(dr.obj, "spec.trafficPolicy.loadBalancer.simple",
			"not applied for proxyless gRPC clients: grpc-go has no RANDOM policy; ROUND_ROBIN applies"))
	}
	if lb.GetConsistentHash().GetMaglev() != nil {
		cs.warn(objectWarning(dr.obj, "spec.trafficPolicy.loadBalancer.consistentHash.maglev",
			"not applied for proxyless gRPC clients: grpc-go has no MAGLEV policy; RING_HASH applies"))
	}
	if pol.GetOutlierDetection() != nil {
		cs.warn(objectWarning(dr.obj, "spec.trafficPolicy.outlierDetection",
			"not applied for proxyless gRPC clients: grpc-go ejects on success rate and failure percentage only, not on consecutive errors"))
	}
	if pol.GetRetryBudget() != nil {
		cs.warn(objectWarning(dr.obj, "spec.trafficPolicy.retryBudget",
			"not applied for proxyless gRPC clients: grpc-go has no retry budget (it uses its own retry throttling)"))
	}
}

// addServiceClusters adds the clusters and load assignments of every
// visible service to o.
func (s *scope) addServiceClusters(o *outbound) {
	for _, svc := range s.services {
		cs := s.serviceClusters(svc)
		for _, c := range cs.clusters {
			o.clusters.put(c)
		}
		for _, e := range cs.clas {
			o.endpoints.put(e)
		}
	}
}
