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
package translate

import (
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"

	"github.com/weftmesh/weft/internal/config"
	"github.com/weftmesh/weft/internal/model"
)

// Resources are one proxy's xDS resources by name. The messages are
// read-only: they may be shared with other proxies.
type Resources struct {
	Listeners map[string]*listenerv3.Listener
	Routes    map[string]*routev3.RouteConfiguration
	Clusters  map[string]*clusterv3.Cluster
	Endpoints map[string]*endpointv3.ClusterLoadAssignment
	// Versions holds, per resource type URL, a hash of that type's
	// resources: equal content gives an equal version, so the xDS server
	// sends a type again only when it changed.
	Versions map[string]string
}

// Options configure a Translator.
type Options struct {
	// ClusterDomain is the Kubernetes-style DNS domain (default
	// "cluster.local"), for short host names.
	ClusterDomain string
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
	return &Translator{o: o, c: newCache()}
}

// Generate returns the resources of proxy p for snapshot s.
func (t *Translator) Generate(s *model.Snapshot, p *model.Proxy) *Resources {
	return t.generate(s, p)
}

// Warnings returns what translation of s does not apply yet or had to
// ignore (for example VirtualService retries before the resilience
// issue), once per object and field, so that nothing is silently dropped.
func (t *Translator) Warnings(s *model.Snapshot) []*config.Error {
	return t.warnings(s)
}
