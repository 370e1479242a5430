// Package outlier is Envoy's outlier detection (passive health checking)
// for one cluster: consecutive 5xx, consecutive gateway failures,
// consecutive local-origin failures, success-rate and failure-percentage
// detection, ejection with a growing ejection time, max_ejection_percent and
// the enforcing_* percentages, as the architecture overview "Outlier
// detection" and cluster.v3.OutlierDetection describe them and
// source/common/upstream/outlier_detection_impl.cc implements them.
//
// A Detector is built per cluster from its configuration. Each host gets a
// Monitor; the router reports every upstream attempt to its host's Monitor
// (Record: atomics only, no lock, no allocation). When a consecutive-error
// counter reaches its threshold the Monitor marks an event and calls the
// detector's Notify function; the cluster's health goroutine then calls
// Process, and Tick on every interval. Process and Tick own the ejection
// state and must be called from one goroutine (Envoy's main thread); they
// take the current time as an argument, so tests drive them with a fake
// clock.
package outlier

import (
	"fmt"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// Config is a cluster's outlier_detection with Envoy's defaults applied.
// A consecutive-error threshold of 0 disables that detector (Envoy compares
// the incremented counter with the threshold for equality, which 0 never
// matches).
type Config struct {
	Interval              time.Duration // default 10 s
	BaseEjectionTime      time.Duration // default 30 s
	MaxEjectionTime       time.Duration // default max(300 s, BaseEjectionTime)
	MaxEjectionTimeJitter time.Duration // default 0
	MaxEjectionPercent    uint32        // default 10
	// AlwaysEjectOneHost ejects a host even past MaxEjectionPercent when
	// none is ejected (default false; without it a cluster of fewer than
	// 10 hosts with the default 10 % ejects nothing, as in Envoy ≥ 1.31).
	AlwaysEjectOneHost bool

	Consecutive5xx                uint32 // default 5
	ConsecutiveGatewayFailure     uint32 // default 5
	ConsecutiveLocalOriginFailure uint32 // default 5
	// SplitExternalLocalOriginErrors counts local-origin failures
	// (connect failures, resets, timeouts) on their own instead of as
	// 503/504 responses.
	SplitExternalLocalOriginErrors bool

	// Enforcing percentages: the chance that a detected outlier is really
	// ejected.
	EnforcingConsecutive5xx                uint32 // default 100
	EnforcingConsecutiveGatewayFailure     uint32 // default 0
	EnforcingConsecutiveLocalOriginFailure uint32 // default 100
	EnforcingSuccessRate                   uint32 // default 100
	EnforcingLocalOriginSuccessRate        uint32 // default 100
	EnforcingFailurePercentage             uint32 // default 0
	EnforcingFailurePercentageLocalOrigin  uint32 // default 0

	SuccessRateMinimumHosts        uint32 // default 5
	SuccessRateRequestVolume       uint32 // default 100
	SuccessRateStdevFactor         uint32 // default 1900 (divided by 1000)
	FailurePercentageThreshold     uint32 // default 85
	FailurePercentageMinimumHosts  uint32 // default 5
	FailurePercentageRequestVolume uint32 // default 50

	// SuccessfulActiveHealthCheckUnejectHost: a passing active health
	// check returns an ejected host to service (default true).
	SuccessfulActiveHealthCheckUnejectHost bool
}

// ParseConfig applies Envoy's defaults to od. Errors name the field under
// outlier_detection.
func ParseConfig(od *clusterv3.OutlierDetection) (Config, error) {
	c := Config{
		Interval:                               dur(od.GetInterval(), 10*time.Second),
		BaseEjectionTime:                       dur(od.GetBaseEjectionTime(), 30*time.Second),
		MaxEjectionTimeJitter:                  dur(od.GetMaxEjectionTimeJitter(), 0),
		MaxEjectionPercent:                     u32(od.GetMaxEjectionPercent(), 10),
		AlwaysEjectOneHost:                     od.GetAlwaysEjectOneHost().GetValue(),
		Consecutive5xx:                         u32(od.GetConsecutive_5Xx(), 5),
		ConsecutiveGatewayFailure:              u32(od.GetConsecutiveGatewayFailure(), 5),
		ConsecutiveLocalOriginFailure:          u32(od.GetConsecutiveLocalOriginFailure(), 5),
		SplitExternalLocalOriginErrors:         od.GetSplitExternalLocalOriginErrors(),
		EnforcingConsecutive5xx:                u32(od.GetEnforcingConsecutive_5Xx(), 100),
		EnforcingConsecutiveGatewayFailure:     u32(od.GetEnforcingConsecutiveGatewayFailure(), 0),
		EnforcingConsecutiveLocalOriginFailure: u32(od.GetEnforcingConsecutiveLocalOriginFailure(), 100),
		EnforcingSuccessRate:                   u32(od.GetEnforcingSuccessRate(), 100),
		EnforcingLocalOriginSuccessRate:        u32(od.GetEnforcingLocalOriginSuccessRate(), 100),
		EnforcingFailurePercentage:             u32(od.GetEnforcingFailurePercentage(), 0),
		EnforcingFailurePercentageLocalOrigin:  u32(od.GetEnforcingFailurePercentageLocalOrigin(), 0),
		SuccessRateMinimumHosts:                u32(od.GetSuccessRateMinimumHosts(), 5),
		SuccessRateRequestVolume:               u32(od.GetSuccessRateRequestVolume(), 100),
		SuccessRateStdevFactor:                 u32(od.GetSuccessRateStdevFactor(), 1900),
		FailurePercentageThreshold:             u32(od.GetFailurePercentageThreshold(), 85),
		FailurePercentageMinimumHosts:          u32(od.GetFailurePercentageMinimumHosts(), 5),
		FailurePercentageRequestVolume:         u32(od.GetFailurePercentageRequestVolume(), 50),
		SuccessfulActiveHealthCheckUnejectHost: od.GetSuccessfulActiveHealthCheckUnejectHost() == nil || od.GetSuccessfulActiveHealthCheckUnejectHost().GetValue(),
	}
	c.MaxEjectionTime = dur(od.GetMaxEjectionTime(), max(300*time.Second, c.BaseEjectionTime))
	if c.Interval <= 0 {
		return Config{}, fmt.Errorf("outlier_detection.interval: must be greater than 0")
	}
	if c.BaseEjectionTime <= 0 {
		return Config{}, fmt.Errorf("outlier_detection.base_ejection_time: must be greater than 0")
	}
	if c.MaxEjectionTime < c.BaseEjectionTime {
		return Config{}, fmt.Errorf("outlier_detection.max_ejection_time: %v is smaller than base_ejection_time %v (Envoy rejects this); raise it or leave it unset",
			c.MaxEjectionTime, c.BaseEjectionTime)
	}
	if len(od.GetMonitors()) > 0 {
		return Config{}, fmt.Errorf("outlier_detection.monitors: extension monitors are not supported")
	}
	return c, nil
}

func dur(d *durationpb.Duration, def time.Duration) time.Duration {
	if d == nil {
		return def
	}
	return d.AsDuration()
}

func u32(v *wrapperspb.UInt32Value, def uint32) uint32 {
	if v == nil {
		return def
	}
	return v.GetValue()
}
