package tracing

import (
	"context"
	"net"
	"net/netip"
	"strconv"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tracev3 "github.com/envoyproxy/go-control-plane/envoy/config/trace/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tracingv3 "github.com/envoyproxy/go-control-plane/envoy/type/tracing/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/weftmesh/weft/internal/proxy/headers"
	"github.com/weftmesh/weft/internal/proxy/streaminfo"
	"github.com/weftmesh/weft/internal/proxy/tracing/otlptest"
)

func TestDecide(t *testing.T) {
	const rid = "00001388-0000-4000-8000-000000000000" // integer 0x1388 = 5000
	cases := []struct {
		name    string
		h       *headers.Map
		c       SamplingConfig
		want    Reason
		wantRid byte // x-request-id[14] afterwards
	}{
		{"random below", mapOf("x-request-id", rid), SamplingConfig{10000, 5001, 10000}, Sampling, '9'},
		{"random above", mapOf("x-request-id", rid), SamplingConfig{10000, 5000, 10000}, NotTraceable, '4'},
		{"client forced", mapOf("x-request-id", rid, "x-client-trace-id", "x"), SamplingConfig{10000, 0, 10000}, ClientForced, 'b'},
		{"client sampling excludes", mapOf("x-request-id", rid, "x-client-trace-id", "x"), SamplingConfig{100, 0, 10000}, NotTraceable, '4'},
		{"service forced", mapOf("x-request-id", rid, "x-envoy-force-trace", "1"), SamplingConfig{10000, 0, 10000}, ServiceForced, 'a'},
		{"overall caps", mapOf("x-request-id", rid), SamplingConfig{10000, 10000, 4000}, NotTraceable, '4'},
		{"previous hop decided", mapOf("x-request-id", "00001388-0000-9000-8000-000000000000"), SamplingConfig{10000, 0, 10000}, Sampling, '9'},
		{"previous decision capped", mapOf("x-request-id", "00001388-0000-9000-8000-000000000000"), SamplingConfig{10000, 0, 0}, NotTraceable, '4'},
		{"no request id", mapOf(), SamplingConfig{10000, 10000, 10000}, NotTraceable, 0},
		{"request id not hex", mapOf("x-request-id", "zzzzzzzz-0000-4000-8000-000000000000"), SamplingConfig{10000, 10000, 10000}, NotTraceable, '4'},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := Decide(c.h, c.c); got != c.want {
				t.Errorf("Decide = %d, want %d", got, c.want)
			}
			if r := c.h.Get("x-request-id"); c.wantRid != 0 && r[14] != c.wantRid {
				t.Errorf("x-request-id %s: position 14 = %c, want %c", r, r[14], c.wantRid)
			}
		})
	}
}

// TestDecideRate checks random sampling over random request ids.
// Tolerance: 10 % sampling over 20000 ids has a standard deviation of
// about 42; ±300 is more than 7 sigma.
func TestDecideRate(t *testing.T) {
	n := 0
	for i := 0; i < 20000; i++ {
		tid := newTraceID()
		var rid [36]byte
		encodeHex(rid[:], tid[:]) // hex digits only; the shape is what Decide reads
		rid[14] = '4'
		h := mapOf("x-request-id", string(rid[:]))
		if Decide(h, SamplingConfig{10000, 1000, 10000}) == Sampling {
			n++
		}
	}
	if n < 2000-300 || n > 2000+300 {
		t.Fatalf("sampled %d of 20000 at 10 %%, want 2000 ± 300", n)
	}
}

func otelProvider(t testing.TB, grpcCluster, httpCluster, uri string) *tracev3.Tracing_Http {
	c := &tracev3.OpenTelemetryConfig{ServiceName: "svc-a"}
	if grpcCluster != "" {
		c.GrpcService = &corev3.GrpcService{TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{
			EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{ClusterName: grpcCluster}}}
	} else {
		c.HttpService = &corev3.HttpService{HttpUri: &corev3.HttpUri{
			Uri: uri, HttpUpstreamType: &corev3.HttpUri_Cluster{Cluster: httpCluster}}}
	}
	a, err := anypb.New(c)
	if err != nil {
		t.Fatal(err)
	}
	return &tracev3.Tracing_Http{Name: OpenTelemetryName, ConfigType: &tracev3.Tracing_Http_TypedConfig{TypedConfig: a}}
}

// dialer maps cluster names to loopback addresses.
func dialer(m map[string]string) ClusterDialer {
	return func(ctx context.Context, cluster string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", m[cluster])
	}
}

