package xds

import (
	clusterservice "github.com/envoyproxy/go-control-plane/envoy/service/cluster/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	endpointservice "github.com/envoyproxy/go-control-plane/envoy/service/endpoint/v3"
	listenerservice "github.com/envoyproxy/go-control-plane/envoy/service/listener/v3"
	routeservice "github.com/envoyproxy/go-control-plane/envoy/service/route/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
)

type (
	sotwServerStream  = grpc.BidiStreamingServer[discoveryv3.DiscoveryRequest, discoveryv3.DiscoveryResponse]
	deltaServerStream = grpc.BidiStreamingServer[discoveryv3.DeltaDiscoveryRequest, discoveryv3.DeltaDiscoveryResponse]
)

// sotw serves a SotW stream of typeURL ("" for ADS) through
// go-control-plane with budgeted sends.
func (s *Server) sotw(st sotwServerStream, typeURL string) error {
	if s.budget == nil {
		return s.xds.StreamHandler(st, typeURL)
	}
	bs := newBudgeted(st.Context(), s.budget, typeURL)
	defer bs.finish()
	return s.xds.StreamHandler(newSotwStream(st, bs, s.interned, s.metrics), typeURL)
}

// delta serves a delta stream of typeURL ("" for ADS).
func (s *Server) delta(st deltaServerStream, typeURL string) error {
	if s.budget == nil {
		return s.xds.DeltaStreamHandler(st, typeURL)
	}
	bs := newBudgeted(st.Context(), s.budget, typeURL)
	defer bs.finish()
	return s.xds.DeltaStreamHandler(newDeltaStream(st, bs, s.interned, s.metrics), typeURL)
}

// The gRPC services: ADS and the per-type services of the four types
// weft-control serves. Unary fetch stays unimplemented (the embedded
// defaults).
type (
	adsService     struct{ s *Server }
	clusterService struct {
		clusterservice.UnimplementedClusterDiscoveryServiceServer
		s *Server
	}
	endpointService struct {
		endpointservice.UnimplementedEndpointDiscoveryServiceServer
		s *Server
	}
	listenerService struct {
		listenerservice.UnimplementedListenerDiscoveryServiceServer
		s *Server
	}
	routeService struct {
		routeservice.UnimplementedRouteDiscoveryServiceServer
		s *Server
	}
)

var (
	_ discoveryv3.AggregatedDiscoveryServiceServer   = adsService{}
	_ clusterservice.ClusterDiscoveryServiceServer   = clusterService{}
	_ endpointservice.EndpointDiscoveryServiceServer = endpointService{}
	_ listenerservice.ListenerDiscoveryServiceServer = listenerService{}
	_ routeservice.RouteDiscoveryServiceServer       = routeService{}
)

func (a adsService) StreamAggregatedResources(st sotwServerStream) error {
	return a.s.sotw(st, resourcev3.AnyType)
}

func (a adsService) DeltaAggregatedResources(st deltaServerStream) error {
	return a.s.delta(st, resourcev3.AnyType)
}

func (c clusterService) StreamClusters(st sotwServerStream) error {
	return c.s.sotw(st, resourcev3.ClusterType)
}

func (c clusterService) DeltaClusters(st deltaServerStream) error {
	return c.s.delta(st, resourcev3.ClusterType)
}

func (e endpointService) StreamEndpoints(st sotwServerStream) error {
	return e.s.sotw(st, resourcev3.EndpointType)
}

func (e endpointService) DeltaEndpoints(st deltaServerStream) error {
	return e.s.delta(st, resourcev3.EndpointType)
}

func (l listenerService) StreamListeners(st sotwServerStream) error {
	return l.s.sotw(st, resourcev3.ListenerType)
}

func (l listenerService) DeltaListeners(st deltaServerStream) error {
	return l.s.delta(st, resourcev3.ListenerType)
}

func (r routeService) StreamRoutes(st sotwServerStream) error {
	return r.s.sotw(st, resourcev3.RouteType)
}

func (r routeService) DeltaRoutes(st deltaServerStream) error {
	return r.s.delta(st, resourcev3.RouteType)
}
