package upstream

import (
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/weftmesh/weft/internal/proxy/stats"
	"github.com/weftmesh/weft/internal/proxy/upstream/pool"
)

// ClusterStats are Envoy's cluster.<name>.* statistics.
type ClusterStats struct {
	scope *stats.Scope

	Pool pool.Stats

	RqTotal       *stats.Counter
	RqActive      *stats.Gauge
	RqCompleted   *stats.Counter
	RqTimeout     *stats.Counter
	RqRxReset     *stats.Counter
	RqTxReset     *stats.Counter
	RqOverflow    *stats.Counter // upstream_rq_pending_overflow covers HTTP/1 waiting; this is max_requests
	CxNoneHealthy *stats.Counter
	LbHealthyPanc *stats.Counter
	RqTime        *stats.Histogram
	Retry         RetryStats // retrystats.go

	MembershipTotal    *stats.Gauge
	MembershipHealthy  *stats.Gauge
	MembershipDegraded *stats.Gauge
	UpdateAttempt      *stats.Counter
	UpdateSuccess      *stats.Counter
	UpdateFailure      *stats.Counter

	classes [6]*stats.Counter // upstream_rq_1xx .. 5xx
	codes   [600]atomic.Pointer[stats.Counter]
	codesMu sync.Mutex
}

func newClusterStats(root *stats.Scope, name string) *ClusterStats {
	sc := root.Tagged("cluster", "envoy_cluster_name", name)
	s := &ClusterStats{scope: sc}
	s.Pool = pool.Stats{
		CxTotal:          sc.Counter("upstream_cx_total"),
		CxActive:         sc.Gauge("upstream_cx_active"),
		CxConnectFail:    sc.Counter("upstream_cx_connect_fail"),
		CxConnectTimeout: sc.Counter("upstream_cx_connect_timeout"),
		CxDestroy:        sc.Counter("upstream_cx_destroy"),
		CxHTTP1Total:     sc.Counter("upstream_cx_http1_total"),
		CxHTTP2Total:     sc.Counter("upstream_cx_http2_total"),
		CxOverflow:       sc.Counter("upstream_cx_overflow"),
		RqPendingTotal:   sc.Counter("upstream_rq_pending_total"),
		RqPendingActive:  sc.Gauge("upstream_rq_pending_active"),
		RqPendingOverflw: sc.Counter("upstream_rq_pending_overflow"),
	}
	s.RqTotal = sc.Counter("upstream_rq_total")
	s.RqActive = sc.Gauge("upstream_rq_active")
	s.RqCompleted = sc.Counter("upstream_rq_completed")
	s.RqTimeout = sc.Counter("upstream_rq_timeout")
	s.RqRxReset = sc.Counter("upstream_rq_rx_reset")
	s.RqTxReset = sc.Counter("upstream_rq_tx_reset")
	s.RqOverflow = sc.Counter("upstream_rq_overflow")
	s.CxNoneHealthy = sc.Counter("upstream_cx_none_healthy")
	s.LbHealthyPanc = sc.Counter("lb_healthy_panic")
	s.RqTime = sc.Histogram("upstream_rq_time")
	s.Retry = newRetryStats(sc)
	s.MembershipTotal = sc.Gauge("membership_total")
	s.MembershipHealthy = sc.Gauge("membership_healthy")
	s.MembershipDegraded = sc.Gauge("membership_degraded")
	s.UpdateAttempt = sc.Counter("update_attempt")
	s.UpdateSuccess = sc.Counter("update_success")
	s.UpdateFailure = sc.Counter("update_failure")
	for i := 1; i <= 5; i++ {
		c := strconv.Itoa(i)
		s.classes[i] = sc.CounterTagged("upstream_rq_"+c+"xx", "upstream_rq_xx", stats.Tag{Name: "envoy_response_code_class", Value: c})
	}
	return s
}

// RecordResponse counts a response code (upstream_rq_<code> and
// upstream_rq_<class>xx) and completion.
func (s *ClusterStats) RecordResponse(code int) {
	s.RqCompleted.Inc()
	if code < 100 || code >= 600 {
		return
	}
	s.classes[code/100].Inc()
	c := s.codes[code].Load()
	if c == nil {
		c = s.codeCounter(code)
	}
	c.Inc()
}

// codeCounter creates a per-code counter the first time a code is seen.
func (s *ClusterStats) codeCounter(code int) *stats.Counter {
	s.codesMu.Lock()
	defer s.codesMu.Unlock()
	if c := s.codes[code].Load(); c != nil {
		return c
	}
	v := strconv.Itoa(code)
	c := s.scope.CounterTagged("upstream_rq_"+v, "upstream_rq", stats.Tag{Name: "envoy_response_code", Value: v})
	s.codes[code].Store(c)
	return c
}
