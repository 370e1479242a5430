package xds

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the xDS server's Prometheus metrics, on a registry of its
// own. Names follow Istio's pilot metrics where Istio has one
// (pilot/pkg/xds/monitoring.go); weft_ names are weft's additions.
type metrics struct {
	reg *prometheus.Registry

	// connected is Istio's pilot_xds: streams with an established proxy
	// identity.
	connected prometheus.Gauge
	// pushes is Istio's pilot_xds_pushes: responses sent, by type
	// (cds, eds, lds, rds).
	pushes *prometheus.CounterVec
	// pushTime is Istio's pilot_xds_push_time: seconds from the start of
	// a Push until a proxy's response of that type is queued on its
	// stream.
	pushTime *prometheus.HistogramVec
	// rejects is Istio's pilot_total_xds_rejects: NACKs by type.
	rejects *prometheus.CounterVec
	// configSize is Istio's pilot_xds_config_size_bytes.
	configSize *prometheus.HistogramVec
	// expiredNonce is Istio's pilot_xds_expired_nonce: requests answering
	// a response older than the latest (ignored).
	expiredNonce *prometheus.CounterVec
	// sentBytes counts response bytes by type.
	sentBytes *prometheus.CounterVec
	// pushDuration is how long Push takes for all connected proxies.
	pushDuration prometheus.Histogram
	// badNodes counts streams refused for a bad node identity.
	badNodes prometheus.Counter
	// generateErrors counts proxies whose resources could not be
	// computed (translation panicked or produced unencodable resources);
	// they keep their previous resources.
	generateErrors prometheus.Counter
	// dropped counts responses dropped because a stream's channel was
	// full (never expected).
	dropped prometheus.Counter
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		connected: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "pilot_xds",
			Help: "Number of endpoints connected to this control plane using xDS.",
		}),
		pushes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pilot_xds_pushes",
			Help: "xDS responses sent, by type (cds, eds, lds, rds).",
		}, []string{"type"}),
		pushTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "pilot_xds_push_time",
			Help:    "Seconds from the start of a push until a proxy's response of the type is queued.",
			Buckets: []float64{.001, .005, .01, .05, .1, .5, 1, 3, 5, 10},
		}, []string{"type"}),
		rejects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pilot_total_xds_rejects",
			Help: "xDS responses rejected by proxies (NACKs), by type.",
		}, []string{"type"}),
		configSize: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "pilot_xds_config_size_bytes",
			Help: "Distribution of configuration sizes pushed to clients.",
			// Istio's boundaries: 10K, 1M, 4M (gRPC's default limit),
			// 10M, 40M.
			Buckets: []float64{1, 10000, 1000000, 4000000, 10000000, 40000000},
		}, []string{"type"}),
		expiredNonce: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pilot_xds_expired_nonce",
			Help: "Requests answering a response older than the latest one, by type.",
		}, []string{"type"}),
		sentBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_xds_sent_bytes_total",
			Help: "Bytes of xDS responses sent, by type.",
		}, []string{"type"}),
		pushDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "weft_xds_push_duration_seconds",
			Help:    "Seconds a push takes to recompute and queue the resources of every connected proxy.",
			Buckets: []float64{.001, .005, .01, .05, .1, .25, .5, 1, 3, 10},
		}),
		badNodes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "weft_xds_rejected_streams_total",
			Help: "xDS streams refused because the node identity was invalid.",
		}),
		generateErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "weft_xds_generate_errors_total",
			Help: "Proxies whose resources could not be computed; they keep their previous resources.",
		}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "weft_xds_dropped_responses_total",
			Help: "Responses dropped because a stream's queue was full (a bug if not zero).",
		}),
	}
	m.reg.MustRegister(m.connected, m.pushes, m.pushTime, m.rejects, m.configSize,
		m.expiredNonce, m.sentBytes, m.pushDuration, m.badNodes, m.generateErrors, m.dropped)
	return m
}
