package lb

import (
	"math"
	"strings"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

func TestNewDefaults(t *testing.T) {
	tests := []struct {
		name    string
		cluster *clusterv3.Cluster
		want    Policy
	}{
		{"unset lb_policy is ROUND_ROBIN", &clusterv3.Cluster{}, roundRobinPolicy{}},
		{"RANDOM", &clusterv3.Cluster{LbPolicy: clusterv3.Cluster_RANDOM}, randomPolicy{}},
		{"LEAST_REQUEST without config", &clusterv3.Cluster{LbPolicy: clusterv3.Cluster_LEAST_REQUEST},
			leastRequestPolicy{choiceCount: 2, bias: 1.0}},
		{"LEAST_REQUEST with empty config", &clusterv3.Cluster{
			LbPolicy: clusterv3.Cluster_LEAST_REQUEST,
			LbConfig: &clusterv3.Cluster_LeastRequestLbConfig_{LeastRequestLbConfig: &clusterv3.Cluster_LeastRequestLbConfig{}},
		}, leastRequestPolicy{choiceCount: 2, bias: 1.0}},
		{"LEAST_REQUEST configured", &clusterv3.Cluster{
			LbPolicy: clusterv3.Cluster_LEAST_REQUEST,
			LbConfig: &clusterv3.Cluster_LeastRequestLbConfig_{LeastRequestLbConfig: &clusterv3.Cluster_LeastRequestLbConfig{
				ChoiceCount:       wrapperspb.UInt32(5),
				ActiveRequestBias: &corev3.RuntimeDouble{DefaultValue: 0.5, RuntimeKey: "lr.bias"},
			}},
		}, leastRequestPolicy{choiceCount: 5, bias: 0.5}},
		{"LEAST_REQUEST bias 0", &clusterv3.Cluster{
			LbPolicy: clusterv3.Cluster_LEAST_REQUEST,
			LbConfig: &clusterv3.Cluster_LeastRequestLbConfig_{LeastRequestLbConfig: &clusterv3.Cluster_LeastRequestLbConfig{
				ActiveRequestBias: &corev3.RuntimeDouble{DefaultValue: 0},
			}},
		}, leastRequestPolicy{choiceCount: 2, bias: 0}},
		{"RING_HASH without config", &clusterv3.Cluster{LbPolicy: clusterv3.Cluster_RING_HASH},
			ringHashPolicy{minSize: 1024, maxSize: 8 << 20, hash: hashXX}},
		{"RING_HASH configured", &clusterv3.Cluster{
			LbPolicy: clusterv3.Cluster_RING_HASH,
			LbConfig: &clusterv3.Cluster_RingHashLbConfig_{RingHashLbConfig: &clusterv3.Cluster_RingHashLbConfig{
				MinimumRingSize: wrapperspb.UInt64(12),
				MaximumRingSize: wrapperspb.UInt64(4096),
				HashFunction:    clusterv3.Cluster_RingHashLbConfig_MURMUR_HASH_2,
			}},
		}, ringHashPolicy{minSize: 12, maxSize: 4096, hash: hashMurmur2}},
		{"RING_HASH min == max", &clusterv3.Cluster{
			LbPolicy: clusterv3.Cluster_RING_HASH,
			LbConfig: &clusterv3.Cluster_RingHashLbConfig_{RingHashLbConfig: &clusterv3.Cluster_RingHashLbConfig{
				MinimumRingSize: wrapperspb.UInt64(8 << 20),
			}},
		}, ringHashPolicy{minSize: 8 << 20, maxSize: 8 << 20, hash: hashXX}},
		{"MAGLEV without config", &clusterv3.Cluster{LbPolicy: clusterv3.Cluster_MAGLEV}, maglevPolicy{tableSize: 65537}},
		{"MAGLEV small prime", &clusterv3.Cluster{
			LbPolicy: clusterv3.Cluster_MAGLEV,
			LbConfig: &clusterv3.Cluster_MaglevLbConfig_{MaglevLbConfig: &clusterv3.Cluster_MaglevLbConfig{TableSize: wrapperspb.UInt64(7)}},
		}, maglevPolicy{tableSize: 7}},
		{"MAGLEV largest allowed", &clusterv3.Cluster{
			LbPolicy: clusterv3.Cluster_MAGLEV,
			LbConfig: &clusterv3.Cluster_MaglevLbConfig_{MaglevLbConfig: &clusterv3.Cluster_MaglevLbConfig{TableSize: wrapperspb.UInt64(5000011)}},
		}, maglevPolicy{tableSize: 5000011}},
		{"ROUND_ROBIN with empty config", &clusterv3.Cluster{
			LbConfig: &clusterv3.Cluster_RoundRobinLbConfig_{RoundRobinLbConfig: &clusterv3.Cluster_RoundRobinLbConfig{}},
		}, roundRobinPolicy{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := New(tt.cluster)
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			if got != tt.want {
				t.Fatalf("New = %#v, want %#v", got, tt.want)
			}
			if got.Name() != tt.cluster.GetLbPolicy().String() {
				t.Errorf("Name() = %q, want %q", got.Name(), tt.cluster.GetLbPolicy().String())
			}
		})
	}
}

func TestNewErrors(t *testing.T) {
	ring := func(c *clusterv3.Cluster_RingHashLbConfig) *clusterv3.Cluster {
		return &clusterv3.Cluster{LbPolicy: clusterv3.Cluster_RING_HASH,
			LbConfig: &clusterv3.Cluster_RingHashLbConfig_{RingHashLbConfig: c}}
	}
	maglev := func(size uint64) *clusterv3.Cluster {
		return &clusterv3.Cluster{LbPolicy: clusterv3.Cluster_MAGLEV,
			LbConfig: &clusterv3.Cluster_MaglevLbConfig_{MaglevLbConfig: &clusterv3.Cluster_MaglevLbConfig{TableSize: wrapperspb.UInt64(size)}}}
	}
	leastRequest := func(c *clusterv3.Cluster_LeastRequestLbConfig) *clusterv3.Cluster {
		return &clusterv3.Cluster{LbPolicy: clusterv3.Cluster_LEAST_REQUEST,
			LbConfig: &clusterv3.Cluster_LeastRequestLbConfig_{LeastRequestLbConfig: c}}
	}
	bias := func(v float64) *clusterv3.Cluster {
		return leastRequest(&clusterv3.Cluster_LeastRequestLbConfig{ActiveRequestBias: &corev3.RuntimeDouble{DefaultValue: v}})
	}
	tests := []struct {
		name    string
		cluster *clusterv3.Cluster
		want    string
	}{
		{"nil cluster", nil, "cluster: nil"},
		{"maglev not prime", maglev(1000), "maglev_lb_config.table_size: 1000 is not prime"},
		{"maglev zero", maglev(0), "maglev_lb_config.table_size: 0 is not prime"},
		{"maglev one", maglev(1), "maglev_lb_config.table_size: 1 is not prime"},
		{"maglev square of prime", maglev(7 * 7), "maglev_lb_config.table_size: 49 is not prime"},
		{"maglev too large", maglev(5000077), "maglev_lb_config.table_size: 5000077 exceeds the limit of 5000011"},
		{"ring min > max", ring(&clusterv3.Cluster_RingHashLbConfig{
			MinimumRingSize: wrapperspb.UInt64(20), MaximumRingSize: wrapperspb.UInt64(10)}),
			"ring_hash_lb_config: minimum_ring_size (20) > maximum_ring_size (10)"},
		{"ring max below default min", ring(&clusterv3.Cluster_RingHashLbConfig{MaximumRingSize: wrapperspb.UInt64(100)}),
			"minimum_ring_size (1024) > maximum_ring_size (100)"},
		{"ring min zero", ring(&clusterv3.Cluster_RingHashLbConfig{MinimumRingSize: wrapperspb.UInt64(0)}),
			"ring_hash_lb_config.minimum_ring_size: 0 would build an empty ring"},
		{"ring min too large", ring(&clusterv3.Cluster_RingHashLbConfig{MinimumRingSize: wrapperspb.UInt64(8<<20 + 1)}),
			"ring_hash_lb_config.minimum_ring_size: 8388609 exceeds the limit of 8388608"},
		{"ring max too large", ring(&clusterv3.Cluster_RingHashLbConfig{MaximumRingSize: wrapperspb.UInt64(1 << 30)}),
			"ring_hash_lb_config.maximum_ring_size: 1073741824 exceeds the limit"},
		{"ring unknown hash function", ring(&clusterv3.Cluster_RingHashLbConfig{HashFunction: 7}),
			"ring_hash_lb_config.hash_function: unknown value 7"},
		{"choice_count below 2", leastRequest(&clusterv3.Cluster_LeastRequestLbConfig{ChoiceCount: wrapperspb.UInt32(1)}),
			"least_request_lb_config.choice_count: 1 is below the minimum of 2"},
		{"negative bias", bias(-1), "least_request_lb_config.active_request_bias.default_value: -1 must be"},
		{"NaN bias", bias(math.NaN()), "active_request_bias.default_value: NaN must be"},
		{"infinite bias", bias(math.Inf(1)), "active_request_bias.default_value: +Inf must be"},
		{"least request slow start", leastRequest(&clusterv3.Cluster_LeastRequestLbConfig{
			SlowStartConfig: &clusterv3.Cluster_SlowStartConfig{}}),
			"least_request_lb_config.slow_start_config: not supported"},
		{"round robin slow start", &clusterv3.Cluster{LbConfig: &clusterv3.Cluster_RoundRobinLbConfig_{
			RoundRobinLbConfig: &clusterv3.Cluster_RoundRobinLbConfig{SlowStartConfig: &clusterv3.Cluster_SlowStartConfig{}}}},
			"round_robin_lb_config.slow_start_config: not supported"},
		{"config of another policy", &clusterv3.Cluster{LbPolicy: clusterv3.Cluster_ROUND_ROBIN,
			LbConfig: &clusterv3.Cluster_MaglevLbConfig_{MaglevLbConfig: &clusterv3.Cluster_MaglevLbConfig{}}},
			"maglev_lb_config: set but lb_policy is ROUND_ROBIN; set lb_policy to MAGLEV"},
		{"ring config with maglev", &clusterv3.Cluster{LbPolicy: clusterv3.Cluster_MAGLEV,
			LbConfig: &clusterv3.Cluster_RingHashLbConfig_{RingHashLbConfig: &clusterv3.Cluster_RingHashLbConfig{}}},
			"ring_hash_lb_config: set but lb_policy is MAGLEV"},
		{"original dst config", &clusterv3.Cluster{LbPolicy: clusterv3.Cluster_CLUSTER_PROVIDED,
			LbConfig: &clusterv3.Cluster_OriginalDstLbConfig_{OriginalDstLbConfig: &clusterv3.Cluster_OriginalDstLbConfig{}}},
			"original_dst_lb_config: ORIGINAL_DST clusters are not supported"},
		{"CLUSTER_PROVIDED", &clusterv3.Cluster{LbPolicy: clusterv3.Cluster_CLUSTER_PROVIDED},
			"lb_policy: CLUSTER_PROVIDED is not supported"},
		{"LOAD_BALANCING_POLICY_CONFIG", &clusterv3.Cluster{LbPolicy: clusterv3.Cluster_LOAD_BALANCING_POLICY_CONFIG},
			"lb_policy: LOAD_BALANCING_POLICY_CONFIG is not supported"},
		{"load_balancing_policy", &clusterv3.Cluster{LoadBalancingPolicy: &clusterv3.LoadBalancingPolicy{}},
			"load_balancing_policy: not supported"},
		{"hash_balance_factor", &clusterv3.Cluster{LbPolicy: clusterv3.Cluster_RING_HASH,
			CommonLbConfig: &clusterv3.Cluster_CommonLbConfig{
				ConsistentHashingLbConfig: &clusterv3.Cluster_CommonLbConfig_ConsistentHashingLbConfig{
					HashBalanceFactor: wrapperspb.UInt32(150)}}},
			"common_lb_config.consistent_hashing_lb_config.hash_balance_factor: bounded-load"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := New(tt.cluster)
			if err == nil {
				t.Fatalf("New = %#v, want error containing %q", p, tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New error %q, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestIsPrime(t *testing.T) {
	primes := map[uint64]bool{2: true, 3: true, 5: true, 7: true, 17: true, 65537: true, 5000011: true}
	for n := range uint64(100) {
		want := false
		switch n {
		case 2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71, 73, 79, 83, 89, 97:
			want = true
		}
		if got := isPrime(n); got != want {
			t.Errorf("isPrime(%d) = %v, want %v", n, got, want)
		}
	}
	for n, want := range primes {
		if got := isPrime(n); got != want {
			t.Errorf("isPrime(%d) = %v, want %v", n, got, want)
		}
	}
	for _, n := range []uint64{65535, 65539 * 3, 5000009} {
		if isPrime(n) {
			t.Errorf("isPrime(%d) = true, want false", n)
		}
	}
}
