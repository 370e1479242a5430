package xds

import (
	"encoding/json"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// Monitoring paths, as Istio's istiod serves them.
const (
	SynczPath   = "/debug/syncz"
	ConfigzPath = "/debug/configz"
	MetricsPath = "/metrics"
)

// SynczHandler serves SyncStatus as JSON: an object keyed by proxy id.
// ?proxy=ID narrows it to one proxy (404 if not connected).
func (s *Server) SynczHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		st := s.SyncStatus()
		if id := r.URL.Query().Get("proxy"); id != "" {
			ps, ok := st[id]
			if !ok {
				http.Error(w, "proxy "+id+" is not connected", http.StatusNotFound)
				return
			}
			st = map[string]ProxyStatus{id: ps}
		}
		writeJSON(w, st)
	})
}

// ConfigzHandler serves what configz returns, called per request: a proto
// message is written with protojson, anything else with encoding/json (so
// a summary struct holding proto messages should convert them itself).
func ConfigzHandler(configz func() any) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		v := configz()
		if m, ok := v.(proto.Message); ok {
			b, err := protojson.MarshalOptions{Multiline: true}.Marshal(m)
			if err != nil {
				http.Error(w, "encoding configz: "+err.Error(), http.StatusInternalServerError)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write(b)
			return
		}
		writeJSON(w, v)
	})
}

// MetricsHandler serves the server's metrics (its own registry, not the
// global one) in the Prometheus exposition format.
func (s *Server) MetricsHandler() http.Handler {
	return promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{})
}

// Registry returns the server's metrics registry, so that the caller can
// add its own collectors to the same /metrics.
func (s *Server) Registry() *prometheus.Registry { return s.metrics.reg }

// Mount adds /debug/syncz, /debug/configz (with configz; skipped when
// nil) and /metrics to mux.
func (s *Server) Mount(mux *http.ServeMux, configz func() any) {
	mux.Handle(SynczPath, s.SynczHandler())
	if configz != nil {
		mux.Handle(ConfigzPath, ConfigzHandler(configz))
	}
	mux.Handle(MetricsPath, s.MetricsHandler())
}

func writeJSON(w http.ResponseWriter, v any) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		http.Error(w, "encoding JSON: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(append(b, '\n'))
}