func TestTracerExportsOTLP(t *testing.T) {
	rcv := otlptest.Start(t)
	ps := NewProviders(ProvidersOptions{Dial: dialer(map[string]string{
		"grpc-collector": rcv.GRPCAddr.String(), "http-collector": rcv.HTTPAddr.String(),
	}), FlushInterval: 50 * time.Millisecond})
	t.Cleanup(func() { ps.Shutdown(context.Background()) })
	for _, via := range []string{"grpc", "http"} {
		t.Run(via, func(t *testing.T) {
			p := otelProvider(t, "grpc-collector", "", "")
			if via == "http" {
				p = otelProvider(t, "", "http-collector", "http://collector:4318/v1/traces")
			}
			tr, err := New(&hcmv3.HttpConnectionManager_Tracing{
				Provider:       p,
				RandomSampling: &typev3.Percent{Value: 100},
				CustomTags: []*tracingv3.CustomTag{
					{Tag: "lit", Type: &tracingv3.CustomTag_Literal_{Literal: &tracingv3.CustomTag_Literal{Value: "v"}}},
					{Tag: "hdr", Type: &tracingv3.CustomTag_RequestHeader{RequestHeader: &tracingv3.CustomTag_Header{Name: "X-Tenant", DefaultValue: "none"}}},
				},
			}, Options{Providers: ps, Direction: Outbound, NodeID: "node-1", Zone: "z1"})
			if err != nil {
				t.Fatal(err)
			}
			parent := SpanContext{TraceID: newTraceID(), SpanID: newSpanID(), Sampled: true, HasSampled: true}
			r := &headers.Request{Method: []byte("GET"), Scheme: []byte("http"), Authority: []byte("b.default:80"), Path: []byte("/x")}
			r.Set("x-request-id", "00001388-0000-4000-8000-000000000000")
			r.Set("x-tenant", "t1")
			Inject(&r.Map, W3C, &parent, SpanID{})
			var sp Span
			tr.Start(&sp, r, time.Now())
			out, ok := Extract(&r.Map)
			if !ok || out.TraceID != parent.TraceID || out.SpanID == parent.SpanID || !out.Sampled {
				t.Fatalf("upstream context %+v, want trace %x with a new span id, sampled", out, parent.TraceID)
			}
			info := &streaminfo.Info{ResponseCode: 503, UpstreamCluster: "outbound|80||b.default", Duration: time.Millisecond,
				DownstreamRemote: netip.MustParseAddrPort("127.0.0.1:5000")}
			tr.Finish(&sp, r, info)
			var got otlptest.Span
			deadline := time.Now().Add(10 * time.Second)
			for got.SpanID == "" && time.Now().Before(deadline) {
				for _, s := range rcv.Spans() {
					if s.Via == via && s.SpanID == hexOf(out.SpanID[:]) {
						got = s
					}
				}
				time.Sleep(10 * time.Millisecond) // polling the receiver with a deadline
			}
			if got.SpanID == "" {
				t.Fatalf("span %x not received over %s within 10 s", out.SpanID, via)
			}
			want := map[string]string{
				"http.status_code": "503", "upstream_cluster": "outbound|80||b.default", "error": "true",
				"component": "proxy", "node_id": "node-1", "zone": "z1", "http.method": "GET",
				"http.url": "http://b.default:80/x", "lit": "v", "hdr": "t1", "response_flags": "-",
				// The sampling decision is packed into the request id.
				"guid:x-request-id": "00001388-0000-9000-8000-000000000000",
			}
			for k, v := range want {
				if got.Attributes[k] != v {
					t.Errorf("tag %s = %q, want %q", k, got.Attributes[k], v)
				}
			}
			if got.TraceID != hexOf(parent.TraceID[:]) || got.ParentID != hexOf(parent.SpanID[:]) ||
				got.Kind != tracepb.Span_SPAN_KIND_CLIENT || got.Name != "egress b.default:80" || got.Service != "svc-a" ||
				got.Status != tracepb.Status_STATUS_CODE_ERROR {
				t.Errorf("span %+v: want trace %x parent %x, CLIENT, egress b.default:80, svc-a, error", got, parent.TraceID, parent.SpanID)
			}
		})
	}
}

