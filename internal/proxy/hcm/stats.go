package hcm

import (
	"strconv"

	"github.com/weftmesh/weft/internal/proxy/stats"
)

// connStats are Envoy's http.<stat_prefix>.* statistics.
type connStats struct {
	cxTotal, cxHTTP1Total, cxHTTP2Total, cxDestroy, cxProtocolError *stats.Counter
	cxIdleTimeout, cxDrainClose, cxMaxDuration                      *stats.Counter
	cxActive, cxHTTP1Active, cxHTTP2Active                          *stats.Gauge

	rqTotal, rqHTTP1Total, rqHTTP2Total, rqCompleted *stats.Counter
	rqActive                                         *stats.Gauge
	rqClass                                          [6]*stats.Counter
	rqTimeout, rqIdleTimeout, rqHeadersTimeout       *stats.Counter
	rqRxReset, rqTxReset, rqWsOnNonWs, rqTooLarge    *stats.Counter
	rqTime                                           *stats.Histogram

	noRoute, noCluster, rqRedirect, rqDirectResponse *stats.Counter
}

func newConnStats(root *stats.Scope, prefix string) *connStats {
	sc := root.Tagged("http", "envoy_http_conn_manager_prefix", prefix)
	s := &connStats{
		cxTotal:          sc.Counter("downstream_cx_total"),
		cxHTTP1Total:     sc.Counter("downstream_cx_http1_total"),
		cxHTTP2Total:     sc.Counter("downstream_cx_http2_total"),
		cxDestroy:        sc.Counter("downstream_cx_destroy"),
		cxProtocolError:  sc.Counter("downstream_cx_protocol_error"),
		cxIdleTimeout:    sc.Counter("downstream_cx_idle_timeout"),
		cxDrainClose:     sc.Counter("downstream_cx_drain_close"),
		cxMaxDuration:    sc.Counter("downstream_cx_max_duration_reached"),
		cxActive:         sc.Gauge("downstream_cx_active"),
		cxHTTP1Active:    sc.Gauge("downstream_cx_http1_active"),
		cxHTTP2Active:    sc.Gauge("downstream_cx_http2_active"),
		rqTotal:          sc.Counter("downstream_rq_total"),
		rqHTTP1Total:     sc.Counter("downstream_rq_http1_total"),
		rqHTTP2Total:     sc.Counter("downstream_rq_http2_total"),
		rqCompleted:      sc.Counter("downstream_rq_completed"),
		rqActive:         sc.Gauge("downstream_rq_active"),
		rqTimeout:        sc.Counter("downstream_rq_timeout"),
		rqIdleTimeout:    sc.Counter("downstream_rq_idle_timeout"),
		rqHeadersTimeout: sc.Counter("downstream_rq_header_timeout"),
		rqRxReset:        sc.Counter("downstream_rq_rx_reset"),
		rqTxReset:        sc.Counter("downstream_rq_tx_reset"),
		rqWsOnNonWs:      sc.Counter("downstream_rq_ws_on_non_ws_route"),
		rqTooLarge:       sc.Counter("downstream_rq_too_large"),
		rqTime:           sc.Histogram("downstream_rq_time"),
		noRoute:          sc.Counter("no_route"),
		noCluster:        sc.Counter("no_cluster"),
		rqRedirect:       sc.Counter("rq_redirect"),
		rqDirectResponse: sc.Counter("rq_direct_response"),
	}
	for i := 1; i <= 5; i++ {
		c := strconv.Itoa(i)
		s.rqClass[i] = sc.CounterTagged("downstream_rq_"+c+"xx", "downstream_rq_xx", stats.Tag{Name: "envoy_response_code_class", Value: c})
	}
	return s
}

func (s *connStats) recordResponse(code int) {
	s.rqCompleted.Inc()
	if code >= 100 && code < 600 {
		s.rqClass[code/100].Inc()
	}
}
