package xdstest

import (
	"fmt"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// decoded is what a client learns from one resource: its name, the names
// of the resources it makes the client ask for (a cluster's EDS name, a
// listener's RDS route names), and the message when kept.
type decoded struct {
	name string
	refs []string
	msg  proto.Message
}

// decode reads one resource. With keep it unmarshals the message fully and
// returns it; without, it reads only the fields needed to follow
// references (listeners are always unmarshalled: their route names sit in
// nested Any fields), so that a load generator spends little CPU of its
// own.
func decode(typeURL string, value []byte, keep bool) (decoded, error) {
	if !keep && typeURL != resourcev3.ListenerType {
		return decodeLight(typeURL, value)
	}
	var msg proto.Message
	switch typeURL {
	case resourcev3.ClusterType:
		msg = &clusterv3.Cluster{}
	case resourcev3.EndpointType:
		msg = &endpointv3.ClusterLoadAssignment{}
	case resourcev3.ListenerType:
		msg = &listenerv3.Listener{}
	case resourcev3.RouteType:
		msg = &routev3.RouteConfiguration{}
	default:
		return decoded{}, fmt.Errorf("unexpected resource type %s", typeURL)
	}
	if err := proto.Unmarshal(value, msg); err != nil {
		return decoded{}, fmt.Errorf("%s: %w", typeURL, err)
	}
	d := decoded{}
	switch m := msg.(type) {
	case *clusterv3.Cluster:
		d.name = m.GetName()
		if m.GetType() == clusterv3.Cluster_EDS {
			d.refs = []string{edsName(m.GetName(), m.GetEdsClusterConfig().GetServiceName())}
		}
	case *endpointv3.ClusterLoadAssignment:
		d.name = m.GetClusterName()
	case *listenerv3.Listener:
		d.name = m.GetName()
		refs, err := routeNames(m)
		if err != nil {
			return decoded{}, fmt.Errorf("listener %q: %w", d.name, err)
		}
		d.refs = refs
	case *routev3.RouteConfiguration:
		d.name = m.GetName()
	}
	if keep {
		d.msg = msg
	}
	return d, nil
}

// edsName is the name Envoy asks EDS for: eds_cluster_config.service_name,
// else the cluster's name.
func edsName(cluster, serviceName string) string {
	if serviceName != "" {
		return serviceName
	}
	return cluster
}

// routeNames returns the RDS route configuration names an HTTP connection
// manager of the listener refers to (filter chains, the default chain, or
// an api_listener for proxyless gRPC).
func routeNames(l *listenerv3.Listener) ([]string, error) {
	var out []string
	add := func(a *anypb.Any) error {
		if a.GetTypeUrl() != "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager" {
			return nil
		}
		h := &hcmv3.HttpConnectionManager{}
		if err := a.UnmarshalTo(h); err != nil {
			return fmt.Errorf("http_connection_manager: %w", err)
		}
		if n := h.GetRds().GetRouteConfigName(); n != "" {
			out = append(out, n)
		}
		return nil
	}
	chains := l.GetFilterChains()
	if l.GetDefaultFilterChain() != nil {
		chains = append(chains[:len(chains):len(chains)], l.GetDefaultFilterChain())
	}
	for _, fc := range chains {
		for _, f := range fc.GetFilters() {
			if err := add(f.GetTypedConfig()); err != nil {
				return nil, err
			}
		}
	}
	if err := add(l.GetApiListener().GetApiListener()); err != nil {
		return nil, err
	}
	return out, nil
}

// Field numbers read by decodeLight (envoy/config/cluster/v3/cluster.proto
// and friends).
const (
	fieldName             = 1 // Cluster.name, ClusterLoadAssignment.cluster_name, RouteConfiguration.name
	fieldClusterType      = 2 // Cluster.type
	fieldEDSClusterConfig = 3 // Cluster.eds_cluster_config
	fieldEDSServiceName   = 2 // Cluster.EdsClusterConfig.service_name
)

// decodeLight scans the wire format for the name (and a cluster's EDS
// settings) without unmarshalling.
func decodeLight(typeURL string, b []byte) (decoded, error) {
	var d decoded
	var eds bool
	var service string
	err := scan(b, func(num protowire.Number, typ protowire.Type, v []byte, n uint64) error {
		switch {
		case num == fieldName && typ == protowire.BytesType:
			d.name = string(v)
		case typeURL == resourcev3.ClusterType && num == fieldClusterType && typ == protowire.VarintType:
			eds = n == uint64(clusterv3.Cluster_EDS)
		case typeURL == resourcev3.ClusterType && num == fieldEDSClusterConfig && typ == protowire.BytesType:
			return scan(v, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
				if num == fieldEDSServiceName && typ == protowire.BytesType {
					service = string(v)
				}
				return nil
			})
		}
		return nil
	})
	if err != nil {
		return decoded{}, fmt.Errorf("%s: %w", typeURL, err)
	}
	if eds {
		d.refs = []string{edsName(d.name, service)}
	}
	return d, nil
}

// scan calls f for each top-level field of a message: bytes fields with
// their contents, varints with their value.
func scan(b []byte, f func(num protowire.Number, typ protowire.Type, v []byte, n uint64) error) error {
	for len(b) > 0 {
		num, typ, l := protowire.ConsumeTag(b)
		if l < 0 {
			return protowire.ParseError(l)
		}
		b = b[l:]
		var v []byte
		var n uint64
		switch typ {
		case protowire.BytesType:
			v, l = protowire.ConsumeBytes(b)
		case protowire.VarintType:
			n, l = protowire.ConsumeVarint(b)
		default:
			l = protowire.ConsumeFieldValue(num, typ, b)
		}
		if l < 0 {
			return protowire.ParseError(l)
		}
		b = b[l:]
		if err := f(num, typ, v, n); err != nil {
			return err
		}
	}
	return nil
}
