package tracing

import (
	"testing"

	"github.com/weftmesh/weft/internal/proxy/headers"
)

func mapOf(kv ...string) *headers.Map {
	var m headers.Map
	for i := 0; i+1 < len(kv); i += 2 {
		m.Add(kv[i], kv[i+1])
	}
	return &m
}

const (
	tid32 = "4bf92f3577b34da6a3ce929d0e0e4736"
	sid16 = "00f067aa0ba902b7"
)

func TestExtract(t *testing.T) {
	cases := []struct {
		name        string
		h           *headers.Map
		ok          bool
		trace, span string // hex, when ok
		sampled     bool
		hasSampled  bool
		debug       bool
		state       string
	}{
		{name: "w3c sampled", h: mapOf("traceparent", "00-"+tid32+"-"+sid16+"-01", "tracestate", "a=1"),
			ok: true, trace: tid32, span: sid16, sampled: true, hasSampled: true, state: "a=1"},
		{name: "w3c not sampled", h: mapOf("traceparent", "00-"+tid32+"-"+sid16+"-00"),
			ok: true, trace: tid32, span: sid16, hasSampled: true},
		{name: "w3c future version with extra field", h: mapOf("traceparent", "01-"+tid32+"-"+sid16+"-01-xyz"),
			ok: true, trace: tid32, span: sid16, sampled: true, hasSampled: true},
		{name: "w3c version 00 with extra field", h: mapOf("traceparent", "00-"+tid32+"-"+sid16+"-01-xyz")},
		{name: "w3c version ff", h: mapOf("traceparent", "ff-"+tid32+"-"+sid16+"-01")},
		{name: "w3c zero trace id", h: mapOf("traceparent", "00-00000000000000000000000000000000-"+sid16+"-01")},
		{name: "w3c zero span id", h: mapOf("traceparent", "00-"+tid32+"-0000000000000000-01")},
		{name: "w3c short", h: mapOf("traceparent", "00-"+tid32[:30]+"-"+sid16+"-01")},
		{name: "w3c bad hex", h: mapOf("traceparent", "00-"+tid32[:31]+"x-"+sid16+"-01")},
		{name: "w3c bad separators", h: mapOf("traceparent", "00_"+tid32+"_"+sid16+"_01")},
		{name: "malformed w3c falls back to b3", h: mapOf("traceparent", "garbage", "x-b3-traceid", tid32, "x-b3-spanid", sid16, "x-b3-sampled", "1"),
			ok: true, trace: tid32, span: sid16, sampled: true, hasSampled: true},
		{name: "b3 single", h: mapOf("b3", tid32+"-"+sid16+"-1-"+"a0f067aa0ba902b7"),
			ok: true, trace: tid32, span: sid16, sampled: true, hasSampled: true},
		{name: "b3 single no sampling", h: mapOf("b3", tid32+"-"+sid16),
			ok: true, trace: tid32, span: sid16},
		{name: "b3 single debug", h: mapOf("b3", tid32+"-"+sid16+"-d"),
			ok: true, trace: tid32, span: sid16, sampled: true, hasSampled: true, debug: true},
		{name: "b3 single 64-bit trace id", h: mapOf("b3", "a3ce929d0e0e4736-"+sid16+"-0"),
			ok: true, trace: "0000000000000000a3ce929d0e0e4736", span: sid16, hasSampled: true},
		{name: "b3 single deny only", h: mapOf("b3", "0"), hasSampled: true},
		{name: "b3 single bad sampling", h: mapOf("b3", tid32+"-"+sid16+"-x")},
		{name: "b3 single too many parts", h: mapOf("b3", tid32+"-"+sid16+"-1-"+sid16+"-1")},
		{name: "b3 single bad span", h: mapOf("b3", tid32+"-"+sid16[:15])},
		{name: "b3 multi", h: mapOf("x-b3-traceid", tid32, "x-b3-spanid", sid16, "x-b3-parentspanid", "a0f067aa0ba902b7", "x-b3-sampled", "0"),
			ok: true, trace: tid32, span: sid16, hasSampled: true},
		{name: "b3 multi flags", h: mapOf("x-b3-traceid", tid32, "x-b3-spanid", sid16, "x-b3-flags", "1"),
			ok: true, trace: tid32, span: sid16, sampled: true, hasSampled: true, debug: true},
		{name: "b3 multi true", h: mapOf("x-b3-traceid", tid32, "x-b3-spanid", sid16, "x-b3-sampled", "true"),
			ok: true, trace: tid32, span: sid16, sampled: true, hasSampled: true},
		{name: "b3 multi missing span", h: mapOf("x-b3-traceid", tid32, "x-b3-sampled", "1"), sampled: true, hasSampled: true},
		{name: "b3 multi bad trace id length", h: mapOf("x-b3-traceid", tid32[:20], "x-b3-spanid", sid16)},
		{name: "none", h: mapOf("x-request-id", "abc")},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			sc, ok := Extract(c.h)
			if ok != c.ok {
				t.Fatalf("ok = %v, want %v (%+v)", ok, c.ok, sc)
			}
			if sc.Sampled != c.sampled || sc.HasSampled != c.hasSampled || sc.Debug != c.debug {
				t.Errorf("sampled %v/%v debug %v, want %v/%v %v", sc.Sampled, sc.HasSampled, sc.Debug, c.sampled, c.hasSampled, c.debug)
			}
			if !ok {
				return
			}
			if got := hexOf(sc.TraceID[:]); got != c.trace {
				t.Errorf("trace id %s, want %s", got, c.trace)
			}
			if got := hexOf(sc.SpanID[:]); got != c.span {
				t.Errorf("span id %s, want %s", got, c.span)
			}
			if string(sc.TraceState) != c.state {
				t.Errorf("tracestate %q, want %q", sc.TraceState, c.state)
			}
		})
	}
}

