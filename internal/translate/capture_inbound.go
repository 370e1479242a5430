package translate

import (
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"
	telemetry "istio.io/api/telemetry/v1alpha1"

	"github.com/weftmesh/weft/internal/model"
)

// captureInbound builds a capture-mode proxy's virtualInbound listener
// (0.0.0.0:15006) from the inbound listeners local mode would bind: their
// filter chains (mTLS per PeerAuthentication, RBAC, jwt_authn, rate limit,
// access logs) each matched on its destination port, as Istio's
// virtualInbound, then the passthrough chain to InboundPassthroughCluster
// for the ports the workload does not declare. The inbound clusters stay
// those of local mode (the application on 127.0.0.1:PORT, which capture
// never redirects).
func (s *scope) captureInbound(p *model.Proxy) perProxy {
	in := s.inbound(p)
	vi := &listenerv3.Listener{
		Name:             virtualInboundName,
		Address:          socketAddress("0.0.0.0", virtualInboundPort),
		TrafficDirection: corev3.TrafficDirection_INBOUND,
		ListenerFilters:  []*listenerv3.ListenerFilter{originalDstListenerFilter(), tlsInspector()},
	}
	for _, h := range in.listeners {
		l := h.msg
		port := l.GetAddress().GetSocketAddress().GetPortValue()
		if vi.AccessLog == nil {
			vi.AccessLog = l.AccessLog
		}
		for _, c := range l.FilterChains {
			c = proto.Clone(c).(*listenerv3.FilterChain)
			if c.FilterChainMatch == nil {
				c.FilterChainMatch = &listenerv3.FilterChainMatch{}
			}
			c.FilterChainMatch.DestinationPort = wrapperspb.UInt32(port)
			vi.FilterChains = append(vi.FilterChains, c)
		}
	}
	pass := passthroughChain("InboundPassthroughFilterChain", inboundPassthrough)
	if vi.AccessLog != nil {
		for _, f := range pass.Filters {
			setFilterAccessLog(f, s.accessLogs(telemetry.WorkloadMode_SERVER).filters)
		}
	}
	vi.FilterChains = append(vi.FilterChains, pass)
	return perProxy{listeners: []hashed[*listenerv3.Listener]{hash(vi.Name, vi)}, clusters: in.clusters}
}
