package healthcheck

import (
	"context"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/weftmesh/weft/internal/proxy/stats"
	"github.com/weftmesh/weft/internal/proxy/upstream/pool"
)

// fakeHost is a Target whose flag and traffic the test controls.
type fakeHost struct {
	failed  atomic.Bool
	traffic bool
	passed  int
}

func newSession(t *testing.T, hc *corev3.HealthCheck, h *fakeHost, addr string) (*Session, *stats.Store) {
	t.Helper()
	cfg, err := ParseConfig(hc, "backend")
	if err != nil {
		t.Fatal(err)
	}
	st := stats.NewStore()
	h.failed.Store(true)
	s := NewSession(cfg, Target{
		Pool:      pool.Options{Addr: func() string { return addr }},
		Failed:    h.failed.Load,
		SetFailed: h.failed.Store,
		Passed:    func() { h.passed++ },
		Traffic:   func() bool { return h.traffic },
		Stats:     NewStats(st.Root().Tagged("cluster", "envoy_cluster_name", "backend")),
	})
	s.rand = func(n uint64) uint64 { return n - 1 } // maximal jitter, deterministic
	return s, st
}

func baseHC() *corev3.HealthCheck {
	return &corev3.HealthCheck{
		Timeout: durationpb.New(time.Second), Interval: durationpb.New(10 * time.Second),
		UnhealthyThreshold: wrapperspb.UInt32(3), HealthyThreshold: wrapperspb.UInt32(2),
		UnhealthyInterval: durationpb.New(20 * time.Second), UnhealthyEdgeInterval: durationpb.New(3 * time.Second),
		HealthyEdgeInterval: durationpb.New(4 * time.Second), NoTrafficInterval: durationpb.New(60 * time.Second),
		HealthChecker: &corev3.HealthCheck_HttpHealthCheck_{HttpHealthCheck: &corev3.HealthCheck_HttpHealthCheck{Path: "/healthz"}},
	}
}

func TestThresholdsAndIntervals(t *testing.T) {
	h := &fakeHost{traffic: true}
	s, st := newSession(t, baseHC(), h, "")
	steps := []struct {
		r        result
		failed   bool
		interval time.Duration
	}{
		{passed, false, 10 * time.Second},         // first check: healthy at once
		{failedNetwork, false, 3 * time.Second},   // 1/3: unhealthy edge interval
		{failedNetwork, false, 3 * time.Second},   // 2/3
		{passed, false, 10 * time.Second},         // a pass resets the run
		{failedRetriable, false, 3 * time.Second}, // retriable statuses count like network failures
		{failedNetwork, false, 3 * time.Second},
		{failedNetwork, true, 20 * time.Second}, // 3/3: unhealthy
		{failedNetwork, true, 20 * time.Second}, // stays: unhealthy interval
		{passed, true, 4 * time.Second},         // 1/2: healthy edge interval
		{passed, false, 10 * time.Second},       // 2/2: healthy
		{failedActive, true, 20 * time.Second},  // a wrong answer fails at once
	}
	for i, st := range steps {
		got := s.handle(st.r)
		if h.failed.Load() != st.failed || got != st.interval {
			t.Fatalf("step %d (result %d): failed %v interval %v, want %v %v", i, st.r, h.failed.Load(), got, st.failed, st.interval)
		}
	}
	if got := st.CounterValue("cluster.backend.health_check.healthy"); got != 0 {
		t.Errorf("healthy gauge = %d, want 0", got)
	}
	for name, want := range map[string]int64{"success": 4, "failure": 7, "network_failure": 5} {
		if got := st.CounterValue("cluster.backend.health_check." + name); got != want {
			t.Errorf("health_check.%s = %d, want %d", name, got, want)
		}
	}
	if h.passed != 4 {
		t.Errorf("Passed called %d times, want 4", h.passed)
	}
}

func TestNoTrafficIntervalAndJitter(t *testing.T) {
	hc := baseHC()
	hc.IntervalJitterPercent = 10
	hc.IntervalJitter = durationpb.New(500 * time.Millisecond)
	h := &fakeHost{}
	s, _ := newSession(t, hc, h, "")
	// No traffic yet: no_traffic_interval (60 s) + 10 % − 1 ms + 500 ms − 1 ms
	// with the maximal draws.
	if got, want := s.handle(passed), 60*time.Second+6*time.Second-time.Millisecond+500*time.Millisecond-time.Millisecond; got != want {
		t.Fatalf("no-traffic interval = %v, want %v", got, want)
	}
}

// serve answers /healthz with the status in code.
func serveHTTP(t *testing.T, code *atomic.Int32, h2c bool) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Protocols: new(http.Protocols), Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" || r.Host != "backend" || r.UserAgent() != "Envoy/HC" || r.Header.Get("x-hc") != "1" {
			w.WriteHeader(400)
			return
		}
		w.WriteHeader(int(code.Load()))
	})}
	srv.Protocols.SetHTTP1(true)
	srv.Protocols.SetUnencryptedHTTP2(h2c)
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

