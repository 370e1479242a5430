package tracing

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"

	tracev3 "github.com/envoyproxy/go-control-plane/envoy/config/trace/v3"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// newZipkin builds envoy.tracers.zipkin: spans POSTed as Zipkin v2 JSON
// (collector_endpoint_version HTTP_JSON, Istio's setting) to
// collector_endpoint on collector_cluster, through the same batch span
// processor as OTLP.
func (ps *Providers) newZipkin(c *tracev3.ZipkinConfig) (*exporter, error) {
	if c.GetCollectorCluster() == "" {
		return nil, fmt.Errorf("typed_config.collector_cluster: required")
	}
	if c.GetCollectorEndpoint() == "" || c.GetCollectorEndpoint()[0] != '/' {
		return nil, fmt.Errorf("typed_config.collector_endpoint: a path such as /api/v2/spans is required")
	}
	switch c.GetCollectorEndpointVersion() {
	case tracev3.ZipkinConfig_HTTP_JSON:
	default:
		return nil, fmt.Errorf("typed_config.collector_endpoint_version: %s is not supported by weft-proxy (HTTP_JSON)", c.GetCollectorEndpointVersion())
	}
	host := c.GetCollectorHostname()
	if host == "" {
		host = c.GetCollectorCluster()
	}
	zx := &zipkinExporter{
		client: ps.clusterHTTPClient(c.GetCollectorCluster()),
		url:    "http://" + host + c.GetCollectorEndpoint(),
	}
	return ps.pipeline(zx, "", nil), nil
}

// zipkinExporter is a sdktrace.SpanExporter writing Zipkin v2 JSON.
type zipkinExporter struct {
	client *http.Client
	url    string
}

type zipkinEndpoint struct {
	ServiceName string `json:"serviceName,omitempty"`
}

type zipkinSpan struct {
	TraceID       string            `json:"traceId"`
	ID            string            `json:"id"`
	ParentID      string            `json:"parentId,omitempty"`
	Name          string            `json:"name"`
	Kind          string            `json:"kind,omitempty"`
	Timestamp     int64             `json:"timestamp"`
	Duration      int64             `json:"duration"`
	LocalEndpoint zipkinEndpoint    `json:"localEndpoint"`
	Tags          map[string]string `json:"tags,omitempty"`
}

func (z *zipkinExporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	out := make([]zipkinSpan, 0, len(spans))
	for _, s := range spans {
		zs := zipkinSpan{
			TraceID:   s.SpanContext().TraceID().String(),
			ID:        s.SpanContext().SpanID().String(),
			Name:      s.Name(),
			Timestamp: s.StartTime().UnixMicro(),
			Duration:  s.EndTime().Sub(s.StartTime()).Microseconds(),
			Tags:      map[string]string{},
		}
		if p := s.Parent(); p.SpanID().IsValid() {
			id := p.SpanID()
			zs.ParentID = hex.EncodeToString(id[:])
		}
		switch s.SpanKind() {
		case trace.SpanKindClient:
			zs.Kind = "CLIENT"
		case trace.SpanKindServer:
			zs.Kind = "SERVER"
		}
		for _, kv := range s.Attributes() {
			zs.Tags[string(kv.Key)] = kv.Value.Emit()
		}
		if v, ok := s.Resource().Set().Value("service.name"); ok && !strings.HasPrefix(v.AsString(), "unknown_service") {
			zs.LocalEndpoint.ServiceName = v.AsString()
		}
		out = append(out, zs)
	}
	body, err := json.Marshal(out)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, z.url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("content-type", "application/json")
	resp, err := z.client.Do(req)
	if err != nil {
		return fmt.Errorf("zipkin collector %s: %w", z.url, err)
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("zipkin collector %s: status %d", z.url, resp.StatusCode)
	}
	return nil
}

func (z *zipkinExporter) Shutdown(context.Context) error {
	z.client.CloseIdleConnections()
	return nil
}
