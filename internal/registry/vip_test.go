package registry

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"testing"

	"github.com/weftmesh/weft/internal/model"
)

func vipService(ns, host string, res model.Resolution, addrs ...string) *model.Service {
	return &model.Service{Hostname: host, Namespace: ns, Resolution: res, Addresses: addrs}
}

// TestAllocateAddressesRules checks which services get addresses (Istio's
// conditions) and that inputs are not modified.
func TestAllocateAddressesRules(t *testing.T) {
	cases := []struct {
		name string
		svc  *model.Service
		want bool
	}{
		{"static_no_address", vipService("default", "hello.default.svc.cluster.local", model.ClientSideLB), true},
		{"dns_no_address", vipService("default", "api.example.com", model.DNS), true},
		{"dns_round_robin", vipService("default", "rr.example.com", model.DNSRoundRobin), true},
		{"declared_address", vipService("default", "db.example.com", model.ClientSideLB, "10.0.0.1"), false},
		{"wildcard", vipService("default", "*.example.com", model.DNS), false},
		{"resolution_none", vipService("default", "pass.example.com", model.Passthrough), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := []*model.Service{tc.svc}
			out := AllocateAddresses(in)
			if got := len(out[0].AutoAllocated) > 0; got != tc.want {
				t.Fatalf("allocated %v (%v), want %v", got, out[0].AutoAllocated, tc.want)
			}
			if tc.svc.AutoAllocated != nil {
				t.Errorf("input modified: %v", tc.svc.AutoAllocated)
			}
			if !tc.want {
				if out[0] != tc.svc {
					t.Errorf("a service without allocation must be returned as is")
				}
				return
			}
			v4, err4 := netip.ParseAddr(out[0].AutoAllocated[0])
			v6, err6 := netip.ParseAddr(out[0].AutoAllocated[1])
			if err4 != nil || err6 != nil || len(out[0].AutoAllocated) != 2 {
				t.Fatalf("addresses %v: want an IPv4 then an IPv6 address", out[0].AutoAllocated)
			}
			if !netip.MustParsePrefix("240.240.0.0/16").Contains(v4) || !netip.MustParsePrefix("2001:2::/48").Contains(v6) {
				t.Errorf("addresses %v outside 240.240.0.0/16 and 2001:2::/48", out[0].AutoAllocated)
			}
			if got := out[0].VirtualAddresses(); !reflect.DeepEqual(got, out[0].AutoAllocated) {
				t.Errorf("VirtualAddresses = %v, want the allocated ones", got)
			}
		})
	}
}

