package server

import (
	"net/netip"
	"testing"

	"github.com/weftmesh/weft/internal/proxy/listener"
	"github.com/weftmesh/weft/internal/proxy/stats"
)

// TestHandOffLookup: the listener at the exact original destination wins,
// else the wildcard of its family and port; nothing else matches.
func TestHandOffLookup(t *testing.T) {
	st := stats.NewStore()
	mk := func(addr string) *listener.Listener {
		l, err := listener.NewUnbound(listener.Config{Name: addr, Address: addr, Stats: st, Chains: &listener.Chains{}})
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	exact, any4, any6 := mk("10.0.0.1:8080"), mk("0.0.0.0:8080"), mk("[::]:9090")
	s := &Server{}
	if s.handOff(netip.MustParseAddrPort("10.0.0.1:8080")) != nil {
		t.Fatal("a hand-off before any index")
	}
	idx := listenerIndex{}
	for _, l := range []*listener.Listener{exact, any4, any6} {
		idx[l.AddrPort()] = l
	}
	s.listenerIdx.Store(&idx)
	for _, tc := range []struct {
		addr string
		want *listener.Listener
	}{
		{"10.0.0.1:8080", exact},
		{"10.0.0.2:8080", any4},
		{"[2001:db8::1]:9090", any6},
		{"10.0.0.2:9090", nil}, // the IPv6 wildcard does not take IPv4
		{"10.0.0.1:8081", nil},
	} {
		if got := s.handOff(netip.MustParseAddrPort(tc.addr)); got != tc.want {
			t.Errorf("handOff(%s) = %v, want %v", tc.addr, got, tc.want)
		}
	}
	if exact.Bound() || exact.Addr().String() != "10.0.0.1:8080" {
		t.Errorf("unbound listener: bound %v, address %v", exact.Bound(), exact.Addr())
	}
}

// BenchmarkHandOff: the per-connection lookup of a captured connection's
// listener (lock-free, no allocation).
func BenchmarkHandOff(b *testing.B) {
	l, _ := listener.NewUnbound(listener.Config{Name: "x", Address: "0.0.0.0:8080", Stats: stats.NewStore(), Chains: &listener.Chains{}})
	idx := listenerIndex{l.AddrPort(): l}
	s := &Server{}
	s.listenerIdx.Store(&idx)
	addr := netip.MustParseAddrPort("10.1.2.3:8080")
	b.ReportAllocs()
	for b.Loop() {
		if s.handOff(addr) != l {
			b.Fatal("no listener")
		}
	}
}
