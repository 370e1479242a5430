package kube

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"hash/fnv"
	"io"
	"os"
	"strconv"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"

	"github.com/weftmesh/weft/internal/inject"
)

// app is the objects of the sample's manifests.
type app struct {
	serviceAccounts []*corev1.ServiceAccount
	services        []*corev1.Service
	deployments     []*appsv1.Deployment
}

// loadManifests decodes the Kubernetes objects of the files (multi-document
// YAML, as kubectl apply -f reads them).
func loadManifests(t *testing.T, files ...string) *app {
	t.Helper()
	a := &app{}
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		r := utilyaml.NewYAMLReader(bufio.NewReader(fh))
		for {
			doc, err := r.Read()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			if isBlank(doc) {
				continue
			}
			obj, _, err := scheme.Codecs.UniversalDeserializer().Decode(doc, nil, nil)
			if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			switch o := obj.(type) {
			case *corev1.ServiceAccount:
				a.serviceAccounts = append(a.serviceAccounts, o)
			case *corev1.Service:
				a.services = append(a.services, o)
			case *appsv1.Deployment:
				a.deployments = append(a.deployments, o)
			default:
				t.Fatalf("%s: unexpected %T", f, obj)
			}
		}
		fh.Close()
	}
	return a
}

// apply creates namespace ns labelled istio-injection=enabled, and the
// app's objects in it. The API server allocates the Services' ClusterIPs
// from its service CIDR.
func (a *app) apply(ctx context.Context, t *testing.T, c kubernetes.Interface, ns string) {
	t.Helper()
	nso := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns, Labels: map[string]string{inject.NamespaceLabelIstio: "enabled"}}}
	if _, err := c.CoreV1().Namespaces().Create(ctx, nso, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, sa := range a.serviceAccounts {
		if _, err := c.CoreV1().ServiceAccounts(ns).Create(ctx, sa, metav1.CreateOptions{}); err != nil {
			t.Fatalf("ServiceAccount %s: %v", sa.Name, err)
		}
	}
	for i, s := range a.services {
		got, err := c.CoreV1().Services(ns).Create(ctx, s, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("Service %s: %v", s.Name, err)
		}
		if got.Spec.ClusterIP == "" || got.Spec.ClusterIP == corev1.ClusterIPNone {
			t.Fatalf("Service %s: no ClusterIP allocated", s.Name)
		}
		a.services[i] = got
	}
	for i, d := range a.deployments {
		got, err := c.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("Deployment %s: %v", d.Name, err)
		}
		a.deployments[i] = got
	}
}

// replicaSetController plays the Deployment and ReplicaSet controllers:
// for each Deployment a ReplicaSet NAME-HASH owned by it, and one Pod
// (generateName NAME-HASH-) owned by the ReplicaSet, from the template.
// The Pods go through admission (the injection webhook); the API server's
// answer, injected, is returned.
func replicaSetController(ctx context.Context, t *testing.T, c kubernetes.Interface, a *app) []*corev1.Pod {
	t.Helper()
	var pods []*corev1.Pod
	for _, d := range a.deployments {
		tmpl, err := json.Marshal(d.Spec.Template)
		if err != nil {
			t.Fatal(err)
		}
		h := fnv.New32a()
		h.Write(tmpl)
		hash := strconv.FormatUint(uint64(h.Sum32()), 36)
		truth := true
		rs := &appsv1.ReplicaSet{
			ObjectMeta: metav1.ObjectMeta{
				Name: d.Name + "-" + hash, Namespace: d.Namespace, Labels: d.Spec.Template.Labels,
				OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "Deployment", Name: d.Name, UID: d.UID, Controller: &truth}},
			},
			Spec: appsv1.ReplicaSetSpec{Replicas: d.Spec.Replicas, Selector: d.Spec.Selector, Template: d.Spec.Template},
		}
		rs, err = c.AppsV1().ReplicaSets(d.Namespace).Create(ctx, rs, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("ReplicaSet of %s: %v", d.Name, err)
		}
		pod := &corev1.Pod{
			ObjectMeta: *d.Spec.Template.ObjectMeta.DeepCopy(),
			Spec:       *d.Spec.Template.Spec.DeepCopy(),
		}
		pod.GenerateName = rs.Name + "-"
		pod.Namespace = d.Namespace
		pod.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: rs.Name, UID: rs.UID, Controller: &truth}}
		got, err := c.CoreV1().Pods(d.Namespace).Create(ctx, pod, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("Pod of %s: %v", rs.Name, err)
		}
		// The scheduler's part: bind the pod to the (only) node.
		bind := &corev1.Binding{ObjectMeta: metav1.ObjectMeta{Name: got.Name}, Target: corev1.ObjectReference{Kind: "Node", Name: nodeName}}
		if err := c.CoreV1().Pods(d.Namespace).Bind(ctx, bind, metav1.CreateOptions{}); err != nil {
			t.Fatalf("binding pod %s: %v", got.Name, err)
		}
		if got, err = c.CoreV1().Pods(d.Namespace).Get(ctx, got.Name, metav1.GetOptions{}); err != nil {
			t.Fatal(err)
		}
		pods = append(pods, got)
	}
	return pods
}

