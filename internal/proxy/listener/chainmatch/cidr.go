package chainmatch

import (
	"net/netip"
	"slices"
)

// cidrTable maps CIDR ranges to nodes and finds the most specific range
// containing an address (Envoy's LC-trie lookup in exclusive mode).
//
// Ranges are grouped by prefix length, longest first; a lookup masks the
// address to each length in turn and probes that group's map. That is
// O(number of distinct lengths) map probes and allocates nothing.
type cidrTable[T any] struct {
	v4, v6 []cidrBucket[T]
}

type cidrBucket[T any] struct {
	bits  int
	nodes map[netip.Prefix]*T
	all   *T // the one node of a /0 bucket, which every address reaches
}

// node returns the node for p (which must be masked), creating it.
func (t *cidrTable[T]) node(p netip.Prefix) *T {
	buckets := &t.v6
	if p.Addr().Is4() {
		buckets = &t.v4
	}
	i, found := slices.BinarySearchFunc(*buckets, p.Bits(), func(b cidrBucket[T], bits int) int {
		return bits - b.bits // descending by bits
	})
	if !found {
		*buckets = slices.Insert(*buckets, i, cidrBucket[T]{bits: p.Bits(), nodes: map[netip.Prefix]*T{}})
	}
	b := &(*buckets)[i]
	n, ok := b.nodes[p]
	if !ok {
		n = new(T)
		b.nodes[p] = n
		if p.Bits() == 0 {
			b.all = n
		}
	}
	return n
}

// lookup returns the node of the longest range containing a, or nil.
// a must be unmapped and without zone.
func (t *cidrTable[T]) lookup(a netip.Addr) *T {
	buckets := t.v6
	if a.Is4() {
		buckets = t.v4
	}
	for i := range buckets {
		if buckets[i].all != nil {
			return buckets[i].all // /0 is the last bucket: no map probe
		}
		p, err := a.Prefix(buckets[i].bits)
		if err != nil {
			continue
		}
		if n, ok := buckets[i].nodes[p]; ok {
			return n
		}
	}
	return nil
}