func TestProbers(t *testing.T) {
	var code atomic.Int32
	code.Store(200)
	h1 := serveHTTP(t, &code, false)
	h2 := serveHTTP(t, &code, true)
	grpcAddr, hs := serveGRPC(t)
	tcpLn, _ := net.Listen("tcp", "127.0.0.1:0")
	t.Cleanup(func() { tcpLn.Close() })
	go func() {
		for {
			c, err := tcpLn.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); b := make([]byte, 4); c.Read(b); c.Write([]byte("xxPONGyy")) }()
		}
	}()
	closed, _ := net.Listen("tcp", "127.0.0.1:0")
	closedAddr := closed.Addr().String()
	closed.Close()

	httpHC := func(codec typev3.CodecClientType) *corev3.HealthCheck {
		hc := baseHC()
		hc.HealthChecker = &corev3.HealthCheck_HttpHealthCheck_{HttpHealthCheck: &corev3.HealthCheck_HttpHealthCheck{
			Path: "/healthz", CodecClientType: codec,
			RequestHeadersToAdd: []*corev3.HeaderValueOption{{Header: &corev3.HeaderValue{Key: "x-hc", Value: "1"}}},
			RetriableStatuses:   []*typev3.Int64Range{{Start: 429, End: 430}},
		}}
		return hc
	}
	tcpHC := baseHC()
	tcpHC.HealthChecker = &corev3.HealthCheck_TcpHealthCheck_{TcpHealthCheck: &corev3.HealthCheck_TcpHealthCheck{
		Send: &corev3.HealthCheck_Payload{Payload: &corev3.HealthCheck_Payload_Text{Text: "50494e47"}}, // PING
		Receive: []*corev3.HealthCheck_Payload{
			{Payload: &corev3.HealthCheck_Payload_Text{Text: "504f"}}, {Payload: &corev3.HealthCheck_Payload_Text{Text: "4e47"}}}, // PO, NG
	}}
	grpcHC := baseHC()
	grpcHC.HealthChecker = &corev3.HealthCheck_GrpcHealthCheck_{GrpcHealthCheck: &corev3.HealthCheck_GrpcHealthCheck{ServiceName: "svc"}}

	for _, tc := range []struct {
		name  string
		hc    *corev3.HealthCheck
		addr  string
		setup func()
		want  result
	}{
		{"http1 200", httpHC(typev3.CodecClientType_HTTP1), h1, func() { code.Store(200) }, passed},
		{"http1 503", httpHC(typev3.CodecClientType_HTTP1), h1, func() { code.Store(503) }, failedActive},
		{"http1 retriable 429", httpHC(typev3.CodecClientType_HTTP1), h1, func() { code.Store(429) }, failedRetriable},
		{"http2 200", httpHC(typev3.CodecClientType_HTTP2), h2, func() { code.Store(200) }, passed},
		{"http2 500", httpHC(typev3.CodecClientType_HTTP2), h2, func() { code.Store(500) }, failedActive},
		{"http refused", httpHC(typev3.CodecClientType_HTTP1), closedAddr, nil, failedNetwork},
		{"tcp send/receive", tcpHC, tcpLn.Addr().String(), nil, passed},
		{"tcp refused", tcpHC, closedAddr, nil, failedNetwork},
		{"grpc serving", grpcHC, grpcAddr, func() { hs.SetServingStatus("svc", healthpb.HealthCheckResponse_SERVING) }, passed},
		{"grpc not serving", grpcHC, grpcAddr, func() { hs.SetServingStatus("svc", healthpb.HealthCheckResponse_NOT_SERVING) }, failedActive},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.setup != nil {
				tc.setup()
			}
			s, _ := newSession(t, tc.hc, &fakeHost{}, tc.addr)
			defer s.prober.close()
			for i := range 2 { // the second check reuses the connection
				if got := s.prober.probe(time.Now().Add(2 * time.Second)); got != tc.want {
					t.Fatalf("check %d: result %d, want %d", i, got, tc.want)
				}
			}
		})
	}
}

func serveGRPC(t *testing.T) (string, *health.Server) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	hs := health.NewServer()
	healthpb.RegisterHealthServer(srv, hs)
	go srv.Serve(ln)
	t.Cleanup(srv.Stop)
	return ln.Addr().String(), hs
}

func TestSessionRunsAndStops(t *testing.T) {
	var code atomic.Int32
	code.Store(200)
	addr := serveHTTP(t, &code, false)
	hc := baseHC()
	hc.Interval = durationpb.New(10 * time.Millisecond)
	hc.HealthChecker.(*corev3.HealthCheck_HttpHealthCheck_).HttpHealthCheck.RequestHeadersToAdd =
		[]*corev3.HeaderValueOption{{Header: &corev3.HeaderValue{Key: "x-hc", Value: "1"}}}
	h := &fakeHost{traffic: true}
	s, st := newSession(t, hc, h, addr)
	s.Start()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for h.failed.Load() || st.CounterValue("cluster.backend.health_check.success") < 3 {
		select {
		case <-ctx.Done():
			s.Stop()
			t.Fatal("host never became healthy")
		case <-time.After(5 * time.Millisecond): // polling a condition with a deadline
		}
	}
	s.Stop()
	select {
	case <-s.Done():
	case <-ctx.Done():
		t.Fatal("session did not stop")
	}
	if got := st.CounterValue("cluster.backend.health_check.healthy"); got != 0 {
		t.Errorf("healthy gauge after stop = %d, want 0", got)
	}
}
