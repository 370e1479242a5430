package xds

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// metrics are the xDS server's Prometheus metrics, on a registry of its
// own. Names, types and labels follow Istio's pilot metrics where Istio
// has one (pilot/pkg/xds/monitoring.go, pilot/pkg/xds/ads.go); weft_ names
// are weft's additions. docs/CONTROL-PLANE-METRICS.md lists them.
type metrics struct {
	reg *prometheus.Registry

	// connected is Istio's pilot_xds: streams with an established proxy
	// identity, by the proxy's version (node metadata ISTIO_VERSION, or
	// the node's user_agent_version; "" when it sends neither).
	connected *prometheus.GaugeVec
	// pushes is Istio's pilot_xds_pushes: responses sent, by type (cds,
	// eds, lds, rds), and failed sends as cds_senderr etc.
	pushes *prometheus.CounterVec
	// pushTime is Istio's pilot_xds_push_time: seconds from the start of
	// a Push until a proxy's response of that type is queued on its
	// stream.
	pushTime *prometheus.HistogramVec
	// sendTime is Istio's pilot_xds_send_time: seconds a response's
	// gRPC Send takes (flow control included, the send budget's wait
	// excluded).
	sendTime prometheus.Histogram
	// queueTime is Istio's pilot_proxy_queue_time: seconds from the start
	// of a Push until a push worker starts computing a proxy.
	queueTime prometheus.Histogram
	// convergence is Istio's pilot_proxy_convergence_time: seconds from
	// the configuration change (Push's since) until a proxy's changed
	// responses are queued on its streams.
	convergence prometheus.Histogram
	// rejects is Istio's pilot_total_xds_rejects: NACKs by type.
	rejects *prometheus.CounterVec
	// typeRejects are Istio's pilot_xds_{cds,eds,lds,rds}_reject gauges
	// {node, err}: 1 for a proxy whose latest response of the type was
	// rejected with that gRPC code; deleted when the proxy disconnects.
	typeRejects map[string]*prometheus.GaugeVec
	// configSize is Istio's pilot_xds_config_size_bytes.
	configSize *prometheus.HistogramVec
	// expiredNonce is Istio's pilot_xds_expired_nonce: requests answering
	// a response older than the latest (ignored).
	expiredNonce *prometheus.CounterVec
	// internalErrors is Istio's pilot_total_xds_internal_errors: proxies
	// whose resources could not be computed (translation panicked or
	// produced unencodable resources); they keep their previous
	// resources.
	internalErrors prometheus.Counter
	// sentBytes counts response bytes by type.
	sentBytes *prometheus.CounterVec
	// pushDuration is how long Push takes for all connected proxies.
	pushDuration prometheus.Histogram
	// badNodes counts streams refused for a bad node identity.
	badNodes prometheus.Counter
	// dropped counts responses dropped because a stream's channel was
	// full (never expected).
	dropped prometheus.Counter
}

// istioPushBuckets are Istio's boundaries for pilot_xds_push_time,
// pilot_proxy_queue_time and pilot_proxy_convergence_time, with finer
// ones below 100 ms (a local push takes milliseconds).
var istioPushBuckets = []float64{.001, .005, .01, .05, .1, .5, 1, 3, 5, 10, 20, 30}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		connected: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "pilot_xds",
			Help: "Number of endpoints connected to this control plane using xDS.",
		}, []string{"version"}),
		pushes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pilot_xds_pushes",
			Help: "xDS responses sent, by type (cds, eds, lds, rds); send errors as cds_senderr, eds_senderr, lds_senderr, rds_senderr.",
		}, []string{"type"}),
		pushTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "pilot_xds_push_time",
			Help:    "Seconds from the start of a push until a proxy's response of the type is queued.",
			Buckets: istioPushBuckets,
		}, []string{"type"}),
		sendTime: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "pilot_xds_send_time",
			Help:    "Seconds a response's gRPC send takes.",
			Buckets: []float64{.0001, .001, .01, .1, 1, 3, 5, 10},
		}),
		queueTime: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "pilot_proxy_queue_time",
			Help:    "Seconds a proxy waits in a push before its resources are computed.",
			Buckets: istioPushBuckets,
		}),
		convergence: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "pilot_proxy_convergence_time",
			Help:    "Seconds from a configuration change until a proxy's new configuration is queued on its stream.",
			Buckets: istioPushBuckets,
		}),
		rejects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pilot_total_xds_rejects",
			Help: "xDS responses rejected by proxies (NACKs), by type.",
		}, []string{"type"}),
		typeRejects: map[string]*prometheus.GaugeVec{},
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
		internalErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pilot_total_xds_internal_errors",
			Help: "Proxies whose resources could not be computed; they keep their previous resources.",
		}),
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
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "weft_xds_dropped_responses_total",
			Help: "Responses dropped because a stream's queue was full (a bug if not zero).",
		}),
	}
	for _, short := range shortNames {
		g := prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "pilot_xds_" + short + "_reject",
			Help: "Proxies whose latest " + short + " response was rejected, by node and gRPC code (pilot_total_xds_rejects counts every rejection).",
		}, []string{"node", "err"})
		m.typeRejects[short] = g
		m.reg.MustRegister(g)
	}
	m.reg.MustRegister(m.connected, m.pushes, m.pushTime, m.sendTime, m.queueTime, m.convergence,
		m.rejects, m.configSize, m.expiredNonce, m.internalErrors, m.sentBytes, m.pushDuration,
		m.badNodes, m.dropped)
	return m
}

// nacked records a NACK of typeURL by node with the status code in
// errorDetail.
func (m *metrics) nacked(typeURL, node string, code int32) {
	short := shortName(typeURL)
	m.rejects.WithLabelValues(short).Inc()
	if g := m.typeRejects[short]; g != nil {
		g.DeletePartialMatch(prometheus.Labels{"node": node})
		g.WithLabelValues(node, codes.Code(code).String()).Set(1)
	}
}

// acked clears a node's reject gauge of typeURL.
func (m *metrics) acked(typeURL, node string) {
	if g := m.typeRejects[shortName(typeURL)]; g != nil {
		g.DeletePartialMatch(prometheus.Labels{"node": node})
	}
}

// forget drops a disconnected node's reject gauges.
func (m *metrics) forget(node string) {
	for _, g := range m.typeRejects {
		g.DeletePartialMatch(prometheus.Labels{"node": node})
	}
}

// sent records a gRPC Send of a response of typeURL that took d; an error
// other than the stream closing counts as Istio's TYPE_senderr.
func (m *metrics) sent(typeURL string, d time.Duration, err error) {
	m.sendTime.Observe(d.Seconds())
	if err == nil {
		return
	}
	if c := status.Code(err); c != codes.Unavailable && c != codes.Canceled {
		m.pushes.WithLabelValues(shortName(typeURL) + "_senderr").Inc()
	}
}