// TestAllocateAddressesKnownValue pins the hash → address mapping: a change
// here changes every mesh's addresses, which must be deliberate.
func TestAllocateAddressesKnownValue(t *testing.T) {
	out := AllocateAddresses([]*model.Service{vipService("default", "hello.default.svc.cluster.local", model.ClientSideLB)})
	got := out[0].AutoAllocated
	// The slot is fnv32a("default/hello.default.svc.cluster.local") % 65024.
	want := expectedVIPs("default/hello.default.svc.cluster.local")
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

func expectedVIPs(key string) []string {
	var h uint32 = 2166136261
	for i := 0; i < len(key); i++ {
		h ^= uint32(key[i])
		h *= 16777619
	}
	slot := h % (256 * 254)
	third, fourth := slot/254, slot%254+1
	return []string{fmt.Sprintf("240.240.%d.%d", third, fourth), fmt.Sprintf("2001:2::f0f0:%x", third<<8|fourth)}
}

// TestAllocateAddressesLargeSet allocates 20,000 services (a third of the
// range, so many hash collisions): no two share an address, no address
// ends in .0 or .255, and every input order gives the same result
// (stable across restarts, whatever order the configuration was read in).
func TestAllocateAddressesLargeSet(t *testing.T) {
	const n = 20000
	in := make([]*model.Service, n)
	for i := range in {
		in[i] = vipService(fmt.Sprintf("ns%d", i%7), fmt.Sprintf("svc-%d.example.com", i), model.DNS)
	}
	out := AllocateAddresses(in)
	byKey := map[string][]string{}
	seen4, seen6 := map[string]string{}, map[string]string{}
	for _, s := range out {
		if len(s.AutoAllocated) != 2 {
			t.Fatalf("%s/%s: %v, want two addresses", s.Namespace, s.Hostname, s.AutoAllocated)
		}
		k := vipKey(s)
		v4, v6 := s.AutoAllocated[0], s.AutoAllocated[1]
		if other, dup := seen4[v4]; dup {
			t.Fatalf("%s and %s share %s", other, k, v4)
		}
		if other, dup := seen6[v6]; dup {
			t.Fatalf("%s and %s share %s", other, k, v6)
		}
		seen4[v4], seen6[v6] = k, k
		if b := netip.MustParseAddr(v4).As4(); b[3] == 0 || b[3] == 255 {
			t.Fatalf("%s got %s", k, v4)
		}
		byKey[k] = s.AutoAllocated
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for round := 0; round < 3; round++ {
		shuffled := append([]*model.Service(nil), in...)
		rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		for _, s := range AllocateAddresses(shuffled) {
			if got := byKey[vipKey(s)]; !reflect.DeepEqual(got, s.AutoAllocated) {
				t.Fatalf("round %d: %s got %v, first order gave %v", round, vipKey(s), s.AutoAllocated, got)
			}
		}
	}
}

// TestAllocateAddressesFull fills every slot: each service still gets a
// distinct address (the linear fallback finds the last free slots), and
// one more service beyond the range gets none.
func TestAllocateAddressesFull(t *testing.T) {
	in := make([]*model.Service, vipSlots+1)
	for i := range in {
		in[i] = vipService("ns", fmt.Sprintf("s%06d.example.com", i), model.DNS)
	}
	out := AllocateAddresses(in)
	seen := make(map[string]bool, vipSlots)
	without := 0
	for _, s := range out {
		if len(s.AutoAllocated) == 0 {
			without++
			continue
		}
		if seen[s.AutoAllocated[0]] {
			t.Fatalf("%s allocated twice", s.AutoAllocated[0])
		}
		seen[s.AutoAllocated[0]] = true
	}
	if len(seen) != vipSlots || without != 1 {
		t.Fatalf("%d distinct addresses and %d services without, want %d and 1", len(seen), without, vipSlots)
	}
}

// TestFromConfigAllocates checks that the file registry applies the
// allocation to ServiceEntries (a restart: two independent runs agree).
func TestFromConfigAllocates(t *testing.T) {
	objs := objects(t, `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: hello, namespace: default}
spec:
  hosts: [hello.default.svc.cluster.local]
  ports: [{number: 8080, name: http}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.10}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ext, namespace: default}
spec:
  hosts: [api.example.com]
  addresses: [10.1.2.3]
  ports: [{number: 443, name: tls}]
  resolution: DNS
`)
	first, _ := FromConfig(objs, FileOptions{})
	second, _ := FromConfig(objs, FileOptions{})
	for i, s := range first {
		switch s.Hostname {
		case "hello.default.svc.cluster.local":
			want := expectedVIPs("default/hello.default.svc.cluster.local")
			if !reflect.DeepEqual(s.AutoAllocated, want) || !reflect.DeepEqual(second[i].AutoAllocated, want) {
				t.Errorf("hello: %v then %v, want %v", s.AutoAllocated, second[i].AutoAllocated, want)
			}
		case "api.example.com":
			if s.AutoAllocated != nil || !reflect.DeepEqual(s.VirtualAddresses(), []string{"10.1.2.3"}) {
				t.Errorf("api: allocated %v, virtual %v; want none and the declared address", s.AutoAllocated, s.VirtualAddresses())
			}
		}
	}
}

func BenchmarkAllocateAddresses(b *testing.B) {
	in := make([]*model.Service, 1000)
	for i := range in {
		in[i] = vipService("default", fmt.Sprintf("svc-%d.example.com", i), model.DNS)
	}
	b.ReportAllocs()
	for b.Loop() {
		AllocateAddresses(in)
	}
}
