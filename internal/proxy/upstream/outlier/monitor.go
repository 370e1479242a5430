package outlier

import (
	"math"
	"sync/atomic"
	"time"
)

// Result is how one upstream attempt ended, as the router reports it.
//
// Local-origin failures are the errors weft-proxy sees itself rather than
// a status the upstream sent, as Envoy defines them ("Outlier detection",
// split_external_local_origin_errors):
//   - ConnectFailed: the TCP connect or the transport socket's handshake
//     failed or passed connect_timeout (Envoy's LocalOriginConnectFailed
//     from the connection pool; 503 UF).
//   - Reset: the connection was established, then closed or reset (or sent
//     bytes that do not parse) before a response head arrived (Envoy's
//     onUpstreamReset, also reported as LocalOriginConnectFailed; 503 UC,
//     502 UPE).
//   - Timeout: the connection was established and the route's timeout
//     passed before the response head (Envoy's LocalOriginTimeout with the
//     code 504; 504 UT).
//
// Response means a response head arrived (the connection succeeded); its
// status is given to Record.
type Result uint8

// Results.
const (
	Response Result = iota
	ConnectFailed
	Reset
	Timeout
)

// pending event bits, set on the hot path and consumed by Process.
const (
	pending5xx uint32 = 1 << iota
	pendingGateway
	pendingLocal
	pendingUneject // an active health check passed (see RequestUneject)
)

// Monitor is one host's outlier state. Record is safe for concurrent use
// and cheap (a few atomic operations); every other field is owned by the
// detector's goroutine.
type Monitor struct {
	d *Detector

	consec5xx     atomic.Uint32
	consecGateway atomic.Uint32
	consecLocal   atomic.Uint32
	pending       atomic.Uint32
	ejected       atomic.Bool
	ext, local    srMonitor
	// srExt and srLocal are the success rates last computed for /clusters
	// (float64 bits; -1 when there were not enough requests).
	srExt, srLocal atomic.Uint64

	// Owned by the detector's goroutine.
	numEjections   uint32
	backoff        uint32 // Envoy's ejectTimeBackoff
	lastEjection   time.Time
	lastUnejection time.Time // zero: never unejected
	jitter         time.Duration
}

// srMonitor counts requests in two buckets: the hot path writes the
// current one; every interval the detector empties the other, makes it
// current, and reads the one just retired (Envoy's SuccessRateAccumulator).
type srMonitor struct {
	cur     atomic.Uint32
	buckets [2]srBucket
}

type srBucket struct {
	total, success atomic.Uint64
}

func (s *srMonitor) bucket() *srBucket { return &s.buckets[s.cur.Load()&1] }

// swap retires the current bucket (Envoy's updateCurrentWriter).
func (s *srMonitor) swap() {
	next := (s.cur.Load() + 1) & 1
	s.buckets[next].total.Store(0)
	s.buckets[next].success.Store(0)
	s.cur.Store(next)
}

// rate returns the retired bucket's success rate in percent and its
// volume; ok is false when it saw no request.
func (s *srMonitor) rate() (pct float64, volume uint64, ok bool) {
	b := &s.buckets[(s.cur.Load()+1)&1]
	total := b.total.Load()
	if total == 0 {
		return 0, 0, false
	}
	return float64(b.success.Load()) * 100 / float64(total), total, true
}

// Ejected reports whether the host is ejected (Envoy's
// FAILED_OUTLIER_CHECK). A nil Monitor is never ejected.
func (m *Monitor) Ejected() bool { return m != nil && m.ejected.Load() }

// SuccessRate returns the success rate (percent) computed at the last
// interval for external (local false) or local-origin results, or -1 when
// the host had too few requests (Envoy's /clusters success_rate).
func (m *Monitor) SuccessRate(local bool) float64 {
	if m == nil {
		return -1
	}
	if local {
		return math.Float64frombits(m.srLocal.Load())
	}
	return math.Float64frombits(m.srExt.Load())
}

// Record counts one upstream attempt's result; status is the response's
// HTTP status for Response and ignored otherwise. Safe for concurrent use;
// it never blocks or allocates. A nil Monitor (no outlier detection)
// ignores it.
//
// Without split_external_local_origin_errors, local-origin failures count
// as responses: ConnectFailed and Reset as 503, Timeout as 504 (Envoy's
// putResultNoLocalExternalSplit and resultToHttpCode). With it, they count
// only toward consecutive_local_origin_failure and the local-origin
// success rate; an attempt that connected first reports the connection's
// success (Envoy reports LocalOriginConnectSuccess when the pool hands over
// a connection, before a reset or timeout of the request on it).
func (m *Monitor) Record(r Result, status int) {
	if m == nil {
		return
	}
	if m.d.cfg.SplitExternalLocalOriginErrors {
		switch r {
		case Response:
			m.localSuccess()
			m.putHTTP(status)
		case ConnectFailed:
			m.localFailure()
		case Reset, Timeout:
			m.localSuccess()
			m.localFailure()
		}
		return
	}
	switch r {
	case Response:
		m.putHTTP(status)
	case ConnectFailed, Reset:
		m.putHTTP(503)
	case Timeout:
		m.putHTTP(504)
	}
}

// putHTTP is Envoy's putHttpResponseCode: 5xx counts toward
// consecutive_5xx, 502/503/504 also toward consecutive_gateway_failure;
// anything else is a success and resets both.
func (m *Monitor) putHTTP(status int) {
	b := m.ext.bucket()
	b.total.Add(1)
	cfg := &m.d.cfg
	if status >= 500 && status < 600 {
		if status >= 502 && status <= 504 {
			if m.consecGateway.Add(1) == cfg.ConsecutiveGatewayFailure {
				m.signal(pendingGateway)
			}
		} else {
			resetCounter(&m.consecGateway)
		}
		if m.consec5xx.Add(1) == cfg.Consecutive5xx {
			m.signal(pending5xx)
		}
		return
	}
	b.success.Add(1)
	resetCounter(&m.consec5xx)
	resetCounter(&m.consecGateway)
}

func (m *Monitor) localFailure() {
	m.local.bucket().total.Add(1)
	if m.consecLocal.Add(1) == m.d.cfg.ConsecutiveLocalOriginFailure {
		m.signal(pendingLocal)
	}
}

func (m *Monitor) localSuccess() {
	b := m.local.bucket()
	b.total.Add(1)
	b.success.Add(1)
	resetCounter(&m.consecLocal)
}

// resetCounter stores 0 unless the counter is 0 already, so that a healthy
// host's hot path only reads the shared cache line.
func resetCounter(c *atomic.Uint32) {
	if c.Load() != 0 {
		c.Store(0)
	}
}

// signal marks an event for Process and wakes the detector's owner when
// the event was not already pending.
func (m *Monitor) signal(bit uint32) {
	if m.pending.Or(bit)&bit == 0 {
		m.d.notify()
	}
}

// RequestUneject asks the detector to return an ejected host to service
// because an active health check passed (Envoy's
// successful_active_health_check_uneject_host). Safe for concurrent use;
// Process carries it out.
func (m *Monitor) RequestUneject() {
	if m == nil || !m.d.cfg.SuccessfulActiveHealthCheckUnejectHost || !m.ejected.Load() {
		return
	}
	m.signal(pendingUneject)
}

// resetConsecutive clears every consecutive-error counter (after an
// unejection, so that a few new errors do not eject the host again).
func (m *Monitor) resetConsecutive() {
	m.consec5xx.Store(0)
	m.consecGateway.Store(0)
	m.consecLocal.Store(0)
}
