package dashboard

import (
	"bytes"
	"context"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/common/expfmt"
	"google.golang.org/protobuf/proto"

	dto "github.com/prometheus/client_model/go"

	"github.com/weftmesh/weft/internal/dashboard/dashboardtest"
)

var (
	inf       = math.Inf(1)
	helloFlow = flowKey{Reporter: "source", SrcWorkload: "sleep", SrcNamespace: "default", DstService: "hello.default.svc.cluster.local", DstWorkload: "hello-v1", DstNamespace: "default"}
	apiFlow   = flowKey{Reporter: "source", SrcWorkload: "sleep", SrcNamespace: "default", DstService: "api.example.com", DstWorkload: "unknown", DstNamespace: "unknown"}
)

// TestDecodeSidecarFixture: a sidecar's exposition in Istio's format is
// reduced to flows with requests, errors (5xx, non-OK gRPC) and duration
// buckets; Envoy's own stats are skipped.
func TestDecodeSidecarFixture(t *testing.T) {
	b, err := os.ReadFile("testdata/sidecar.prom")
	if err != nil {
		t.Fatal(err)
	}
	s, at, err := decodeSample(bytes.NewReader(b), expfmt.NewFormat(expfmt.TypeTextPlain))
	if err != nil {
		t.Fatal(err)
	}
	if !at.IsZero() {
		t.Errorf("timestamp %v from an exposition without timestamps", at)
	}
	if len(s) != 2 {
		t.Fatalf("%d flows, want 2: %v", len(s), s)
	}
	tests := []struct {
		key             flowKey
		requests, errs  float64
		buckets         map[float64]float64
		wantP99, wantOK bool
		p99             float64
	}{
		{key: helloFlow, requests: 100, errs: 10, buckets: map[float64]float64{0.5: 0, 1: 10, 5: 50, 10: 90, 25: 100, inf: 100}, wantOK: true, p99: 23.5},
		{key: apiFlow, requests: 10, errs: 4},
	}
	for _, tt := range tests {
		c := s[tt.key]
		if c == nil {
			t.Errorf("flow %+v missing", tt.key)
			continue
		}
		if c.requests != tt.requests || c.errors != tt.errs {
			t.Errorf("%s: requests %v errors %v, want %v %v", tt.key.DstService, c.requests, c.errors, tt.requests, tt.errs)
		}
		if len(c.buckets) != len(tt.buckets) {
			t.Errorf("%s: buckets %v, want %v", tt.key.DstService, c.buckets, tt.buckets)
		}
		for le, n := range tt.buckets {
			if c.buckets[le] != n {
				t.Errorf("%s: bucket le=%v is %v, want %v", tt.key.DstService, le, c.buckets[le], n)
			}
		}
		q, ok := quantile(0.99, c.buckets)
		if ok != tt.wantOK || (ok && math.Abs(q-tt.p99) > 1e-9) {
			t.Errorf("%s: p99 %v (%v), want %v (%v)", tt.key.DstService, q, ok, tt.p99, tt.wantOK)
		}
	}
}

// TestDecodeProtobufExposition: a client_golang endpoint answering in the
// delimited protobuf format (a real Prometheus-instrumented exporter) is
// read too; its histogram has no +Inf bucket, the count stands for it.
func TestDecodeProtobufExposition(t *testing.T) {
	reg := prometheus.NewRegistry()
	labels := []string{labelReporter, labelSrcWorkload, labelSrcNamespace, labelDstService, labelDstWorkload, labelDstNamespace, labelResponseCode}
	reqs := prometheus.NewCounterVec(prometheus.CounterOpts{Name: metricRequests, Help: "requests"}, labels)
	dur := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: metricDuration, Help: "durations", Buckets: dashboardtest.DurationBuckets()}, labels)
	reg.MustRegister(reqs, dur)
	vals := []string{"destination", "sleep", "default", "hello.default.svc.cluster.local", "hello-v2", "default", "500"}
	reqs.WithLabelValues(vals...).Add(7)
	for range 7 {
		dur.WithLabelValues(vals...).Observe(30)
	}
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer srv.Close()
	client := &http.Client{Transport: &http.Transport{}}
	// Ask for protobuf explicitly: scrape's own Accept asks for text.
	req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
	req.Header.Set("Accept", string(expfmt.NewFormat(expfmt.TypeProtoDelim)))
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if f := expfmt.ResponseFormat(resp.Header); f.FormatType() != expfmt.TypeProtoDelim {
		t.Fatalf("server answered %q, want protobuf", f)
	}
	s, _, err := decodeSample(resp.Body, expfmt.ResponseFormat(resp.Header))
	if err != nil {
		t.Fatal(err)
	}
	k := flowKey{Reporter: "destination", SrcWorkload: "sleep", SrcNamespace: "default", DstService: "hello.default.svc.cluster.local", DstWorkload: "hello-v2", DstNamespace: "default"}
	c := s[k]
	if c == nil || c.requests != 7 || c.errors != 7 || c.buckets[inf] != 7 || c.buckets[25] != 0 || c.buckets[50] != 7 {
		t.Fatalf("flow %+v: %+v", k, c)
	}
	// Through scrape (text, as it asks for): the same numbers.
	s2, _, err := scrape(context.Background(), client, srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	if c2 := s2[k]; c2 == nil || c2.requests != 7 || c2.buckets[inf] != 7 || c2.buckets[50] != 7 {
		t.Fatalf("scrape: %+v", c2)
	}
}

