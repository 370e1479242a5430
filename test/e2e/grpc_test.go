package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/weftmesh/weft/internal/proxy/streaminfo"
)

// TestGRPCCallKinds runs the four kinds of gRPC calls through the proxy,
// with the upstream HTTP/2 configured in each of the three ways a cluster
// can ask for it.
func TestGRPCCallKinds(t *testing.T) {
	for _, c := range []struct{ name, protocol string }{
		{"explicit_http_config", h2Explicit},
		{"http2_protocol_options", h2Legacy},
		{"use_downstream_protocol_config", h2Downstream},
	} {
		t.Run(c.name, func(t *testing.T) {
			b := startGRPC(t)
			p := b.proxyFor(t, c.protocol, "")
			cc := dialGRPC(t, p.Addr("grpc"))
			ctx := grpcCtx(t)
			tc := testpb.NewTestServiceClient(cc)

			t.Run("unary", func(t *testing.T) { checkUnaryEcho(t, ctx, tc, 1000) })
			t.Run("health", func(t *testing.T) { checkHealth(t, ctx, b, healthpb.NewHealthClient(cc)) })
			t.Run("server_streaming", func(t *testing.T) { checkServerStreaming(t, ctx, tc) })
			t.Run("client_streaming", func(t *testing.T) { checkClientStreaming(t, ctx, tc, []int{0, 1, 1000, 100000, 7}) })
			t.Run("bidi_ping_pong", func(t *testing.T) { checkPingPong(t, ctx, tc, 10) })

			if n := p.Stat("cluster.grpc.upstream_cx_http2_total"); n < 1 {
				t.Errorf("cluster.grpc.upstream_cx_http2_total = %d: the upstream was not HTTP/2", n)
			}
			if n := p.Stat("cluster.grpc.upstream_cx_http1_total"); n != 0 {
				t.Errorf("cluster.grpc.upstream_cx_http1_total = %d, want 0", n)
			}
		})
	}
}

func checkUnaryEcho(t *testing.T, ctx context.Context, tc testpb.TestServiceClient, size int) {
	t.Helper()
	body := payload(size, size)
	resp, err := tc.UnaryCall(ctx, &testpb.SimpleRequest{Payload: &testpb.Payload{Body: body}})
	if err != nil {
		t.Fatalf("UnaryCall: %v", err)
	}
	if !bytes.Equal(resp.GetPayload().GetBody(), body) {
		t.Fatalf("UnaryCall echoed %d bytes, want the %d sent", len(resp.GetPayload().GetBody()), size)
	}
}

// checkHealth runs grpc.health.v1: Check (unary) and Watch (a server
// stream whose messages must arrive as the server sends them).
func checkHealth(t *testing.T, ctx context.Context, b *grpcBackend, hc healthpb.HealthClient) {
	t.Helper()
	resp, err := hc.Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("Check: %v %v", resp, err)
	}
	b.Health.SetServingStatus("svc", healthpb.HealthCheckResponse_SERVING)
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w, err := hc.Watch(wctx, &healthpb.HealthCheckRequest{Service: "svc"})
	if err != nil {
		t.Fatalf("Watch: %v", err)
	}
	for i, want := range []healthpb.HealthCheckResponse_ServingStatus{
		healthpb.HealthCheckResponse_SERVING, healthpb.HealthCheckResponse_NOT_SERVING,
	} {
		if i == 1 {
			// Only sent once the first update arrived: the stream is
			// relayed message by message, not buffered.
			b.Health.SetServingStatus("svc", want)
		}
		m, err := w.Recv()
		if err != nil {
			t.Fatalf("Watch message %d: %v", i, err)
		}
		if m.GetStatus() != want {
			t.Fatalf("Watch message %d: %v, want %v", i, m.GetStatus(), want)
		}
	}
}

