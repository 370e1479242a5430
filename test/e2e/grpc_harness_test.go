package e2e

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// grpcProxy is a bootstrap with one listener ("grpc", codec AUTO) routing
// the gRPC services grpc.health.v1.Health and grpc.testing.TestService to
// the cluster "grpc" at {{.host}}:{{.port}}, the path "/empty.Service/"
// to the cluster "empty", which has no endpoints, and "/down.Service/" to
// the cluster "down", whose only endpoint refuses connections. {{.protocol}} is the
// cluster's upstream protocol configuration (a YAML block indented by four
// spaces), {{.route}} extra fields of the TestService route action (or "").
const grpcProxy = adminHead + `
  - name: grpc
    address: {socket_address: {address: 127.0.0.1, port_value: 0}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: grpc
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: {prefix: /grpc.health.v1.Health/, grpc: {}}
                route: {cluster: grpc, timeout: 0s}
              - match: {prefix: /grpc.testing.TestService/, grpc: {}}
                route: {cluster: grpc{{.route}}}
              - match: {prefix: /empty.Service/}
                route: {cluster: empty}
              - match: {prefix: /down.Service/}
                route: {cluster: down}` + routerFilter + `
  clusters:
  - name: grpc
    type: STATIC
    connect_timeout: 1s
{{.protocol}}
    load_assignment:
      cluster_name: grpc
      endpoints:
      - lb_endpoints:
        - endpoint: {address: {socket_address: {address: {{.host}}, port_value: {{.port}}}}}
  - name: empty
    type: STATIC
    connect_timeout: 1s
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: {http2_protocol_options: {}}
    load_assignment: {cluster_name: empty}
  - name: down
    type: STATIC
    connect_timeout: 1s
{{.protocol}}
    load_assignment:
      cluster_name: down
      endpoints:
      - lb_endpoints:
        - endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: {{.downPort}}}}}
`

// Upstream HTTP/2 configurations of a cluster, for {{.protocol}}.
const (
	// h2Explicit is the current way: HttpProtocolOptions'
	// explicit_http_config.
	h2Explicit = `    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: {http2_protocol_options: {}}`
	// h2Legacy is the deprecated cluster field.
	h2Legacy = `    http2_protocol_options: {}`
	// h2Downstream uses the downstream request's protocol.
	h2Downstream = `    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        use_downstream_protocol_config: {http_protocol_options: {}, http2_protocol_options: {}}`
)

// grpcMaxMsg is the message size limit both gRPC ends use (the default
// receive limit is 4 MiB; the large-message tests send 8 MiB).
const grpcMaxMsg = 16 << 20

// grpcBackend is a grpc-go server on loopback serving the health service
// and grpc.testing.TestService (testService).
type grpcBackend struct {
	Addr   string
	Health *health.Server

	svc *testService
}

// startGRPC starts the backend; it stops when the test ends.
func startGRPC(t *testing.T) *grpcBackend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(grpc.MaxRecvMsgSize(grpcMaxMsg), grpc.MaxSendMsgSize(grpcMaxMsg))
	b := &grpcBackend{Addr: ln.Addr().String(), Health: health.NewServer(), svc: newTestService()}
	healthpb.RegisterHealthServer(srv, b.Health)
	testpb.RegisterTestServiceServer(srv, b.svc)
	go srv.Serve(ln)
	t.Cleanup(func() {
		b.Health.Shutdown() // ends Watch streams
		srv.Stop()
	})
	return b
}

// proxyFor starts a proxy from grpcProxy in front of b, with the cluster
// protocol block and extra route fields given.
func (b *grpcBackend) proxyFor(t *testing.T, protocol, route string) *Proxy {
	t.Helper()
	host, port := HostPort(b.Addr)
	return StartProxy(t, Render(t, grpcProxy, map[string]any{
		"host": host, "port": port, "protocol": protocol, "route": route, "downPort": closedPort(t),
	}))
}

// closedPort returns a loopback port nothing listens on (it was bound and
// released).
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, port := HostPort(ln.Addr().String())
	ln.Close()
	return port
}

// dialGRPC returns a client connection to addr over h2c (insecure
// credentials), closed when the test ends.
func dialGRPC(t *testing.T, addr string) *grpc.ClientConn {
	t.Helper()
	cc, err := grpc.NewClient(addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(grpcMaxMsg), grpc.MaxCallSendMsgSize(grpcMaxMsg)),
	)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

// grpcCtx is a context for one test RPC: generous, so that a proxy that
// wedges fails the test instead of hanging it.
func grpcCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// payload returns n deterministic bytes derived from seed, so that a
// receiver can check content, not only length.
func payload(seed, n int) []byte {
	b := make([]byte, (n+7)&^7)
	x := uint64(seed)*0x9e3779b97f4a7c15 + 1
	for i := 0; i < len(b); i += 8 {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		binary.LittleEndian.PutUint64(b[i:], x)
	}
	return b[:n]
}

// Request payload bodies with a meaning for testService.
const (
	// holdBody makes UnaryCall wait for its context to end; it records the
	// deadline it saw.
	holdBody = "hold"
)

