package lb

import (
	"errors"
	"fmt"
	"math"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
)

// Defaults and limits of the cluster's lb_config messages, from Envoy's
// cluster.proto and its validation rules.
const (
	defaultChoiceCount       = 2       // least_request_lb_config.choice_count
	defaultActiveRequestBias = 1.0     // least_request_lb_config.active_request_bias
	defaultMinRingSize       = 1024    // ring_hash_lb_config.minimum_ring_size
	defaultMaxRingSize       = 8 << 20 // ring_hash_lb_config.maximum_ring_size (8M)
	maxRingSizeLimit         = 8 << 20 // proto rule: lte 8388608
	defaultMaglevTableSize   = 65537   // maglev_lb_config.table_size
	maxMaglevTableSize       = 5000011 // proto rule: lte 5000011
)

// hashFunction is the function a ring hash policy hashes its entries with.
type hashFunction int

const (
	hashXX      hashFunction = iota // XX_HASH, Envoy's default
	hashMurmur2                     // MURMUR_HASH_2, 64-bit, as libstdc++'s std::hash
)

// New builds the load-balancing policy of cluster c from c.lb_policy and the
// matching lb_config (round_robin_lb_config, least_request_lb_config,
// ring_hash_lb_config or maglev_lb_config), applying Envoy's defaults.
//
// New also rejects what it cannot honour rather than ignoring it: an lb_policy
// other than ROUND_ROBIN, LEAST_REQUEST, RING_HASH, RANDOM or MAGLEV; the
// load_balancing_policy extension field; an lb_config that does not belong to
// lb_policy; slow_start_config; and
// common_lb_config.consistent_hashing_lb_config.hash_balance_factor.
// The rest of common_lb_config is not read here: it belongs to the cluster.
//
// Errors name the offending field relative to the Cluster message, for
// example "maglev_lb_config.table_size: 1000 is not prime".
func New(c *clusterv3.Cluster) (Policy, error) {
	if c == nil {
		return nil, errors.New("cluster: nil")
	}
	if c.GetLoadBalancingPolicy() != nil {
		return nil, errors.New("load_balancing_policy: not supported; use lb_policy with its lb_config")
	}
	if err := checkLbConfigMatches(c); err != nil {
		return nil, err
	}
	if f := c.GetCommonLbConfig().GetConsistentHashingLbConfig().GetHashBalanceFactor(); f != nil {
		return nil, errors.New("common_lb_config.consistent_hashing_lb_config.hash_balance_factor: " +
			"bounded-load consistent hashing is not supported; remove the field")
	}
	switch c.GetLbPolicy() {
	case clusterv3.Cluster_ROUND_ROBIN:
		if c.GetRoundRobinLbConfig().GetSlowStartConfig() != nil {
			return nil, errors.New("round_robin_lb_config.slow_start_config: not supported; remove the field")
		}
		return roundRobinPolicy{}, nil
	case clusterv3.Cluster_RANDOM:
		return randomPolicy{}, nil
	case clusterv3.Cluster_LEAST_REQUEST:
		return newLeastRequest(c.GetLeastRequestLbConfig())
	case clusterv3.Cluster_RING_HASH:
		return newRingHash(c.GetRingHashLbConfig())
	case clusterv3.Cluster_MAGLEV:
		return newMaglev(c.GetMaglevLbConfig())
	default:
		return nil, fmt.Errorf("lb_policy: %s is not supported; use ROUND_ROBIN, LEAST_REQUEST, RING_HASH, RANDOM or MAGLEV",
			c.GetLbPolicy())
	}
}

// checkLbConfigMatches rejects an lb_config oneof member that lb_policy would
// ignore, so a typo in the policy does not silently drop its configuration.
func checkLbConfigMatches(c *clusterv3.Cluster) error {
	var field string
	var want clusterv3.Cluster_LbPolicy
	switch c.GetLbConfig().(type) {
	case nil:
		return nil
	case *clusterv3.Cluster_RoundRobinLbConfig_:
		field, want = "round_robin_lb_config", clusterv3.Cluster_ROUND_ROBIN
	case *clusterv3.Cluster_LeastRequestLbConfig_:
		field, want = "least_request_lb_config", clusterv3.Cluster_LEAST_REQUEST
	case *clusterv3.Cluster_RingHashLbConfig_:
		field, want = "ring_hash_lb_config", clusterv3.Cluster_RING_HASH
	case *clusterv3.Cluster_MaglevLbConfig_:
		field, want = "maglev_lb_config", clusterv3.Cluster_MAGLEV
	case *clusterv3.Cluster_OriginalDstLbConfig_:
		return errors.New("original_dst_lb_config: ORIGINAL_DST clusters are not supported")
	default:
		return fmt.Errorf("lb_config: %T is not supported", c.GetLbConfig())
	}
	if c.GetLbPolicy() != want {
		return fmt.Errorf("%s: set but lb_policy is %s; set lb_policy to %s or remove the field",
			field, c.GetLbPolicy(), want)
	}
	return nil
}