func checkServerStreaming(t *testing.T, ctx context.Context, tc testpb.TestServiceClient) {
	t.Helper()
	sizes := []int{1, 0, 100, 16384, 100000, 3}
	req := &testpb.StreamingOutputCallRequest{}
	for _, n := range sizes {
		req.ResponseParameters = append(req.ResponseParameters, &testpb.ResponseParameters{Size: int32(n)})
	}
	st, err := tc.StreamingOutputCall(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	for i, n := range sizes {
		m, err := st.Recv()
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if !bytes.Equal(m.GetPayload().GetBody(), payload(i, n)) {
			t.Fatalf("message %d: %d bytes, content differs from the %d sent", i, len(m.GetPayload().GetBody()), n)
		}
	}
	if _, err := st.Recv(); err != io.EOF {
		t.Fatalf("after the last message: %v, want io.EOF (status OK)", err)
	}
}

func checkClientStreaming(t *testing.T, ctx context.Context, tc testpb.TestServiceClient, sizes []int) {
	t.Helper()
	st, err := tc.StreamingInputCall(ctx)
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for i, n := range sizes {
		if err := st.Send(&testpb.StreamingInputCallRequest{Payload: &testpb.Payload{Body: payload(i, n)}}); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
		total += n
	}
	resp, err := st.CloseAndRecv()
	if err != nil {
		t.Fatalf("CloseAndRecv: %v", err)
	}
	if int(resp.GetAggregatedPayloadSize()) != total {
		t.Fatalf("server received %d bytes, want %d", resp.GetAggregatedPayloadSize(), total)
	}
}

// checkPingPong sends one message and waits for its answer, rounds times
// on one bidi stream: each message must cross the proxy on its own.
func checkPingPong(t *testing.T, ctx context.Context, tc testpb.TestServiceClient, rounds int) {
	t.Helper()
	st, err := tc.FullDuplexCall(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < rounds; i++ {
		body := payload(i, 10+i*100)
		req := &testpb.StreamingOutputCallRequest{
			Payload:            &testpb.Payload{Body: body},
			ResponseParameters: []*testpb.ResponseParameters{{}},
		}
		if err := st.Send(req); err != nil {
			t.Fatalf("round %d: send: %v", i, err)
		}
		m, err := st.Recv()
		if err != nil {
			t.Fatalf("round %d: recv: %v", i, err)
		}
		if !bytes.Equal(m.GetPayload().GetBody(), body) {
			t.Fatalf("round %d: echo differs", i)
		}
	}
	if err := st.CloseSend(); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Recv(); err != io.EOF {
		t.Fatalf("after CloseSend: %v, want io.EOF", err)
	}
}

// TestGRPCStatusAndMetadata checks that gRPC statuses, trailers and custom
// metadata cross the proxy unchanged in both directions.
func TestGRPCStatusAndMetadata(t *testing.T) {
	b := startGRPC(t)
	p := b.proxyFor(t, h2Explicit, "")
	cc := dialGRPC(t, p.Addr("grpc"))
	tc := testpb.NewTestServiceClient(cc)
	ctx := grpcCtx(t)
	binValue := string([]byte{0, 1, 2, 0xfe, 0xff})

	t.Run("metadata_both_ways", func(t *testing.T) {
		mctx := metadata.AppendToOutgoingContext(ctx, "x-echo-plain", "v1", "x-echo-plain", "v2", "x-echo-data-bin", binValue)
		var hdr, trl metadata.MD
		if _, err := tc.UnaryCall(mctx, &testpb.SimpleRequest{ResponseSize: 10}, grpc.Header(&hdr), grpc.Trailer(&trl)); err != nil {
			t.Fatal(err)
		}
		checkMD(t, "header", hdr, "x-echo-plain", "v1", "v2")
		checkMD(t, "header", hdr, "x-echo-data-bin", binValue)
		checkMD(t, "trailer", trl, "x-echo-plain-trailer", "v1", "v2")
		checkMD(t, "trailer", trl, "x-echo-data-trailer-bin", binValue)
		seen := b.svc.metadata()
		checkMD(t, "server-side", seen, "x-echo-plain", "v1", "v2")
	})

	t.Run("unary_error_trailers_only", func(t *testing.T) {
		msg := "no such thing: ünïcode, 100% sure\n(tab\t)"
		mctx := metadata.AppendToOutgoingContext(ctx, "x-echo-why", "because")
		var trl metadata.MD
		_, err := tc.UnaryCall(mctx, &testpb.SimpleRequest{ResponseStatus: &testpb.EchoStatus{Code: int32(codes.NotFound), Message: msg}}, grpc.Trailer(&trl))
		checkStatus(t, err, codes.NotFound, msg)
		checkMD(t, "trailer", trl, "x-echo-why-trailer", "because")
	})

	t.Run("stream_error_after_messages", func(t *testing.T) {
		req := &testpb.StreamingOutputCallRequest{
			ResponseParameters: []*testpb.ResponseParameters{{Size: 5}, {Size: 50000}, {Size: 5}},
			ResponseStatus:     &testpb.EchoStatus{Code: int32(codes.Aborted), Message: "stopped after three"},
		}
		st, err := tc.StreamingOutputCall(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 3; i++ {
			if _, err := st.Recv(); err != nil {
				t.Fatalf("message %d: %v", i, err)
			}
		}
		_, err = st.Recv()
		checkStatus(t, err, codes.Aborted, "stopped after three")
	})

	t.Run("bidi_error", func(t *testing.T) {
		st, err := tc.FullDuplexCall(ctx)
		if err != nil {
			t.Fatal(err)
		}
		st.Send(&testpb.StreamingOutputCallRequest{ResponseStatus: &testpb.EchoStatus{Code: int32(codes.PermissionDenied), Message: "go away"}})
		_, err = st.Recv()
		checkStatus(t, err, codes.PermissionDenied, "go away")
	})

	t.Run("raw_trailers_only_stays_trailers_only", func(t *testing.T) {
		// A trailers-only response is one HEADERS frame with END_STREAM;
		// the proxy must not turn it into headers + empty trailers.
		req := &testpb.SimpleRequest{ResponseStatus: &testpb.EchoStatus{Code: int32(codes.FailedPrecondition), Message: "nope"}}
		resp, body := rawGRPC(t, p.URL("grpc"), "/grpc.testing.TestService/UnaryCall", req)
		if resp.StatusCode != 200 || resp.Header.Get("grpc-status") != "9" || resp.Header.Get("grpc-message") != "nope" {
			t.Errorf("got %d headers %v trailers %v, want 200 with grpc-status 9 and grpc-message in the headers", resp.StatusCode, resp.Header, resp.Trailer)
		}
		if len(body) != 0 || len(resp.Trailer) != 0 {
			t.Errorf("trailers-only response got a body (%d bytes) or trailers %v", len(body), resp.Trailer)
		}
	})

	t.Run("raw_ok_has_trailers", func(t *testing.T) {
		resp, body := rawGRPC(t, p.URL("grpc"), "/grpc.testing.TestService/UnaryCall", &testpb.SimpleRequest{ResponseSize: 3})
		if resp.StatusCode != 200 || resp.Trailer.Get("grpc-status") != "0" {
			t.Errorf("got %d trailers %v, want grpc-status 0 in trailers", resp.StatusCode, resp.Trailer)
		}
		want := 5 + proto.Size(&testpb.SimpleResponse{Payload: &testpb.Payload{Body: payload(3, 3)}})
		if len(body) != want {
			t.Errorf("body %d bytes, want %d (one length-prefixed message)", len(body), want)
		}
		if ct := resp.Header.Get("content-type"); ct != "application/grpc" {
			t.Errorf("content-type %q", ct)
		}
	})
}

func checkMD(t *testing.T, where string, md metadata.MD, key string, want ...string) {
	t.Helper()
	got := md.Get(key)
	if strings.Join(got, "\x00") != strings.Join(want, "\x00") {
		t.Errorf("%s %s = %q, want %q", where, key, got, want)
	}
}

func checkStatus(t *testing.T, err error, code codes.Code, msg string) {
	t.Helper()
	st, ok := status.FromError(err)
	if !ok || st.Code() != code || st.Message() != msg {
		t.Errorf("status %v, want code %v message %q", err, code, msg)
	}
}

// rawGRPC sends one gRPC request over a plain h2c client and returns the
// response with its whole body, so that tests can see the HTTP/2 shape of
// the answer (headers versus trailers).
func rawGRPC(t *testing.T, base, path string, msg proto.Message) (*http.Response, []byte) {
	t.Helper()
	m, err := proto.Marshal(msg)
	if err != nil {
		t.Fatal(err)
	}
	frame := make([]byte, 5, 5+len(m))
	binary.BigEndian.PutUint32(frame[1:], uint32(len(m)))
	frame = append(frame, m...)
	req, _ := http.NewRequest("POST", base+path, bytes.NewReader(frame))
	req.Header.Set("content-type", "application/grpc")
	req.Header.Set("te", "trailers")
	var conn net.Conn
	tr := &http2.Transport{
		AllowHTTP: true,
		DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
			var d net.Dialer
			c, err := d.DialContext(ctx, network, addr)
			conn = c
			return c, err
		},
	}
	// One connection per call, closed at the end: the proxy's drain does
	// not wait for it.
	defer func() {
		if conn != nil {
			conn.Close()
		}
	}()
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("POST %s: body: %v", path, err)
	}
	return resp, body
}

// TestGRPCDeadlines checks grpc-timeout: the client's deadline reaches the
// server, and with the route's max_stream_duration.grpc_timeout_header_max
// the proxy enforces it itself.
func TestGRPCDeadlines(t *testing.T) {
	t.Run("propagated_to_server", func(t *testing.T) {
		b := startGRPC(t)
		p := b.proxyFor(t, h2Explicit, "")
		tc := testpb.NewTestServiceClient(dialGRPC(t, p.Addr("grpc")))
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		_, err := tc.UnaryCall(ctx, &testpb.SimpleRequest{Payload: &testpb.Payload{Body: []byte(holdBody)}})
		if status.Code(err) != codes.DeadlineExceeded {
			t.Fatalf("got %v, want DEADLINE_EXCEEDED", err)
		}
		dl := b.svc.seenDeadlines()
		if len(dl) != 1 || dl[0] <= 0 || dl[0] > 300*time.Millisecond {
			t.Fatalf("server saw deadlines %v, want one in (0, 300ms]", dl)
		}
	})

	t.Run("grpc_timeout_header_max_enforced_by_proxy", func(t *testing.T) {
		b := startGRPC(t)
		p := b.proxyFor(t, h2Explicit, ", max_stream_duration: {grpc_timeout_header_max: 0.2s}")
		tc := testpb.NewTestServiceClient(dialGRPC(t, p.Addr("grpc")))
		// The client allows 20 s; the route caps grpc-timeout at 200 ms.
		ctx := grpcCtx(t)
		start := time.Now()
		_, err := tc.UnaryCall(ctx, &testpb.SimpleRequest{Payload: &testpb.Payload{Body: []byte(holdBody)}})
		elapsed := time.Since(start)
		// Envoy treats the capped grpc-timeout as the stream's
		// max_stream_duration and answers with its local reply
		// "downstream duration timeout" and gRPC DEADLINE_EXCEEDED
		// (conn_manager_impl.cc onStreamMaxDurationReached).
		if c := status.Code(err); c != codes.DeadlineExceeded || status.Convert(err).Message() != "downstream duration timeout" {
			t.Fatalf("got %v, want DEADLINE_EXCEEDED \"downstream duration timeout\" from the proxy", err)
		}
		if elapsed > 5*time.Second {
			t.Fatalf("the call took %v: the proxy did not enforce the 200 ms cap", elapsed)
		}
		if elapsed < 150*time.Millisecond {
			t.Fatalf("the call failed after %v, before the 200 ms cap", elapsed)
		}
		// A gRPC local reply is an HTTP 200 (trailers-only); Envoy's
		// stream info then records 200 and the flag.
		info := p.NextStream(0)
		if info.ResponseCode != 200 {
			t.Errorf("stream response code %d, want 200 (gRPC local reply)", info.ResponseCode)
		}
		if info.Flags != streaminfo.DurationTimeout || info.Details != "max_duration_timeout" {
			t.Errorf("flags %v details %q, want DT and max_duration_timeout", info.Flags, info.Details)
		}
	})
}

// TestRouteMaxStreamDuration: the route's max_stream_duration ends a stream
// that outlives it with Envoy's "downstream duration timeout" (flag DT),
// even when the route timeout and the client allow longer.
func TestRouteMaxStreamDuration(t *testing.T) {
	b := startGRPC(t)
	p := b.proxyFor(t, h2Explicit, ", timeout: 10s, max_stream_duration: {max_stream_duration: 0.2s}")
	tc := testpb.NewTestServiceClient(dialGRPC(t, p.Addr("grpc")))
	start := time.Now()
	_, err := tc.UnaryCall(grpcCtx(t), &testpb.SimpleRequest{Payload: &testpb.Payload{Body: []byte(holdBody)}})
	elapsed := time.Since(start)
	if c := status.Code(err); c != codes.DeadlineExceeded || status.Convert(err).Message() != "downstream duration timeout" {
		t.Fatalf("got %v, want DEADLINE_EXCEEDED \"downstream duration timeout\" from the proxy", err)
	}
	if elapsed < 150*time.Millisecond || elapsed > 5*time.Second {
		t.Fatalf("the call ended after %v; max_stream_duration is 200 ms", elapsed)
	}
	if info := p.NextStream(0); info.Flags != streaminfo.DurationTimeout || info.Details != "max_duration_timeout" {
		t.Errorf("flags %v details %q, want DT and max_duration_timeout", info.Flags, info.Details)
	}
}

// TestGRPCLargeMessagesAndFlowControl sends messages far larger than the
// HTTP/2 windows and reads a long stream slowly.
func TestGRPCLargeMessagesAndFlowControl(t *testing.T) {
	b := startGRPC(t)
	p := b.proxyFor(t, h2Explicit, "")
	tc := testpb.NewTestServiceClient(dialGRPC(t, p.Addr("grpc")))
	ctx := grpcCtx(t)
	const mib = 1 << 20

	t.Run("unary_8MiB_both_ways", func(t *testing.T) { checkUnaryEcho(t, ctx, tc, 8*mib) })
	t.Run("client_stream_4MiB_messages", func(t *testing.T) { checkClientStreaming(t, ctx, tc, []int{4 * mib, 1, 4 * mib}) })

	t.Run("slow_reader", func(t *testing.T) {
		// 24 MiB: about five times what the windows and buffers on the way
		// (client, proxy both sides, sockets) held during the pause when
		// measured (19 messages).
		const n, size = 96, 256 << 10
		req := &testpb.StreamingOutputCallRequest{}
		for i := 0; i < n; i++ {
			req.ResponseParameters = append(req.ResponseParameters, &testpb.ResponseParameters{Size: size})
		}
		before := b.svc.sent.Load()
		st, err := tc.StreamingOutputCall(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < n; i++ {
			m, err := st.Recv()
			if err != nil {
				t.Fatalf("message %d: %v", i, err)
			}
			if !bytes.Equal(m.GetPayload().GetBody(), payload(i, size)) {
				t.Fatalf("message %d differs", i)
			}
			if i == 0 {
				// The slow reader: the pause is the behaviour under test,
				// not synchronisation. Whatever the timing, the server
				// cannot have sent everything while the client read one
				// message: flow control holds it back.
				time.Sleep(300 * time.Millisecond)
				if sent := b.svc.sent.Load() - before; sent >= n {
					t.Fatalf("the server sent all %d messages while the client had read one: no back-pressure through the proxy", sent)
				}
			}
		}
		if _, err := st.Recv(); err != io.EOF {
			t.Fatalf("end of stream: %v", err)
		}
	})
}

// TestGRPCManyConcurrentStreams multiplexes many calls on one client
// connection through the proxy.
func TestGRPCManyConcurrentStreams(t *testing.T) {
	b := startGRPC(t)
	p := b.proxyFor(t, h2Explicit, "")
	cc := dialGRPC(t, p.Addr("grpc"))
	tc := testpb.NewTestServiceClient(cc)
	ctx := grpcCtx(t)
	// No warm-up: the burst hits a cold upstream pool, which must open one
	// connection and queue the streams on it (Envoy's HTTP/2 pool counts
	// a connecting connection as capacity), not one connection per stream.

	const unary, bidi = 200, 20
	var wg sync.WaitGroup
	errs := make(chan error, unary+bidi)
	for i := 0; i < unary; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body := payload(i, 100+i)
			resp, err := tc.UnaryCall(ctx, &testpb.SimpleRequest{Payload: &testpb.Payload{Body: body}})
			if err == nil && !bytes.Equal(resp.GetPayload().GetBody(), body) {
				err = errors.New("echo differs")
			}
			if err != nil {
				errs <- err
			}
		}()
	}
	for i := 0; i < bidi; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := pingPong(ctx, tc, i, 5); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := p.Stat("http.grpc.downstream_cx_total"); n != 1 {
		t.Errorf("http.grpc.downstream_cx_total = %d, want 1 (one multiplexed client connection)", n)
	}
	if n := p.Stat("cluster.grpc.upstream_cx_total"); n != 1 {
		t.Errorf("cluster.grpc.upstream_cx_total = %d, want 1 (streams multiplexed upstream)", n)
	}
}

