package mesh

import (
	"bytes"
	"context"
	"io"
	"net"
	"strconv"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	testpb "google.golang.org/grpc/interop/grpc_testing"
)

// Istio's TCP and gRPC metrics through mTLS sidecars (metrics_test.go has
// the scraping helpers).

// tcpMetricsMesh: echo (TCP, port 7000) with one workload behind a sidecar
// with a certificate (service account echo), reached by sleep through a
// Sidecar egress listener on loopback port {{.tcp}}.
const tcpMetricsMesh = `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: echo, namespace: default}
spec:
  hosts: [echo.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
  - {number: 7000, name: tcp, protocol: TCP}
  workloadSelector:
    labels: {app: echo}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: echo-1, namespace: default}
spec:
  address: 127.0.62.2
  ports: {tcp: {{.echo}}}
  serviceAccount: echo
  labels: {app: echo, version: v1, security.istio.io/tlsMode: istio}
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: sleep, namespace: default}
spec:
  workloadSelector:
    labels: {app: sleep}
  egress:
  - port: {number: {{.tcp}}, protocol: TCP, name: tcp}
    hosts: [./echo.default.svc.cluster.local]
`

const (
	sleepPrincipal = "spiffe://cluster.local/ns/default/sa/sleep"
	echoPrincipal  = "spiffe://cluster.local/ns/default/sa/echo"
)

// TestIstioTCPMetrics: 3 connections from sleep to echo through mTLS
// sidecars, each sending 1000 bytes and reading them back, give exactly
// 3 opened and 3 closed connections and 3000 bytes each way in
// istio_tcp_* on both reporters, with the principals of both
// certificates, the service's FQDN and connection_security_policy
// mutual_tls on the destination side.
func TestIstioTCPMetrics(t *testing.T) {
	tcpPort := freePort(t, "127.0.0.1")
	cp := startControlPlaneWith(t, map[string]string{"echo.yaml": render(t, tcpMetricsMesh, map[string]any{
		"echo": startEcho(t), "tcp": tcpPort,
	})}, true)
	startSidecar(t, cp, sidecarOptions{Name: "echo-1", IP: "127.0.62.2", ServiceAccount: "echo",
		Labels: map[string]string{"app": "echo", "version": "v1"}, ProxyPort: freePort(t, "127.0.0.1"), MetricsAddress: "127.0.62.2:15090"})
	startSidecar(t, cp, sidecarOptions{Name: "sleep", IP: "127.0.62.4", ServiceAccount: "sleep",
		Labels: map[string]string{"app": "sleep", "version": "v1"}, ProxyPort: freePort(t, "127.0.0.1"), MetricsAddress: "127.0.62.4:15090"})
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(tcpPort))
	scrape := func() series { return scrapeAll(t, "127.0.62.2:15090", "127.0.62.4:15090") }

	waitFor(t, "sleep reaches echo over mTLS", 10*time.Second, func() bool { return echoBytes(addr, []byte("ping")) == nil })
	base := settledTCP(t, scrape, 1)

	const conns, size = 3, 1000
	payload := bytes.Repeat([]byte("0123456789"), size/10)
	for i := 0; i < conns; i++ {
		if err := echoBytes(addr, payload); err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
	}
	got := settledTCP(t, scrape, 1+conns).minus(base)

	for _, r := range []string{"source", "destination"} {
		for name, want := range map[string]float64{
			"istio_tcp_connections_opened_total": conns,
			"istio_tcp_connections_closed_total": conns,
			"istio_tcp_received_bytes_total":     conns * size,
			"istio_tcp_sent_bytes_total":         conns * size,
		} {
			assertSums(t, r+" "+name, got.sum(name, map[string]string{"reporter": r}), map[string]float64{"": want})
		}
	}
	labels := []string{"reporter", "source_principal", "source_workload", "destination_principal", "destination_workload",
		"destination_app", "destination_version", "destination_service", "destination_service_name", "request_protocol", "connection_security_policy"}
	// The source side: principals from the upstream TLS handshake, the
	// workload from EDS, the service from the cluster's metadata. The
	// destination side: the caller from its certificate only (no metadata
	// exchange over TCP: its workload is unknown), the service from the
	// inbound cluster's metadata.
	assertSums(t, "labels", got.sum("istio_tcp_connections_opened_total", nil, labels...), map[string]float64{
		"source," + sleepPrincipal + ",sleep," + echoPrincipal + ",echo-1,echo,v1,echo.default.svc.cluster.local,echo,tcp,unknown":           conns,
		"destination," + sleepPrincipal + ",unknown," + echoPrincipal + ",echo-1,echo,v1,echo.default.svc.cluster.local,echo,tcp,mutual_tls": conns,
	})
}

// echoBytes opens a connection, sends p, reads it back and closes.
func echoBytes(addr string, p []byte) error {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write(p); err != nil {
		return err
	}
	back := make([]byte, len(p))
	if _, err := io.ReadFull(c, back); err != nil {
		return err
	}
	if !bytes.Equal(back, p) {
		return io.ErrUnexpectedEOF
	}
	return nil
}

