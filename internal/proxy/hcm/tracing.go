package hcm

import (
	"fmt"

	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"

	"github.com/weftmesh/weft/internal/proxy/httpfilter"
	"github.com/weftmesh/weft/internal/proxy/tracing"
)

// buildTracer compiles HttpConnectionManager.tracing (nil: no tracing).
func (m *Manager) buildTracer(cfg *hcmv3.HttpConnectionManager) error {
	t := cfg.GetTracing()
	if t == nil {
		return nil
	}
	if m.o.Tracing.Providers == nil {
		return fmt.Errorf("tracing: this server has no tracing providers")
	}
	tr, err := tracing.New(t, m.o.Tracing)
	if err != nil {
		return err
	}
	m.tracer = tr
	return nil
}

// startSpan begins the request's span once its headers are final (after
// the x-request-id rules, as Envoy's mutateTracingRequestHeader runs
// after mutateRequestHeaders) and writes the trace context the upstream
// sees into the request.
func (m *Manager) startSpan(sp *tracing.Span, s *httpfilter.Stream) {
	if m.tracer != nil {
		m.tracer.Start(sp, &s.Req, s.Info.StartTime)
	}
}

// finishSpan ends the request's span with the stream's outcome.
func (m *Manager) finishSpan(sp *tracing.Span, s *httpfilter.Stream) {
	if m.tracer != nil {
		m.tracer.Finish(sp, &s.Req, &s.Info)
	}
}