func pingPong(ctx context.Context, tc testpb.TestServiceClient, seed, rounds int) error {
	st, err := tc.FullDuplexCall(ctx)
	if err != nil {
		return err
	}
	for r := 0; r < rounds; r++ {
		body := payload(seed*100+r, 50)
		if err := st.Send(&testpb.StreamingOutputCallRequest{Payload: &testpb.Payload{Body: body}, ResponseParameters: []*testpb.ResponseParameters{{}}}); err != nil {
			return err
		}
		m, err := st.Recv()
		if err != nil {
			return err
		}
		if !bytes.Equal(m.GetPayload().GetBody(), body) {
			return errors.New("bidi echo differs")
		}
	}
	st.CloseSend()
	if _, err := st.Recv(); err != io.EOF {
		return err
	}
	return nil
}

// TestGRPCLocalReplies checks the proxy's own answers to gRPC requests:
// trailers-only responses with the gRPC status Envoy maps its HTTP status
// to (404 → UNIMPLEMENTED, 503 → UNAVAILABLE).
func TestGRPCLocalReplies(t *testing.T) {
	b := startGRPC(t)
	p := b.proxyFor(t, h2Explicit, "")
	cc := dialGRPC(t, p.Addr("grpc"))
	ctx := grpcCtx(t)

	for _, c := range []struct {
		name, path string
		code       codes.Code
		msg        string
		flag       streaminfo.ResponseFlags
	}{
		{"no_route", "/unknown.Service/Call", codes.Unimplemented, "", streaminfo.NoRouteFound},
		{"no_healthy_upstream", "/empty.Service/Call", codes.Unavailable, "no healthy upstream", streaminfo.NoHealthyUpstream},
		{"connection_failure", "/down.Service/Call", codes.Unavailable, "", streaminfo.UpstreamConnectionFailure},
	} {
		t.Run(c.name, func(t *testing.T) {
			n := len(p.Streams())
			err := cc.Invoke(ctx, c.path, &testpb.SimpleRequest{}, &testpb.SimpleResponse{})
			if c.msg == "" && status.Code(err) == c.code {
				c.msg = status.Convert(err).Message() // not checked: it names the address
			}
			checkStatus(t, err, c.code, c.msg)
			info := p.NextStream(n)
			// Envoy records the 200 of the trailers-only reply, and the flag.
			if info.ResponseCode != 200 || info.Flags&c.flag == 0 {
				t.Errorf("stream: code %d flags %v, want 200 with %v", info.ResponseCode, info.Flags, c.flag)
			}

			resp, body := rawGRPC(t, p.URL("grpc"), c.path, &testpb.SimpleRequest{})
			if resp.StatusCode != 200 || resp.Header.Get("content-type") != "application/grpc" ||
				resp.Header.Get("grpc-status") != strconv.Itoa(int(c.code)) || len(body) != 0 || len(resp.Trailer) != 0 {
				t.Errorf("raw: %d headers %v trailers %v body %d bytes, want a trailers-only 200 with grpc-status %d",
					resp.StatusCode, resp.Header, resp.Trailer, len(body), c.code)
			}
		})
	}
}

