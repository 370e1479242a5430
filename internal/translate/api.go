// Package translate turns the mesh (a model.Snapshot) and one proxy's
// identity (a model.Proxy) into that proxy's Envoy xDS resources: listeners,
// route configurations, clusters and cluster load assignments, with Istio's
// semantics and names (clusters "outbound|PORT|SUBSET|HOST", routes
// "http_proxy", "http.PORT", ...).
//
// Translation is a pure function of its inputs: Generate reads only the
// snapshot and the proxy, so results can be cached by the key of what they
// depend on. Proxies whose outbound view is the same (same type, namespace
// and Sidecar scope) share one set of outbound resources: the resource
// messages are shared, read-only, between proxies.
//
// What each kind of proxy gets:
//   - sidecars (local mode, no traffic capture): the HTTP proxy listener
//     "ADDRESS_PORT" (default 127.0.0.1_15001) routing through the route
//     configuration "http_proxy" (a virtual host "HOST:PORT" per visible
//     service HTTP port); Istio-shaped TCP/TLS listeners "0.0.0.0_PORT"
//     that bind nothing until capture exists; clusters
//     "outbound|PORT|SUBSET|HOST" and their load assignments; inbound
//     listeners "IP_PORT" and clusters "inbound|PORT||" for the ports the
//     workload serves;
//   - gateways (router): a listener per Gateway server port, HTTP servers
//     routed through "http.PORT", TLS passthrough on SNI, TCP; the
//     outbound clusters;
//   - proxyless gRPC clients: a listener "HOST:PORT" with an api_listener
//     and the route configuration of that name per service HTTP port; EDS
//     clusters grpc-go accepts.
//
// What is not applied yet (retries, faults, mirroring, CORS, outlier
// detection, TLS, ...) is reported by Translator.Warnings.
package translate

import (
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/proto"

	"github.com/weftmesh/weft/internal/config"
	"github.com/weftmesh/weft/internal/model"
)

// Resources are one proxy's xDS resources by name. Everything in them —
// maps and messages — is read-only: proxies of the same scope share them.
type Resources struct {
	Listeners map[string]*listenerv3.Listener
	Routes    map[string]*routev3.RouteConfiguration
	Clusters  map[string]*clusterv3.Cluster
	Endpoints map[string]*endpointv3.ClusterLoadAssignment
	// NameTables holds the proxy's name table (NDS, NameTableType) under
	// the name "" (Istio's resource is unnamed), only for proxies whose
	// agent runs a DNS proxy (node metadata DNS_CAPTURE); nil otherwise.
	NameTables map[string]proto.Message
	// Versions holds, per resource type URL (ListenerType, RouteType,
	// ClusterType, EndpointType, and NameTableType with NameTables), a
	// hash of that type's resources: equal content gives an equal
	// version, so the xDS server sends a type again only when it changed.
	Versions map[string]string
}

// Options configure a Translator.
type Options struct {
	// ClusterDomain is the Kubernetes-style DNS domain (default
	// "cluster.local"), for short host names.
	ClusterDomain string
	// TrustDomain is the SPIFFE trust domain of workload identities
	// (default "cluster.local").
	TrustDomain string
}

// Translator generates resources. It caches the outbound resources of each
// scope for the newest snapshot it has seen. Safe for concurrent use.
type Translator struct {
	o Options
	c *cache
}

// New returns a Translator.
func New(o Options) *Translator {
	if o.ClusterDomain == "" {
		o.ClusterDomain = "cluster.local"
	}
	if o.TrustDomain == "" {
		o.TrustDomain = "cluster.local"
	}
	return &Translator{o: o, c: newCache()}
}

// Generate returns the resources of proxy p for snapshot s.
func (t *Translator) Generate(s *model.Snapshot, p *model.Proxy) *Resources {
	return t.generate(s, p)
}

// Retain drops what the translator derived from snapshots other than s
// (it otherwise keeps the two newest): call it once a push of s has been
// generated for every proxy, so that the memory of the previous snapshot
// is freed at once. Generating for an older snapshot afterwards is still
// correct, only slower.
func (t *Translator) Retain(s *model.Snapshot) { t.c.retain(s) }

// Warnings returns what translation of s does not apply yet or had to
// ignore (for example VirtualService retries before the resilience
// issue), once per object and field, so that nothing is silently dropped.
func (t *Translator) Warnings(s *model.Snapshot) []*config.Error {
	return t.warnings(s)
}