// nodeName is the node every pod is bound to (the test machine).
const nodeName = "podsim"

// assertInjected checks that the API server's pod carries weft's native
// sidecar and init container (the webhook's patch applied).
func assertInjected(t *testing.T, p *corev1.Pod) {
	t.Helper()
	names := map[string]*corev1.Container{}
	for i := range p.Spec.InitContainers {
		names[p.Spec.InitContainers[i].Name] = &p.Spec.InitContainers[i]
	}
	initc, sidecar := names[inject.InitContainerName], names[inject.ProxyContainerName]
	switch {
	case initc == nil || sidecar == nil:
		t.Fatalf("pod %s: init containers %v, want %s and %s: not injected", p.Name, keys(names), inject.InitContainerName, inject.ProxyContainerName)
	case sidecar.RestartPolicy == nil || *sidecar.RestartPolicy != corev1.ContainerRestartPolicyAlways:
		t.Errorf("pod %s: %s is not a native sidecar (restartPolicy %v)", p.Name, sidecar.Name, sidecar.RestartPolicy)
	case p.Annotations[inject.AnnotationStatus] == "":
		t.Errorf("pod %s: no %s annotation", p.Name, inject.AnnotationStatus)
	}
}

// endpointSliceController plays the EndpointSlice controller: for each
// Service one slice with the ready pods it selects.
func endpointSliceController(ctx context.Context, t *testing.T, c kubernetes.Interface, ns string, services []*corev1.Service) {
	t.Helper()
	pods, err := c.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range services {
		slice := &discoveryv1.EndpointSlice{
			ObjectMeta: metav1.ObjectMeta{
				Name: s.Name + "-podsim", Namespace: ns,
				Labels: map[string]string{discoveryv1.LabelServiceName: s.Name, discoveryv1.LabelManagedBy: "test.weft.dev"},
			},
			AddressType: discoveryv1.AddressTypeIPv4,
		}
		for _, sp := range s.Spec.Ports {
			name, port, proto := sp.Name, sp.TargetPort.IntVal, sp.Protocol
			if port == 0 {
				port = sp.Port
			}
			slice.Ports = append(slice.Ports, discoveryv1.EndpointPort{Name: &name, Port: &port, Protocol: &proto})
		}
		for i := range pods.Items {
			p := &pods.Items[i]
			if !selects(s.Spec.Selector, p.Labels) || !podReady(p) {
				continue
			}
			ready := true
			slice.Endpoints = append(slice.Endpoints, discoveryv1.Endpoint{
				Addresses:  []string{p.Status.PodIP},
				Conditions: discoveryv1.EndpointConditions{Ready: &ready},
				TargetRef:  &corev1.ObjectReference{Kind: "Pod", Namespace: ns, Name: p.Name, UID: p.UID},
			})
		}
		if len(slice.Endpoints) == 0 {
			t.Fatalf("Service %s: no ready pod", s.Name)
		}
		if _, err := c.DiscoveryV1().EndpointSlices(ns).Create(ctx, slice, metav1.CreateOptions{}); err != nil {
			t.Fatalf("EndpointSlice of %s: %v", s.Name, err)
		}
	}
}

func selects(sel, labels map[string]string) bool {
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return len(sel) > 0
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// isBlank reports whether a YAML document holds only comments and spaces.
func isBlank(doc []byte) bool {
	for _, line := range bytes.Split(doc, []byte("\n")) {
		line = bytes.TrimSpace(line)
		if len(line) > 0 && line[0] != '#' && string(line) != "---" {
			return false
		}
	}
	return true
}
