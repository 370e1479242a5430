package controlplane

import (
	"runtime/debug"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/weftmesh/weft/internal/config"
	"github.com/weftmesh/weft/internal/model"
)

// metrics are the control plane's own pilot_* metrics (configuration and
// pushes; the xDS server has the per-proxy ones), on the xDS server's
// registry so that one /metrics serves both, with the Go runtime and
// process collectors. Names and labels are Istio's
// (pilot/pkg/xds/monitoring.go, pilot/pkg/model/push_context.go,
// pilot/pkg/config/kube/crdclient); docs/CONTROL-PLANE-METRICS.md lists them.
type metrics struct {
	// services is Istio's pilot_services: services in the snapshot.
	services prometheus.Gauge
	// virtServices is Istio's pilot_virt_services: VirtualServices in
	// force.
	virtServices prometheus.Gauge
	// triggers is Istio's pilot_push_triggers{type}: pushes by reason
	// (config, service, endpoint; global for the initial push).
	triggers *prometheus.CounterVec
	// cfgEvents is Istio's pilot_k8s_cfg_events{type,event}: objects
	// added, updated and deleted in the configuration directory, by kind.
	cfgEvents *prometheus.CounterVec
	// rejected is Istio's pilot_total_rejected_configs{type,name}: each
	// distinct error that rejects an object, once (its last good
	// version, if any, stays in force).
	rejected *prometheus.CounterVec
	// problems is weft_config_problems{severity}: the configuration
	// directory's current errors and warnings.
	problems *prometheus.GaugeVec
	// initTime is Istio's pilot_pushcontext_init_seconds: building a
	// snapshot.
	initTime prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		services: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "pilot_services", Help: "Total services known to the control plane.",
		}),
		virtServices: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "pilot_virt_services", Help: "Total VirtualServices known to the control plane.",
		}),
		triggers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pilot_push_triggers", Help: "Total number of times a push was triggered, labeled by reason for the push.",
		}, []string{"type"}),
		cfgEvents: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pilot_k8s_cfg_events", Help: "Configuration events (add, update, delete) by kind, from the configuration directory.",
		}, []string{"type", "event"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pilot_total_rejected_configs", Help: "Total number of configs that the control plane had to reject, by kind and namespace/name.",
		}, []string{"type", "name"}),
		problems: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "weft_config_problems", Help: "Current problems of the configuration directory, by severity (error: the object is rejected; warning: it applies).",
		}, []string{"severity"}),
		initTime: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "pilot_pushcontext_init_seconds", Help: "Seconds to build a configuration snapshot.",
			Buckets: []float64{.001, .01, .1, 0.5, 1, 3, 5},
		}),
	}
	build := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "istio_build", Help: "Build information of the control plane.",
	}, []string{"component", "tag"})
	build.WithLabelValues("pilot", buildTag()).Set(1)
	reg.MustRegister(m.services, m.virtServices, m.triggers, m.cfgEvents, m.rejected, m.problems, m.initTime, build,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// buildTag is the module version weft-control was built from.
func buildTag() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "unknown"
}

// Push trigger reasons (Istio's model.TriggerReason values).
const (
	triggerConfig   = "config"
	triggerService  = "service"
	triggerEndpoint = "endpoint"
	triggerGlobal   = "global"
)

// configChanged records a reload's events and adds the reasons of the
// push it triggers to reasons.
func (m *metrics) configChanged(ch config.Changes, reasons map[string]bool) {
	for _, e := range []struct {
		event string
		keys  []config.Key
	}{{"add", ch.Added}, {"update", ch.Updated}, {"delete", ch.Removed}} {
		for _, k := range e.keys {
			m.cfgEvents.WithLabelValues(string(k.Kind), e.event).Inc()
			reasons[triggerReason(k.Kind)] = true
		}
	}
}

// pushed counts a push's reasons.
func (m *metrics) pushed(reasons map[string]bool) {
	for r := range reasons {
		m.triggers.WithLabelValues(r).Inc()
	}
}

// triggerReason maps a kind to Istio's push reason: registry objects are
// service and endpoint updates, the rest configuration.
func triggerReason(k config.Kind) string {
	switch k {
	case config.ServiceEntry:
		return triggerService
	case config.WorkloadEntry:
		return triggerEndpoint
	default:
		return triggerConfig
	}
}

// snapshotBuilt records a new snapshot and how long it took.
func (m *metrics) snapshotBuilt(s *model.Snapshot, took time.Duration) {
	m.initTime.Observe(took.Seconds())
	m.services.Set(float64(len(s.Services)))
	m.virtServices.Set(float64(len(s.Configs[config.VirtualService])))
}

// newProblem records a problem seen for the first time.
func (m *metrics) newProblem(p *config.Error) {
	if !p.Warning && p.Key.Kind != "" {
		m.rejected.WithLabelValues(string(p.Key.Kind), p.Key.Namespace+"/"+p.Key.Name).Inc()
	}
}

// currentProblems sets the problem gauges to the store's problems.
func (m *metrics) currentProblems(ps []*config.Error) {
	var errs, warnings int
	for _, p := range ps {
		if p.Warning {
			warnings++
		} else {
			errs++
		}
	}
	m.problems.WithLabelValues("error").Set(float64(errs))
	m.problems.WithLabelValues("warning").Set(float64(warnings))
}
