package registry

import (
	"sync/atomic"
	"testing"

	"github.com/weftmesh/weft/internal/config"
	"github.com/weftmesh/weft/internal/model"
)

// staticRegistry is a stand-in for the Kubernetes registry (a later
// issue): services set by the test.
type staticRegistry struct {
	name     string
	provider Provider
	svcs     atomic.Pointer[[]*model.Service]
	subs     subscribers
}

func newStatic(name string, p Provider, svcs ...*model.Service) *staticRegistry {
	r := &staticRegistry{name: name, provider: p}
	r.svcs.Store(&svcs)
	return r
}

func (r *staticRegistry) Name() string               { return r.name }
func (r *staticRegistry) Provider() Provider         { return r.provider }
func (r *staticRegistry) Services() []*model.Service { return *r.svcs.Load() }
func (r *staticRegistry) Subscribe(f func()) func()  { return r.subs.add(f) }
func (r *staticRegistry) set(svcs ...*model.Service) { r.svcs.Store(&svcs); r.subs.notify() }

var _ Registry = (*staticRegistry)(nil)

// kubeService is what the Kubernetes registry would produce for a Service
// with one port and the given endpoint IPs.
func kubeService(host, ns, vip string, port model.Port, ips ...string) *model.Service {
	s := &model.Service{
		Hostname: host, Namespace: ns, Addresses: []string{vip}, Ports: []model.Port{port},
		Resolution: model.ClientSideLB,
		Source:     config.Key{Kind: "Service", Namespace: ns, Name: "svc"},
	}
	for _, ip := range ips {
		s.Endpoints = append(s.Endpoints, &model.Endpoint{
			Address: ip, TLSMode: TLSModeIstio, Namespace: ns,
			Source: config.Key{Kind: "Pod", Namespace: ns, Name: "pod-" + ip},
		})
	}
	return s
}

func fileServices(t *testing.T, yaml string) []*model.Service {
	t.Helper()
	svcs, errs := FromConfig(objects(t, yaml), FileOptions{})
	if len(errs) != 0 {
		t.Fatalf("file registry problems: %v", errs)
	}
	return svcs
}

const seHello = `
kind: ServiceEntry
metadata: {name: hello-vm}
spec:
  hosts: [hello.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{name: http, number: 8080, targetPort: 9080}, {name: extra, number: 7000}]
  endpoints: [{address: 10.9.0.1}]
`

func TestMerge(t *testing.T) {
	http := model.Port{Name: "http", Number: 8080, Protocol: model.HTTP}
	cases := []struct {
		name    string
		inputs  func(t *testing.T) []Input
		want    string
		wantErr []wantErr
	}{
		{
			name: "disjoint registries: everything, sorted",
			inputs: func(t *testing.T) []Input {
				return []Input{
					{Registry: "file", Provider: External, Services: fileServices(t, seHello)},
					{Registry: "kube", Provider: Kubernetes, Services: []*model.Service{kubeService("a.default.svc.cluster.local", "default", "10.96.0.1", http, "10.1.0.1")}},
				}
			},
			want: `
				a.default.svc.cluster.local default STATIC internal addrs=10.96.0.1 src=Service default/svc
				  port http/8080 HTTP
				  ep 10.1.0.1 ports= tls=istio ns=default src=Pod default/pod-10.1.0.1
				hello.default.svc.cluster.local default STATIC internal src=ServiceEntry default/hello-vm
				  port http/8080 HTTP ->9080
				  port extra/7000 TCP
				  ep 10.9.0.1 ports=extra:7000,http:9080 tls=disabled ns=default src=ServiceEntry default/hello-vm
			`,
		},
		{
			name: "Kubernetes wins over a ServiceEntry listed first; the entry's endpoints join on shared port names at their own port",
			inputs: func(t *testing.T) []Input {
				return []Input{
					{Registry: "file", Provider: External, Services: fileServices(t, seHello)},
					{Registry: "kube", Provider: Kubernetes, Services: []*model.Service{kubeService("hello.default.svc.cluster.local", "default", "10.96.0.2", http, "10.1.0.2")}},
				}
			},
			want: `
				hello.default.svc.cluster.local default STATIC internal addrs=10.96.0.2 src=Service default/svc
				  port http/8080 HTTP
				  ep 10.1.0.2 ports= tls=istio ns=default src=Pod default/pod-10.1.0.2
				  ep 10.9.0.1 ports=extra:7000,http:9080 tls=disabled ns=default src=ServiceEntry default/hello-vm
			`,
			wantErr: []wantErr{
				{"ServiceEntry default/hello-vm", "", true, "a Kubernetes Service always does, as in Istio); this declaration is ignored"},
			},
		},
		{
			name: "one Kubernetes Service in two clusters: addresses and endpoints of both, no warning",
			inputs: func(t *testing.T) []Input {
				return []Input{
					{Registry: "kube-a", Provider: Kubernetes, Services: []*model.Service{kubeService("h.default.svc.cluster.local", "default", "10.96.0.1", http, "10.1.0.1")}},
					{Registry: "kube-b", Provider: Kubernetes, Services: []*model.Service{kubeService("h.default.svc.cluster.local", "default", "10.97.0.1", http, "10.2.0.1")}},
				}
			},
			want: `
				h.default.svc.cluster.local default STATIC internal addrs=10.96.0.1,10.97.0.1 src=Service default/svc
				  port http/8080 HTTP
				  ep 10.1.0.1 ports= tls=istio ns=default src=Pod default/pod-10.1.0.1
				  ep 10.2.0.1 ports= tls=istio ns=default src=Pod default/pod-10.2.0.1
			`,
		},
		{
			name: "two file registries: the first configured wins; same ports merge, another resolution is ignored",
			inputs: func(t *testing.T) []Input {
				return []Input{
					{Registry: "file-a", Provider: External, Services: fileServices(t, seHello)},
					{Registry: "file-b", Provider: External, Services: fileServices(t, `
kind: ServiceEntry
metadata: {name: hello-more}
spec:
  hosts: [hello.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{name: http, number: 8080, targetPort: 9080}, {name: extra, number: 7000}]
  endpoints: [{address: 10.9.0.2}]
`)},
					{Registry: "file-c", Provider: External, Services: fileServices(t, `
kind: ServiceEntry
metadata: {name: hello-dns}
spec:
  hosts: [hello.default.svc.cluster.local]
  resolution: DNS
  ports: [{name: http, number: 8080}]
`)},
				}
			},
			want: `
				hello.default.svc.cluster.local default STATIC internal src=ServiceEntry default/hello-vm
				  port http/8080 HTTP ->9080
				  port extra/7000 TCP
				  ep 10.9.0.1 ports=extra:7000,http:9080 tls=disabled ns=default src=ServiceEntry default/hello-vm
				  ep 10.9.0.2 ports=extra:7000,http:9080 tls=disabled ns=default src=ServiceEntry default/hello-more
				  ep hello.default.svc.cluster.local ports=http:8080 tls=disabled ns=default src=ServiceEntry default/hello-dns
			`,
			wantErr: []wantErr{
				{"ServiceEntry default/hello-dns", "", true, "this declaration is ignored (resolution DNS differs from STATIC"},
				{"ServiceEntry default/hello-more", "", true, "registries are ordered Kubernetes first, then as configured"},
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			svcs, errs := Merge(tc.inputs(t))
			if got, want := render(svcs), dedent(tc.want); got != want {
				t.Errorf("services:\n--- got\n%s--- want\n%s", got, want)
			}
			checkErrors(t, errs, tc.wantErr)
		})
	}
}

