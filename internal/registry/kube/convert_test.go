package kube

import (
	"reflect"
	"slices"
	"strconv"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/weftmesh/weft/internal/config"
	"github.com/weftmesh/weft/internal/model"
	"github.com/weftmesh/weft/internal/registry"
)

func ptr[T any](v T) *T { return &v }

// service returns a ClusterIP Service with the given ports.
func service(ns, name, ip string, ports ...corev1.ServicePort) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       corev1.ServiceSpec{ClusterIP: ip, ClusterIPs: []string{ip}, Ports: ports, Type: corev1.ServiceTypeClusterIP},
	}
}

func svcPort(name string, port, target int32) corev1.ServicePort {
	return corev1.ServicePort{Name: name, Port: port, TargetPort: intstr.FromInt32(target), Protocol: corev1.ProtocolTCP}
}

// epSlice returns an IPv4 slice of service ns/svc.
func epSlice(ns, name, svc string, ports []discoveryv1.EndpointPort, eps ...discoveryv1.Endpoint) *discoveryv1.EndpointSlice {
	return &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{discoveryv1.LabelServiceName: svc}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       ports,
		Endpoints:   eps,
	}
}

func slicePort(name string, port int32) discoveryv1.EndpointPort {
	return discoveryv1.EndpointPort{Name: ptr(name), Port: ptr(port), Protocol: ptr(corev1.ProtocolTCP)}
}

func podEndpoint(ip, pod string, ready *bool) discoveryv1.Endpoint {
	return discoveryv1.Endpoint{
		Addresses:  []string{ip},
		Conditions: discoveryv1.EndpointConditions{Ready: ready},
		TargetRef:  &corev1.ObjectReference{Kind: "Pod", Name: pod},
	}
}

func lookups(pods []*corev1.Pod, nss []*corev1.Namespace) (func(string, string) *corev1.Pod, func(string) *corev1.Namespace) {
	return func(ns, name string) *corev1.Pod {
			for _, p := range pods {
				if p.Namespace == ns && p.Name == name {
					return p
				}
			}
			return nil
		}, func(name string) *corev1.Namespace {
			for _, n := range nss {
				if n.Name == name {
					return n
				}
			}
			return nil
		}
}

