package tracing

import (
	"context"
	"math/rand/v2"
	"strconv"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/weftmesh/weft/internal/proxy/headers"
	"github.com/weftmesh/weft/internal/proxy/streaminfo"
)

// Tracer traces the requests of one connection manager. Safe for
// concurrent use; Start and Finish run on the stream's goroutine.
type Tracer struct {
	cfg config
	o   Options
	exp *exporter
}

// Span is one request's hop: the state between Start and Finish. It lives
// in the connection manager's stream (no allocation); the zero value is
// inactive.
type Span struct {
	ctx    SpanContext // this hop's span: trace id, own span id, decision
	parent SpanID      // the downstream's span (zero for a root span)
	// upstream is the spawn_upstream_span child, whose context the
	// upstream saw (zero when not spawned).
	upstream SpanID
	start    time.Time
	reason   Reason
	active   bool
}

// Sampled reports whether the span will be exported.
func (sp *Span) Sampled() bool { return sp.active && sp.ctx.Sampled }

// Context returns the span's own context (trace id, span id, decision).
func (sp *Span) Context() SpanContext { return sp.ctx }

// Start begins the hop's span for request r (its headers final: after
// the connection manager's x-request-id rules) and writes the context the
// upstream must see into r. A downstream context (traceparent, b3,
// x-b3-*) makes this span its child and carries its sampling decision, as
// Envoy's tracers keep the parent's sampled flag; otherwise the request
// id's decision (Decide) applies and a new trace begins.
func (t *Tracer) Start(sp *Span, r *headers.Request, start time.Time) {
	*sp = Span{start: start, active: true}
	sp.reason = Decide(&r.Map, t.cfg.sampling)
	parent, ok := Extract(&r.Map)
	switch {
	case parent.HasSampled:
		sp.ctx.Sampled = parent.Sampled
	default:
		sp.ctx.Sampled = sp.reason != NotTraceable
	}
	if ok {
		sp.ctx.TraceID, sp.parent = parent.TraceID, parent.SpanID
		sp.ctx.TraceState, sp.ctx.Debug = parent.TraceState, parent.Debug
	} else {
		sp.ctx.TraceID = newTraceID()
	}
	sp.ctx.SpanID = newSpanID()
	if t.cfg.spawnUpstream {
		sp.upstream = newSpanID()
		up := sp.ctx
		up.SpanID = sp.upstream
		Inject(&r.Map, t.cfg.format, &up, sp.ctx.SpanID)
		return
	}
	Inject(&r.Map, t.cfg.format, &sp.ctx, sp.parent)
}

// Finish ends the span: a sampled one is recorded with Envoy's standard
// tags (http.url, http.method, http.status_code, upstream_cluster,
// response_flags, guid:x-request-id, node_id, zone, component, error on a
// 5xx or a missing response) and the custom tags, and queued for export.
// An unsampled span costs nothing.
func (t *Tracer) Finish(sp *Span, r *headers.Request, info *streaminfo.Info) {
	if !sp.active || !sp.ctx.Sampled {
		sp.active = false
		return
	}
	sp.active = false
	end := sp.start.Add(info.Duration)
	if info.Duration == 0 {
		end = time.Now()
	}
	kind, name := trace.SpanKindServer, "ingress"
	if t.o.Direction == Outbound {
		kind, name = trace.SpanKindClient, "egress "+string(r.Authority)
	}
	if t.cfg.spawnUpstream {
		// The connection manager's span is the server side of the hop;
		// the upstream span is its CLIENT child (Envoy's
		// spawn_upstream_span).
		kind = trace.SpanKindServer
	}
	attrs := t.attributes(r, info)
	isErr := info.ResponseCode == 0 || info.ResponseCode >= 500
	t.record(sp.ctx.TraceID, sp.ctx.SpanID, sp.parent, sp, name, kind, end, attrs, isErr)
	if t.cfg.spawnUpstream && info.UpstreamCluster != "" {
		t.record(sp.ctx.TraceID, sp.upstream, sp.ctx.SpanID, sp, "router "+info.UpstreamCluster+" egress",
			trace.SpanKindClient, end, attrs, isErr)
	}
}

