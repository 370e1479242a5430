package translate

import (
	"testing"

	"github.com/weftmesh/weft/internal/model"
)

// TestInboundClusterServices: an inbound cluster carries Istio's
// filter_metadata.istio.services, every service the workload serves on
// its port ordered by host, so that the destination side's istio.stats
// labels destination_service from it (Istio's inbound default has no
// Host header fallback); a port no service maps to the workload gets
// none.
func TestInboundClusterServices(t *testing.T) {
	ep := func(port uint32) *model.Endpoint {
		return &model.Endpoint{Address: "10.0.0.7", Ports: map[string]uint32{"http": port}, WorkloadName: "hello-v1", Namespace: "default"}
	}
	svc := func(host string, port uint32) *model.Service {
		return &model.Service{Hostname: host, Namespace: "default",
			Ports: []model.Port{{Name: "http", Number: 80, Protocol: model.HTTP}}, Endpoints: []*model.Endpoint{ep(port)}}
	}
	snap := model.NewSnapshot(model.SnapshotOptions{Services: []*model.Service{
		svc("zeta.default.svc.cluster.local", 8080), svc("hello.default.svc.cluster.local", 8080), svc("admin.default.svc.cluster.local", 9090),
	}})
	p, err := model.ParseProxy("sidecar~10.0.0.7~hello-v1.default~default.svc.cluster.local", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	out := New(Options{}).Generate(snap, p)
	for cluster, want := range map[string][]string{
		"inbound|8080||": {"hello.default.svc.cluster.local", "zeta.default.svc.cluster.local"},
		"inbound|9090||": {"admin.default.svc.cluster.local"},
	} {
		c := out.Clusters[cluster]
		if c == nil {
			t.Fatalf("no cluster %s", cluster)
		}
		list := c.GetMetadata().GetFilterMetadata()["istio"].GetFields()["services"].GetListValue().GetValues()
		var got []string
		for _, v := range list {
			f := v.GetStructValue().GetFields()
			got = append(got, f["host"].GetStringValue())
			if f["namespace"].GetStringValue() != "default" {
				t.Errorf("%s: service %v without its namespace", cluster, f)
			}
		}
		if len(got) != len(want) || got[0] != want[0] || got[len(got)-1] != want[len(want)-1] {
			t.Errorf("%s: services %v, want %v", cluster, got, want)
		}
	}
}
