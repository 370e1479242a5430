package xds

import (
	"context"
	"reflect"
	"testing"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"

	"github.com/weftmesh/weft/internal/model"
	"github.com/weftmesh/weft/internal/nds"
	"github.com/weftmesh/weft/internal/translate"
	"github.com/weftmesh/weft/internal/xds/xdstest"
)

// ndsStream opens an ADS stream subscribing to the name table only, as
// the sidecar agent does.
func ndsStream(t *testing.T, ctx context.Context, addr, id string, meta map[string]string) discoveryv3.AggregatedDiscoveryService_StreamAggregatedResourcesClient {
	t.Helper()
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	st, err := discoveryv3.NewAggregatedDiscoveryServiceClient(cc).StreamAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Send(&discoveryv3.DiscoveryRequest{Node: xdstest.NodeFor(id, nil, meta), TypeUrl: nds.TypeURL}); err != nil {
		t.Fatal(err)
	}
	return st
}

func recvTable(t *testing.T, st discoveryv3.AggregatedDiscoveryService_StreamAggregatedResourcesClient) (*discoveryv3.DiscoveryResponse, nds.Table) {
	t.Helper()
	resp, err := st.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetTypeUrl() != nds.TypeURL || len(resp.GetResources()) != 1 {
		t.Fatalf("response of type %s with %d resources, want one %s", resp.GetTypeUrl(), len(resp.GetResources()), nds.TypeURL)
	}
	tab, err := nds.FromAny(resp.GetResources()[0])
	if err != nil {
		t.Fatal(err)
	}
	return resp, tab
}

// TestNameTableOverADS: a proxy with DNS_CAPTURE that subscribes to NDS
// gets its table, an update after a change, and nothing after its ACK
// while the table is unchanged; a proxy without DNS_CAPTURE is not
// answered.
func TestNameTableOverADS(t *testing.T) {
	gen := newTableGen()
	table := func(ip string) func(p *model.Proxy) *translate.Resources {
		return func(p *model.Proxy) *translate.Resources {
			r := xdstest.NewResources()
			if p.DNSCapture() {
				nt := nds.Table{"hello.default.svc.cluster.local": {IPs: []string{ip}, Registry: "Kubernetes", Shortname: "hello", Namespace: "default"}}
				b, _ := nt.Marshal()
				r.NameTables = map[string]proto.Message{"": nt.Message()}
				r.Versions[translate.NameTableType] = string(b)
			}
			return r
		}
	}
	gen.set("1", table("240.240.0.1"))
	gen.set("2", table("240.240.0.2"))
	e := newEnv(t, gen)
	e.push("1")
	ctx := testCtx(t)
	dnsMeta := map[string]string{model.MetaDNSCapture: "true"}
	st := ndsStream(t, ctx, e.addr, "sidecar~10.0.0.1~a-1.default~default.svc.cluster.local", dnsMeta)
	resp, tab := recvTable(t, st)
	if got := tab["hello.default.svc.cluster.local"].IPs; !reflect.DeepEqual(got, []string{"240.240.0.1"}) {
		t.Fatalf("first table %v", tab)
	}
	ack := &discoveryv3.DiscoveryRequest{TypeUrl: nds.TypeURL, VersionInfo: resp.GetVersionInfo(), ResponseNonce: resp.GetNonce()}
	if err := st.Send(ack); err != nil {
		t.Fatal(err)
	}
	e.waitServerSynced(ctx, "sidecar~10.0.0.1~a-1.default~default.svc.cluster.local", nds.TypeURL)
	e.push("2")
	_, tab = recvTable(t, st)
	if got := tab["hello.default.svc.cluster.local"].IPs; !reflect.DeepEqual(got, []string{"240.240.0.2"}) {
		t.Fatalf("second table %v", tab)
	}

	// The server answers a request at once or opens a watch: an open
	// watch for the proxy without DNS_CAPTURE means it got no table.
	ndsStream(t, ctx, e.addr, "sidecar~10.0.0.2~b-1.default~default.svc.cluster.local", nil)
	e.waitWatch(ctx, "sidecar~10.0.0.2~b-1.default~default.svc.cluster.local", nds.TypeURL)
}