// TestDecodeTimestamps: an exposition's own timestamps date the sample.
func TestDecodeTimestamps(t *testing.T) {
	when := time.UnixMilli(1700000000123)
	in := dashboardtest.Exposition([]dashboardtest.Series{{Reporter: "source", SourceWorkload: "a", SourceNamespace: "ns",
		DestinationWorkload: "b", DestinationNamespace: "ns", DestinationService: "b.ns.svc.cluster.local", ResponseCode: 200, Requests: 2, DurationMs: 3}}, 5, when)
	s, at, err := decodeSample(strings.NewReader(in), expfmt.NewFormat(expfmt.TypeTextPlain))
	if err != nil {
		t.Fatal(err)
	}
	if !at.Equal(when) || len(s) != 1 {
		t.Fatalf("timestamp %v (want %v), %d flows", at, when, len(s))
	}
	for _, c := range s {
		if c.requests != 10 || c.buckets[5] != 10 || c.buckets[1] != 0 {
			t.Fatalf("%+v", c)
		}
	}
}

// TestIstioLines: the filter keeps exactly the Istio families, and what it
// keeps decodes as the whole exposition does.
func TestIstioLines(t *testing.T) {
	text := noisyExposition(3, 100)
	r, err := istioLines(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	kept, _ := io.ReadAll(r)
	if strings.Contains(string(kept), "envoy_") || strings.Count(string(kept), "\nistio_requests_total{") != 3 || !strings.HasPrefix(string(kept), "# TYPE istio_requests_total counter\n") {
		t.Fatalf("kept:\n%s", kept)
	}
	all, _, err := decodeSample(strings.NewReader(text), expfmt.NewFormat(expfmt.TypeTextPlain))
	if err != nil {
		t.Fatal(err)
	}
	filtered, _, err := decodeSample(bytes.NewReader(kept), expfmt.NewFormat(expfmt.TypeTextPlain))
	if err != nil || len(filtered) != 3 || len(all) != 3 {
		t.Fatalf("filtered %d flows, all %d: %v", len(filtered), len(all), err)
	}
	for k, c := range all {
		if f := filtered[k]; f == nil || f.requests != c.requests || len(f.buckets) != len(c.buckets) {
			t.Errorf("flow %+v: %+v, want %+v", k, f, c)
		}
	}
	// A line over the limit is an error, not a silent cut.
	if _, err := istioLines(strings.NewReader("istio_requests_total{a=\"" + strings.Repeat("x", maxLine) + "\"} 1\n")); err == nil {
		t.Error("an over-long line was accepted")
	}
}

// TestScrapeErrors: failures name the URL and the cause.
func TestScrapeErrors(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/404":
			http.NotFound(w, r)
		case "/garbage":
			w.Header().Set("Content-Type", "text/plain")
			_, _ = w.Write([]byte("istio_requests_total{reporter=\"source\" 12\n"))
		}
	}))
	defer srv.Close()
	tests := []struct{ path, want string }{
		{"/404", "status 404"},
		{"/garbage", "parsing the Prometheus exposition"},
	}
	for _, tt := range tests {
		_, _, err := scrape(context.Background(), srv.Client(), srv.URL+tt.path)
		if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), tt.path) {
			t.Errorf("%s: error %v, want one naming the URL and %q", tt.path, err, tt.want)
		}
	}
}

// TestIsError: Kiali's failure classes.
func TestIsError(t *testing.T) {
	tests := []struct {
		labels map[string]string
		want   bool
	}{
		{map[string]string{"response_code": "200"}, false},
		{map[string]string{"response_code": "404"}, false},
		{map[string]string{"response_code": "503"}, true},
		{map[string]string{"response_code": "0"}, true},
		{map[string]string{"response_code": "200", "request_protocol": "grpc", "grpc_response_status": "0"}, false},
		{map[string]string{"response_code": "200", "request_protocol": "grpc", "grpc_response_status": "14"}, true},
		{map[string]string{"response_code": "200", "request_protocol": "grpc", "grpc_response_status": ""}, false},
	}
	for _, tt := range tests {
		if got := isError(tt.labels); got != tt.want {
			t.Errorf("isError(%v) = %v, want %v", tt.labels, got, tt.want)
		}
	}
}

