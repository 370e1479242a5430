package dashboard

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"sort"
	"strconv"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
)

// Istio's standard metric and label names (istio.io "Istio Standard
// Metrics"), as the proxies expose them on :15090/stats/prometheus.
const (
	metricRequests = "istio_requests_total"
	metricDuration = "istio_request_duration_milliseconds"

	labelReporter       = "reporter"
	labelSrcWorkload    = "source_workload"
	labelSrcNamespace   = "source_workload_namespace"
	labelDstWorkload    = "destination_workload"
	labelDstNamespace   = "destination_workload_namespace"
	labelDstService     = "destination_service"
	labelResponseCode   = "response_code"
	labelGRPCStatus     = "grpc_response_status"
	labelRequestProto   = "request_protocol"
	reporterSource      = "source"
	reporterDestination = "destination"
	unknown             = "unknown"
)

// maxScrapeBytes bounds one scrape's body: a sidecar's Istio metrics are
// kilobytes; a runaway endpoint must not exhaust the control plane.
const maxScrapeBytes = 16 << 20

// flowKey identifies one flow of requests: who called which service and
// which workload answered, as one reporter saw it (Istio's labels).
type flowKey struct {
	Reporter     string
	SrcWorkload  string
	SrcNamespace string
	DstService   string
	DstWorkload  string
	DstNamespace string
}

// counts are the cumulative counters of one flow in one scrape, summed
// over the series that share the flow's labels (response codes, flags,
// protocols, ...).
type counts struct {
	requests float64
	errors   float64
	// buckets are istio_request_duration_milliseconds's cumulative bucket
	// counts by upper bound (+Inf included).
	buckets map[float64]float64
}

// sample is the result of one scrape of one proxy.
type sample map[flowKey]*counts

func (s sample) flow(k flowKey) *counts {
	c := s[k]
	if c == nil {
		c = &counts{}
		s[k] = c
	}
	return c
}

// scrape fetches url and returns the Istio flows it exposes and their
// timestamp (zero when the exposition has none). It accepts the
// Prometheus text format and the delimited protobuf format (whatever the
// endpoint answers; Envoy serves text).
func scrape(ctx context.Context, client *http.Client, url string) (sample, time.Time, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, time.Time{}, err
	}
	req.Header.Set("Accept", string(expfmt.NewFormat(expfmt.TypeTextPlain)))
	resp, err := client.Do(req)
	if err != nil {
		return nil, time.Time{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, time.Time{}, fmt.Errorf("GET %s: status %s", url, resp.Status)
	}
	format := expfmt.ResponseFormat(resp.Header)
	if format == expfmt.FmtUnknown {
		format = expfmt.NewFormat(expfmt.TypeTextPlain)
	}
	body := io.Reader(io.LimitReader(resp.Body, maxScrapeBytes))
	if format.FormatType() == expfmt.TypeTextPlain {
		if body, err = istioLines(body); err != nil {
			return nil, time.Time{}, fmt.Errorf("GET %s: %w", url, err)
		}
	}
	s, at, err := decodeSample(body, format)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("GET %s: %w", url, err)
	}
	return s, at, nil
}

// maxLine bounds one exposition line (Istio's series are about 1 KiB).
const maxLine = 1 << 20

// istioLines keeps the lines of a text exposition that belong to the
// families the dashboard reads (samples, # TYPE and # HELP), so that the
// Prometheus parser does not build the thousands of Envoy series a
// sidecar in a large mesh also exposes. The parser still reads every
// line kept; nothing is parsed by hand.
func istioLines(r io.Reader) (io.Reader, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxLine)
	var out bytes.Buffer
	for sc.Scan() {
		line := sc.Bytes()
		name := line
		if len(line) > 0 && line[0] == '#' {
			name = bytes.TrimPrefix(bytes.TrimPrefix(line, []byte("# TYPE ")), []byte("# HELP "))
		}
		if bytes.HasPrefix(name, []byte(metricRequests)) || bytes.HasPrefix(name, []byte(metricDuration)) {
			out.Write(line)
			out.WriteByte('\n')
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading the Prometheus exposition: %w", err)
	}
	return &out, nil
}

// decodeSample parses an exposition and keeps the Istio request metrics
// and their timestamp: the first one the exposition gives its Istio
// samples, zero when it gives none (Envoy gives none: the scrape's start
// stands for it). Prometheus honours exposed timestamps the same way.
func decodeSample(r io.Reader, format expfmt.Format) (sample, time.Time, error) {
	dec := expfmt.NewDecoder(r, format)
	s := sample{}
	var at time.Time
	for {
		var mf dto.MetricFamily
		err := dec.Decode(&mf)
		if errors.Is(err, io.EOF) {
			return s, at, nil
		}
		if err != nil {
			return nil, time.Time{}, fmt.Errorf("parsing the Prometheus exposition: %w", err)
		}
		switch mf.GetName() {
		case metricRequests:
			addRequests(s, &mf)
		case metricDuration:
			addDurations(s, &mf)
		default:
			continue
		}
		if ms := firstTimestamp(&mf); at.IsZero() && ms != 0 {
			at = time.UnixMilli(ms)
		}
	}
}