// TestBuild: Services, slices, pods and namespaces become the services
// and endpoints Istio would build.
func TestBuild(t *testing.T) {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "cart-7d9f-abcde",
			Labels:          map[string]string{"app": "cart", "version": "v1", "pod-template-hash": "7d9f", registry.LabelTLSMode: "istio", registry.LabelLocality: "eu.eu-1a"},
			OwnerReferences: []metav1.OwnerReference{{Kind: "ReplicaSet", Name: "cart-7d9f", Controller: ptr(true)}},
		},
		Spec: corev1.PodSpec{ServiceAccountName: "cart"},
	}
	nss := []*corev1.Namespace{{ObjectMeta: metav1.ObjectMeta{Name: "shop", Labels: map[string]string{registry.LabelTopologyNetwork: "net-1"}}}}
	podFn, nsFn := lookups([]*corev1.Pod{pod}, nss)
	cart := service("shop", "cart", "10.96.0.10", svcPort("http-api", 80, 8080), svcPort("grpc", 9000, 9000), svcPort("", 53, 53))
	cart.Spec.Ports[2].Protocol = corev1.ProtocolUDP
	cart.Annotations = map[string]string{AnnotationExportTo: "., istio-system"}
	headless := service("shop", "db", corev1.ClusterIPNone, svcPort("tcp", 5432, 5432))
	headless.Spec.ClusterIPs = []string{corev1.ClusterIPNone}
	ext := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "pay"},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: "pay.example.com", Ports: []corev1.ServicePort{svcPort("https", 443, 443)}}}
	slicesIn := []*discoveryv1.EndpointSlice{
		epSlice("shop", "cart-b", "cart", []discoveryv1.EndpointPort{slicePort("http-api", 8080), slicePort("grpc", 9000)},
			podEndpoint("10.0.0.2", "cart-7d9f-abcde", nil), // nil: ready
			podEndpoint("10.0.0.3", "gone", ptr(false)),     // not ready
		),
		epSlice("shop", "cart-a", "cart", []discoveryv1.EndpointPort{slicePort("http-api", 8080), slicePort("grpc", 9000)},
			podEndpoint("10.0.0.2", "cart-7d9f-abcde", ptr(true)), // repeated by another slice
			discoveryv1.Endpoint{Addresses: []string{"10.0.0.1"}}, // no pod
		),
		{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "cart-fqdn", Labels: map[string]string{discoveryv1.LabelServiceName: "cart"}},
			AddressType: discoveryv1.AddressTypeFQDN, Endpoints: []discoveryv1.Endpoint{{Addresses: []string{"x.example.com"}}}},
		epSlice("shop", "db-1", "db", []discoveryv1.EndpointPort{slicePort("tcp", 5432)}, podEndpoint("10.0.1.1", "db-0", nil)),
	}
	got := Build(Objects{Services: []*corev1.Service{headless, ext, cart}, Slices: slicesIn, Pod: podFn, Namespace: nsFn}, Options{})

	if names := hostnames(got); !slices.Equal(names, []string{"cart.shop.svc.cluster.local", "db.shop.svc.cluster.local", "pay.shop.svc.cluster.local"}) {
		t.Fatalf("hostnames %v", names)
	}
	c := got[0]
	wantPorts := []model.Port{{Name: "http-api", Number: 80, Protocol: model.HTTP, TargetPort: 8080}, {Name: "grpc", Number: 9000, Protocol: model.GRPC, TargetPort: 9000}}
	if !reflect.DeepEqual(c.Ports, wantPorts) {
		t.Errorf("cart ports %+v, want %+v (the UDP port dropped)", c.Ports, wantPorts)
	}
	if !slices.Equal(c.Addresses, []string{"10.96.0.10"}) || c.Resolution != model.ClientSideLB || !slices.Equal(c.ExportTo, []string{".", "istio-system"}) {
		t.Errorf("cart: addresses %v resolution %v exportTo %v", c.Addresses, c.Resolution, c.ExportTo)
	}
	if c.Source != (config.Key{Kind: KindService, Namespace: "shop", Name: "cart"}) {
		t.Errorf("cart source %v", c.Source)
	}
	if len(c.Endpoints) != 2 || c.Endpoints[0].Address != "10.0.0.1" || c.Endpoints[1].Address != "10.0.0.2" {
		t.Fatalf("cart endpoints %v, want 10.0.0.1 and 10.0.0.2 once each", addrs(c.Endpoints))
	}
	bare, withPod := c.Endpoints[0], c.Endpoints[1]
	if bare.TLSMode != registry.TLSModeDisabled || bare.ServiceAccount != "" || bare.Network != "net-1" || bare.Labels[registry.LabelTopologyCluster] != DefaultClusterID {
		t.Errorf("endpoint without pod: %+v", bare)
	}
	want := &model.Endpoint{
		Address: "10.0.0.2", Ports: map[string]uint32{"http-api": 8080, "grpc": 9000},
		Labels: map[string]string{"app": "cart", "version": "v1", "pod-template-hash": "7d9f", registry.LabelTLSMode: "istio", registry.LabelLocality: "eu.eu-1a",
			registry.LabelTopologyRegion: "eu", registry.LabelTopologyZone: "eu-1a", registry.LabelTopologyCluster: "Kubernetes", registry.LabelTopologyNetwork: "net-1"},
		Network: "net-1", Locality: "eu/eu-1a", ServiceAccount: "cart", TLSMode: "istio", WorkloadName: "cart",
		Namespace: "shop", Source: config.Key{Kind: KindPod, Namespace: "shop", Name: "cart-7d9f-abcde"},
	}
	if !reflect.DeepEqual(withPod, want) {
		t.Errorf("endpoint with pod:\n got %+v\nwant %+v", withPod, want)
	}
	db := got[1]
	if db.Resolution != model.Passthrough || len(db.Addresses) != 0 || len(db.Endpoints) != 1 || db.Endpoints[0].WorkloadName != "db-0" {
		t.Errorf("headless: %+v endpoints %v", db, addrs(db.Endpoints))
	}
	pay := got[2]
	if pay.Resolution != model.DNS || !pay.MeshExternal || len(pay.Endpoints) != 1 || pay.Endpoints[0].Address != "pay.example.com" || pay.Endpoints[0].PortFor(pay.Ports[0]) != 443 {
		t.Errorf("ExternalName: %+v endpoints %v", pay, addrs(pay.Endpoints))
	}

	// The order of the inputs does not matter.
	slices.Reverse(slicesIn)
	again := Build(Objects{Services: []*corev1.Service{cart, ext, headless}, Slices: slicesIn, Pod: podFn, Namespace: nsFn}, Options{})
	if !reflect.DeepEqual(got, again) {
		t.Error("Build depends on the order of its inputs")
	}
}

// TestBuildNotReady: publishNotReadyAddresses counts every endpoint; a
// slice without the service's ports contributes none.
func TestBuildNotReady(t *testing.T) {
	s := service("a", "web", "10.96.0.1", svcPort("http", 80, 8080))
	sl := epSlice("a", "web-1", "web", []discoveryv1.EndpointPort{slicePort("http", 8080)}, podEndpoint("10.0.0.1", "p", ptr(false)))
	other := epSlice("a", "web-2", "web", []discoveryv1.EndpointPort{slicePort("metrics", 9090)}, podEndpoint("10.0.0.2", "q", nil))
	for _, tt := range []struct {
		publish bool
		want    []string
	}{{false, nil}, {true, []string{"10.0.0.1"}}} {
		s.Spec.PublishNotReadyAddresses = tt.publish
		got := Build(Objects{Services: []*corev1.Service{s}, Slices: []*discoveryv1.EndpointSlice{sl, other}}, Options{DomainSuffix: "example.internal"})
		if got[0].Hostname != "web.a.svc.example.internal" || !slices.Equal(addrs(got[0].Endpoints), tt.want) {
			t.Errorf("publishNotReadyAddresses=%v: %s %v, want %v", tt.publish, got[0].Hostname, addrs(got[0].Endpoints), tt.want)
		}
	}
}

