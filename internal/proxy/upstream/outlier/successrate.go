package outlier

import (
	"math"
	"time"
)

// hostRate is a host with its success rate over the last interval.
type hostRate struct {
	m    *Monitor
	rate float64
}

// rateEjections runs Envoy's processSuccessRateEjections for external
// (local false) or local-origin results over the interval just ended.
//
// Success rate: among hosts in service with at least
// success_rate_request_volume requests, if there are at least
// success_rate_minimum_hosts of them, a host whose success rate is below
// mean − (success_rate_stdev_factor / 1000) × stdev (population standard
// deviation) is an outlier. Failure percentage: among hosts in service with
// at least failure_percentage_request_volume requests, if there are at
// least failure_percentage_minimum_hosts, a host whose failure percentage
// is at least failure_percentage_threshold is an outlier. Both go through
// eject (max_ejection_percent, enforcing_*).
func (d *Detector) rateEjections(hosts []*Monitor, local bool, now time.Time) (changed bool) {
	cfg := &d.cfg
	if len(hosts) < int(cfg.SuccessRateMinimumHosts) && len(hosts) < int(cfg.FailurePercentageMinimumHosts) {
		return false
	}
	var srHosts, fpHosts []hostRate
	var sum float64
	for _, m := range hosts {
		if m.ejected.Load() {
			continue
		}
		mon := &m.ext
		if local {
			mon = &m.local
		}
		rate, volume, ok := mon.rate()
		if !ok {
			continue
		}
		if volume >= uint64(min(cfg.SuccessRateRequestVolume, cfg.FailurePercentageRequestVolume)) {
			if local {
				m.srLocal.Store(math.Float64bits(rate))
			} else {
				m.srExt.Store(math.Float64bits(rate))
			}
		}
		if volume >= uint64(cfg.SuccessRateRequestVolume) {
			srHosts = append(srHosts, hostRate{m, rate})
			sum += rate
		}
		if volume >= uint64(cfg.FailurePercentageRequestVolume) {
			fpHosts = append(fpHosts, hostRate{m, rate})
		}
	}
	srType, fpType := successRate, failurePercentage
	if local {
		srType, fpType = successRateLocal, failurePercentageLocal
	}
	if len(srHosts) > 0 && len(srHosts) >= int(cfg.SuccessRateMinimumHosts) {
		threshold := successRateThreshold(sum, srHosts, float64(cfg.SuccessRateStdevFactor)/1000)
		for _, h := range srHosts {
			if h.rate < threshold {
				d.stats.SuccessRateDepr.Inc()
				d.stats.Detected[srType].Inc()
				if d.eject(hosts, h.m, srType, now) {
					changed = true
				}
			}
		}
	}
	if len(fpHosts) > 0 && len(fpHosts) >= int(cfg.FailurePercentageMinimumHosts) {
		for _, h := range fpHosts {
			if 100-h.rate >= float64(cfg.FailurePercentageThreshold) {
				d.stats.Detected[fpType].Inc()
				// Envoy calls ejectHost even when the success-rate pass
				// just ejected the host; an ejected host is skipped here
				// so that it is not ejected twice.
				if !h.m.ejected.Load() && d.eject(hosts, h.m, fpType, now) {
					changed = true
				}
			}
		}
	}
	return changed
}

// successRateThreshold returns mean − factor × stdev of the hosts' success
// rates (Envoy's successRateEjectionThreshold; for {50, 100, 100, 100, 100}
// and factor 1.9: mean 90, stdev 20, threshold 52).
func successRateThreshold(sum float64, hosts []hostRate, factor float64) float64 {
	mean := sum / float64(len(hosts))
	var variance float64
	for _, h := range hosts {
		variance += (h.rate - mean) * (h.rate - mean)
	}
	variance /= float64(len(hosts))
	return mean - factor*math.Sqrt(variance)
}
