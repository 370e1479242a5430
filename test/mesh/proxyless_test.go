package mesh

import (
	"context"
	"fmt"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/xds"
)

// grpcBootstrap is grpc-go's xDS bootstrap for a proxyless client in
// namespace default, the way Istio's agent writes it: node metadata
// GENERATOR=grpc tells weft-control to answer with proxyless shapes.
const grpcBootstrap = `{
  "xds_servers": [{"server_uri": %q, "channel_creds": [{"type": "insecure"}], "server_features": ["xds_v3"]}],
  "node": {
    "id": "sidecar~127.0.0.4~grpc-client.default~default.svc.cluster.local",
    "metadata": {"GENERATOR": "grpc", "NAMESPACE": "default", "LABELS": {"app": "grpc-client"}}
  }
}`

// TestProxylessGRPCFollowsVirtualService: a grpc-go client dialing
// xds:///hello.default.svc.cluster.local:8080 with weft-control as its
// xDS server follows the same VirtualService as the sidecars: the 90/10
// split within the binomial bound, and x-canary: yes to subset v2.
func TestProxylessGRPCFollowsVirtualService(t *testing.T) {
	h := startHello(t, 90, 10)
	resolver, err := xds.NewXDSResolverWithConfigForTesting([]byte(fmt.Sprintf(grpcBootstrap, h.cp.xdsAddr())))
	if err != nil {
		t.Fatalf("xDS resolver: %v", err)
	}
	cc, err := grpc.NewClient("xds:///hello.default.svc.cluster.local:8080",
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithResolvers(resolver))
	if err != nil {
		t.Fatalf("grpc.NewClient: %v", err)
	}
	defer cc.Close()
	tc := testpb.NewTestServiceClient(cc)
	call := func(md ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if len(md) > 0 {
			ctx = metadata.AppendToOutgoingContext(ctx, md...)
		}
		resp, err := tc.UnaryCall(ctx, &testpb.SimpleRequest{}, grpc.WaitForReady(true))
		if err != nil {
			t.Fatalf("UnaryCall over xds:///: %v", err)
		}
		return resp.GetServerId()
	}
	const n = 1000
	got := map[string]int{}
	for i := 0; i < n; i++ {
		got[call()]++
	}
	lo, hi := binomialBound(n, 0.10)
	if got["v1"]+got["v2"] != n || got["v2"] < lo || got["v2"] > hi {
		t.Fatalf("proxyless 90/10 over %d calls: %v; want v2 in [%d, %d] (±5σ)", n, got, lo, hi)
	}
	t.Logf("proxyless 90/10: %v (v2 band [%d, %d])", got, lo, hi)
	for i := 0; i < 50; i++ {
		if id := call("x-canary", "yes"); id != "v2" {
			t.Fatalf("proxyless call %d with x-canary: yes reached %s, want v2", i, id)
		}
	}
}
