// Package xdsclient is weft-proxy's xDS client: one Aggregated Discovery
// Service stream (gRPC, state of the world, Envoy's xDS v3 protocol) to the
// control plane, carrying clusters (CDS), endpoints (EDS), listeners (LDS)
// and route configurations (RDS).
//
// The client owns the protocol: subscriptions in Envoy's order (CDS and
// LDS as wildcards; EDS for the service names of the EDS clusters once the
// clusters are known; RDS for the route configurations the listeners
// name), ACK and NACK with version and nonce, reconnection with bounded
// exponential back-off and jitter, and resumption with the versions it
// already has. It decodes every resource and validates it against the
// subset of the Envoy API weft-proxy supports (bootstrap.ValidateResource).
//
// What the resources mean is the Handler's business: the proxy's server
// builds the runtime objects off the request path and swaps them in. The
// Handler reports the resources it could not build; the client NACKs the
// response with those errors and the rest of the response stays applied,
// as Envoy does. A rejected resource keeps its previous version.
//
// One goroutine owns all of the client's state; the Handler is called on
// it, one update at a time.
package xdsclient

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/weftmesh/weft/internal/proxy/bootstrap"
)

// Type URLs of the resources the client subscribes to.
const (
	ClusterType  = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
	EndpointType = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
	ListenerType = "type.googleapis.com/envoy.config.listener.v3.Listener"
	RouteType    = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
)

// resourceWrapperType is envoy.service.discovery.v3.Resource, in which a
// server may wrap a resource (to give it a TTL).
const resourceWrapperType = "type.googleapis.com/envoy.service.discovery.v3.Resource"

// typeOrder is Envoy's order: clusters, their endpoints, listeners, their
// routes. Requests on a new stream go out in this order.
// SDS secrets (sds_config ads {}) come last: they are requested once
// clusters and listeners name them.
var typeOrder = [...]string{ClusterType, EndpointType, ListenerType, RouteType, SecretType}

// Kind returns the short name of a type URL used in messages and paths
// ("cluster", "cluster_load_assignment", "listener",
// "route_configuration").
func Kind(typeURL string) string {
	switch typeURL {
	case ClusterType:
		return "cluster"
	case EndpointType:
		return "cluster_load_assignment"
	case ListenerType:
		return "listener"
	case RouteType:
		return "route_configuration"
	case SecretType:
		return "secret"
	}
	return typeURL
}

// ResourcePath is how messages name a resource: kind "name", e.g.
// `cluster "outbound|80||web.default.svc.cluster.local"`.
func ResourcePath(typeURL, name string) string {
	return fmt.Sprintf("%s %q", Kind(typeURL), name)
}

// fullState reports whether a response of this type carries the whole
// state (LDS, CDS): a resource it does not carry is removed. RDS and EDS
// responses carry only some resources, and absence means nothing.
func fullState(typeURL string) bool { return typeURL == ListenerType || typeURL == ClusterType }

// Update is one response of one type, decoded and validated resource by
// resource.
type Update struct {
	TypeURL string
	// Version is the response's version_info.
	Version string
	// Resources are the resources that decoded and passed validation, by
	// name: *clusterv3.Cluster, *endpointv3.ClusterLoadAssignment (named by
	// its cluster_name), *listenerv3.Listener or
	// *routev3.RouteConfiguration. The Handler must not modify them.
	Resources map[string]proto.Message
	// Invalid names the resources that failed decoding or validation; the
	// client NACKs them. The Handler keeps their previous version (and, for
	// LDS and CDS, does not remove them).
	Invalid map[string]error
	// InvalidResources holds the invalid resources that decoded (for the
	// admin's error_state).
	InvalidResources map[string]proto.Message
}

// FullState reports whether resources absent from the update are to be
// removed (LDS and CDS).
func (u *Update) FullState() bool { return fullState(u.TypeURL) }