// TestQuantile checks histogram_quantile's interpolation rules.
func TestQuantile(t *testing.T) {
	tests := []struct {
		name    string
		q       float64
		buckets map[float64]float64
		want    float64
		ok      bool
	}{
		{"empty", 0.99, nil, 0, false},
		{"no observations", 0.99, map[float64]float64{1: 0, inf: 0}, 0, false},
		{"no +Inf bucket", 0.99, map[float64]float64{1: 3}, 0, false},
		{"first bucket from 0", 0.5, map[float64]float64{10: 100, inf: 100}, 5, true},
		{"middle bucket", 0.99, map[float64]float64{10: 90, 25: 100, inf: 100}, 23.5, true},
		{"rank in +Inf: highest finite bound", 0.99, map[float64]float64{10: 50, 25: 60, inf: 100}, 25, true},
		{"all in +Inf only", 0.5, map[float64]float64{inf: 4}, 0, false},
		{"rates", 0.99, map[float64]float64{25: 0, 50: 2.5, inf: 2.5}, 49.75, true},
	}
	for _, tt := range tests {
		got, ok := quantile(tt.q, tt.buckets)
		if ok != tt.ok || math.Abs(got-tt.want) > 1e-9 {
			t.Errorf("%s: %v (%v), want %v (%v)", tt.name, got, ok, tt.want, tt.ok)
		}
	}
}

// FuzzDecodeSample: any exposition decodes or fails cleanly, and what
// decodes has no negative or NaN counts.
func FuzzDecodeSample(f *testing.F) {
	b, err := os.ReadFile("testdata/sidecar.prom")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add([]byte(dashboardtest.Exposition([]dashboardtest.Series{{Reporter: "destination", SourceWorkload: "a", SourceNamespace: "ns", DestinationWorkload: "b", DestinationNamespace: "ns", DestinationService: "b.ns.svc.cluster.local", ResponseCode: 200, Requests: 3, DurationMs: 7}}, 1, time.UnixMilli(1700000000000))))
	f.Add([]byte("istio_requests_total 1\n"))
	f.Add([]byte("# TYPE istio_request_duration_milliseconds histogram\nistio_request_duration_milliseconds_bucket{le=\"+Inf\"} NaN\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		// As scrape reads text: the line filter, then the parser.
		r, err := istioLines(bytes.NewReader(in))
		if err != nil {
			return
		}
		s, _, err := decodeSample(r, expfmt.NewFormat(expfmt.TypeTextPlain))
		if err != nil {
			return
		}
		for k, c := range s {
			if c.requests < 0 || math.IsNaN(c.requests) || c.errors > c.requests {
				t.Fatalf("flow %+v: %+v", k, c)
			}
			_, _ = quantile(0.99, c.buckets)
		}
	})
}

// TestServiceHost: destination_service from a Host header (with a port)
// names the same service as the cluster's host; other values are kept.
func TestServiceHost(t *testing.T) {
	for in, want := range map[string]string{
		"hello.default.svc.cluster.local:8080": "hello.default.svc.cluster.local",
		"hello.default.svc.cluster.local":      "hello.default.svc.cluster.local",
		"[fd00::1]:80":                         "fd00::1",
		"fd00::1":                              "fd00::1",
		"api.example.com:https":                "api.example.com:https",
		"unknown":                              "unknown",
		"PassthroughCluster":                   "PassthroughCluster",
	} {
		if got := serviceHost(in); got != want {
			t.Errorf("serviceHost(%q) = %q, want %q", in, got, want)
		}
	}
	// Both spellings of one flow add up.
	s := sample{}
	mf := &dto.MetricFamily{Name: proto.String(metricRequests), Type: dto.MetricType_COUNTER.Enum()}
	for _, host := range []string{"hello.default.svc.cluster.local", "hello.default.svc.cluster.local:8080"} {
		mf.Metric = append(mf.Metric, &dto.Metric{Label: []*dto.LabelPair{
			{Name: proto.String(labelReporter), Value: proto.String("source")},
			{Name: proto.String(labelDstService), Value: proto.String(host)},
		}, Counter: &dto.Counter{Value: proto.Float64(3)}})
	}
	addRequests(s, mf)
	if len(s) != 1 {
		t.Fatalf("%d flows, want 1: %v", len(s), s)
	}
	for k, c := range s {
		if k.DstService != "hello.default.svc.cluster.local" || c.requests != 6 {
			t.Errorf("flow %+v: %v requests, want hello.default.svc.cluster.local with 6", k, c.requests)
		}
	}
}
