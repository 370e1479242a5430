package main

import (
	"io"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/weftmesh/weft/internal/inject"
)

// TestInjectedSidecarParses: the container internal/inject adds to a pod
// starts `weft-proxy sidecar` with flags and variables this command
// accepts, the downward-API values standing in for the kubelet's.
// (Test-only import: the binary keeps no Kubernetes dependency.)
func TestInjectedSidecarParses(t *testing.T) {
	inj, err := inject.New(inject.Options{})
	if err != nil {
		t.Fatal(err)
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web-1", Namespace: "apps", Labels: map[string]string{"app": "web"}},
		Spec:       corev1.PodSpec{ServiceAccountName: "web", Containers: []corev1.Container{{Name: "web", Ports: []corev1.ContainerPort{{ContainerPort: 8080}}}}},
	}
	if _, err := inj.Inject(inject.Target{Meta: &pod.ObjectMeta, Spec: &pod.Spec}); err != nil {
		t.Fatal(err)
	}
	c := pod.Spec.InitContainers[1]
	if len(c.Command) != 2 || c.Command[1] != "sidecar" {
		t.Fatalf("command %v, want weft-proxy sidecar", c.Command)
	}
	downward := map[string]string{"metadata.name": "web-1", "metadata.namespace": "apps", "status.podIP": "10.1.2.3",
		"spec.serviceAccountName": "web", "status.hostIP": "192.168.0.9", "spec.nodeName": "node-a"}
	var environ []string
	for _, e := range c.Env {
		v := e.Value
		if e.ValueFrom != nil {
			v = downward[e.ValueFrom.FieldRef.FieldPath]
		}
		environ = append(environ, e.Name+"="+v)
	}
	o, err := parseSidecar(c.Args, environ, io.Discard)
	if err != nil {
		t.Fatalf("parseSidecar(%v): %v", c.Args, err)
	}
	if o.name != "web-1" || o.namespace != "apps" || o.ip != "10.1.2.3" || o.serviceAccount != "web" {
		t.Errorf("identity %s/%s %s sa %s", o.namespace, o.name, o.ip, o.serviceAccount)
	}
	if !o.security() || o.caAddress != "weft-control.istio-system.svc:15012" || o.sdsSocket != "/var/run/secrets/workload-spiffe-uds/weft-proxy/sds.sock" {
		t.Errorf("security: ca %q sds %q root %q", o.caAddress, o.sdsSocket, o.caRoot)
	}
	if o.meta[interceptionModeKey] != "REDIRECT" || o.meta["WORKLOAD_NAME"] != "web-1" || o.meta["CLUSTER_ID"] != "Kubernetes" {
		t.Errorf("node metadata %v", o.meta)
	}
	if o.labels != "app=web,security.istio.io/tlsMode=istio,service.istio.io/canonical-name=web,service.istio.io/canonical-revision=latest" {
		t.Errorf("labels %q", o.labels)
	}
}
