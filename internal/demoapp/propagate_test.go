package demoapp

import (
	"context"
	"net/http"
	"testing"

	"google.golang.org/grpc/metadata"
)

// traceIn is an incoming request's trace headers (Istio's list) plus one
// that must not be propagated.
var traceIn = map[string]string{
	"x-request-id":      "0f5c5a2e-1",
	"traceparent":       "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
	"tracestate":        "weft=1",
	"x-b3-traceid":      "80f198ee56343ba864fe8b2a57d3eff7",
	"x-b3-spanid":       "e457b5a2e4d86bd1",
	"x-b3-parentspanid": "05e3ac9a4f6e3b90",
	"x-b3-sampled":      "1",
	"x-b3-flags":        "0",
	"b3":                "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1",
	"end-user":          "jason",
}

func TestPropagateHTTPToHTTPAndGRPC(t *testing.T) {
	in := http.Header{}
	for k, v := range traceIn {
		in.Set(k, v)
	}
	in.Set("authorization", "Bearer secret") // never forwarded
	h := FromHTTP(in)
	if h.User() != "jason" {
		t.Fatalf("User() = %q", h.User())
	}

	out := http.Header{}
	h.SetHTTP(out)
	if len(out) != len(traceIn) {
		t.Errorf("outgoing HTTP headers %v, want exactly %d", out, len(traceIn))
	}
	for k, v := range traceIn {
		if got := out.Get(k); got != v {
			t.Errorf("HTTP %s = %q, want %q", k, got, v)
		}
	}

	// gRPC: the outgoing metadata, received by a server, reads back.
	ctx := h.OutgoingGRPC(context.Background())
	md, _ := metadata.FromOutgoingContext(ctx)
	back := FromGRPC(metadata.NewIncomingContext(context.Background(), md))
	if back != h {
		t.Errorf("through gRPC metadata: %v, want %v", back, h)
	}
	if md.Get("authorization") != nil {
		t.Error("authorization was propagated")
	}
}

func TestPropagateEmpty(t *testing.T) {
	var h Headers
	out := http.Header{}
	h.SetHTTP(out)
	if len(out) != 0 {
		t.Errorf("no headers in, %v out", out)
	}
	ctx := context.Background()
	if h.OutgoingGRPC(ctx) != ctx {
		t.Error("OutgoingGRPC with nothing to send changed the context")
	}
	if FromGRPC(ctx) != h {
		t.Error("FromGRPC without metadata is not empty")
	}
}

func BenchmarkFromHTTP(b *testing.B) {
	in := http.Header{}
	for k, v := range traceIn {
		in.Set(k, v)
	}
	b.ReportAllocs()
	for b.Loop() {
		h := FromHTTP(in)
		if h.User() == "" {
			b.Fatal("lost end-user")
		}
	}
}
