package tracing

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	tracev3 "github.com/envoyproxy/go-control-plane/envoy/config/trace/v3"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	sdkresource "go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"
)

// ClusterDialer connects to a host of an upstream cluster (the collector
// cluster a provider names). The server implements it with its cluster
// manager, so the collector's address follows CDS/EDS.
type ClusterDialer func(ctx context.Context, cluster string) (net.Conn, error)

// ProvidersOptions configure the exporters.
type ProvidersOptions struct {
	// Dial reaches a collector cluster. Required.
	Dial ClusterDialer
	// FlushInterval is the batch span processor's export interval (0:
	// 5 s, Envoy's tracing.opentelemetry.flush_interval_ms default).
	FlushInterval time.Duration
	// DefaultService is the service.name of providers that set no
	// service_name: the node's cluster (Istio's "app.namespace", the
	// name Envoy's Zipkin tracer reports).
	DefaultService string
}

// Providers holds one exporter pipeline (an OpenTelemetry SDK
// TracerProvider with a batch span processor) per distinct provider
// configuration, shared by every connection manager that names it, so a
// listener update does not restart exporters. Safe for concurrent use.
type Providers struct {
	o     ProvidersOptions
	mu    sync.Mutex
	byKey map[string]*exporter
}

// NewProviders returns an empty set of providers.
func NewProviders(o ProvidersOptions) *Providers {
	if o.FlushInterval <= 0 {
		o.FlushInterval = 5 * time.Second
	}
	return &Providers{o: o, byKey: map[string]*exporter{}}
}

// exporter is one provider's pipeline.
type exporter struct {
	tp     *sdktrace.TracerProvider
	tracer trace.Tracer
	closer func() error // the gRPC connection, if any
}

// provider returns the pipeline for p, building it on first use, and the
// propagation format of its kind.
func (ps *Providers) provider(p *tracev3.Tracing_Http) (*exporter, Format, error) {
	otel, zipkin, err := typedProvider(p)
	if err != nil {
		return nil, 0, err
	}
	format := W3C
	if zipkin != nil {
		format = B3Multi
	}
	key, err := proto.MarshalOptions{Deterministic: true}.Marshal(p)
	if err != nil {
		return nil, 0, fmt.Errorf("typed_config: %w", err)
	}
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if e := ps.byKey[string(key)]; e != nil {
		return e, format, nil
	}
	var e *exporter
	if otel != nil {
		e, err = ps.newOTLP(otel)
	} else {
		e, err = ps.newZipkin(zipkin)
	}
	if err != nil {
		return nil, 0, err
	}
	ps.byKey[string(key)] = e
	return e, format, nil
}

// newOTLP builds an OTLP exporter: gRPC (grpc_service.envoy_grpc) or
// HTTP protobuf (http_service), to the named cluster, in plaintext.
func (ps *Providers) newOTLP(c *tracev3.OpenTelemetryConfig) (*exporter, error) {
	ctx := context.Background()
	var (
		sx     sdktrace.SpanExporter
		closer func() error
		err    error
	)
	switch {
	case c.GetGrpcService() != nil:
		g := c.GetGrpcService()
		eg := g.GetEnvoyGrpc()
		if eg == nil || eg.GetClusterName() == "" {
			return nil, fmt.Errorf("typed_config.grpc_service.envoy_grpc.cluster_name: required (google_grpc is not supported by weft-proxy)")
		}
		cluster := eg.GetClusterName()
		authority := eg.GetAuthority()
		if authority == "" {
			authority = cluster
		}
		conn, cerr := grpc.NewClient("passthrough:///"+cluster,
			grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithAuthority(authority),
			grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return ps.o.Dial(ctx, cluster) }),
		)
		if cerr != nil {
			return nil, fmt.Errorf("typed_config.grpc_service: %w", cerr)
		}
		opts := []otlptracegrpc.Option{otlptracegrpc.WithGRPCConn(conn)}
		if d := g.GetTimeout(); d != nil {
			opts = append(opts, otlptracegrpc.WithTimeout(d.AsDuration()))
		}
		sx, err = otlptracegrpc.New(ctx, opts...)
		closer = conn.Close
	case c.GetHttpService() != nil:
		u := c.GetHttpService().GetHttpUri()
		if u.GetCluster() == "" || u.GetUri() == "" {
			return nil, fmt.Errorf("typed_config.http_service.http_uri: uri and cluster are required")
		}
		opts := []otlptracehttp.Option{
			otlptracehttp.WithEndpointURL(u.GetUri()),
			otlptracehttp.WithHTTPClient(ps.clusterHTTPClient(u.GetCluster())),
		}
		if d := u.GetTimeout(); d != nil {
			opts = append(opts, otlptracehttp.WithTimeout(d.AsDuration()))
		}
		sx, err = otlptracehttp.New(ctx, opts...)
	default:
		return nil, fmt.Errorf("typed_config: set grpc_service or http_service")
	}
	if err != nil {
		return nil, fmt.Errorf("typed_config: %w", err)
	}
	return ps.pipeline(sx, c.GetServiceName(), closer), nil
}

