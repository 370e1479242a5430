// Package lb holds the load-balancing policies of weft-proxy's clusters:
// ROUND_ROBIN, RANDOM, LEAST_REQUEST, RING_HASH and MAGLEV, with Envoy's
// semantics, endpoint weights included.
//
// A Policy is built once per cluster from its configuration. Each time the
// set of hosts the cluster balances over changes (membership, health,
// weights), the cluster calls Policy.Build off the request path and swaps the
// new Picker in atomically. Picker.Pick runs on the request path: it never
// blocks, never allocates and is safe for concurrent use.
package lb

import "net/netip"

// Host is what a policy knows of an endpoint.
type Host interface {
	// Weight is the endpoint's load_balancing_weight, at least 1.
	Weight() uint32
	// ActiveRequests is the number of requests in flight to the endpoint.
	// Only LEAST_REQUEST reads it, at pick time.
	ActiveRequests() int64
	// HashKey is what consistent-hashing policies place on their ring or
	// table: the endpoint's "ip:port" address, as Envoy uses by default.
	HashKey() string
}

// Context is what a pick knows of the request.
type Context struct {
	// Hash is the request's hash from the route's hash_policy; valid when
	// HasHash is true. Consistent-hashing policies pick at random without it,
	// as Envoy does.
	Hash    uint64
	HasHash bool
	// OriginalDst is the downstream connection's original destination
	// (restored by the original_dst listener filter), zero when it was not
	// restored. Only ORIGINAL_DST clusters read it: it is their host.
	OriginalDst netip.AddrPort
}

// Picker chooses an endpoint for one request.
type Picker interface {
	// Pick returns the index, in the slice given to Build, of the chosen
	// host, or -1 when that slice was empty. It must not block or allocate,
	// and must be safe for concurrent use.
	Pick(ctx *Context) int
}

// Policy is a cluster's load-balancing policy with its configuration.
type Policy interface {
	// Name is the policy's Envoy name, for example "ROUND_ROBIN".
	Name() string
	// Build returns a picker over hosts. hosts is not modified and must not
	// be modified by the caller afterwards. Build may be slow (ring hash and
	// maglev build tables here) and is never called on the request path.
	Build(hosts []Host) Picker
}
