package dashboard

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"

	"github.com/weftmesh/weft/internal/dashboard/dashboardtest"
)

// BenchmarkDecodeSample measures one scrape's parsing for a busy sidecar:
// 50 peers × 4 response codes (200 series, each with its 20-bucket
// histogram). The collector runs it once per proxy per interval, off any
// request path.
func BenchmarkDecodeSample(b *testing.B) {
	var series []dashboardtest.Series
	for peer := range 50 {
		for _, code := range []int{200, 404, 503, 0} {
			series = append(series, dashboardtest.Series{
				Reporter: "destination", SourceWorkload: fmt.Sprintf("client-%d", peer), SourceNamespace: "default",
				DestinationWorkload: "server", DestinationNamespace: "default", DestinationService: "server.default.svc.cluster.local",
				ResponseCode: code, Requests: 1000, DurationMs: 12,
			})
		}
	}
	text := dashboardtest.Exposition(series, 1, time.Time{})
	b.SetBytes(int64(len(text)))
	b.ReportAllocs()
	for b.Loop() {
		s, _, err := decodeSample(strings.NewReader(text), expfmt.NewFormat(expfmt.TypeTextPlain))
		if err != nil || len(s) != 50 {
			b.Fatalf("%d flows, %v", len(s), err)
		}
	}
}

// BenchmarkScrapeFilter is a sidecar of a large mesh: 5 Istio series
// among 6,000 Envoy cluster stats. The line filter hands the parser only
// the Istio families.
func BenchmarkScrapeFilter(b *testing.B) {
	text := noisyExposition(5, 6000)
	b.SetBytes(int64(len(text)))
	b.ReportAllocs()
	for b.Loop() {
		r, err := istioLines(strings.NewReader(text))
		if err != nil {
			b.Fatal(err)
		}
		s, _, err := decodeSample(r, expfmt.NewFormat(expfmt.TypeTextPlain))
		if err != nil || len(s) != 5 {
			b.Fatalf("%d flows, %v", len(s), err)
		}
	}
}

// noisyExposition is istio flows among envoy Envoy cluster stats.
func noisyExposition(istio, envoy int) string {
	var series []dashboardtest.Series
	for i := range istio {
		series = append(series, dashboardtest.Series{
			Reporter: "source", SourceWorkload: "client", SourceNamespace: "default",
			DestinationWorkload: fmt.Sprintf("server-%d", i), DestinationNamespace: "default",
			DestinationService: fmt.Sprintf("server-%d.default.svc.cluster.local", i), ResponseCode: 200, Requests: 10, DurationMs: 3,
		})
	}
	var sb strings.Builder
	sb.WriteString("# TYPE envoy_cluster_upstream_cx_total counter\n")
	for i := range envoy {
		fmt.Fprintf(&sb, "envoy_cluster_upstream_cx_total{cluster_name=\"outbound|8080||svc-%d.default.svc.cluster.local\"} %d\n", i, i)
	}
	sb.WriteString(dashboardtest.Exposition(series, 1, time.Time{}))
	return sb.String()
}