// TestGRPCCancelPropagates checks that a client cancelling a call resets
// the upstream stream: the server's context ends with Canceled at once,
// not at some later timeout.
func TestGRPCCancelPropagates(t *testing.T) {
	b := startGRPC(t)
	p := b.proxyFor(t, h2Explicit, "")
	tc := testpb.NewTestServiceClient(dialGRPC(t, p.Addr("grpc")))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := tc.UnaryCall(ctx, &testpb.SimpleRequest{Payload: &testpb.Payload{Body: []byte(holdBody)}})
		done <- err
	}()
	grpcWait(t, "the call to reach the server", func() bool { return len(b.svc.seenDeadlines()) == 1 })
	cancel()
	if err := <-done; status.Code(err) != codes.Canceled {
		t.Fatalf("client: %v, want CANCELED", err)
	}
	grpcWait(t, "the server to see the cancellation", func() bool { return len(b.svc.endedHolds()) == 1 })
	if err := b.svc.endedHolds()[0]; !errors.Is(err, context.Canceled) {
		t.Fatalf("server context ended with %v, want context.Canceled", err)
	}
}

// TestGRPCClusterMaxConcurrentStreams checks the cluster's
// http2_protocol_options.max_concurrent_streams: streams above it go to a
// new upstream connection.
func TestGRPCClusterMaxConcurrentStreams(t *testing.T) {
	b := startGRPC(t)
	p := b.proxyFor(t, `    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: {http2_protocol_options: {max_concurrent_streams: 4}}`, "")
	tc := testpb.NewTestServiceClient(dialGRPC(t, p.Addr("grpc")))
	ctx := grpcCtx(t)
	var streams []grpc.BidiStreamingClient[testpb.StreamingOutputCallRequest, testpb.StreamingOutputCallResponse]
	for i := 0; i < 10; i++ {
		st, err := tc.FullDuplexCall(ctx)
		if err != nil {
			t.Fatal(err)
		}
		// One round trip: the stream is open upstream.
		if err := st.Send(&testpb.StreamingOutputCallRequest{Payload: &testpb.Payload{Body: []byte("x")}, ResponseParameters: []*testpb.ResponseParameters{{}}}); err != nil {
			t.Fatal(err)
		}
		if _, err := st.Recv(); err != nil {
			t.Fatalf("stream %d: %v", i, err)
		}
		streams = append(streams, st)
	}
	if n := p.Stat("cluster.grpc.upstream_cx_total"); n != 3 {
		t.Errorf("cluster.grpc.upstream_cx_total = %d with 10 open streams and max_concurrent_streams 4, want 3", n)
	}
	for _, st := range streams {
		st.CloseSend()
		if _, err := st.Recv(); err != io.EOF {
			t.Errorf("closing stream: %v", err)
		}
	}
}

// grpcWait polls cond until it holds or 5 s pass.
func grpcWait(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond) // polling a condition with a deadline
	}
}