func TestMergeKeepsUnsharedServices(t *testing.T) {
	file := fileServices(t, seHello)
	svcs, _ := Merge([]Input{
		{Registry: "file", Provider: External, Services: file},
		{Registry: "kube", Provider: Kubernetes},
	})
	if len(svcs) != 1 || svcs[0] != file[0] {
		t.Fatal("a service declared once must be passed through, not copied")
	}
}

func TestAggregate(t *testing.T) {
	http := model.Port{Name: "http", Number: 8080, Protocol: model.HTTP}
	file := NewFile(FileOptions{})
	kube := newStatic("kube", Kubernetes)
	if _, err := NewAggregate(file, newStatic(DefaultFileName, External)); err == nil {
		t.Fatal("two registries with one name must be refused")
	}
	agg, err := NewAggregate(file, kube)
	if err != nil {
		t.Fatal(err)
	}
	var notified atomic.Int32
	agg.Subscribe(func() { notified.Add(1) })

	if got := agg.Services(); len(got) != 0 {
		t.Fatalf("empty registries: %s", render(got))
	}
	file.Update(objects(t, seHello))
	if notified.Load() != 1 {
		t.Fatalf("notified %d, want 1", notified.Load())
	}
	first, problems := agg.Result()
	if len(first) != 1 || first[0].Source.Name != "hello-vm" || len(problems) != 0 {
		t.Fatalf("after the file update: %s %v", render(first), problems)
	}
	if again := agg.Services(); &again[0] != &first[0] {
		t.Fatal("the merge must be cached while no registry changes")
	}

	kube.set(kubeService("hello.default.svc.cluster.local", "default", "10.96.0.2", http, "10.1.0.2"))
	if notified.Load() != 2 {
		t.Fatalf("notified %d, want 2", notified.Load())
	}
	svcs, problems := agg.Result()
	if len(svcs) != 1 || svcs[0].Source.Kind != "Service" || len(svcs[0].Endpoints) != 2 || len(problems) != 1 {
		t.Fatalf("after the Kubernetes update: %s %v", render(svcs), problems)
	}

	agg.Close()
	kube.set()
	if notified.Load() != 2 {
		t.Fatal("notified after Close")
	}
}

func TestAggregateSingleRegistryPassesThrough(t *testing.T) {
	file := NewFile(FileOptions{})
	file.Update(objects(t, seHello))
	agg, err := NewAggregate(file)
	if err != nil {
		t.Fatal(err)
	}
	defer agg.Close()
	if a, f := agg.Services(), file.Services(); &a[0] != &f[0] {
		t.Fatal("one registry: the aggregate must return its services as they are")
	}
	if got := agg.Registries(); len(got) != 1 || got[0] != Registry(file) {
		t.Fatalf("registries %v", got)
	}
}