// newLeastRequest validates least_request_lb_config (nil means defaults).
func newLeastRequest(cfg *clusterv3.Cluster_LeastRequestLbConfig) (Policy, error) {
	p := leastRequestPolicy{choiceCount: defaultChoiceCount, bias: defaultActiveRequestBias}
	if cfg == nil {
		return p, nil
	}
	if cfg.GetSlowStartConfig() != nil {
		return nil, errors.New("least_request_lb_config.slow_start_config: not supported; remove the field")
	}
	if cc := cfg.GetChoiceCount(); cc != nil {
		if cc.GetValue() < 2 {
			return nil, fmt.Errorf("least_request_lb_config.choice_count: %d is below the minimum of 2", cc.GetValue())
		}
		p.choiceCount = int(cc.GetValue())
	}
	if b := cfg.GetActiveRequestBias(); b != nil {
		// weft has no runtime layer, so runtime_key never resolves and the
		// default_value applies, as it does in Envoy when the key is unset.
		v := b.GetDefaultValue()
		if v < 0 || math.IsNaN(v) || math.IsInf(v, 0) {
			return nil, fmt.Errorf("least_request_lb_config.active_request_bias.default_value: %v must be a finite number >= 0", v)
		}
		p.bias = v
	}
	return p, nil
}

// newRingHash validates ring_hash_lb_config (nil means defaults).
func newRingHash(cfg *clusterv3.Cluster_RingHashLbConfig) (Policy, error) {
	p := ringHashPolicy{minSize: defaultMinRingSize, maxSize: defaultMaxRingSize, hash: hashXX}
	if cfg == nil {
		return p, nil
	}
	if v := cfg.GetMinimumRingSize(); v != nil {
		p.minSize = v.GetValue()
	}
	if v := cfg.GetMaximumRingSize(); v != nil {
		p.maxSize = v.GetValue()
	}
	if p.minSize > maxRingSizeLimit {
		return nil, fmt.Errorf("ring_hash_lb_config.minimum_ring_size: %d exceeds the limit of %d", p.minSize, maxRingSizeLimit)
	}
	if p.maxSize > maxRingSizeLimit {
		return nil, fmt.Errorf("ring_hash_lb_config.maximum_ring_size: %d exceeds the limit of %d", p.maxSize, maxRingSizeLimit)
	}
	// Envoy accepts 0 and then builds an empty ring that fails every request;
	// weft rejects it at load time instead.
	if p.minSize == 0 {
		return nil, errors.New("ring_hash_lb_config.minimum_ring_size: 0 would build an empty ring; use at least 1")
	}
	if p.minSize > p.maxSize {
		return nil, fmt.Errorf("ring_hash_lb_config: minimum_ring_size (%d) > maximum_ring_size (%d)", p.minSize, p.maxSize)
	}
	switch cfg.GetHashFunction() {
	case clusterv3.Cluster_RingHashLbConfig_XX_HASH:
		p.hash = hashXX
	case clusterv3.Cluster_RingHashLbConfig_MURMUR_HASH_2:
		p.hash = hashMurmur2
	default:
		return nil, fmt.Errorf("ring_hash_lb_config.hash_function: unknown value %d; use XX_HASH or MURMUR_HASH_2",
			cfg.GetHashFunction())
	}
	return p, nil
}

// newMaglev validates maglev_lb_config (nil means defaults).
func newMaglev(cfg *clusterv3.Cluster_MaglevLbConfig) (Policy, error) {
	size := uint64(defaultMaglevTableSize)
	if v := cfg.GetTableSize(); v != nil {
		size = v.GetValue()
	}
	if size > maxMaglevTableSize {
		return nil, fmt.Errorf("maglev_lb_config.table_size: %d exceeds the limit of %d", size, maxMaglevTableSize)
	}
	if !isPrime(size) {
		return nil, fmt.Errorf("maglev_lb_config.table_size: %d is not prime; use a prime such as 65537", size)
	}
	return maglevPolicy{tableSize: size}, nil
}

// isPrime reports whether n is prime by trial division; n is at most
// maxMaglevTableSize, so this takes a few thousand divisions at most.
func isPrime(n uint64) bool {
	if n < 2 {
		return false
	}
	if n%2 == 0 {
		return n == 2
	}
	for d := uint64(3); d*d <= n; d += 2 {
		if n%d == 0 {
			return false
		}
	}
	return true
}