// settledTCP scrapes until both reporters have recorded n closed
// connections: a sidecar records a connection once both directions of
// its relay are done, after the client has closed.
func settledTCP(t *testing.T, scrape func() series, n float64) series {
	t.Helper()
	var s series
	waitFor(t, "both reporters to record the closed connections", 5*time.Second, func() bool {
		s = scrape()
		src := s.sum("istio_tcp_connections_closed_total", map[string]string{"reporter": "source"})[""]
		dst := s.sum("istio_tcp_connections_closed_total", map[string]string{"reporter": "destination"})[""]
		return src == n && dst == n
	})
	return s
}

// grpcMetricsMesh: greet (GRPC, port 8080) with one workload behind a
// sidecar with a certificate.
const grpcMetricsMesh = `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: greet, namespace: default}
spec:
  hosts: [greet.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
  - {number: 8080, name: grpc, protocol: GRPC}
  workloadSelector:
    labels: {app: greet}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: greet-1, namespace: default}
spec:
  address: 127.0.63.2
  ports: {grpc: {{.port}}}
  serviceAccount: greet
  labels: {app: greet, version: v1, security.istio.io/tlsMode: istio}
`

// streamingServer answers UnaryCall, and StreamingOutputCall with one
// response per response_parameters entry.
type streamingServer struct {
	testpb.UnimplementedTestServiceServer
}

func (streamingServer) UnaryCall(context.Context, *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	return &testpb.SimpleResponse{ServerId: "greet"}, nil
}

func (streamingServer) StreamingOutputCall(req *testpb.StreamingOutputCallRequest, st testpb.TestService_StreamingOutputCallServer) error {
	for range req.GetResponseParameters() {
		if err := st.Send(&testpb.StreamingOutputCallResponse{}); err != nil {
			return err
		}
	}
	return nil
}

// TestIstioGRPCMessageMetrics: 10 unary calls and 2 server-streaming calls
// of 5 responses each through mTLS sidecars give 12 requests with
// request_protocol grpc and grpc_response_status 0, 12 request messages
// and 20 response messages on both reporters.
func TestIstioGRPCMessageMetrics(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	testpb.RegisterTestServiceServer(gs, streamingServer{})
	go gs.Serve(l)
	t.Cleanup(gs.Stop)
	cp := startControlPlaneWith(t, map[string]string{"greet.yaml": render(t, grpcMetricsMesh, map[string]any{
		"port": l.Addr().(*net.TCPAddr).Port,
	})}, true)
	startSidecar(t, cp, sidecarOptions{Name: "greet-1", IP: "127.0.63.2", ServiceAccount: "greet",
		Labels: map[string]string{"app": "greet", "version": "v1"}, ProxyPort: freePort(t, "127.0.0.1"), MetricsAddress: "127.0.63.2:15090"})
	sleep := startSidecar(t, cp, sidecarOptions{Name: "sleep", IP: "127.0.63.4", ServiceAccount: "sleep",
		Labels: map[string]string{"app": "sleep", "version": "v1"}, ProxyPort: freePort(t, "127.0.0.1"), MetricsAddress: "127.0.63.4:15090"})
	cc, err := grpc.NewClient("passthrough:///"+sleep.proxy,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithAuthority("greet.default.svc.cluster.local:8080"))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	tc := testpb.NewTestServiceClient(cc)
	call := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err := tc.UnaryCall(ctx, &testpb.SimpleRequest{})
		return err
	}
	waitFor(t, "sleep reaches greet over mTLS", 10*time.Second, func() bool { return call() == nil })
	scrape := func() series { return scrapeAll(t, "127.0.63.2:15090", "127.0.63.4:15090") }
	base := settledGRPC(t, scrape, 1)

	for i := 0; i < 10; i++ {
		if err := call(); err != nil {
			t.Fatalf("unary call %d: %v", i, err)
		}
	}
	for i := 0; i < 2; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		st, err := tc.StreamingOutputCall(ctx, &testpb.StreamingOutputCallRequest{ResponseParameters: make([]*testpb.ResponseParameters, 5)})
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for ; ; n++ {
			if _, err := st.Recv(); err == io.EOF {
				break
			} else if err != nil {
				t.Fatalf("streaming call %d: %v", i, err)
			}
		}
		cancel()
		if n != 5 {
			t.Fatalf("streaming call %d: %d responses, want 5", i, n)
		}
	}
	got := settledGRPC(t, scrape, 13).minus(base)
	by := []string{"reporter", "request_protocol", "grpc_response_status", "source_principal", "destination_principal", "destination_service"}
	for name, want := range map[string]float64{
		"istio_requests_total":          12,
		"istio_request_messages_total":  12,
		"istio_response_messages_total": 20,
	} {
		assertSums(t, name, got.sum(name, nil, by...), map[string]float64{
			"source,grpc,0," + sleepPrincipal + ",spiffe://cluster.local/ns/default/sa/greet,greet.default.svc.cluster.local":      want,
			"destination,grpc,0," + sleepPrincipal + ",spiffe://cluster.local/ns/default/sa/greet,greet.default.svc.cluster.local": want,
		})
	}
}

// settledGRPC scrapes until both reporters have recorded n gRPC requests.
func settledGRPC(t *testing.T, scrape func() series, n float64) series {
	t.Helper()
	var s series
	waitFor(t, "both reporters to record every call", 5*time.Second, func() bool {
		s = scrape()
		src := s.sum("istio_requests_total", map[string]string{"reporter": "source", "request_protocol": "grpc"})[""]
		dst := s.sum("istio_requests_total", map[string]string{"reporter": "destination", "request_protocol": "grpc"})[""]
		return src == n && dst == n
	})
	return s
}
