package xds

import (
	"maps"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/weftmesh/weft/internal/model"
	"github.com/weftmesh/weft/internal/translate"
	"github.com/weftmesh/weft/internal/xds/xdstest"
)

func nodeWith(id string, fields map[string]*structpb.Value) *corev3.Node {
	return &corev3.Node{Id: id, Metadata: &structpb.Struct{Fields: fields}}
}

// badNodes are identities the server must refuse, with a word of the
// error that says why.
var badNodes = []struct {
	name string
	node *corev3.Node
	want string
}{
	{"not Istio's form", nodeWith("envoy-1", nil), "TYPE~IP~NAME.NAMESPACE~DOMAIN"},
	{"unknown type", nodeWith("gateway~10.0.0.1~a.default~default.svc.cluster.local", nil), "must be sidecar or router"},
	{"bad IP", nodeWith("sidecar~10.0.0~a.default~default.svc.cluster.local", nil), "not an IP address"},
	{"no namespace", nodeWith("sidecar~10.0.0.1~a~default.svc.cluster.local", nil), "NAME.NAMESPACE"},
	{"namespace differs", nodeWith(proxyA, map[string]*structpb.Value{
		"NAMESPACE": structpb.NewStringValue("prod"),
	}), "differs"},
	{"labels not a struct", nodeWith(proxyA, map[string]*structpb.Value{
		"LABELS": structpb.NewStringValue("app=x"),
	}), "LABELS must be a struct"},
	{"label not a string", nodeWith(proxyA, map[string]*structpb.Value{
		"LABELS": structpb.NewStructValue(&structpb.Struct{Fields: map[string]*structpb.Value{"version": structpb.NewNumberValue(1)}}),
	}), "LABELS.version must be a string"},
	{"no node", nil, "no node"},
}

func TestBadNodeIsRefusedClearly(t *testing.T) {
	gen := newTableGen()
	gen.setAll("1", world(90))
	e := newEnv(t, gen)
	e.push("1")
	ctx := testCtx(t)
	for _, tt := range badNodes {
		for _, delta := range []bool{false, true} {
			o := xdstest.Options{Address: e.addr, Node: tt.node}
			if tt.node == nil {
				// Options require a node; an empty one has no id at all.
				o.Node = &corev3.Node{}
			}
			var err error
			if delta {
				var c *xdstest.Delta
				if c, err = xdstest.NewDelta(o); err == nil {
					err = c.Wait(ctx, func(*xdstest.State) bool { return false })
					_ = c.Close()
				}
			} else {
				var c *xdstest.ADS
				if c, err = xdstest.NewADS(o); err == nil {
					err = c.Wait(ctx, func(*xdstest.State) bool { return false })
					_ = c.Close()
				}
			}
			st, _ := status.FromError(err)
			want := tt.want
			if tt.node == nil {
				want = "TYPE~IP" // an empty id
			}
			if st.Code() != codes.InvalidArgument || !strings.Contains(st.Message(), want) {
				t.Errorf("%s (delta %v): got %v, want InvalidArgument mentioning %q", tt.name, delta, err, want)
			}
		}
	}
	// The server is still serving.
	c := e.ads(proxyA, xdstest.Options{})
	if err := c.WaitSynced(ctx); err != nil {
		t.Fatal(err)
	}
	if got := e.s.Connected(); got != 1 {
		t.Errorf("connected after refusals: %d, want 1", got)
	}
}

func TestProxyFromNode(t *testing.T) {
	for _, tt := range badNodes {
		if _, err := proxyFromNode(tt.node); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: got %v, want an error mentioning %q", tt.name, err, tt.want)
		}
	}
	n := nodeWith("router~10.0.0.7~gw-1.istio-system~istio-system.svc.cluster.local", map[string]*structpb.Value{
		"LABELS":            structpb.NewStructValue(&structpb.Struct{Fields: map[string]*structpb.Value{"istio": structpb.NewStringValue("ingressgateway")}}),
		"SERVICE_ACCOUNT":   structpb.NewStringValue("gw"),
		"HTTP_PROXY_PORT":   structpb.NewStringValue("15080"),
		"ISTIO_VERSION":     structpb.NewStringValue("1.24"),
		"PLATFORM_METADATA": structpb.NewStructValue(&structpb.Struct{}),
	})
	p, err := proxyFromNode(n)
	if err != nil {
		t.Fatal(err)
	}
	if p.Type != model.Router || p.Namespace != "istio-system" || p.ServiceAccount != "gw" || p.HTTPProxyPort != 15080 ||
		!maps.Equal(p.Labels, map[string]string{"istio": "ingressgateway"}) || p.Metadata["ISTIO_VERSION"] != "1.24" {
		t.Errorf("proxy %+v", p)
	}
	if _, ok := p.Metadata["PLATFORM_METADATA"]; ok {
		t.Error("a struct metadata field was kept as a string")
	}
}

func TestGeneratorPanicKeepsTheServerUp(t *testing.T) {
	gen := newTableGen()
	gen.set("1", func(p *model.Proxy) *translate.Resources {
		if p.Namespace == "broken" {
			panic("translation bug")
		}
		return world(90)
	})
	e := newEnv(t, gen)
	e.push("1")
	ctx := testCtx(t)
	broken := e.ads("sidecar~10.0.0.5~b-1.broken~broken.svc.cluster.local", xdstest.Options{})
	good := e.ads(proxyA, xdstest.Options{})
	if err := good.WaitSynced(ctx); err != nil {
		t.Fatal(err)
	}
	e.waitConnected(ctx, 2)
	e.push("1") // recomputes both again
	if err := good.WaitSynced(ctx); err != nil {
		t.Fatal(err)
	}
	if n := responses(broken.Read)[xdstest.ClusterType]; n != 0 {
		t.Errorf("the proxy whose translation panics got %d cluster responses", n)
	}
	if got := testutilValue(t, e.s.metrics.internalErrors); got != 2 {
		t.Errorf("generate errors: %v, want 2 (connect and push)", got)
	}
}
