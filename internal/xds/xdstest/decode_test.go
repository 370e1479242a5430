package xdstest

import (
	"slices"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	"google.golang.org/protobuf/proto"

	"github.com/weftmesh/weft/internal/model"
)

// meshResources returns proxy 0's resources of a small synthetic mesh.
func meshResources(t testing.TB) map[string][]proto.Message {
	m := NewMesh(MeshOptions{Services: 20})
	p := proxyOf(t, m, 0)
	r := NewGenerator().Generate(m.Snapshot("1", nil), p)
	out := map[string][]proto.Message{}
	for _, c := range r.Clusters {
		out[ClusterType] = append(out[ClusterType], c)
	}
	for _, e := range r.Endpoints {
		out[EndpointType] = append(out[EndpointType], e)
	}
	for _, l := range r.Listeners {
		out[ListenerType] = append(out[ListenerType], l)
	}
	for _, rc := range r.Routes {
		out[RouteType] = append(out[RouteType], rc)
	}
	return out
}

func TestLightDecodingMatchesFullDecoding(t *testing.T) {
	// A cluster whose EDS name differs from its own, and a STATIC one.
	extra := EDSCluster("named")
	extra.EdsClusterConfig.ServiceName = "service-name"
	static := &clusterv3.Cluster{Name: "static", ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC}}
	all := meshResources(t)
	all[ClusterType] = append(all[ClusterType], extra, static)
	for url, msgs := range all {
		for _, m := range msgs {
			b, err := proto.Marshal(m)
			if err != nil {
				t.Fatal(err)
			}
			full, err := decode(url, b, true)
			if err != nil {
				t.Fatal(err)
			}
			light, err := decode(url, b, false)
			if err != nil {
				t.Fatal(err)
			}
			if full.name == "" || full.name != light.name || !slices.Equal(full.refs, light.refs) {
				t.Errorf("%s: full %q %v, light %q %v", url, full.name, full.refs, light.name, light.refs)
			}
			if full.msg == nil || light.msg != nil && url != ListenerType {
				t.Errorf("%s %s: kept messages: full %v, light %v", url, full.name, full.msg != nil, light.msg != nil)
			}
		}
	}
	if d, _ := decode(ClusterType, mustMarshal(t, extra), false); !slices.Equal(d.refs, []string{"service-name"}) {
		t.Errorf("EDS name: %v, want [service-name]", d.refs)
	}
	if d, _ := decode(ClusterType, mustMarshal(t, static), false); d.refs != nil {
		t.Errorf("a STATIC cluster refers to %v", d.refs)
	}
}

func mustMarshal(t testing.TB, m proto.Message) []byte {
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// FuzzDecodeLight checks that scanning arbitrary bytes never panics and
// agrees with full decoding on the name whenever both succeed.
func FuzzDecodeLight(f *testing.F) {
	for url, msgs := range meshResources(f) {
		for _, m := range msgs[:1] {
			b, _ := proto.Marshal(m)
			f.Add(url, b)
		}
	}
	f.Add(ClusterType, []byte{0x0a, 0xff})
	f.Fuzz(func(t *testing.T, url string, b []byte) {
		switch url {
		case ClusterType, EndpointType, RouteType:
		default:
			return
		}
		light, lerr := decode(url, b, false)
		full, ferr := decode(url, b, true)
		if lerr == nil && ferr == nil && light.name != full.name {
			t.Errorf("name: light %q, full %q", light.name, full.name)
		}
	})
}

func proxyOf(t testing.TB, m *Mesh, i int) *model.Proxy {
	n := m.Node(i)
	labels := map[string]string{}
	for k, v := range n.GetMetadata().GetFields()["LABELS"].GetStructValue().GetFields() {
		labels[k] = v.GetStringValue()
	}
	p, err := model.ParseProxy(n.GetId(), map[string]string{"NAMESPACE": m.Namespace(i)}, labels)
	if err != nil {
		t.Fatal(err)
	}
	return p
}
