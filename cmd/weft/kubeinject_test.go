package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/weftmesh/weft/internal/inject"
)

// TestKubeInject: the file's Deployment gets the sidecar with the flags'
// image and addresses, its Service is copied, and injecting the output
// again changes nothing.
func TestKubeInject(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "app.yaml")
	src := `apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  ports: [{port: 80}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: example.com/web:1}]
`
	if err := os.WriteFile(in, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := weft("kube-inject", "-f", in, "--proxy-image", "registry.example.com/weft-proxy:9", "--discovery-address", "weft.mesh.svc:15010")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, w := range []string{"kind: Service", "name: istio-proxy", "name: istio-init", "restartPolicy: Always",
		"image: registry.example.com/weft-proxy:9", "weft.mesh.svc:15010", "weft.mesh.svc:15012", "security.istio.io/tlsMode: istio"} {
		if !strings.Contains(out, w) {
			t.Errorf("output lacks %q:\n%s", w, out)
		}
	}
	again := filepath.Join(dir, "injected.yaml")
	if err := os.WriteFile(again, []byte(out), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out2, errOut := weft("kube-inject", "-f", again, "--proxy-image", "registry.example.com/weft-proxy:9")
	if code != 0 || out2 != out {
		t.Errorf("second run: exit %d %s; output changed: %v", code, errOut, out2 != out)
	}
}

func TestKubeInjectErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	src := "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  annotations:\n    traffic.sidecar.istio.io/excludeOutboundPorts: db\nspec:\n  containers: [{name: c, image: i}]\n"
	if err := os.WriteFile(bad, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"kube-inject"}, `"filename" not set`},
		{[]string{"kube-inject", "-f", filepath.Join(dir, "missing.yaml")}, "no such file"},
		{[]string{"kube-inject", "-f", bad}, "document 1 (Pod p): metadata.annotations[traffic.sidecar.istio.io/excludeOutboundPorts]"},
		{[]string{"kube-inject", "-f", bad, "--discovery-address", "nohost"}, "want host:port"},
	} {
		code, out, errOut := weft(tt.args...)
		if code != 1 || !strings.Contains(errOut, tt.want) || out != "" {
			t.Errorf("%v: exit %d, stdout %q, stderr %q, want %q", tt.args, code, out, errOut, tt.want)
		}
	}
}

// TestInjectedInitArgs: the capture container internal/inject adds, with
// every traffic annotation set, runs `weft iptables` with flags it
// accepts and that take effect (dry run).
func TestInjectedInitArgs(t *testing.T) {
	inj, err := inject.New(inject.Options{})
	if err != nil {
		t.Fatal(err)
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Annotations: map[string]string{
			inject.AnnotationIncludeInboundPorts:     "8080",
			inject.AnnotationExcludeInboundPorts:     "22",
			inject.AnnotationExcludeOutboundIPRanges: "10.96.0.0/12",
			inject.AnnotationIncludeOutboundPorts:    "443",
			inject.AnnotationExcludeOutboundPorts:    "5432",
		}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "web"}}},
	}
	if _, err := inj.Inject(inject.Target{Meta: &pod.ObjectMeta, Spec: &pod.Spec}); err != nil {
		t.Fatal(err)
	}
	c := pod.Spec.InitContainers[0]
	if len(c.Command) != 2 || c.Command[1] != "iptables" {
		t.Fatalf("command %v, want weft iptables", c.Command)
	}
	code, out, errOut := weft(append([]string{"iptables", "--dry-run", "--backend", "iptables"}, c.Args...)...)
	if code != 0 {
		t.Fatalf("weft iptables %v: exit %d: %s", c.Args, code, errOut)
	}
	for _, w := range []string{"--uid-owner 1337", "-d 10.96.0.0/12 -j RETURN", "--dport 8080", "--dport 5432", "--dport 443"} {
		if !strings.Contains(out, w) {
			t.Errorf("rules lack %q:\n%s", w, out)
		}
	}
}
