package demoapp

import (
	"context"
	"net/http"

	"google.golang.org/grpc/metadata"
)

// propagated are the headers copied from an incoming request to every
// call it causes: Istio's list for Envoy's tracers (request id, W3C Trace
// Context, Zipkin B3 multi and single header) and bookinfo's end-user,
// on which the request-routing task matches. Lower case: they are gRPC
// metadata keys as well.
var propagated = [...]string{
	"x-request-id",
	"traceparent",
	"tracestate",
	"x-b3-traceid",
	"x-b3-spanid",
	"x-b3-parentspanid",
	"x-b3-sampled",
	"x-b3-flags",
	"b3",
	"end-user",
}

// canonicalKeys are the propagated names in net/http's canonical form,
// computed once (read-only).
var canonicalKeys = func() (c [len(propagated)]string) {
	for i, k := range propagated {
		c[i] = http.CanonicalHeaderKey(k)
	}
	return c
}()

// Headers holds the propagated header values of one request, in the
// order of the propagated list; "" is absent. A fixed array: extracting
// and applying it allocates nothing beyond the header map's own values.
type Headers [len(propagated)]string

// FromHTTP extracts the propagated headers of an incoming HTTP request.
func FromHTTP(h http.Header) Headers {
	var p Headers
	for i, k := range canonicalKeys {
		if v := h[k]; len(v) > 0 {
			p[i] = v[0]
		}
	}
	return p
}

// FromGRPC extracts the propagated headers of an incoming gRPC call.
func FromGRPC(ctx context.Context) Headers {
	var p Headers
	md, _ := metadata.FromIncomingContext(ctx)
	for i, k := range propagated {
		if v := md[k]; len(v) > 0 {
			p[i] = v[0]
		}
	}
	return p
}

// SetHTTP sets the present headers on an outgoing HTTP request.
func (p *Headers) SetHTTP(h http.Header) {
	for i, k := range canonicalKeys {
		if p[i] != "" {
			h[k] = []string{p[i]}
		}
	}
}

// OutgoingGRPC returns ctx with the present headers as outgoing gRPC
// metadata.
func (p *Headers) OutgoingGRPC(ctx context.Context) context.Context {
	kv := make([]string, 0, 2*len(propagated))
	for i, k := range propagated {
		if p[i] != "" {
			kv = append(kv, k, p[i])
		}
	}
	if len(kv) == 0 {
		return ctx
	}
	return metadata.AppendToOutgoingContext(ctx, kv...)
}

// User returns the end-user header's value.
func (p *Headers) User() string { return p[len(p)-1] }

// SetUser sets the end-user header's value.
func (p *Headers) SetUser(u string) { p[len(p)-1] = u }
