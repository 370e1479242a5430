package inject

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/weftmesh/weft/internal/kubetest"
)

// TestKubeInjection runs the webhook behind a real API server (one
// cluster for every case: it takes seconds to start): the shipped
// MutatingWebhookConfiguration's selectors, the AdmissionReview exchange
// and the JSON patch are all the API server's to judge.
func TestKubeInjection(t *testing.T) {
	c := kubetest.Start(t, kubetest.Options{Webhooks: envtest.WebhookInstallOptions{
		LocalServingHost: "127.0.0.1",
		MutatingWebhooks: []*admissionregistrationv1.MutatingWebhookConfiguration{WebhookConfiguration(WebhookOptions{})},
	}})
	serveWebhook(t, c.Env.WebhookInstallOptions, Handler(newTestInjector(t), nil))
	ctx := context.Background()
	for name, labels := range map[string]map[string]string{
		"weft-on":   {NamespaceLabelWeft: "enabled"},
		"istio-on":  {NamespaceLabelIstio: "enabled"},
		"plain":     nil,
		"istio-off": {NamespaceLabelIstio: "disabled", NamespaceLabelWeft: "enabled"},
	} {
		createNamespace(t, c.Client, name, labels)
	}

	// The API server picks the webhook configuration up asynchronously:
	// wait (deadline 30 s) until a pod in a labelled namespace is injected,
	// deleting the pods created before that.
	deadline := time.Now().Add(30 * time.Second)
	for n := 0; ; n++ {
		name := "probe-" + strconv.Itoa(n)
		pod := createPod(t, c.Client, "weft-on", name, nil, nil)
		if isInjected(pod) {
			break
		}
		_ = c.Client.CoreV1().Pods("weft-on").Delete(ctx, name, metav1.DeleteOptions{})
		if time.Now().After(deadline) {
			t.Fatal("no pod was injected within 30s of installing the webhook")
		}
		time.Sleep(200 * time.Millisecond) // polling interval, not synchronisation
	}

	tests := []struct {
		name, ns    string
		labels, ann map[string]string
		want        bool
	}{
		{name: "weft-label", ns: "weft-on", want: true},
		{name: "istio-label", ns: "istio-on", want: true},
		{name: "unlabelled", ns: "plain"},
		{name: "pod-label-in-plain-ns", ns: "plain", labels: map[string]string{LabelInject: "true"}, want: true},
		{name: "opt-out-annotation", ns: "weft-on", ann: map[string]string{AnnotationInject: "false"}},
		{name: "opt-out-label", ns: "istio-on", labels: map[string]string{LabelInject: "false"}},
		{name: "istio-disabled-wins", ns: "istio-off"},
		{name: "already-injected", ns: "weft-on", ann: map[string]string{AnnotationStatus: `{"containers":["istio-proxy"]}`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pod := createPod(t, c.Client, tt.ns, tt.name, tt.labels, tt.ann)
			if got := isInjected(pod); got != tt.want {
				t.Fatalf("injected = %v, want %v: init containers %d, labels %v", got, tt.want, len(pod.Spec.InitContainers), pod.Labels)
			}
			if !tt.want {
				if len(pod.Spec.InitContainers) != 0 || len(pod.Spec.Volumes) != 0 {
					t.Errorf("pod changed: %d init containers, %d volumes", len(pod.Spec.InitContainers), len(pod.Spec.Volumes))
				}
				return
			}
			checkInjectedPod(t, pod)
		})
	}

	// A bad traffic annotation is refused at creation with its name.
	t.Run("invalid-annotation", func(t *testing.T) {
		_, err := tryCreatePod(c.Client, "weft-on", "bad", nil, map[string]string{AnnotationExcludeOutboundPorts: "db"})
		if err == nil || !strings.Contains(err.Error(), AnnotationExcludeOutboundPorts) {
			t.Fatalf("create: %v, want a refusal naming %s", err, AnnotationExcludeOutboundPorts)
		}
	})
}

// checkInjectedPod checks what the API server stored.
func checkInjectedPod(t *testing.T, pod *corev1.Pod) {
	t.Helper()
	init := pod.Spec.InitContainers
	if len(init) != 2 || init[0].Name != InitContainerName || init[1].Name != ProxyContainerName {
		t.Fatalf("init containers %v", init)
	}
	if p := init[1].RestartPolicy; p == nil || *p != corev1.ContainerRestartPolicyAlways {
		t.Error("the stored sidecar is not a native sidecar")
	}
	if pod.Labels[LabelTLSMode] != "istio" || pod.Annotations[AnnotationStatus] == "" {
		t.Errorf("labels %v annotations %v", pod.Labels, pod.Annotations)
	}
	if g := pod.Spec.Containers[0].LivenessProbe.HTTPGet; g == nil || g.Port.IntVal != StatusPort {
		t.Errorf("liveness probe not rewritten: %+v", pod.Spec.Containers[0].LivenessProbe)
	}
	if len(pod.Spec.Volumes) < 3 {
		t.Errorf("volumes %v", pod.Spec.Volumes)
	}
}

func isInjected(pod *corev1.Pod) bool {
	for _, c := range pod.Spec.InitContainers {
		if c.Name == ProxyContainerName {
			return true
		}
	}
	return false
}

func createNamespace(t *testing.T, c kubernetes.Interface, name string, labels map[string]string) {
	t.Helper()
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
	if _, err := c.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// No controller-manager creates the default service account, which
	// the ServiceAccount admission plugin wants.
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}
	if _, err := c.CoreV1().ServiceAccounts(name).Create(ctx, sa, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func tryCreatePod(c kubernetes.Interface, ns, name string, labels, ann map[string]string) (*corev1.Pod, error) {
	pod := testPod()
	pod.Name, pod.Namespace = name, ns
	for k, v := range labels {
		pod.Labels[k] = v
	}
	pod.Annotations = ann
	return c.CoreV1().Pods(ns).Create(context.Background(), pod, metav1.CreateOptions{})
}

func createPod(t *testing.T, c kubernetes.Interface, ns, name string, labels, ann map[string]string) *corev1.Pod {
	t.Helper()
	pod, err := tryCreatePod(c, ns, name, labels, ann)
	if err != nil {
		t.Fatalf("creating pod %s/%s: %v", ns, name, err)
	}
	return pod
}

// serveWebhook serves h over TLS where envtest pointed the API server
// (its generated certificate in o.LocalServingCertDir). envtest's URL is
// https://HOST:PORT//inject, so h is served at every path rather than
// behind a ServeMux that would redirect the double slash.
func serveWebhook(t *testing.T, o envtest.WebhookInstallOptions, h http.Handler) {
	t.Helper()
	cert, err := tls.LoadX509KeyPair(filepath.Join(o.LocalServingCertDir, "tls.crt"), filepath.Join(o.LocalServingCertDir, "tls.key"))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(o.LocalServingHost, strconv.Itoa(o.LocalServingPort)))
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan error, 1)
	go func() { done <- srv.ServeTLS(ln, "", "") }()
	t.Cleanup(func() {
		_ = srv.Close()
		if err := <-done; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("webhook server: %v", err)
		}
	})
}
