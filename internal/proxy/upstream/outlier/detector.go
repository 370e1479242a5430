package outlier

import (
	"math"
	"math/rand/v2"
	"time"

	"github.com/weftmesh/weft/internal/proxy/stats"
)

// ejectionType is Envoy's envoy.data.cluster.v3.OutlierEjectionType.
type ejectionType uint8

const (
	consecutive5xx ejectionType = iota
	consecutiveGateway
	consecutiveLocal
	successRate
	successRateLocal
	failurePercentage
	failurePercentageLocal
	numTypes
)

// Stats are Envoy's cluster.<name>.outlier_detection.* statistics.
type Stats struct {
	EjectionsActive   *stats.Gauge
	EjectionsOverflow *stats.Counter
	EnforcedTotal     *stats.Counter
	// Deprecated Envoy counters, kept because dashboards still read them:
	// ejections_total counts consecutive-5xx and success-rate ejections
	// that max_ejection_percent allowed (enforced or not),
	// ejections_consecutive_5xx and ejections_success_rate the detections.
	Total           *stats.Counter
	Consecutive5xx  *stats.Counter
	SuccessRateDepr *stats.Counter
	Detected        [numTypes]*stats.Counter
	Enforced        [numTypes]*stats.Counter
}

// statNames are the suffixes of ejections_detected_* and
// ejections_enforced_* per type, as Envoy names them.
var statNames = [numTypes][2]string{
	consecutive5xx:         {"ejections_detected_consecutive_5xx", "ejections_enforced_consecutive_5xx"},
	consecutiveGateway:     {"ejections_detected_consecutive_gateway_failure", "ejections_enforced_consecutive_gateway_failure"},
	consecutiveLocal:       {"ejections_detected_consecutive_local_origin_failure", "ejections_enforced_consecutive_local_origin_failure"},
	successRate:            {"ejections_detected_success_rate", "ejections_enforced_success_rate"},
	successRateLocal:       {"ejections_detected_local_origin_success_rate", "ejections_enforced_local_origin_success_rate"},
	failurePercentage:      {"ejections_detected_failure_percentage", "ejections_enforced_failure_percentage"},
	failurePercentageLocal: {"ejections_detected_local_origin_failure_percentage", "ejections_enforced_local_origin_failure_percentage"},
}

func newStats(cluster *stats.Scope) Stats {
	sc := cluster.Scope("outlier_detection")
	s := Stats{
		EjectionsActive:   sc.Gauge("ejections_active"),
		EjectionsOverflow: sc.Counter("ejections_overflow"),
		EnforcedTotal:     sc.Counter("ejections_enforced_total"),
		Total:             sc.Counter("ejections_total"),
		Consecutive5xx:    sc.Counter("ejections_consecutive_5xx"),
		SuccessRateDepr:   sc.Counter("ejections_success_rate"),
	}
	for t := range numTypes {
		s.Detected[t] = sc.Counter(statNames[t][0])
		s.Enforced[t] = sc.Counter(statNames[t][1])
	}
	return s
}

// Options configure a Detector.
type Options struct {
	Config Config
	// Scope is the cluster's stats scope (cluster.<name>); the detector's
	// stats go under outlier_detection.
	Scope *stats.Scope
	// Notify is called when a Monitor recorded an event that Process must
	// handle. It is called on the request path: it must not block (a
	// non-blocking send on a channel of capacity 1 is the intended use).
	Notify func()
	// Rand returns a uniform value in [0, n) (nil: math/rand/v2); the
	// enforcing_* draws and the ejection jitter use it.
	Rand func(n uint64) uint64
}

// Detector is one cluster's outlier detector. NewMonitor and the Monitors'
// Record and RequestUneject are safe for concurrent use; Process and Tick
// must be called from a single goroutine.
type Detector struct {
	cfg    Config
	stats  Stats
	notify func()
	rand   func(uint64) uint64
}

// New returns a detector.
func New(o Options) *Detector {
	d := &Detector{cfg: o.Config, stats: newStats(o.Scope), notify: o.Notify, rand: o.Rand}
	if d.notify == nil {
		d.notify = func() {}
	}
	if d.rand == nil {
		d.rand = rand.Uint64N
	}
	return d
}

// Config returns the detector's configuration.
func (d *Detector) Config() Config { return d.cfg }

// Stats returns the detector's statistics.
func (d *Detector) Stats() *Stats { return &d.stats }

// NewMonitor returns the Monitor of a new host.
func (d *Detector) NewMonitor() *Monitor {
	m := &Monitor{d: d}
	m.srExt.Store(math.Float64bits(-1))
	m.srLocal.Store(math.Float64bits(-1))
	return m
}

// Process handles the events Monitors recorded since the last call
// (consecutive-error thresholds reached, uneject requests of passing
// active health checks). hosts are the Monitors of the cluster's current
// hosts; a Monitor not among them is ignored, as Envoy ignores events of
// removed hosts. It reports whether any host's ejection changed.
func (d *Detector) Process(hosts []*Monitor, now time.Time) (changed bool) {
	for _, m := range hosts {
		bits := m.pending.Swap(0)
		if bits == 0 {
			continue
		}
		if bits&pendingUneject != 0 && m.ejected.Load() {
			d.uneject(m, now)
			changed = true
		}
		// Envoy posts the gateway event before the 5xx one when a response
		// reaches both thresholds.
		for _, ev := range [...]struct {
			bit uint32
			t   ejectionType
		}{{pendingGateway, consecutiveGateway}, {pending5xx, consecutive5xx}, {pendingLocal, consecutiveLocal}} {
			if bits&ev.bit != 0 && d.onConsecutiveError(hosts, m, ev.t, now) {
				changed = true
			}
		}
	}
	d.updateActive(hosts)
	return changed
}

