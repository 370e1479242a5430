// Package tracing is weft-proxy's distributed tracing: Envoy's
// HttpConnectionManager.tracing with the envoy.tracers.opentelemetry
// provider (OTLP over gRPC or HTTP through the OpenTelemetry Go SDK) and
// envoy.tracers.zipkin (Zipkin v2 JSON).
//
// One Tracer serves one connection manager. Per request the connection
// manager calls Start once the request headers are final (after its
// x-request-id rules) and Finish when the stream ends, with a Span that
// lives on the stream's stack:
//
//   - Start makes Envoy's sampling decision (Decide: x-request-id based,
//     client / random / overall sampling), reads the downstream's span
//     context (W3C traceparent, or B3 single or multi header: Extract),
//     gives the hop its own span id and writes the context the upstream
//     must see (Inject) in the provider's format: W3C for OpenTelemetry
//     (as Envoy's OpenTelemetry tracer), B3 multi headers for Zipkin (as
//     Envoy's Zipkin tracer). Both formats are read on input.
//   - Finish, for a sampled span only, hands the span with Envoy's
//     standard tags to the provider's batch span processor, which exports
//     it off the request path. A span that is not sampled costs no
//     allocation.
package tracing

import (
	"fmt"
	"os"

	tracev3 "github.com/envoyproxy/go-control-plane/envoy/config/trace/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
)

// Provider names, as Envoy's tracing providers are named.
const (
	OpenTelemetryName = "envoy.tracers.opentelemetry"
	ZipkinName        = "envoy.tracers.zipkin"
)

// Direction is the listener's traffic_direction: it gives the span its
// name ("ingress", "egress HOST") and kind (SERVER, CLIENT), as Envoy's
// connection manager derives its tracing operation from it.
type Direction uint8

const (
	// Inbound (and unspecified): SERVER spans named "ingress".
	Inbound Direction = iota
	// Outbound: CLIENT spans named "egress HOST".
	Outbound
)

// Options are what a Tracer needs besides its configuration.
type Options struct {
	// Providers holds the exporters, shared by every connection manager
	// of the server. Required.
	Providers *Providers
	Direction Direction
	// NodeID and Zone are the node_id and zone tags (the bootstrap's
	// node.id and node.locality.zone).
	NodeID, Zone string
}

// customTag is one custom_tags entry: a literal (or environment value,
// read once at configuration) or a request header read at Finish.
type customTag struct {
	name   string
	value  string // literal, environment, or the header's default
	header string // request_header: the header name (lower case)
}

// config is a compiled HttpConnectionManager.tracing.
type config struct {
	sampling      SamplingConfig
	format        Format
	maxPathTag    int
	tags          []customTag
	spawnUpstream bool
}

// New compiles tracing (HttpConnectionManager.tracing) into the
// connection manager's Tracer. Errors name the field below tracing.
func New(t *hcmv3.HttpConnectionManager_Tracing, o Options) (*Tracer, error) {
	c := config{
		sampling: SamplingConfig{
			Client:  percent(t.GetClientSampling()),
			Random:  percent(t.GetRandomSampling()),
			Overall: percent(t.GetOverallSampling()),
		},
		maxPathTag:    256, // Envoy's default max_path_tag_length
		spawnUpstream: t.GetSpawnUpstreamSpan().GetValue(),
	}
	if v := t.GetMaxPathTagLength(); v != nil {
		c.maxPathTag = int(v.GetValue())
	}
	tags, err := compileTags(t)
	if err != nil {
		return nil, err
	}
	c.tags = tags
	p := t.GetProvider()
	if p == nil {
		return nil, fmt.Errorf("tracing.provider: required (weft-proxy has no bootstrap-level tracer)")
	}
	exp, format, err := o.Providers.provider(p)
	if err != nil {
		return nil, fmt.Errorf("tracing.provider (%s).%w", p.GetName(), err)
	}
	c.format = format
	return &Tracer{cfg: c, o: o, exp: exp}, nil
}

// percent converts an envoy.type.v3.Percent (nil: 100 %, Envoy's default
// for all three samplings) to hundredths of a percent.
func percent(p *typev3.Percent) uint32 {
	if p == nil {
		return 10000
	}
	v := p.GetValue()
	switch {
	case v <= 0:
		return 0
	case v >= 100:
		return 10000
	}
	return uint32(v*100 + 0.5)
}

// compileTags resolves custom_tags. metadata and value tags are refused.
func compileTags(t *hcmv3.HttpConnectionManager_Tracing) ([]customTag, error) {
	var out []customTag
	for i, ct := range t.GetCustomTags() {
		path := fmt.Sprintf("tracing.custom_tags[%d]", i)
		if ct.GetTag() == "" {
			return nil, fmt.Errorf("%s.tag: required", path)
		}
		tag := customTag{name: ct.GetTag()}
		switch {
		case ct.GetLiteral() != nil:
			tag.value = ct.GetLiteral().GetValue()
		case ct.GetEnvironment() != nil:
			e := ct.GetEnvironment()
			tag.value = os.Getenv(e.GetName())
			if tag.value == "" {
				tag.value = e.GetDefaultValue()
			}
		case ct.GetRequestHeader() != nil:
			h := ct.GetRequestHeader()
			if h.GetName() == "" {
				return nil, fmt.Errorf("%s.request_header.name: required", path)
			}
			tag.header, tag.value = lowerASCII(h.GetName()), h.GetDefaultValue()
		default:
			return nil, fmt.Errorf("%s: only literal, environment and request_header tags are supported by weft-proxy", path)
		}
		out = append(out, tag)
	}
	return out, nil
}

func lowerASCII(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// typedProvider unpacks a provider's typed_config.
func typedProvider(p *tracev3.Tracing_Http) (*tracev3.OpenTelemetryConfig, *tracev3.ZipkinConfig, error) {
	tc := p.GetTypedConfig()
	if tc == nil {
		return nil, nil, fmt.Errorf("typed_config: required")
	}
	switch {
	case tc.MessageIs(&tracev3.OpenTelemetryConfig{}):
		var c tracev3.OpenTelemetryConfig
		if err := tc.UnmarshalTo(&c); err != nil {
			return nil, nil, fmt.Errorf("typed_config: %w", err)
		}
		return &c, nil, nil
	case tc.MessageIs(&tracev3.ZipkinConfig{}):
		var c tracev3.ZipkinConfig
		if err := tc.UnmarshalTo(&c); err != nil {
			return nil, nil, fmt.Errorf("typed_config: %w", err)
		}
		return nil, &c, nil
	}
	return nil, nil, fmt.Errorf("typed_config: type %s is not supported (OpenTelemetryConfig, ZipkinConfig)", tc.MessageName())
}
