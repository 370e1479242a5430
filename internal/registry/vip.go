package registry

import (
	"cmp"
	"hash/fnv"
	"net/netip"
	"slices"

	"github.com/weftmesh/weft/internal/model"
)

// Virtual IP auto-allocation, as Istio's ServiceEntry controller does it
// (pilot/pkg/serviceregistry/serviceentry/util.go autoAllocateIPs, the
// DNS proxying docs "Address auto allocation"):
//
//   - Which services: those with no addresses, a hostname that is not a
//     wildcard, and a resolution other than NONE (for NONE the proxy could
//     not know which destination the application meant).
//   - Where: the class E range 240.240.0.0/16 for IPv4 and the RFC 5180
//     benchmarking range 2001:2::/48 for IPv6, which no real destination
//     uses. Every allocated service gets one address of each family.
//   - How: the slot is the FNV-32a hash of "namespace/hostname" modulo the
//     number of slots; a collision probes with Istio's double hashing
//     (step prime - hash%prime), then linearly once the double-hash
//     sequence has visited as many slots as exist, so a free slot is
//     always found. Services are placed in the order of their key, so the
//     result depends only on the set of services: the same configuration
//     gives the same addresses in every weft-control, and after every
//     restart. A service keeps its address when others come and go unless
//     its own slot was taken by a collision (then the probe order decides;
//     with 65,024 slots that is rare for meshes of hundreds of services).
//
// Slot i maps to 240.240.(i/254).(i%254+1): fourth octets 1..254, never a
// .0 or .255 address. The IPv6 address is 2001:2::f0f0:TTFF with TT and
// FF those two octets (Istio writes them as %x%x, which is ambiguous:
// 1.35 and 18.3 both give "123"; weft keeps a byte each).

const (
	// vipSlots is the number of addresses: 256 third octets × 254 fourth.
	vipSlots = 256 * 254
	// vipPrime is Istio's secondary-hash prime, the largest below vipSlots.
	vipPrime = 65011
)

// AllocateAddresses returns services with AutoAllocated set on each one
// that qualifies (see above); other services are returned as they are.
// Services that get addresses are copies: the input is not modified. The
// result is in the input's order. With more qualifying services than
// slots, the ones beyond the last slot (in key order) get none.
func AllocateAddresses(services []*model.Service) []*model.Service {
	idx := make([]int, 0, len(services))
	for i, s := range services {
		if needsVIP(s) {
			idx = append(idx, i)
		}
	}
	if len(idx) == 0 {
		return services
	}
	slices.SortFunc(idx, func(a, b int) int {
		return cmp.Or(cmp.Compare(services[a].Namespace, services[b].Namespace),
			cmp.Compare(services[a].Hostname, services[b].Hostname), cmp.Compare(a, b))
	})
	out := slices.Clone(services)
	taken := make([]bool, vipSlots)
	for n, i := range idx {
		if n >= vipSlots {
			break
		}
		slot := placeVIP(vipKey(services[i]), taken)
		taken[slot] = true
		c := *services[i]
		v4, v6 := vipAddrs(slot)
		c.AutoAllocated = []string{v4.String(), v6.String()}
		out[i] = &c
	}
	return out
}

// needsVIP is Istio's condition for auto-allocation.
func needsVIP(s *model.Service) bool {
	return len(s.Addresses) == 0 && !model.IsWildcardHost(s.Hostname) && s.Resolution != model.Passthrough
}

// vipKey is Istio's service key, namespace/hostname.
func vipKey(s *model.Service) string { return s.Namespace + "/" + s.Hostname }

// placeVIP returns the free slot for key: its hash, else the double-hash
// probe sequence, else the next free slot after the hash. taken must have
// a free slot.
func placeVIP(key string, taken []bool) int {
	h := fnv.New32a()
	_, _ = h.Write([]byte(key))
	s := h.Sum32()
	first := int(s % vipSlots)
	if !taken[first] {
		return first
	}
	step := uint64(vipPrime - s%vipPrime)
	for i := uint64(1); i < vipSlots; i++ {
		if nh := int((uint64(s) + i*step) % vipSlots); !taken[nh] {
			return nh
		}
	}
	for i := 1; i < vipSlots; i++ {
		if nh := (first + i) % vipSlots; !taken[nh] {
			return nh
		}
	}
	panic("registry: placeVIP called with every slot taken") // AllocateAddresses stops before
}

// vipAddrs maps a slot to its IPv4 and IPv6 addresses.
func vipAddrs(slot int) (v4, v6 netip.Addr) {
	third, fourth := byte(slot/254), byte(slot%254+1)
	v4 = netip.AddrFrom4([4]byte{240, 240, third, fourth})
	v6 = netip.AddrFrom16([16]byte{0x20, 0x01, 0x00, 0x02, 12: 0xf0, 0xf0, third, fourth})
	return v4, v6
}
