package lb

import "encoding/binary"

// murmurStdSeed is the seed libstdc++'s std::hash<std::string> passes to
// MurmurHash2, which Envoy's ring hash uses for MURMUR_HASH_2
// (MurmurHash::STD_HASH_SEED in source/common/common/hash.h).
const murmurStdSeed = 0xc70f6907

// murmurHash2 is the 64-bit MurmurHash2 of libstdc++'s _Hash_bytes, as
// Envoy's MurmurHash::murmurHash2 implements it for 64-bit platforms: it
// reads the key as little-endian 64-bit words, then folds the 1 to 7
// trailing bytes in as one little-endian word.
func murmurHash2(key []byte, seed uint64) uint64 {
	const mul = 0xc6a4a7935bd1e995
	n := len(key)
	aligned := n &^ 7
	h := seed ^ (uint64(n) * mul)
	for p := 0; p < aligned; p += 8 {
		d := shiftMix(binary.LittleEndian.Uint64(key[p:])*mul) * mul
		h ^= d
		h *= mul
	}
	if tail := key[aligned:]; len(tail) != 0 {
		var d uint64
		for i := len(tail) - 1; i >= 0; i-- {
			d = d<<8 | uint64(tail[i])
		}
		h ^= d
		h *= mul
	}
	h = shiftMix(h) * mul
	return shiftMix(h)
}

func shiftMix(v uint64) uint64 { return v ^ (v >> 47) }