// onConsecutiveError is Envoy's onConsecutiveErrorWorker: an already
// ejected host is left alone; otherwise the detection is counted, the host
// ejected if allowed, and the counter that fired is reset so that a new
// bout of errors can be detected.
func (d *Detector) onConsecutiveError(hosts []*Monitor, m *Monitor, t ejectionType, now time.Time) bool {
	if m.ejected.Load() {
		return false
	}
	d.stats.Detected[t].Inc()
	ejected := d.eject(hosts, m, t, now)
	switch t {
	case consecutive5xx:
		d.stats.Consecutive5xx.Inc()
		m.consec5xx.Store(0)
	case consecutiveGateway:
		m.consecGateway.Store(0)
	case consecutiveLocal:
		m.consecLocal.Store(0)
	}
	return ejected
}

// eject is Envoy's ejectHost. The host is ejected when, counting it, no
// more than max_ejection_percent of the cluster's hosts would be ejected
// (or, with always_eject_one_host, when none is); otherwise
// ejections_overflow counts it. An allowed ejection happens with the
// enforcing_* probability of its type. Its duration is base_ejection_time
// times the host's back-off multiplier (which grows by one per ejection
// while base × multiplier < max_ejection_time + base_ejection_time), capped
// by max_ejection_time, plus a jitter drawn in [0, max_ejection_time_jitter].
func (d *Detector) eject(hosts []*Monitor, m *Monitor, t ejectionType, now time.Time) bool {
	active := countEjected(hosts)
	maxPct := float64(min(100, d.cfg.MaxEjectionPercent))
	pct := 100 * float64(active+1) / float64(len(hosts))
	allowed := pct <= maxPct || d.cfg.AlwaysEjectOneHost && active == 0
	if !allowed {
		d.stats.EjectionsOverflow.Inc()
		return false
	}
	if t == consecutive5xx || t == successRate {
		d.stats.Total.Inc()
	}
	if !d.enforced(t) {
		return false
	}
	m.ejected.Store(true)
	m.numEjections++
	m.lastEjection = now
	d.stats.EnforcedTotal.Inc()
	d.stats.Enforced[t].Inc()
	m.jitter = time.Duration(d.rand(uint64(d.cfg.MaxEjectionTimeJitter.Milliseconds())+1)) * time.Millisecond
	base := d.cfg.BaseEjectionTime
	if time.Duration(m.backoff)*base < d.cfg.MaxEjectionTime+base {
		m.backoff++
	}
	d.stats.EjectionsActive.Set(int64(active + 1))
	return true
}

// enforced draws the enforcing_* percentage of type t (Envoy's runtime
// featureEnabled: a uniform draw in [0, 100) below the percentage).
func (d *Detector) enforced(t ejectionType) bool {
	var pct uint32
	switch t {
	case consecutive5xx:
		pct = d.cfg.EnforcingConsecutive5xx
	case consecutiveGateway:
		pct = d.cfg.EnforcingConsecutiveGatewayFailure
	case consecutiveLocal:
		pct = d.cfg.EnforcingConsecutiveLocalOriginFailure
	case successRate:
		pct = d.cfg.EnforcingSuccessRate
	case successRateLocal:
		pct = d.cfg.EnforcingLocalOriginSuccessRate
	case failurePercentage:
		pct = d.cfg.EnforcingFailurePercentage
	case failurePercentageLocal:
		pct = d.cfg.EnforcingFailurePercentageLocalOrigin
	}
	return d.rand(100) < uint64(pct)
}

// uneject returns a host to service and clears its consecutive counters.
func (d *Detector) uneject(m *Monitor, now time.Time) {
	m.ejected.Store(false)
	m.resetConsecutive()
	m.lastUnejection = now
}

// Tick is the interval timer (Envoy's onIntervalTimer): hosts whose
// ejection time has passed return to service, the success-rate buckets
// turn over, the success-rate and failure-percentage detectors run over
// the interval just ended, and the back-off multiplier of every host that
// has stayed in service for at least an interval since its last unejection
// decreases by one. It reports whether any host's ejection changed.
func (d *Detector) Tick(hosts []*Monitor, now time.Time) (changed bool) {
	for _, m := range hosts {
		if m.ejected.Load() && now.Sub(m.lastEjection) >= d.ejectionTime(m) {
			d.uneject(m, now)
			changed = true
		}
		m.ext.swap()
		m.local.swap()
		m.srExt.Store(math.Float64bits(-1))
		m.srLocal.Store(math.Float64bits(-1))
	}
	if d.rateEjections(hosts, false, now) {
		changed = true
	}
	if d.rateEjections(hosts, true, now) {
		changed = true
	}
	for _, m := range hosts {
		if !m.ejected.Load() && !m.lastUnejection.IsZero() && now.Sub(m.lastUnejection) >= d.cfg.Interval && m.backoff > 0 {
			m.backoff--
		}
	}
	d.updateActive(hosts)
	return changed
}

// ejectionTime is how long m stays ejected: min(base × back-off, max) +
// jitter (Envoy's checkHostForUneject).
func (d *Detector) ejectionTime(m *Monitor) time.Duration {
	return min(time.Duration(m.backoff)*d.cfg.BaseEjectionTime, d.cfg.MaxEjectionTime) + m.jitter
}

func countEjected(hosts []*Monitor) int {
	n := 0
	for _, m := range hosts {
		if m.ejected.Load() {
			n++
		}
	}
	return n
}

func (d *Detector) updateActive(hosts []*Monitor) {
	d.stats.EjectionsActive.Set(int64(countEjected(hosts)))
}