// TestProtocol: Istio's protocol selection for Service ports.
func TestProtocol(t *testing.T) {
	for _, tt := range []struct {
		name string
		app  *string
		want model.Protocol
	}{
		{"http", nil, model.HTTP},
		{"HTTP-web", nil, model.HTTP},
		{"http2-x", nil, model.HTTP2},
		{"grpc", nil, model.GRPC},
		{"grpc-web", nil, model.GRPC},
		{"https", nil, model.HTTPS},
		{"tls-x", nil, model.TLS},
		{"mongo", nil, model.Mongo},
		{"redis", nil, model.Redis},
		{"mysql", nil, model.MySQL},
		{"", nil, model.TCP},
		{"web", nil, model.TCP},
		{"tcp", ptr("http"), model.HTTP},
		{"http", ptr("kubernetes.io/h2c"), model.HTTP2},
		{"tcp", ptr("kubernetes.io/ws"), model.HTTP},
		{"tcp", ptr("kubernetes.io/wss"), model.HTTPS},
		{"http", ptr("grpc"), model.GRPC},
		{"http", ptr("example.com/custom"), model.TCP},
		{"http", ptr(""), model.HTTP},
	} {
		if got := Protocol(80, tt.name, tt.app); got != tt.want {
			app := "<nil>"
			if tt.app != nil {
				app = *tt.app
			}
			t.Errorf("Protocol(%q, appProtocol %q) = %s, want %s", tt.name, app, got, tt.want)
		}
	}
}

// TestWorkloadName: the label, the Deployment behind a ReplicaSet, another
// controller, the pod itself.
func TestWorkloadName(t *testing.T) {
	ctrl := func(kind, name string) []metav1.OwnerReference {
		return []metav1.OwnerReference{{Kind: kind, Name: name, Controller: ptr(true)}}
	}
	for _, tt := range []struct {
		pod  corev1.Pod
		want string
	}{
		{corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Labels: map[string]string{registry.LabelWorkloadName: "w"}}}, "w"},
		{corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Labels: map[string]string{"pod-template-hash": "abc"}, OwnerReferences: ctrl("ReplicaSet", "web-abc")}}, "web"},
		{corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", OwnerReferences: ctrl("ReplicaSet", "rs")}}, "rs"},
		{corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "db-0", OwnerReferences: ctrl("StatefulSet", "db")}}, "db"},
		{corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "alone"}}, "alone"},
	} {
		if got := workloadName(&tt.pod); got != tt.want {
			t.Errorf("%s: %q, want %q", tt.pod.Name, got, tt.want)
		}
	}
}

// TestReuseUnchanged: an unchanged service keeps its pointer, a changed
// one does not.
func TestReuseUnchanged(t *testing.T) {
	build := func(ip string) []*model.Service {
		a := service("ns", "a", "10.96.0.1", svcPort("http", 80, 8080))
		b := service("ns", "b", ip, svcPort("http", 80, 8080))
		return Build(Objects{Services: []*corev1.Service{a, b}}, Options{})
	}
	prev := build("10.96.0.2")
	next := reuseUnchanged(prev, build("10.96.0.3"))
	if next[0] != prev[0] || next[1] == prev[1] || next[1].Addresses[0] != "10.96.0.3" {
		t.Errorf("reuse: a kept %v, b kept %v (want a kept, b new)", next[0] == prev[0], next[1] == prev[1])
	}
	if got := reuseUnchanged(nil, build("10.96.0.3")); len(got) != 2 {
		t.Errorf("no previous services: %d services", len(got))
	}
}

func hostnames(s []*model.Service) []string {
	var out []string
	for _, x := range s {
		out = append(out, x.Hostname)
	}
	return out
}

func addrs(eps []*model.Endpoint) []string {
	var out []string
	for _, e := range eps {
		out = append(out, e.Address)
	}
	return out
}

// BenchmarkBuild: a full rebuild of 1,000 services with 10 endpoints each.
func BenchmarkBuild(b *testing.B) {
	var svcs []*corev1.Service
	var sls []*discoveryv1.EndpointSlice
	for i := range 1000 {
		name := "svc-" + strconv.Itoa(i)
		svcs = append(svcs, service("ns", name, "10.96.0.1", svcPort("http", 80, 8080)))
		var eps []discoveryv1.Endpoint
		for j := range 10 {
			eps = append(eps, podEndpoint("10.1."+strconv.Itoa(i%250)+"."+strconv.Itoa(j), name+"-"+strconv.Itoa(j), nil))
		}
		sls = append(sls, epSlice("ns", name+"-x", name, []discoveryv1.EndpointPort{slicePort("http", 8080)}, eps...))
	}
	objs := Objects{Services: svcs, Slices: sls}
	b.ReportAllocs()
	for b.Loop() {
		Build(objs, Options{})
	}
}
