// Package dashboardtest serves Istio's standard request metrics the way a
// sidecar exposes them on :15090/stats/prometheus (Prometheus text format,
// Istio's metric names, labels and duration buckets), for tests of the
// dashboard's scraper and of the page.
package dashboardtest

import (
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// DurationBuckets returns Istio's bounds for
// istio_request_duration_milliseconds (the stats extension's default
// buckets), +Inf left out.
func DurationBuckets() []float64 {
	return []float64{0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000, 3600000}
}

// Series is one istio_requests_total series and the matching
// istio_request_duration_milliseconds histogram.
type Series struct {
	// Reporter is "source" or "destination".
	Reporter             string
	SourceWorkload       string
	SourceNamespace      string
	DestinationWorkload  string
	DestinationNamespace string
	// DestinationService is the service's FQDN.
	DestinationService string
	ResponseCode       int
	// Requests is the counter's value (Server: its growth per second).
	Requests float64
	// DurationMs places every request in the histogram: all requests fall
	// in the bucket whose bounds enclose it (lower < DurationMs <= upper).
	DurationMs float64
}

// labels renders the series' labels in Istio's order, with the
// values a sidecar reports for labels the test does not set.
func (s Series) labels() string {
	svcName, svcNS, _ := strings.Cut(s.DestinationService, ".")
	if i := strings.IndexByte(svcNS, '.'); i >= 0 {
		svcNS = svcNS[:i]
	}
	pairs := [][2]string{
		{"reporter", s.Reporter},
		{"source_workload", s.SourceWorkload},
		{"source_canonical_service", s.SourceWorkload},
		{"source_canonical_revision", "latest"},
		{"source_workload_namespace", s.SourceNamespace},
		{"source_principal", "spiffe://cluster.local/ns/" + s.SourceNamespace + "/sa/" + s.SourceWorkload},
		{"source_app", s.SourceWorkload},
		{"source_version", "unknown"},
		{"source_cluster", "Kubernetes"},
		{"destination_workload", s.DestinationWorkload},
		{"destination_workload_namespace", s.DestinationNamespace},
		{"destination_principal", "spiffe://cluster.local/ns/" + s.DestinationNamespace + "/sa/" + s.DestinationWorkload},
		{"destination_app", s.DestinationWorkload},
		{"destination_version", "unknown"},
		{"destination_service", s.DestinationService},
		{"destination_canonical_service", s.DestinationWorkload},
		{"destination_canonical_revision", "latest"},
		{"destination_service_name", svcName},
		{"destination_service_namespace", svcNS},
		{"destination_cluster", "Kubernetes"},
		{"request_protocol", "http"},
		{"response_code", strconv.Itoa(s.ResponseCode)},
		{"grpc_response_status", ""},
		{"response_flags", "-"},
		{"connection_security_policy", "mutual_tls"},
	}
	var b strings.Builder
	for i, p := range pairs {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%s=%q", p[0], p[1])
	}
	return b.String()
}

// Exposition renders the series as a sidecar's Prometheus text, with
// counts multiplied by scale, and some of Envoy's own stats around them
// (a scraper must skip what it does not read). A non-zero at stamps the
// Istio samples (Envoy's own output has no timestamps).
func Exposition(series []Series, scale float64, at time.Time) string {
	ts := ""
	if !at.IsZero() {
		ts = " " + strconv.FormatInt(at.UnixMilli(), 10)
	}
	var b strings.Builder
	b.WriteString("# TYPE envoy_cluster_upstream_rq_total counter\n")
	b.WriteString(`envoy_cluster_upstream_rq_total{cluster_name="xds-grpc"} 3` + "\n")
	b.WriteString("# TYPE istio_requests_total counter\n")
	for _, s := range series {
		fmt.Fprintf(&b, "istio_requests_total{%s} %s%s\n", s.labels(), num(s.Requests*scale), ts)
	}
	b.WriteString("# TYPE istio_request_duration_milliseconds histogram\n")
	for _, s := range series {
		l := s.labels()
		n := s.Requests * scale
		for _, le := range DurationBuckets() {
			c := 0.0
			if s.DurationMs <= le {
				c = n
			}
			fmt.Fprintf(&b, "istio_request_duration_milliseconds_bucket{%s,le=%q} %s%s\n", l, num(le), num(c), ts)
		}
		fmt.Fprintf(&b, "istio_request_duration_milliseconds_bucket{%s,le=\"+Inf\"} %s%s\n", l, num(n), ts)
		fmt.Fprintf(&b, "istio_request_duration_milliseconds_sum{%s} %s%s\n", l, num(n*s.DurationMs), ts)
		fmt.Fprintf(&b, "istio_request_duration_milliseconds_count{%s} %s%s\n", l, num(n), ts)
	}
	b.WriteString("# TYPE envoy_server_live gauge\nenvoy_server_live{} 1\n")
	return b.String()
}

func num(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }

// Server is a sidecar metrics endpoint on loopback whose counters grow
// steadily: each series' values are its Requests times the seconds since
// the server started, so a scraper must find Requests per second whenever
// it scrapes. With Timestamps the samples carry the time they were
// rendered at, and the rate is exact; without (as Envoy), the scraper's
// own clock adds the jitter of each request's latency.
type Server struct {
	ln         net.Listener
	srv        *http.Server
	start      time.Time
	timestamps bool

	mu     sync.Mutex
	series []Series
	hits   int
}

// NewServer serves series on 127.0.0.1 (a port the kernel picks) at
// /stats/prometheus, with timestamps or not. Close it when done.
func NewServer(series []Series, timestamps bool) (*Server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	// Both ends of an interval in milliseconds (see serve).
	s := &Server{ln: ln, start: time.UnixMilli(time.Now().UnixMilli()), series: series, timestamps: timestamps}
	mux := http.NewServeMux()
	mux.HandleFunc("/stats/prometheus", s.serve)
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = s.srv.Serve(ln) }()
	return s, nil
}

func (s *Server) serve(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	series := s.series
	s.hits++
	s.mu.Unlock()
	w.Header().Set("Content-Type", "text/plain; charset=UTF-8") // as Envoy's admin
	// Milliseconds, the exposition's timestamp resolution: the values
	// are those of the instant the timestamp names.
	now := time.UnixMilli(time.Now().UnixMilli())
	var at time.Time
	if s.timestamps {
		at = now
	}
	_, _ = w.Write([]byte(Exposition(series, now.Sub(s.start).Seconds(), at)))
}

// Addr is the server's host:port.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Hits is how many scrapes the server answered.
func (s *Server) Hits() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hits
}

// Close stops the server.
func (s *Server) Close() error { return s.srv.Close() }
