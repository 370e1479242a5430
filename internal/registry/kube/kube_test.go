package kube_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"

	"github.com/weftmesh/weft/internal/controlplane"
	"github.com/weftmesh/weft/internal/kubetest"
	"github.com/weftmesh/weft/internal/model"
	"github.com/weftmesh/weft/internal/registry"
	"github.com/weftmesh/weft/internal/registry/kube"
	"github.com/weftmesh/weft/internal/xds/xdstest"
)

var quiet = slog.New(slog.DiscardHandler)

// TestKubernetes runs the registry against a real API server, shared by
// its subtests (one start, about 3 s). Each subtest works in its own
// namespace.
func TestKubernetes(t *testing.T) {
	cluster := kubetest.Start(t, kubetest.Options{})
	t.Run("registry", func(t *testing.T) { testRegistry(t, cluster.Client) })
	t.Run("xds", func(t *testing.T) { testXDS(t, cluster) })
}

// workload creates namespace ns (if needed), service account sa, a pod
// with labels, a Service NAME (port http 80 → 8080) and an EndpointSlice
// with the pod at ip, ready.
func workload(ctx context.Context, t *testing.T, c kubernetes.Interface, ns, name, ip string, labels map[string]string) {
	t.Helper()
	must := func(_ any, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{}); err != nil {
		must(c.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}))
	}
	must(c.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}}, metav1.CreateOptions{}))
	must(c.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name + "-0", Namespace: ns, Labels: labels},
		Spec:       corev1.PodSpec{ServiceAccountName: name, Containers: []corev1.Container{{Name: "app", Image: "example.com/app:1"}}},
	}, metav1.CreateOptions{}))
	must(c.CoreV1().Services(ns).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: corev1.ServiceSpec{Selector: labels, Ports: []corev1.ServicePort{
			{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080), Protocol: corev1.ProtocolTCP},
		}},
	}, metav1.CreateOptions{}))
	must(c.DiscoveryV1().EndpointSlices(ns).Create(ctx, slice(ns, name, []string{ip}, true), metav1.CreateOptions{}))
}

// slice is the EndpointSlice NAME-1 of Service NAME: pods NAME-0, NAME-1,
// … at ips, on port http 8080.
func slice(ns, name string, ips []string, ready bool) *discoveryv1.EndpointSlice {
	port, portName, proto := int32(8080), "http", corev1.ProtocolTCP
	s := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: name + "-1", Namespace: ns, Labels: map[string]string{discoveryv1.LabelServiceName: name}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: &portName, Port: &port, Protocol: &proto}},
	}
	for i, ip := range ips {
		s.Endpoints = append(s.Endpoints, discoveryv1.Endpoint{
			Addresses:  []string{ip},
			Conditions: discoveryv1.EndpointConditions{Ready: &ready},
			TargetRef:  &corev1.ObjectReference{Kind: "Pod", Namespace: ns, Name: fmt.Sprintf("%s-%d", name, i)},
		})
	}
	return s
}

// waitFor waits until cond holds for the source's services, re-checking
// after each notification, for at most 30 s.
func waitFor(t *testing.T, src registry.Source, what string, cond func([]*model.Service) bool) {
	t.Helper()
	ch := make(chan struct{}, 1)
	cancel := src.Subscribe(func() {
		select {
		case ch <- struct{}{}:
		default:
		}
	})
	defer cancel()
	deadline := time.NewTimer(30 * time.Second)
	defer deadline.Stop()
	for !cond(src.Services()) {
		select {
		case <-ch:
		case <-deadline.C:
			t.Fatalf("timed out waiting for %s; services: %s", what, describe(src.Services()))
		}
	}
}

func find(svcs []*model.Service, host string) *model.Service {
	for _, s := range svcs {
		if s.Hostname == host {
			return s
		}
	}
	return nil
}

func describe(svcs []*model.Service) string {
	out := ""
	for _, s := range svcs {
		out += fmt.Sprintf("\n  %s %v:", s.Hostname, s.Addresses)
		for _, e := range s.Endpoints {
			out += fmt.Sprintf(" %s(sa=%s tls=%s labels=%v)", e.Address, e.ServiceAccount, e.TLSMode, e.Labels)
		}
	}
	return out
}

