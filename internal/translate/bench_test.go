package translate

import (
	"fmt"
	"testing"

	"google.golang.org/protobuf/proto"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/weftmesh/weft/internal/config"
	"github.com/weftmesh/weft/internal/model"
)

// meshOptions describe a synthetic mesh.
type meshOptions struct {
	namespaces, services, endpoints, virtualServices int
	// v1Weight is the weight of subset v1 in the VirtualServices' split
	// (v2 gets the rest).
	v1Weight int32
}

// benchMesh is the benchmark mesh: 1,000 services in 10
// namespaces, one HTTP port and 10 endpoints each (half v1, half v2), 100
// of them with a VirtualService splitting 90/10 between DestinationRule
// subsets.
var benchMesh = meshOptions{namespaces: 10, services: 1000, endpoints: 10, virtualServices: 100, v1Weight: 90}

// syntheticMesh builds the snapshot of a synthetic mesh.
func syntheticMesh(o meshOptions, version string) *model.Snapshot {
	var services []*model.Service
	var configs []*config.Object
	perNs := o.services / o.namespaces
	for i := 0; i < o.services; i++ {
		ns := fmt.Sprintf("ns-%d", i/perNs)
		name := fmt.Sprintf("svc-%d", i)
		svc := &model.Service{
			Hostname:  name + "." + ns + ".svc.cluster.local",
			Namespace: ns,
			Addresses: []string{fmt.Sprintf("10.96.%d.%d", i/250, i%250+1)},
			Ports:     []model.Port{{Name: "http", Number: 8080, Protocol: model.HTTP}},
			Source:    config.Key{Kind: config.ServiceEntry, Namespace: ns, Name: name},
		}
		for e := 0; e < o.endpoints; e++ {
			version := "v1"
			if e%2 == 1 {
				version = "v2"
			}
			svc.Endpoints = append(svc.Endpoints, &model.Endpoint{
				Address:  fmt.Sprintf("10.%d.%d.%d", 1+i/250, i%250, e+1),
				Labels:   map[string]string{"app": name, "version": version},
				Locality: "region/zone-" + fmt.Sprint(e%3),
			})
		}
		services = append(services, svc)
		if i < o.virtualServices {
			configs = append(configs, splitVirtualService(ns, name, o.v1Weight), subsetRule(ns, name))
		}
	}
	return model.NewSnapshot(model.SnapshotOptions{Version: version, Services: services, Configs: configs})
}

// splitVirtualService splits traffic to name between subsets v1 and v2.
func splitVirtualService(ns, name string, v1 int32) *config.Object {
	return istioObject(config.VirtualService, ns, name, &networking.VirtualService{
		Hosts: []string{name},
		Http: []*networking.HTTPRoute{{Route: []*networking.HTTPRouteDestination{
			{Destination: &networking.Destination{Host: name, Subset: "v1"}, Weight: v1},
			{Destination: &networking.Destination{Host: name, Subset: "v2"}, Weight: 100 - v1},
		}}},
	})
}

// subsetRule defines subsets v1 and v2 of name.
func subsetRule(ns, name string) *config.Object {
	return istioObject(config.DestinationRule, ns, name, &networking.DestinationRule{
		Host: name,
		Subsets: []*networking.Subset{
			{Name: "v1", Labels: map[string]string{"version": "v1"}},
			{Name: "v2", Labels: map[string]string{"version": "v2"}},
		},
	})
}

func istioObject(kind config.Kind, ns, name string, spec proto.Message) *config.Object {
	return &config.Object{
		Meta:   config.Meta{Kind: kind, APIVersion: "networking.istio.io/v1", Name: name, Namespace: ns},
		Spec:   spec,
		Source: config.Source{File: "synthetic.yaml"},
	}
}

// meshProxy is sidecar i of namespace ns, an endpoint of no service (its
// inbound is empty, like a client).
func meshProxy(tb testing.TB, ns string, i int) *model.Proxy {
	tb.Helper()
	p, err := model.ParseProxy(fmt.Sprintf("sidecar~10.200.%d.%d~client-%d.%s~%s.svc.cluster.local", i/250, i%250+1, i, ns, ns),
		map[string]string{}, map[string]string{"app": "client"})
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

// resourceBytes is the marshalled size of a proxy's resources.
func resourceBytes(r *Resources) int {
	n := 0
	for _, m := range r.Listeners {
		n += proto.Size(m)
	}
	for _, m := range r.Routes {
		n += proto.Size(m)
	}
	for _, m := range r.Clusters {
		n += proto.Size(m)
	}
	for _, m := range r.Endpoints {
		n += proto.Size(m)
	}
	return n
}

// BenchmarkGenerate measures Generate on the mesh: "first" is the
// first proxy of a snapshot (index, scope and resources built), "cached"
// a further proxy of the same scope (shared resources reused; its HTTP
// proxy listener and inbound computed), "fleet" 500 proxies over the 10
// namespaces from a cold translator.
func BenchmarkGenerate(b *testing.B) {
	snap := syntheticMesh(benchMesh, "bench")
	p := meshProxy(b, "ns-0", 0)
	b.Run("first", func(b *testing.B) {
		b.ReportAllocs()
		var res *Resources
		for i := 0; i < b.N; i++ {
			res = New(Options{}).Generate(snap, p)
		}
		b.ReportMetric(float64(resourceBytes(res)), "bytes/proxy")
		b.ReportMetric(float64(len(res.Clusters)), "clusters/proxy")
	})
	b.Run("cached", func(b *testing.B) {
		tr := New(Options{})
		tr.Generate(snap, p)
		q := meshProxy(b, "ns-0", 1)
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			tr.Generate(snap, q)
		}
	})
	b.Run("cached-inbound", func(b *testing.B) {
		tr := New(Options{})
		tr.Generate(snap, p)
		// The first endpoint of svc-0: its sidecar has an inbound listener
		// and cluster, so its listener and cluster maps are copies.
		q, err := model.ParseProxy("sidecar~10.1.0.1~svc-0-1.ns-0~ns-0.svc.cluster.local", map[string]string{}, nil)
		if err != nil {
			b.Fatal(err)
		}
		res := tr.Generate(snap, q)
		if res.Clusters[inboundCluster(8080)] == nil {
			b.Fatal("no inbound cluster")
		}
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			tr.Generate(snap, q)
		}
	})
	b.Run("fleet500", func(b *testing.B) {
		proxies := make([]*model.Proxy, 500)
		for i := range proxies {
			proxies[i] = meshProxy(b, fmt.Sprintf("ns-%d", i%10), i)
		}
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			tr := New(Options{})
			for _, p := range proxies {
				tr.Generate(snap, p)
			}
		}
	})
}