// record hands one finished span to the SDK with the ids already chosen.
func (t *Tracer) record(tid TraceID, id, parent SpanID, sp *Span, name string, kind trace.SpanKind,
	end time.Time, attrs []attribute.KeyValue, isErr bool) {
	ctx := context.WithValue(context.Background(), spanIDsKey{}, &spanIDs{trace: tid, span: id})
	if parent.IsValid() {
		pc := trace.SpanContextConfig{
			TraceID: trace.TraceID(tid), SpanID: trace.SpanID(parent),
			TraceFlags: trace.FlagsSampled, Remote: true,
		}
		if ts, err := trace.ParseTraceState(string(sp.ctx.TraceState)); err == nil {
			pc.TraceState = ts
		}
		ctx = trace.ContextWithRemoteSpanContext(ctx, trace.NewSpanContext(pc))
	}
	_, span := t.exp.tracer.Start(ctx, name,
		trace.WithSpanKind(kind), trace.WithTimestamp(sp.start), trace.WithAttributes(attrs...))
	if isErr {
		span.SetStatus(codes.Error, "")
	}
	span.End(trace.WithTimestamp(end))
}

// attributes are Envoy's standard HTTP span tags
// (HttpTracerUtility::setCommonTags / finalizeDownstreamSpan) and the
// custom tags.
func (t *Tracer) attributes(r *headers.Request, info *streaminfo.Info) []attribute.KeyValue {
	url := string(r.Scheme) + "://" + string(r.Authority) + string(r.Path)
	if len(url) > t.cfg.maxPathTag {
		url = url[:t.cfg.maxPathTag]
	}
	a := make([]attribute.KeyValue, 0, 16+len(t.cfg.tags))
	a = append(a,
		attribute.String("component", "proxy"),
		attribute.String("node_id", t.o.NodeID),
		attribute.String("zone", t.o.Zone),
		attribute.String("guid:x-request-id", string(r.Get(headers.XRequestID))),
		attribute.String("http.url", url),
		attribute.String("http.method", string(r.Method)),
		attribute.String("downstream_cluster", orDash(r.Get("x-envoy-downstream-service-cluster"))),
		attribute.String("user_agent", orDash(r.Get("user-agent"))),
		attribute.String("http.protocol", info.Protocol.String()),
		attribute.String("peer.address", info.DownstreamRemote.Addr().String()),
		attribute.String("request_size", strconv.FormatInt(info.BytesReceived, 10)),
		attribute.String("response_size", strconv.FormatInt(info.BytesSent, 10)),
		attribute.String("http.status_code", strconv.Itoa(info.ResponseCode)),
		attribute.String("response_flags", info.Flags.String()),
	)
	if info.UpstreamCluster != "" {
		a = append(a,
			attribute.String("upstream_cluster", info.UpstreamCluster),
			attribute.String("upstream_cluster.name", info.UpstreamCluster),
			attribute.String("upstream_address", info.UpstreamHost))
	}
	if info.ResponseCode == 0 || info.ResponseCode >= 500 {
		a = append(a, attribute.String("error", "true"))
	}
	for _, tag := range t.cfg.tags {
		v := tag.value
		if tag.header != "" {
			if h, ok := r.Lookup(tag.header); ok {
				v = string(h)
			}
		}
		a = append(a, attribute.String(tag.name, v))
	}
	return a
}

func orDash(b []byte) string {
	if len(b) == 0 {
		return "-"
	}
	return string(b)
}

// newTraceID returns a random, valid trace id (no allocation; the
// runtime's per-thread generator, no lock).
func newTraceID() (t TraceID) {
	for !t.IsValid() {
		a, b := rand.Uint64(), rand.Uint64()
		for i := 0; i < 8; i++ {
			t[i], t[8+i] = byte(a>>(56-8*i)), byte(b>>(56-8*i))
		}
	}
	return t
}

// newSpanID returns a random, valid span id.
func newSpanID() (s SpanID) {
	for !s.IsValid() {
		a := rand.Uint64()
		for i := 0; i < 8; i++ {
			s[i] = byte(a >> (56 - 8*i))
		}
	}
	return s
}
