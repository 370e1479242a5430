package registry

import (
	"fmt"
	"math/rand"
	"reflect"
	"testing"

	"google.golang.org/protobuf/proto"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/weftmesh/weft/internal/config"
)

// syntheticMesh builds nSE ServiceEntries spread over nNS namespaces, each
// selecting wePerSE WorkloadEntries of its own. With overlaps set, every
// fifth ServiceEntry re-declares the host of the one before it (in turn
// with the same ports, other ports, or another resolution) and every
// seventh uses inline endpoints, so that the merge paths run too.
func syntheticMesh(nSE, wePerSE, nNS int, overlaps bool) []*config.Object {
	var objs []*config.Object
	for i := 0; i < nSE; i++ {
		ns := fmt.Sprintf("ns-%d", i%nNS)
		app := fmt.Sprintf("svc-%d", i)
		host := fmt.Sprintf("svc-%d.%s.svc.cluster.local", i, ns)
		se := &networking.ServiceEntry{
			Hosts:      []string{host},
			Location:   networking.ServiceEntry_MESH_INTERNAL,
			Resolution: networking.ServiceEntry_STATIC,
			Ports:      []*networking.ServicePort{{Name: "http", Number: 8080, TargetPort: 80}},
		}
		switch {
		case overlaps && i%5 == 4:
			se.Hosts = []string{fmt.Sprintf("svc-%d.%s.svc.cluster.local", i-nNS, ns)}
			switch (i / 5) % 3 {
			case 1:
				se.Ports = append(se.Ports, &networking.ServicePort{Name: "grpc", Number: 9090})
			case 2:
				se.Resolution = networking.ServiceEntry_DNS
			}
			se.WorkloadSelector = &networking.WorkloadSelector{Labels: map[string]string{"app": app}}
		case overlaps && i%7 == 6:
			se.Endpoints = []*networking.WorkloadEntry{
				{Address: fmt.Sprintf("10.200.%d.2", i%250), Labels: map[string]string{"v": "b"}},
				{Address: fmt.Sprintf("10.200.%d.1", i%250), Weight: 2},
			}
		default:
			se.WorkloadSelector = &networking.WorkloadSelector{Labels: map[string]string{"app": app}}
		}
		objs = append(objs, object(config.ServiceEntry, ns, fmt.Sprintf("se-%d", i), se))
		for j := 0; j < wePerSE; j++ {
			we := &networking.WorkloadEntry{
				Address:        fmt.Sprintf("10.%d.%d.%d", i/250, i%250, j+1),
				Labels:         map[string]string{"app": app, "version": fmt.Sprintf("v%d", j%2+1)},
				Locality:       "region/zone-" + fmt.Sprint(j%3),
				ServiceAccount: app,
			}
			objs = append(objs, object(config.WorkloadEntry, ns, fmt.Sprintf("%s-%d", app, j), we))
		}
	}
	return objs
}

func object(kind config.Kind, ns, name string, spec proto.Message) *config.Object {
	return &config.Object{
		Meta:    config.Meta{Kind: kind, Name: name, Namespace: ns},
		Spec:    spec,
		Version: "1",
	}
}

// TestFromConfigDeterministic: the same objects in any order give
// identical services and problems.
func TestFromConfigDeterministic(t *testing.T) {
	objs := syntheticMesh(60, 4, 3, true)
	wantSvcs, wantErrs := FromConfig(objs, FileOptions{})
	if len(wantErrs) == 0 {
		t.Fatal("the synthetic mesh should produce merge warnings")
	}
	want := render(wantSvcs)
	rng := rand.New(rand.NewSource(1))
	for i := 0; i < 20; i++ {
		shuffled := append([]*config.Object(nil), objs...)
		rng.Shuffle(len(shuffled), func(a, b int) { shuffled[a], shuffled[b] = shuffled[b], shuffled[a] })
		svcs, errs := FromConfig(shuffled, FileOptions{})
		if got := render(svcs); got != want {
			t.Fatalf("permutation %d: services differ:\n%s\nwant:\n%s", i, got, want)
		}
		if !reflect.DeepEqual(svcs, wantSvcs) {
			t.Fatalf("permutation %d: services differ in a field render does not show", i)
		}
		if !reflect.DeepEqual(errs, wantErrs) {
			t.Fatalf("permutation %d: problems differ:\n%v\nwant:\n%v", i, errs, wantErrs)
		}
	}
}

// BenchmarkFromConfig: 1,000 ServiceEntries, each selecting 10
// WorkloadEntries, over 10 namespaces.
func BenchmarkFromConfig(b *testing.B) {
	objs := syntheticMesh(1000, 10, 10, false)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		svcs, errs := FromConfig(objs, FileOptions{})
		if len(svcs) != 1000 || len(errs) != 0 {
			b.Fatalf("got %d services, %d problems", len(svcs), len(errs))
		}
	}
}

// BenchmarkFileUpdateUnchanged: the cost of an Update when no
// ServiceEntry or WorkloadEntry changed (any other config change).
func BenchmarkFileUpdateUnchanged(b *testing.B) {
	objs := syntheticMesh(1000, 10, 10, false)
	f := NewFile(FileOptions{})
	f.Update(objs)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, changed := f.Update(objs); changed {
			b.Fatal("recomputed")
		}
	}
}