// clusterHTTPClient is an HTTP client whose connections go to cluster.
func (ps *Providers) clusterHTTPClient(cluster string) *http.Client {
	return &http.Client{Transport: &http.Transport{
		DialContext:       func(ctx context.Context, _, _ string) (net.Conn, error) { return ps.o.Dial(ctx, cluster) },
		ForceAttemptHTTP2: false,
		MaxIdleConns:      2,
		IdleConnTimeout:   time.Minute,
	}}
}

// pipeline wraps a span exporter in a TracerProvider with a batch span
// processor (spans are queued and exported off the request path; a full
// queue drops spans rather than block a request) and the ids the Tracer
// chose (idGenerator).
func (ps *Providers) pipeline(sx sdktrace.SpanExporter, service string, closer func() error) *exporter {
	if service == "" {
		service = ps.o.DefaultService
	}
	if service == "" {
		service = "unknown_service:weft-proxy"
	}
	res := sdkresource.NewSchemaless(attribute.String("service.name", service))
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(sx, sdktrace.WithBatchTimeout(ps.o.FlushInterval)),
		sdktrace.WithResource(res),
		sdktrace.WithSampler(sdktrace.AlwaysSample()), // the Tracer decided already
		sdktrace.WithIDGenerator(idGenerator{}),
	)
	return &exporter{tp: tp, tracer: tp.Tracer("weft-proxy"), closer: closer}
}

// Shutdown flushes the queued spans and stops every exporter.
func (ps *Providers) Shutdown(ctx context.Context) error {
	ps.mu.Lock()
	all := ps.byKey
	ps.byKey = map[string]*exporter{}
	ps.mu.Unlock()
	var errs []error
	for _, e := range all {
		errs = append(errs, e.tp.Shutdown(ctx))
		if e.closer != nil {
			errs = append(errs, e.closer())
		}
	}
	return errors.Join(errs...)
}

// ForceFlush exports the queued spans now (tests, admin).
func (ps *Providers) ForceFlush(ctx context.Context) error {
	ps.mu.Lock()
	all := make([]*exporter, 0, len(ps.byKey))
	for _, e := range ps.byKey {
		all = append(all, e)
	}
	ps.mu.Unlock()
	var errs []error
	for _, e := range all {
		errs = append(errs, e.tp.ForceFlush(ctx))
	}
	return errors.Join(errs...)
}

// spanIDs are the ids a Tracer chose for the span it records; they reach
// the SDK's id generator through the context.
type spanIDs struct {
	trace TraceID
	span  SpanID
}

type spanIDsKey struct{}

// idGenerator gives the SDK the ids the Tracer already propagated.
type idGenerator struct{}

func (idGenerator) NewIDs(ctx context.Context) (trace.TraceID, trace.SpanID) {
	ids, _ := ctx.Value(spanIDsKey{}).(*spanIDs)
	if ids == nil {
		return trace.TraceID(newTraceID()), trace.SpanID(newSpanID())
	}
	return trace.TraceID(ids.trace), trace.SpanID(ids.span)
}

func (idGenerator) NewSpanID(ctx context.Context, _ trace.TraceID) trace.SpanID {
	ids, _ := ctx.Value(spanIDsKey{}).(*spanIDs)
	if ids == nil {
		return trace.SpanID(newSpanID())
	}
	return trace.SpanID(ids.span)
}