// Handler applies updates to the proxy. Its methods are called on the
// client's goroutine, never concurrently.
type Handler interface {
	// Apply applies u off the request path. It returns the resources it
	// could not apply, by name, each error naming the resource and the
	// field; those keep their previous configuration and the client NACKs
	// the response. Everything else in u takes effect.
	Apply(u *Update) map[string]error
	// Names returns the resources of typeURL (EndpointType, RouteType or
	// SecretType) the proxy needs now: the service names of its EDS
	// clusters, the route configurations its listeners name, the secrets
	// (sds_config ads {}) its TLS contexts name. It is asked after every
	// CDS or LDS update.
	Names(typeURL string) []string
}

// decode turns a response into an Update: each resource unpacked into its
// type and checked with bootstrap.ValidateResource.
func decode(resp *discoveryv3.DiscoveryResponse) *Update {
	u := &Update{
		TypeURL:   resp.GetTypeUrl(),
		Version:   resp.GetVersionInfo(),
		Resources: make(map[string]proto.Message, len(resp.GetResources())),
		Invalid:   map[string]error{},

		InvalidResources: map[string]proto.Message{},
	}
	for i, a := range resp.GetResources() {
		m, name, err := unpack(a, u.TypeURL)
		if err != nil {
			if name == "" {
				name = fmt.Sprintf("resources[%d]", i)
			}
			u.Invalid[name] = fmt.Errorf("%s: %w", ResourcePath(u.TypeURL, name), err)
			continue
		}
		if _, dup := u.Resources[name]; dup {
			u.Invalid[name] = fmt.Errorf("%s: duplicate resource name in one response", ResourcePath(u.TypeURL, name))
			delete(u.Resources, name)
			continue
		}
		if _, dup := u.Invalid[name]; dup {
			continue
		}
		if err := bootstrap.ValidateResource(m, ResourcePath(u.TypeURL, name)); err != nil {
			u.Invalid[name] = err
			u.InvalidResources[name] = m
			continue
		}
		u.Resources[name] = m
	}
	return u
}

// unpack decodes one resource of a response of type typeURL and returns it
// with its name.
func unpack(a *anypb.Any, typeURL string) (proto.Message, string, error) {
	if a.GetTypeUrl() == resourceWrapperType {
		var r discoveryv3.Resource
		if err := a.UnmarshalTo(&r); err != nil {
			return nil, "", fmt.Errorf("cannot decode the resource wrapper: %w", err)
		}
		a = r.GetResource()
	}
	if a.GetTypeUrl() != typeURL {
		return nil, "", fmt.Errorf("resource of type %s in a %s response", a.GetTypeUrl(), typeURL)
	}
	var m proto.Message
	switch typeURL {
	case ClusterType:
		m = &clusterv3.Cluster{}
	case EndpointType:
		m = &endpointv3.ClusterLoadAssignment{}
	case ListenerType:
		m = &listenerv3.Listener{}
	case RouteType:
		m = &routev3.RouteConfiguration{}
	case SecretType:
		m = &tlsv3.Secret{}
	default:
		return nil, "", fmt.Errorf("type %s is not one weft-proxy subscribes to", typeURL)
	}
	if err := a.UnmarshalTo(m); err != nil {
		return nil, "", fmt.Errorf("cannot decode: %w", err)
	}
	name := resourceName(m)
	if name == "" {
		return nil, "", fmt.Errorf("name: required")
	}
	return m, name, nil
}

// resourceName returns the name a resource is known by.
func resourceName(m proto.Message) string {
	switch r := m.(type) {
	case *clusterv3.Cluster:
		return r.GetName()
	case *endpointv3.ClusterLoadAssignment:
		return r.GetClusterName()
	case *listenerv3.Listener:
		return r.GetName()
	case *routev3.RouteConfiguration:
		return r.GetName()
	case *tlsv3.Secret:
		return r.GetName()
	}
	return ""
}

// errorDetail joins the errors of a NACK, one per line, sorted by resource
// name so the message is stable.
func errorDetail(errs map[string]error) string {
	names := make([]string, 0, len(errs))
	for n := range errs {
		names = append(names, n)
	}
	sort.Strings(names)
	lines := make([]string, 0, len(names))
	for _, n := range names {
		lines = append(lines, errs[n].Error())
	}
	return strings.Join(lines, "\n")
}

// sameNames reports whether two sorted name lists are equal.
func sameNames(a, b []string) bool { return slices.Equal(a, b) }
