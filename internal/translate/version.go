package translate

import (
	"encoding/binary"
	"fmt"
	"maps"

	"github.com/cespare/xxhash/v2"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/proto"
)

// hashed is a resource with the hash of its name and content.
type hashed[T proto.Message] struct {
	name string
	msg  T
	sum  uint64
}

// hash computes a resource's hash from its name and deterministic
// encoding. A message built here always marshals; a failure panics.
func hash[T proto.Message](name string, m T) hashed[T] {
	b, err := deterministic.Marshal(m)
	if err != nil {
		panic(fmt.Sprintf("translate: marshalling %s: %v", name, err))
	}
	d := xxhash.New()
	_, _ = d.WriteString(name)
	_, _ = d.Write([]byte{0})
	_, _ = d.Write(b)
	return hashed[T]{name: name, msg: m, sum: d.Sum64()}
}

// resourceSet is resources of one type by name, with an order-independent
// digest of their hashes: the digest of a union is the sum of the digests,
// so that a shared set and a proxy's own resources combine without
// rehashing.
type resourceSet[T proto.Message] struct {
	byName map[string]T
	digest digest
}

func newResourceSet[T proto.Message]() resourceSet[T] {
	return resourceSet[T]{byName: map[string]T{}}
}

// put adds a resource; a second resource of the same name is dropped (the
// first built wins).
func (r *resourceSet[T]) put(h hashed[T]) {
	if _, dup := r.byName[h.name]; dup {
		return
	}
	r.byName[h.name] = h.msg
	r.digest.add(h.sum)
}

// digest sums resource hashes (mod 2^64) and counts them.
type digest struct {
	sum uint64
	n   uint64
}

func (d *digest) add(h uint64) { d.sum += h; d.n++ }

// plus returns the digest of the union of two disjoint sets.
func (d digest) plus(o digest) digest { return digest{sum: d.sum + o.sum, n: d.n + o.n} }

// version renders the digest as a version string: equal resource sets give
// equal versions.
func (d digest) version() string {
	var b [16]byte
	binary.LittleEndian.PutUint64(b[:8], d.sum)
	binary.LittleEndian.PutUint64(b[8:], d.n)
	return fmt.Sprintf("%016x", xxhash.Sum64(b[:]))
}

// outbound is the resources shared by every proxy of one scope.
type outbound struct {
	listeners resourceSet[*listenerv3.Listener]
	routes    resourceSet[*routev3.RouteConfiguration]
	clusters  resourceSet[*clusterv3.Cluster]
	endpoints resourceSet[*endpointv3.ClusterLoadAssignment]
}

func newOutbound() *outbound {
	return &outbound{
		listeners: newResourceSet[*listenerv3.Listener](),
		routes:    newResourceSet[*routev3.RouteConfiguration](),
		clusters:  newResourceSet[*clusterv3.Cluster](),
		endpoints: newResourceSet[*endpointv3.ClusterLoadAssignment](),
	}
}

// perProxy is the resources of one proxy that no other proxy shares (its
// HTTP proxy listener, its inbound listeners and clusters).
type perProxy struct {
	listeners []hashed[*listenerv3.Listener]
	clusters  []hashed[*clusterv3.Cluster]
}

// assemble returns the resources of a proxy: the shared maps themselves
// where the proxy adds nothing, copies with its own resources added
// otherwise, and the versions of every type.
func assemble(o *outbound, extra perProxy) *Resources {
	listeners, ld := withExtra(o.listeners, extra.listeners)
	clusters, cd := withExtra(o.clusters, extra.clusters)
	return &Resources{
		Listeners: listeners,
		Routes:    o.routes.byName,
		Clusters:  clusters,
		Endpoints: o.endpoints.byName,
		Versions: map[string]string{
			ListenerType: ld.version(),
			RouteType:    o.routes.digest.version(),
			ClusterType:  cd.version(),
			EndpointType: o.endpoints.digest.version(),
		},
	}
}

// withExtra returns the shared map plus extra resources (shared ones win on
// a name clash) and the digest of the result.
func withExtra[T proto.Message](shared resourceSet[T], extra []hashed[T]) (map[string]T, digest) {
	if len(extra) == 0 {
		return shared.byName, shared.digest
	}
	m := maps.Clone(shared.byName)
	d := shared.digest
	for _, h := range extra {
		if _, dup := m[h.name]; dup {
			continue
		}
		m[h.name] = h.msg
		d.add(h.sum)
	}
	return m, d
}