// testService implements grpc.testing.TestService:
//   - metadata keys starting with "x-echo-" come back as response header
//     fields and, with "-trailer" appended, as trailer fields;
//   - response_status makes the call fail with that code and message, after
//     the response messages (streams) or before any (unary: trailers-only);
//   - response sizes select payload(i, size) bodies; intervals pace streams.
type testService struct {
	testpb.UnimplementedTestServiceServer

	mu        sync.Mutex
	deadlines []time.Duration // time left, as seen by holdBody calls; -1: none
	holdErrs  []error         // why holdBody calls ended (their context's error)
	lastMD    metadata.MD
	sent      atomic.Int64 // StreamingOutputCall messages sent
}

func newTestService() *testService { return &testService{} }

// echoMetadata sends the x-echo-* request metadata back as header and
// trailer fields.
func (s *testService) echoMetadata(ctx context.Context, setHeader, setTrailer func(metadata.MD) error) {
	md, _ := metadata.FromIncomingContext(ctx)
	s.mu.Lock()
	s.lastMD = md.Copy()
	s.mu.Unlock()
	hdr, trl := metadata.MD{}, metadata.MD{}
	for k, vs := range md {
		if !strings.HasPrefix(k, "x-echo-") {
			continue
		}
		hdr[k] = vs
		if strings.HasSuffix(k, "-bin") {
			trl[strings.TrimSuffix(k, "-bin")+"-trailer-bin"] = vs
		} else {
			trl[k+"-trailer"] = vs
		}
	}
	if len(hdr) > 0 {
		setHeader(hdr)
		setTrailer(trl)
	}
}

func (s *testService) UnaryCall(ctx context.Context, in *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	s.echoMetadata(ctx, func(md metadata.MD) error { return grpc.SetHeader(ctx, md) },
		func(md metadata.MD) error { return grpc.SetTrailer(ctx, md) })
	if string(in.GetPayload().GetBody()) == holdBody {
		left := time.Duration(-1)
		if dl, ok := ctx.Deadline(); ok {
			left = time.Until(dl)
		}
		s.mu.Lock()
		s.deadlines = append(s.deadlines, left)
		s.mu.Unlock()
		<-ctx.Done()
		s.mu.Lock()
		s.holdErrs = append(s.holdErrs, ctx.Err())
		s.mu.Unlock()
		return nil, status.FromContextError(ctx.Err()).Err()
	}
	if st := in.GetResponseStatus(); st != nil {
		return nil, status.Error(codes.Code(st.GetCode()), st.GetMessage())
	}
	body := payload(int(in.GetResponseSize()), int(in.GetResponseSize()))
	if n := len(in.GetPayload().GetBody()); n > 0 && in.GetResponseSize() == 0 {
		body = in.GetPayload().GetBody() // echo
	}
	return &testpb.SimpleResponse{Payload: &testpb.Payload{Body: body}}, nil
}

// seenDeadlines returns the deadlines holdBody calls saw.
func (s *testService) seenDeadlines() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Duration(nil), s.deadlines...)
}

// endedHolds returns why the holdBody calls that ended did.
func (s *testService) endedHolds() []error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]error(nil), s.holdErrs...)
}

func (s *testService) metadata() metadata.MD {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastMD
}

func (s *testService) StreamingOutputCall(in *testpb.StreamingOutputCallRequest, stream grpc.ServerStreamingServer[testpb.StreamingOutputCallResponse]) error {
	s.echoMetadata(stream.Context(), stream.SetHeader, func(md metadata.MD) error { stream.SetTrailer(md); return nil })
	for i, p := range in.GetResponseParameters() {
		if d := time.Duration(p.GetIntervalUs()) * time.Microsecond; d > 0 {
			time.Sleep(d) // pacing asked for by the client
		}
		if err := stream.Send(&testpb.StreamingOutputCallResponse{Payload: &testpb.Payload{Body: payload(i, int(p.GetSize()))}}); err != nil {
			return err
		}
		s.sent.Add(1)
	}
	if st := in.GetResponseStatus(); st != nil {
		return status.Error(codes.Code(st.GetCode()), st.GetMessage())
	}
	return nil
}

func (s *testService) StreamingInputCall(stream grpc.ClientStreamingServer[testpb.StreamingInputCallRequest, testpb.StreamingInputCallResponse]) error {
	s.echoMetadata(stream.Context(), stream.SetHeader, func(md metadata.MD) error { stream.SetTrailer(md); return nil })
	total := 0
	for i := 0; ; i++ {
		in, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return stream.SendAndClose(&testpb.StreamingInputCallResponse{AggregatedPayloadSize: int32(total)})
		}
		if err != nil {
			return err
		}
		body := in.GetPayload().GetBody()
		if want := payload(i, len(body)); string(body) != string(want) {
			return status.Errorf(codes.DataLoss, "message %d: content differs", i)
		}
		total += len(body)
	}
}

func (s *testService) FullDuplexCall(stream grpc.BidiStreamingServer[testpb.StreamingOutputCallRequest, testpb.StreamingOutputCallResponse]) error {
	s.echoMetadata(stream.Context(), stream.SetHeader, func(md metadata.MD) error { stream.SetTrailer(md); return nil })
	for {
		in, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if st := in.GetResponseStatus(); st != nil {
			return status.Error(codes.Code(st.GetCode()), st.GetMessage())
		}
		for _, p := range in.GetResponseParameters() {
			// Echo the request payload when no size is asked for.
			body := in.GetPayload().GetBody()
			if p.GetSize() > 0 {
				body = payload(int(p.GetSize()), int(p.GetSize()))
			}
			if err := stream.Send(&testpb.StreamingOutputCallResponse{Payload: &testpb.Payload{Body: body}}); err != nil {
				return err
			}
		}
	}
}
