package lb

import (
	"fmt"
	"math"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// Known answers from Envoy's own tests, so weft's hashes, rings and tables are
// checked against Envoy's rather than against themselves.

// From test/common/common/hash_test.cc.
func TestHashVectors(t *testing.T) {
	tests := []struct {
		in         string
		xx, murmur uint64
	}{
		{"foo", 3728699739546630719, 9631199822919835226},
		{"bar", 5234164152756840025, 11474628671133349555},
		{"foo\nbar", 8917841378505826757, 16306510975912980159},
		{"lyft", 4400747396090729504, 12847078931730529320},
		{"", 17241709254077376921, 6142509188972423790},
	}
	for _, tt := range tests {
		if got := (ringHashPolicy{hash: hashXX}).hashKey([]byte(tt.in)); got != tt.xx {
			t.Errorf("xxHash64(%q) = %d, want %d", tt.in, got, tt.xx)
		}
		if got := murmurHash2([]byte(tt.in), murmurStdSeed); got != tt.murmur {
			t.Errorf("murmurHash2(%q) = %d, want %d", tt.in, got, tt.murmur)
		}
	}
}

func ports(first, n int) []Host {
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("127.0.0.1:%d", first+i)
	}
	return keyedHosts(keys...)
}

func ringPolicy(t *testing.T, minSize, maxSize uint64, fn clusterv3.Cluster_RingHashLbConfig_HashFunction) Policy {
	t.Helper()
	cfg := &clusterv3.Cluster_RingHashLbConfig{MinimumRingSize: wrapperspb.UInt64(minSize), HashFunction: fn}
	if maxSize != 0 {
		cfg.MaximumRingSize = wrapperspb.UInt64(maxSize)
	}
	return mustPolicy(t, &clusterv3.Cluster{LbPolicy: clusterv3.Cluster_RING_HASH,
		LbConfig: &clusterv3.Cluster_RingHashLbConfig_{RingHashLbConfig: cfg}})
}

func maglevPolicyOf(t testing.TB, size uint64) Policy {
	t.Helper()
	return mustPolicy(t, &clusterv3.Cluster{LbPolicy: clusterv3.Cluster_MAGLEV,
		LbConfig: &clusterv3.Cluster_MaglevLbConfig_{MaglevLbConfig: &clusterv3.Cluster_MaglevLbConfig{TableSize: wrapperspb.UInt64(size)}}})
}

type hashCase struct {
	hash uint64
	host int
}

func checkHashCases(t *testing.T, p Picker, cases []hashCase) {
	t.Helper()
	for _, c := range cases {
		if got := p.Pick(&Context{Hash: c.hash, HasHash: true}); got != c.host {
			t.Errorf("Pick(hash %d) = host %d, want %d", c.hash, got, c.host)
		}
	}
}

