package istiostats

import (
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/weftmesh/weft/internal/proxy/httpfilter"
	"github.com/weftmesh/weft/internal/proxy/stats"
)

// stream prepares a completed stream as the connection manager hands it
// to the filter, with the source's metadata exchange headers mx.
func stream(t testing.TB, mx []byte, hostMD *corev3.Metadata) *httpfilter.Stream {
	s := &httpfilter.Stream{Conn: mtlsConn("spiffe://cluster.local/ns/default/sa/sleep")}
	s.Req.Authority = []byte("hello.default.svc.cluster.local:8080")
	s.Info.ResponseCode, s.Info.Duration, s.Info.BytesSent = 200, 3*time.Millisecond, 2
	s.Info.UpstreamHostMetadata = hostMD
	return s
}

func recorder(t testing.TB) (*Recorder, *stats.Store) {
	st := stats.NewStore()
	rec, err := New(Options{Stats: st, Node: node(t, map[string]any{"app": "hello", "version": "v1"})})
	if err != nil {
		t.Fatal(err)
	}
	return rec, st
}

// run passes s through the filter once, as the connection manager does.
func run(f *HTTPFilter, s *httpfilter.Stream, mx []byte) {
	s.Req.Fields = s.Req.Fields[:0]
	if mx != nil {
		s.Req.AddRef(mxHeaderName, mx)
	}
	s.Info.DownstreamPeer = nil
	f.DecodeHeaders(s)
	f.OnStreamDone(s)
}

func endpointMD() *corev3.Metadata {
	st, _ := structpb.NewStruct(map[string]any{"workload": "hello-v1;default;hello;v1;Kubernetes", "app": "hello", "version": "v1"})
	return &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{"istio": st}}
}

// TestRecordingAllocatesNothing: once a label set is known, recording a
// stream allocates nothing, on either side; the series counts each
// stream once and the application-bound request loses the headers.
func TestRecordingAllocatesNothing(t *testing.T) {
	for _, r := range []Reporter{Source, Destination} {
		t.Run(r.String(), func(t *testing.T) {
			rec, st := recorder(t)
			mx := header(t, Workload{Name: "sleep", Namespace: "default", ServiceAccount: "sleep"})
			f := &HTTPFilter{rec: rec, reporter: r, hostFallback: true}
			s := stream(t, mx, endpointMD())
			run(f, s, mx)
			if allocs := testing.AllocsPerRun(100, func() { run(f, s, mx) }); allocs != 0 {
				t.Errorf("%v allocations per stream, want 0", allocs)
			}
			var total int64
			for _, m := range st.Snapshot() {
				if m.PromName == RequestsTotal {
					total += m.Value()
				}
			}
			if total != 102 { // 1 + AllocsPerRun's warm-up run + 100
				t.Errorf("istio_requests_total = %d, want 102", total)
			}
			if got := s.Req.Count(headerPeerMetadata); r == Destination && got != 0 || r == Source && got != 1 {
				t.Errorf("%d x-envoy-peer-metadata headers after the filter", got)
			}
		})
	}
}

// BenchmarkRecord is the filter's cost per stream (DecodeHeaders and
// OnStreamDone) for a known label set, for HTTP and gRPC streams (the
// latter also add their message counts), the source side with the
// principals of an mTLS upstream connection.
func BenchmarkRecord(b *testing.B) {
	for _, r := range []Reporter{Source, Destination} {
		for _, grpc := range []bool{false, true} {
			name := r.String() + "/http"
			if grpc {
				name = r.String() + "/grpc"
			}
			b.Run(name, func(b *testing.B) {
				rec, _ := recorder(b)
				mx, _ := EncodeHeader(&Workload{Name: "sleep", Namespace: "default", ServiceAccount: "sleep"})
				f := &HTTPFilter{rec: rec, reporter: r, hostFallback: true}
				s := stream(b, mx, endpointMD())
				s.Info.UpstreamLocalPrincipal = "spiffe://cluster.local/ns/default/sa/sleep"
				s.Info.UpstreamPeerPrincipal = "spiffe://cluster.local/ns/default/sa/hello"
				if grpc {
					grpcStream(s, 1, 1)
				}
				b.ReportAllocs()
				for b.Loop() {
					run(f, s, mx)
				}
			})
		}
	}
}