func hexOf(b []byte) string {
	out := make([]byte, 2*len(b))
	encodeHex(out, b)
	return string(out)
}

func TestInjectRoundTrip(t *testing.T) {
	sc := SpanContext{TraceID: newTraceID(), SpanID: newSpanID(), Sampled: true, HasSampled: true, TraceState: []byte("k=v")}
	parent := newSpanID()
	for _, f := range []Format{W3C, B3Multi, B3Single} {
		// Stale headers of every format must not win over the injected
		// ones: Extract prefers traceparent, then b3, then x-b3-*.
		h := mapOf("x-b3-sampled", "0", "x-b3-flags", "1")
		Inject(h, f, &sc, parent)
		got, ok := Extract(h)
		if !ok || got.TraceID != sc.TraceID || got.SpanID != sc.SpanID || !got.Sampled {
			t.Errorf("format %d: extracted %+v ok=%v, want %+v", f, got, ok, sc)
		}
		switch f {
		case W3C:
			if want := "00-" + hexOf(sc.TraceID[:]) + "-" + hexOf(sc.SpanID[:]) + "-01"; string(h.Get("traceparent")) != want {
				t.Errorf("traceparent %q, want %q", h.Get("traceparent"), want)
			}
			if string(h.Get("tracestate")) != "k=v" {
				t.Errorf("tracestate %q", h.Get("tracestate"))
			}
		case B3Multi:
			if string(h.Get("x-b3-parentspanid")) != hexOf(parent[:]) || string(h.Get("x-b3-sampled")) != "1" || h.Has("x-b3-flags") {
				t.Errorf("x-b3 headers %q", h.Fields)
			}
		case B3Single:
			if want := hexOf(sc.TraceID[:]) + "-" + hexOf(sc.SpanID[:]) + "-1-" + hexOf(parent[:]); string(h.Get("b3")) != want {
				t.Errorf("b3 %q, want %q", h.Get("b3"), want)
			}
		}
	}
}

func FuzzExtract(f *testing.F) {
	f.Add("00-"+tid32+"-"+sid16+"-01", "", "", "")
	f.Add("", tid32+"-"+sid16+"-1-"+sid16, "", "")
	f.Add("", "", tid32, sid16)
	f.Add("01-"+tid32+"-"+sid16+"-01-extra", "d", "a3ce929d0e0e4736", "x")
	f.Fuzz(func(t *testing.T, tp, b3, tid, sid string) {
		h := mapOf("traceparent", tp, "b3", b3, "x-b3-traceid", tid, "x-b3-spanid", sid)
		sc, ok := Extract(h)
		if ok && (!sc.TraceID.IsValid() || !sc.SpanID.IsValid()) {
			t.Fatalf("valid context with a zero id: %+v", sc)
		}
		if ok {
			// Whatever was read must survive a round trip.
			var out headers.Map
			Inject(&out, W3C, &sc, SpanID{})
			back, ok2 := Extract(&out)
			if !ok2 || back.TraceID != sc.TraceID || back.SpanID != sc.SpanID {
				t.Fatalf("round trip %+v → %+v", sc, back)
			}
		}
	})
}
