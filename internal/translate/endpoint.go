package translate

import (
	"sort"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/weftmesh/weft/internal/model"
)

// loadAssignment builds the ClusterLoadAssignment named name for the
// endpoints eps of service port p: endpoints grouped by locality (sorted),
// each at its address and the port Endpoint.PortFor gives, with its weight
// (default 1) and HEALTHY (the registry only lists serving endpoints); a
// locality's weight is the sum of its endpoints' weights. Every locality
// carries a Locality message and a weight, which grpc-go requires (it
// ignores localities of weight 0). An address:port listed twice is kept
// once (grpc-go rejects duplicates).
func loadAssignment(name string, eps []*model.Endpoint, p model.Port) *endpointv3.ClusterLoadAssignment {
	cla := &endpointv3.ClusterLoadAssignment{ClusterName: name}
	byLocality := map[string]*endpointv3.LocalityLbEndpoints{}
	var order []string
	seen := map[string]bool{}
	for _, ep := range eps {
		port := ep.PortFor(p)
		key := hostPort(ep.Address, port)
		if seen[key] {
			continue
		}
		seen[key] = true
		w := ep.Weight
		if w == 0 {
			w = 1
		}
		loc := byLocality[ep.Locality]
		if loc == nil {
			loc = &endpointv3.LocalityLbEndpoints{Locality: parseLocality(ep.Locality), LoadBalancingWeight: wrapperspb.UInt32(0)}
			byLocality[ep.Locality] = loc
			order = append(order, ep.Locality)
		}
		loc.LbEndpoints = append(loc.LbEndpoints, &endpointv3.LbEndpoint{
			HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
				Address: socketAddress(ep.Address, port),
			}},
			HealthStatus:        corev3.HealthStatus_HEALTHY,
			LoadBalancingWeight: wrapperspb.UInt32(w),
			Metadata:            endpointMetadata(ep), // stats.go
		})
		loc.LoadBalancingWeight.Value += w
	}
	sort.Strings(order)
	for _, l := range order {
		cla.Endpoints = append(cla.Endpoints, byLocality[l])
	}
	return cla
}

// parseLocality splits Istio's "region/zone/subzone".
func parseLocality(s string) *corev3.Locality {
	parts := strings.SplitN(s, "/", 3)
	l := &corev3.Locality{Region: parts[0]}
	if len(parts) > 1 {
		l.Zone = parts[1]
	}
	if len(parts) > 2 {
		l.SubZone = parts[2]
	}
	return l
}