func TestTracerZipkinPropagatesB3(t *testing.T) {
	zc, _ := anypb.New(&tracev3.ZipkinConfig{CollectorCluster: "zipkin", CollectorEndpoint: "/api/v2/spans",
		CollectorEndpointVersion: tracev3.ZipkinConfig_HTTP_JSON})
	ps := NewProviders(ProvidersOptions{Dial: dialer(nil)})
	t.Cleanup(func() { ps.Shutdown(context.Background()) })
	tr, err := New(&hcmv3.HttpConnectionManager_Tracing{
		Provider:       &tracev3.Tracing_Http{Name: ZipkinName, ConfigType: &tracev3.Tracing_Http_TypedConfig{TypedConfig: zc}},
		RandomSampling: &typev3.Percent{Value: 0},
	}, Options{Providers: ps})
	if err != nil {
		t.Fatal(err)
	}
	r := &headers.Request{}
	r.Set("x-request-id", "00001388-0000-4000-8000-000000000000")
	r.Set("traceparent", "00-"+tid32+"-"+sid16+"-01") // W3C in, B3 out
	var sp Span
	tr.Start(&sp, r, time.Now())
	if string(r.Get("x-b3-traceid")) != tid32 || string(r.Get("x-b3-parentspanid")) != sid16 ||
		string(r.Get("x-b3-sampled")) != "1" || len(r.Get("x-b3-spanid")) != 16 {
		t.Fatalf("B3 headers %q", r.Fields)
	}
}

func TestNewErrors(t *testing.T) {
	ps := NewProviders(ProvidersOptions{Dial: dialer(nil)})
	bad, _ := anypb.New(&tracev3.OpenTelemetryConfig{})
	cases := []struct {
		name string
		t    *hcmv3.HttpConnectionManager_Tracing
		want string
	}{
		{"no provider", &hcmv3.HttpConnectionManager_Tracing{}, "tracing.provider: required"},
		{"no service", &hcmv3.HttpConnectionManager_Tracing{Provider: &tracev3.Tracing_Http{Name: "x",
			ConfigType: &tracev3.Tracing_Http_TypedConfig{TypedConfig: bad}}}, "set grpc_service or http_service"},
		{"metadata tag", &hcmv3.HttpConnectionManager_Tracing{CustomTags: []*tracingv3.CustomTag{{Tag: "m",
			Type: &tracingv3.CustomTag_Metadata_{Metadata: &tracingv3.CustomTag_Metadata{}}}}}, "tracing.custom_tags[0]"},
	}
	for _, c := range cases {
		_, err := New(c.t, Options{Providers: ps})
		if err == nil || !contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want it to contain %q", c.name, err, c.want)
		}
	}
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}

// BenchmarkStartFinishNotSampled is the per-request cost of tracing that
// samples nothing: it must not allocate once the header arena has grown.
func BenchmarkStartFinishNotSampled(b *testing.B) {
	ps := NewProviders(ProvidersOptions{Dial: dialer(nil)})
	defer ps.Shutdown(context.Background())
	tr, err := New(&hcmv3.HttpConnectionManager_Tracing{Provider: otelProvider(b, "c", "", ""),
		RandomSampling: &typev3.Percent{Value: 0}}, Options{Providers: ps})
	if err != nil {
		b.Fatal(err)
	}
	r := &headers.Request{Method: []byte("GET"), Authority: []byte("a"), Path: []byte("/")}
	info := &streaminfo.Info{ResponseCode: 200}
	var rids [10]string
	for i := range rids {
		rids[i] = "00001388-0000-4000-8000-00000000000" + strconv.Itoa(i)
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		r.Map.Reset()
		r.Set("x-request-id", rids[i%10])
		r.Set("traceparent", "00-"+tid32+"-"+sid16+"-00")
		var sp Span
		tr.Start(&sp, r, time.Time{})
		tr.Finish(&sp, r, info)
	}
}

// BenchmarkStartFinishSampled is the cost of a sampled span (recorded
// through the SDK and queued for export).
func BenchmarkStartFinishSampled(b *testing.B) {
	ps := NewProviders(ProvidersOptions{Dial: dialer(nil)})
	defer ps.Shutdown(context.Background())
	tr, err := New(&hcmv3.HttpConnectionManager_Tracing{Provider: otelProvider(b, "c", "", "")}, Options{Providers: ps})
	if err != nil {
		b.Fatal(err)
	}
	r := &headers.Request{Method: []byte("GET"), Authority: []byte("a"), Path: []byte("/")}
	info := &streaminfo.Info{ResponseCode: 200}
	b.ReportAllocs()
	for b.Loop() {
		r.Map.Reset()
		r.Set("x-request-id", "00001388-0000-4000-8000-000000000000")
		var sp Span
		tr.Start(&sp, r, time.Now())
		tr.Finish(&sp, r, info)
	}
}
