// Package otlptest is an OTLP trace receiver for tests: a real gRPC
// server implementing opentelemetry.proto.collector.trace.v1.TraceService
// and an HTTP handler for POST /v1/traces (protobuf), both on loopback,
// that keep every span they receive.
package otlptest

import (
	"context"
	"encoding/hex"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"

	collectorpb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
)

// Span is one received span, with its ids in hex and its resource's
// service.name.
type Span struct {
	TraceID, SpanID, ParentID string
	Name                      string
	Kind                      tracepb.Span_SpanKind
	Service                   string
	Attributes                map[string]string
	Status                    tracepb.Status_StatusCode
	Via                       string // "grpc" or "http"
}

// Receiver collects spans. Safe for concurrent use.
type Receiver struct {
	collectorpb.UnimplementedTraceServiceServer
	// GRPCAddr and HTTPAddr are the loopback listeners' addresses.
	GRPCAddr, HTTPAddr *net.TCPAddr

	mu    sync.Mutex
	spans []Span
}

// Start serves a receiver until the test ends.
func Start(t testing.TB) *Receiver {
	t.Helper()
	r := &Receiver{}
	gl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r.GRPCAddr, r.HTTPAddr = gl.Addr().(*net.TCPAddr), hl.Addr().(*net.TCPAddr)
	gs := grpc.NewServer()
	collectorpb.RegisterTraceServiceServer(gs, r)
	go gs.Serve(gl)
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/traces", r.serveHTTP)
	hs := &http.Server{Handler: mux}
	go hs.Serve(hl)
	t.Cleanup(func() {
		gs.Stop()
		hs.Close()
	})
	return r
}

// Export implements the OTLP gRPC TraceService.
func (r *Receiver) Export(_ context.Context, req *collectorpb.ExportTraceServiceRequest) (*collectorpb.ExportTraceServiceResponse, error) {
	r.add(req, "grpc")
	return &collectorpb.ExportTraceServiceResponse{}, nil
}

// serveHTTP is OTLP/HTTP with a protobuf body.
func (r *Receiver) serveHTTP(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(req.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var msg collectorpb.ExportTraceServiceRequest
	if err := proto.Unmarshal(body, &msg); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	r.add(&msg, "http")
	out, _ := proto.Marshal(&collectorpb.ExportTraceServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	w.Write(out)
}

func (r *Receiver) add(req *collectorpb.ExportTraceServiceRequest, via string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rs := range req.GetResourceSpans() {
		service := ""
		for _, kv := range rs.GetResource().GetAttributes() {
			if kv.GetKey() == "service.name" {
				service = kv.GetValue().GetStringValue()
			}
		}
		for _, ss := range rs.GetScopeSpans() {
			for _, s := range ss.GetSpans() {
				sp := Span{
					TraceID: hex.EncodeToString(s.GetTraceId()), SpanID: hex.EncodeToString(s.GetSpanId()),
					ParentID: hex.EncodeToString(s.GetParentSpanId()), Name: s.GetName(), Kind: s.GetKind(),
					Service: service, Attributes: map[string]string{}, Status: s.GetStatus().GetCode(), Via: via,
				}
				for _, kv := range s.GetAttributes() {
					sp.Attributes[kv.GetKey()] = kv.GetValue().GetStringValue()
				}
				r.spans = append(r.spans, sp)
			}
		}
	}
}

// Spans returns a copy of the spans received so far.
func (r *Receiver) Spans() []Span {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Span(nil), r.spans...)
}