// testRegistry: creating, changing and deleting Services, EndpointSlices
// and Pods changes the registry's services, with a notification each time.
func testRegistry(t *testing.T, c kubernetes.Interface) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	r, err := kube.New(kube.Options{Client: c, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	if err := r.WaitForSync(ctx); err != nil {
		t.Fatal(err)
	}
	const host = "web.reg.svc.cluster.local"
	workload(ctx, t, c, "reg", "web", "10.1.0.5", map[string]string{"app": "web", registry.LabelTLSMode: "istio"})
	waitFor(t, r, "the Service with its pod's endpoint", func(s []*model.Service) bool {
		svc := find(s, host)
		if svc == nil || len(svc.Endpoints) != 1 || len(svc.Addresses) != 1 {
			return false
		}
		e := svc.Endpoints[0]
		return e.Address == "10.1.0.5" && e.PortFor(svc.Ports[0]) == 8080 && e.ServiceAccount == "web" &&
			e.TLSMode == "istio" && e.Labels["app"] == "web" && e.Labels[registry.LabelTopologyCluster] == kube.DefaultClusterID &&
			svc.Ports[0].Protocol == model.HTTP
	})

	pod, err := c.CoreV1().Pods("reg").Get(ctx, "web-0", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pod.Labels["version"] = "v2"
	if _, err := c.CoreV1().Pods("reg").Update(ctx, pod, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, r, "the pod's new label on its endpoint", func(s []*model.Service) bool {
		svc := find(s, host)
		return svc != nil && len(svc.Endpoints) == 1 && svc.Endpoints[0].Labels["version"] == "v2"
	})

	if _, err := c.DiscoveryV1().EndpointSlices("reg").Update(ctx, slice("reg", "web", []string{"10.1.0.5"}, false), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, r, "the not-ready endpoint to go", func(s []*model.Service) bool {
		svc := find(s, host)
		return svc != nil && len(svc.Endpoints) == 0
	})

	if err := c.CoreV1().Services("reg").Delete(ctx, "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, r, "the deleted Service to go", func(s []*model.Service) bool { return find(s, host) == nil })
}

// testXDS: weft-control with the Kubernetes registry and a configuration
// directory pushes the Services and EndpointSlices, merged with
// ServiceEntries, to an xDS client, and pushes again when a slice
// changes.
func testXDS(t *testing.T, cluster *kubetest.Cluster) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := cluster.Client
	workload(ctx, t, c, "store", "cart", "10.2.0.1", map[string]string{"app": "cart"})

	dir := t.TempDir()
	// An external service, and a ServiceEntry for the Kubernetes Service's
	// own host: the Service takes precedence (Istio's rule) and the
	// entry's endpoint joins on the port name both declare.
	const entries = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: api, namespace: store}
spec:
  hosts: [api.example.com]
  ports: [{name: http, number: 80, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 192.0.2.10}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: cart-vm, namespace: store}
spec:
  hosts: [cart.store.svc.cluster.local]
  ports: [{name: http, number: 80, protocol: HTTP, targetPort: 8080}]
  resolution: STATIC
  endpoints: [{address: 192.0.2.20}]
`
	if err := os.WriteFile(filepath.Join(dir, "entries.yaml"), []byte(entries), 0o644); err != nil {
		t.Fatal(err)
	}
	cp, err := controlplane.New(controlplane.Options{
		ConfigDir: dir, XDSAddress: "127.0.0.1:0", HTTPAddress: "127.0.0.1:0", Logger: quiet,
		Kubernetes: &controlplane.KubernetesOptions{Config: cluster.Config},
	})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- cp.Run(runCtx) }()
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("weft-control: %v", err)
		}
	}()

	ads, err := xdstest.NewADS(xdstest.Options{
		Address:       cp.XDSAddr().String(),
		Node:          xdstest.NodeFor("sidecar~10.2.0.9~client-0.store~store.svc.cluster.local", map[string]string{"app": "client"}, nil),
		KeepResources: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer ads.Close()

	const cartCluster = "outbound|80||cart.store.svc.cluster.local"
	const apiCluster = "outbound|80||api.example.com"
	waitEndpoints := func(what string, want map[string][]string) {
		t.Helper()
		err := ads.Wait(ctx, func(s *xdstest.State) bool {
			for cl, addrs := range want {
				if !slices.Equal(endpointAddrs(s, cl), addrs) {
					return false
				}
			}
			return true
		})
		if err != nil {
			var got map[string][]string
			ads.Read(func(s *xdstest.State) {
				got = map[string][]string{}
				for cl := range want {
					got[cl] = endpointAddrs(s, cl)
				}
			})
			t.Fatalf("%s: %v; endpoints %v, want %v", what, err, got, want)
		}
	}
	waitEndpoints("the first push", map[string][]string{
		cartCluster: {"10.2.0.1:8080", "192.0.2.20:8080"},
		apiCluster:  {"192.0.2.10:80"},
	})

	// A second pod becomes ready: one more endpoint, pushed.
	if _, err := c.DiscoveryV1().EndpointSlices("store").Update(ctx, slice("store", "cart", []string{"10.2.0.1", "10.2.0.2"}, true), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitEndpoints("the new endpoint", map[string][]string{
		cartCluster: {"10.2.0.1:8080", "10.2.0.2:8080", "192.0.2.20:8080"},
		apiCluster:  {"192.0.2.10:80"},
	})
}

// endpointAddrs lists a cluster's endpoints as ip:port, sorted.
func endpointAddrs(s *xdstest.State, cluster string) []string {
	m, ok := s.Type(xdstest.EndpointType).Resources[cluster].(*endpointv3.ClusterLoadAssignment)
	if !ok {
		return nil
	}
	var out []string
	for _, le := range m.GetEndpoints() {
		for _, lb := range le.GetLbEndpoints() {
			sa := lb.GetEndpoint().GetAddress().GetSocketAddress()
			out = append(out, fmt.Sprintf("%s:%d", sa.GetAddress(), sa.GetPortValue()))
		}
	}
	slices.Sort(out)
	return out
}
