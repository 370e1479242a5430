package lb

import (
	"math"
	"math/rand/v2"
	"slices"
	"strconv"

	"github.com/cespare/xxhash/v2"
)

// ringHashPolicy is RING_HASH (Envoy's RingHashLoadBalancer, "ketama").
type ringHashPolicy struct {
	minSize, maxSize uint64 // ring_hash_lb_config.{minimum,maximum}_ring_size
	hash             hashFunction
}

func (ringHashPolicy) Name() string { return "RING_HASH" }

// Build builds Envoy's ring over hosts (RingHashLoadBalancer::Ring):
//
//   - weights are normalized to sum to 1;
//   - scale = min(ceil(minWeight*minSize)/minWeight, maxSize), so the
//     lightest host gets a whole number of entries and the ring has
//     ceil(scale) entries;
//   - walking the hosts in order, each host adds entries while a running
//     count stays below the running target sum(scale*weight); entry i of a
//     host hashes "<HashKey>_<i>" with xxHash64 (seed 0) or MurmurHash2-64
//     (seed 0xc70f6907);
//   - entries are sorted by hash.
//
// Given the same hosts, weights and keys, the ring is the same as Envoy's, so
// a request hash selects the same endpoint in weft and in Envoy.
func (p ringHashPolicy) Build(hosts []Host) Picker {
	if t := trivialPicker(hosts); t != nil {
		return t
	}
	weights, minW, _ := normalizedWeights(hosts)
	scale := math.Min(math.Ceil(minW*float64(p.minSize))/minW, float64(p.maxSize))
	ringSize := uint64(math.Ceil(scale))
	entries := make([]ringEntry, 0, ringSize)

	var key []byte
	current, target := 0.0, 0.0
	for h, host := range hosts {
		key = append(append(key[:0], host.HashKey()...), '_')
		prefix := len(key)
		target += scale * weights[h]
		for i := uint64(0); current < target; i++ {
			key = strconv.AppendUint(key[:prefix], i, 10)
			entries = append(entries, ringEntry{hash: p.hashKey(key), host: uint32(h)})
			current++
		}
	}
	// Envoy's std::sort leaves equal hashes in an unspecified order; sorting
	// by host index second makes weft's ring deterministic.
	slices.SortFunc(entries, func(a, b ringEntry) int {
		if a.hash != b.hash {
			if a.hash < b.hash {
				return -1
			}
			return 1
		}
		return int(a.host) - int(b.host)
	})
	if len(entries) == 0 {
		return emptyPicker{} // unreachable: minSize >= 1 gives every ring an entry
	}
	r := &ringPicker{hashes: make([]uint64, len(entries)), hosts: make([]uint32, len(entries))}
	for i, e := range entries {
		r.hashes[i], r.hosts[i] = e.hash, e.host
	}
	return r
}

func (p ringHashPolicy) hashKey(key []byte) uint64 {
	if p.hash == hashMurmur2 {
		return murmurHash2(key, murmurStdSeed)
	}
	return xxhash.Sum64(key)
}

type ringEntry struct {
	hash uint64
	host uint32
}

// ringPicker holds the sorted ring as two parallel slices, so the binary
// search touches only hashes.
type ringPicker struct {
	hashes []uint64 // sorted ascending
	hosts  []uint32 // hosts[i] owns hashes[i]
}

// Pick returns the owner of the first entry whose hash is >= the request's
// hash, wrapping to the first entry past the end, as Envoy's ketama lookup
// (Ring::chooseHost) does. Without a hash it uses a random one, as Envoy's
// ThreadAwareLoadBalancerBase does, which keeps the ring's weighting.
func (p *ringPicker) Pick(ctx *Context) int {
	var h uint64
	if ctx != nil && ctx.HasHash {
		h = ctx.Hash
	} else {
		h = rand.Uint64()
	}
	lo, hi := 0, len(p.hashes)
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if p.hashes[mid] < h {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	if lo == len(p.hashes) {
		lo = 0
	}
	return int(p.hosts[lo])
}
