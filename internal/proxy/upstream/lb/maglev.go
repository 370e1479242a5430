package lb

import (
	"cmp"
	"math"
	"math/rand/v2"
	"slices"

	"github.com/cespare/xxhash/v2"
)

// maglevPolicy is MAGLEV (Envoy's MaglevLoadBalancer).
type maglevPolicy struct {
	tableSize uint64 // maglev_lb_config.table_size, prime
}

func (maglevPolicy) Name() string { return "MAGLEV" }

// Build fills Envoy's Maglev table over hosts (MaglevTable,
// maglev_lb.cc; the Maglev paper, section 3.4, listing 1, with weights):
//
//   - hosts are ordered by HashKey, so the table does not depend on the
//     order of the hosts slice;
//   - each host has offset = xxHash64(key, seed 0) % size and
//     skip = xxHash64(key, seed 1) % (size-1) + 1, and its preference list
//     is (offset + skip*j) % size for j = 0, 1, ...;
//   - in rounds 1, 2, ..., a host whose normalized weight w satisfies
//     round*w >= its target claims its next free preferred slot and raises
//     its target by the largest normalized weight, until the table is full.
//
// The table is therefore the same as Envoy's, slot for slot.
func (p maglevPolicy) Build(hosts []Host) Picker {
	if t := trivialPicker(hosts); t != nil {
		return t
	}
	table := buildMaglevTable(hosts, p.tableSize)
	m := &maglevPicker{size: p.tableSize}
	if len(hosts) <= math.MaxUint16+1 {
		m.table16 = make([]uint16, len(table))
		for i, h := range table {
			m.table16[i] = uint16(h)
		}
	} else {
		m.table32 = make([]uint32, len(table))
		for i, h := range table {
			m.table32[i] = uint32(h)
		}
	}
	return m
}

// maglevEntry is a host's state while the table is filled
// (Envoy's TableBuildEntry).
type maglevEntry struct {
	host         int
	key          string
	offset, skip uint64
	weight       float64 // normalized
	target       float64
	next         uint64
}

func buildMaglevTable(hosts []Host, size uint64) []int32 {
	weights, _, maxW := normalizedWeights(hosts)
	entries := make([]maglevEntry, len(hosts))
	for i, h := range hosts {
		entries[i] = maglevEntry{host: i, key: h.HashKey(), weight: weights[i]}
	}
	// Envoy sorts (key, host, weight) tuples; equal keys then order by host
	// pointer. weft breaks that tie by position in hosts instead.
	slices.SortStableFunc(entries, func(a, b maglevEntry) int { return cmp.Compare(a.key, b.key) })
	seeded := xxhash.NewWithSeed(1)
	for i := range entries {
		e := &entries[i]
		e.offset = xxhash.Sum64String(e.key) % size
		seeded.ResetWithSeed(1)
		_, _ = seeded.WriteString(e.key)
		e.skip = seeded.Sum64()%(size-1) + 1
	}

	table := make([]int32, size)
	for i := range table {
		table[i] = -1
	}
	filled := uint64(0)
	for round := uint32(1); filled < size; round++ {
		for i := 0; i < len(entries) && filled < size; i++ {
			e := &entries[i]
			if float64(round)*e.weight < e.target {
				continue
			}
			e.target += maxW
			c := (e.offset + e.skip*e.next) % size
			for table[c] >= 0 {
				e.next++
				c = (e.offset + e.skip*e.next) % size
			}
			table[c] = int32(e.host)
			e.next++
			filled++
		}
	}
	return table
}

// maglevPicker looks the request's hash up in the table: table[hash % size]
// (Envoy's chooseHost). Without a hash it uses a random one, as Envoy does,
// which keeps the table's weighting. Slots hold host indexes in 16 bits when
// the hosts allow (128 KiB for the default 65537 slots), else 32.
type maglevPicker struct {
	size    uint64
	table16 []uint16
	table32 []uint32
}

func (p *maglevPicker) Pick(ctx *Context) int {
	var h uint64
	if ctx != nil && ctx.HasHash {
		h = ctx.Hash
	} else {
		h = rand.Uint64()
	}
	if p.table16 != nil {
		return int(p.table16[h%p.size])
	}
	return int(p.table32[h%p.size])
}