// From test/extensions/load_balancing_policies/ring_hash/ring_hash_lb_test.cc.
func TestRingHashEnvoyVectors(t *testing.T) {
	t.Run("Basic", func(t *testing.T) {
		p := ringPolicy(t, 12, 0, clusterv3.Cluster_RingHashLbConfig_XX_HASH).Build(ports(90, 6))
		r := p.(*ringPicker)
		wantRing := []hashCase{
			{833437586790550860, 4}, {928266305478181108, 2}, {1033482794131418490, 0},
			{3551244743356806947, 5}, {3851675632748031481, 3}, {5583722120771150861, 1},
			{6311230543546372928, 1}, {7700377290971790572, 3}, {13144177310400110813, 5},
			{13444792449719432967, 2}, {15516499411664133160, 4}, {16117243373044804889, 0},
		}
		if len(r.hashes) != len(wantRing) {
			t.Fatalf("ring size %d, want %d", len(r.hashes), len(wantRing))
		}
		for i, e := range wantRing {
			if r.hashes[i] != e.hash || int(r.hosts[i]) != e.host {
				t.Errorf("ring[%d] = (%d, host %d), want (%d, host %d)", i, r.hashes[i], r.hosts[i], e.hash, e.host)
			}
		}
		checkHashCases(t, p, []hashCase{
			{0, 4}, {math.MaxUint64, 4}, {3551244743356806947, 5}, {3551244743356806948, 3},
			{16117243373044804880, 0},
		})
	})
	t.Run("BasicWithMurmur2", func(t *testing.T) {
		p := ringPolicy(t, 12, 0, clusterv3.Cluster_RingHashLbConfig_MURMUR_HASH_2).Build(ports(80, 6))
		checkHashCases(t, p, []hashCase{
			{0, 5}, {math.MaxUint64, 5}, {1358027074129602068, 5}, {1358027074129602069, 3},
			{10150910876324007730, 2},
		})
		if got := len(p.(*ringPicker).hashes); got != 12 {
			t.Errorf("ring size %d, want 12", got)
		}
	})
	t.Run("BasicWithHostname", func(t *testing.T) {
		p := ringPolicy(t, 12, 0, clusterv3.Cluster_RingHashLbConfig_XX_HASH).Build(keyedHosts("90", "91", "92", "93", "94", "95"))
		checkHashCases(t, p, []hashCase{
			{0, 5}, {math.MaxUint64, 5}, {7225015537174310577, 2}, {6803900775736438537, 3},
		})
	})
	t.Run("UnevenHosts", func(t *testing.T) {
		p := ringPolicy(t, 3, 0, clusterv3.Cluster_RingHashLbConfig_XX_HASH).Build(ports(80, 2))
		r := p.(*ringPicker)
		want := []uint64{5454692015285649509, 7859399908942313493, 13838424394637650569, 16064866803292627174}
		if fmt.Sprint(r.hashes) != fmt.Sprint(want) || fmt.Sprint(r.hosts) != "[0 1 0 1]" {
			t.Errorf("ring = %v hosts %v, want %v hosts [0 1 0 1]", r.hashes, r.hosts, want)
		}
	})
	t.Run("HostWeightedTinyRing", func(t *testing.T) {
		hosts := ports(90, 3)
		for i, w := range []uint32{1, 2, 3} {
			hosts[i].(*testHost).weight = w
		}
		p := ringPolicy(t, 6, 6, clusterv3.Cluster_RingHashLbConfig_XX_HASH).Build(hosts)
		if got := len(p.(*ringPicker).hashes); got != 6 {
			t.Errorf("ring size %d, want 6", got)
		}
		checkHashCases(t, p, []hashCase{
			{928266305478181108, 2}, {4443673547860492590, 2}, {5583722120771150861, 1},
			{6311230543546372928, 1}, {13444792449719432967, 2}, {16117243373044804889, 0},
		})
	})
}

// From test/extensions/load_balancing_policies/maglev/maglev_lb_test.cc: the
// test hashes are 0, 1, 2, ..., so slot i of the table answers hash i.
func TestMaglevEnvoyVectors(t *testing.T) {
	tests := []struct {
		name  string
		size  uint64
		hosts []Host
		table []int
	}{
		{"Basic", 7, ports(90, 6), []int{2, 4, 0, 1, 5, 0, 3}},
		{"BasicWithHostName", 7, keyedHosts("90", "91", "92", "93", "94", "95"), []int{2, 5, 0, 3, 4, 1, 0}},
		{"Weighted", 17, func() []Host {
			h := ports(90, 2)
			h[1].(*testHost).weight = 2
			return h
		}(), []int{1, 0, 0, 1, 0, 1, 1, 0, 1, 1, 1, 1, 1, 0, 1, 0, 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := maglevPolicyOf(t, tt.size).Build(tt.hosts)
			for i := range 3 * len(tt.table) {
				want := tt.table[i%len(tt.table)]
				if got := p.Pick(&Context{Hash: uint64(i), HasHash: true}); got != want {
					t.Errorf("Pick(hash %d) = %d, want %d", i, got, want)
				}
			}
		})
	}
}

// Envoy's BasicStability test: shuffling the hosts must not change which host
// (by key) owns each slot.
func TestMaglevIndependentOfHostOrder(t *testing.T) {
	hosts := ports(90, 6)
	shuffled := []Host{hosts[3], hosts[0], hosts[5], hosts[1], hosts[4], hosts[2]}
	a := maglevPolicyOf(t, 65537).Build(hosts)
	b := maglevPolicyOf(t, 65537).Build(shuffled)
	for h := range uint64(65537) {
		ctx := &Context{Hash: h, HasHash: true}
		if ka, kb := hosts[a.Pick(ctx)].HashKey(), shuffled[b.Pick(ctx)].HashKey(); ka != kb {
			t.Fatalf("slot %d: %s in one order, %s in the other", h, ka, kb)
		}
	}
}