// firstTimestamp is the first sample timestamp of a family (0: none).
func firstTimestamp(mf *dto.MetricFamily) int64 {
	for _, m := range mf.GetMetric() {
		if ms := m.GetTimestampMs(); ms != 0 {
			return ms
		}
	}
	return 0
}

// addRequests adds istio_requests_total (a counter; the untyped form a
// text exposition without # TYPE gives is read too).
func addRequests(s sample, mf *dto.MetricFamily) {
	for _, m := range mf.GetMetric() {
		v := m.GetCounter().GetValue()
		if m.GetCounter() == nil {
			v = m.GetUntyped().GetValue()
		}
		if math.IsNaN(v) || v < 0 {
			continue
		}
		labels := labelMap(m)
		c := s.flow(keyOf(labels))
		c.requests += v
		if isError(labels) {
			c.errors += v
		}
	}
}

// addDurations adds istio_request_duration_milliseconds's buckets.
func addDurations(s sample, mf *dto.MetricFamily) {
	for _, m := range mf.GetMetric() {
		h := m.GetHistogram()
		if h == nil {
			continue
		}
		c := s.flow(keyOf(labelMap(m)))
		if c.buckets == nil {
			c.buckets = map[float64]float64{}
		}
		for _, b := range h.GetBucket() {
			if math.IsInf(b.GetUpperBound(), 1) {
				continue // the +Inf bucket is the sample count, added below
			}
			n := float64(b.GetCumulativeCount())
			if b.CumulativeCountFloat != nil {
				n = b.GetCumulativeCountFloat()
			}
			c.buckets[b.GetUpperBound()] += n
		}
		// The +Inf bucket equals _count; the protobuf format leaves it
		// out of the buckets.
		n := float64(h.GetSampleCount())
		if h.SampleCountFloat != nil {
			n = h.GetSampleCountFloat()
		}
		c.buckets[math.Inf(1)] += n
	}
}

func labelMap(m *dto.Metric) map[string]string {
	out := make(map[string]string, len(m.GetLabel()))
	for _, l := range m.GetLabel() {
		out[l.GetName()] = l.GetValue()
	}
	return out
}

// keyOf reads a flow's identity; absent labels read as Istio's "unknown".
func keyOf(l map[string]string) flowKey {
	get := func(name string) string {
		if v := l[name]; v != "" {
			return v
		}
		return unknown
	}
	return flowKey{
		Reporter:     get(labelReporter),
		SrcWorkload:  get(labelSrcWorkload),
		SrcNamespace: get(labelSrcNamespace),
		DstService:   serviceHost(get(labelDstService)),
		DstWorkload:  get(labelDstWorkload),
		DstNamespace: get(labelDstNamespace),
	}
}

// serviceHost is destination_service without a port. Istio's stats
// label a request with its cluster's service host when the request got
// that far, else with the Host header as sent ("hello.default.svc
// .cluster.local:8080": requests a fault aborted, which weft-proxy, unlike
// Envoy, labels before the router picks the cluster); both name the same
// service node. A value with a colon that is not host:port (an IPv6
// address) is kept.
func serviceHost(v string) string {
	host, port, err := net.SplitHostPort(v)
	if err != nil || host == "" || port == "" {
		return v
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return v
	}
	return host
}

// isError says whether a series counts failed requests, as Kiali's graph
// does: an HTTP 5xx, no response at all (response_code 0: reset,
// connect failure), or for gRPC a non-OK grpc-status.
func isError(l map[string]string) bool {
	code, err := strconv.Atoi(l[labelResponseCode])
	if err == nil && (code == 0 || code >= 500) {
		return true
	}
	if l[labelRequestProto] == "grpc" {
		st := l[labelGRPCStatus]
		return st != "" && st != "0"
	}
	return false
}

// bucket is one histogram bucket: cumulative count up to le.
type bucket struct {
	le    float64
	count float64
}

// sortedBuckets returns the buckets in bound order.
func sortedBuckets(m map[float64]float64) []bucket {
	out := make([]bucket, 0, len(m))
	for le, n := range m {
		out = append(out, bucket{le, n})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].le < out[j].le })
	return out
}

// quantile is Prometheus' histogram_quantile over cumulative buckets (of
// counts or of rates): linear interpolation inside the bucket that holds
// the rank, 0 as the lower bound of the first bucket, and the highest
// finite bound when the rank falls in the +Inf bucket. ok is false
// without observations.
func quantile(q float64, m map[float64]float64) (v float64, ok bool) {
	bs := sortedBuckets(m)
	if len(bs) == 0 || !math.IsInf(bs[len(bs)-1].le, 1) {
		return 0, false
	}
	total := bs[len(bs)-1].count
	if total <= 0 {
		return 0, false
	}
	rank := q * total
	lower, below := 0.0, 0.0
	for i, b := range bs {
		if b.count >= rank {
			if math.IsInf(b.le, 1) {
				if i == 0 {
					return 0, false
				}
				return bs[i-1].le, true
			}
			if b.count == below {
				return b.le, true
			}
			return lower + (b.le-lower)*(rank-below)/(b.count-below), true
		}
		lower, below = b.le, b.count
	}
	return 0, false // unreachable: the +Inf bucket holds every observation
}
