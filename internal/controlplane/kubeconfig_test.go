package controlplane

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/dynamic"

	"github.com/weftmesh/weft/internal/ca"
	"github.com/weftmesh/weft/internal/ca/kubeca"
	"github.com/weftmesh/weft/internal/config"
	"github.com/weftmesh/weft/internal/config/kube"
	"github.com/weftmesh/weft/internal/inject"
	"github.com/weftmesh/weft/internal/kubetest"
)

// TestKubernetesConfig: with Options.Kubernetes and no ConfigDir, the
// cluster's Istio resources are the configuration (an object applied
// after the start reaches the pushed snapshot), and the webhook port
// answers AdmissionReviews over TLS with a certificate of the mesh CA,
// whose root (kept in istio-ca-secret) Run writes into both webhook
// configurations and the namespaces' istio-ca-root-cert.
func TestKubernetesConfig(t *testing.T) {
	kc := kubetest.Start(t, kubetest.Options{CRDDirs: []string{filepath.Join("..", "..", "charts", "weft", "crds")}})
	ctx := context.Background()
	for _, ns := range []string{"shop", "istio-system"} {
		if _, err := kc.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	// The webhook configuration as shipped (caBundle empty), failing
	// open here: no Service routes to this test's weft-control.
	wh := kube.ValidatingWebhookConfiguration(kube.WebhookConfigOptions{})
	ignore := admissionregistrationv1.Ignore
	wh.Webhooks[0].FailurePolicy = &ignore
	whAPI := kc.Client.AdmissionregistrationV1().ValidatingWebhookConfigurations()
	if _, err := whAPI.Create(ctx, wh, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	cp, err := New(Options{
		Kubernetes:     &KubernetesOptions{Config: kc.Config, CASecrets: true, Namespace: "istio-system"},
		XDSAddress:     "127.0.0.1:0",
		HTTPAddress:    "127.0.0.1:0",
		SecureAddress:  "127.0.0.1:0",
		WebhookAddress: "127.0.0.1:0",
		Injection:      &inject.Options{},
		CA:             ca.Options{MaxTTL: time.Hour},
		Debounce:       20 * time.Millisecond,
		Logger:         quiet,
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	// The CA's root is the one New stored in istio-ca-secret.
	sec, err := kc.Client.CoreV1().Secrets("istio-system").Get(ctx, kubeca.SelfSignedSecretName, metav1.GetOptions{})
	if err != nil || !bytes.Equal(sec.Data[kubeca.SecretCACertKey], cp.CA().RootPEM()) {
		t.Fatalf("Secret %s: %v, or another root than the CA's", kubeca.SelfSignedSecretName, err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- cp.Run(runCtx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	// Run made the mesh root the webhooks' caBundle (the mutating
	// configuration is applied after the start) and published it in
	// istio-ca-root-cert.
	if _, err := kc.Client.AdmissionregistrationV1().MutatingWebhookConfigurations().Create(ctx, inject.WebhookConfiguration(inject.WebhookOptions{}), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the mesh root in the webhook configurations and the namespace", func(ctx context.Context) (bool, error) {
		v, err := whAPI.Get(ctx, kube.ValidatingWebhookName, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		m, err := kc.Client.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, InjectorWebhookName, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		cm, err := kc.Client.CoreV1().ConfigMaps("shop").Get(ctx, RootCertConfigMap, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return false, nil
		}
		return err == nil && cm.Data[RootCertKey] == string(cp.CA().RootPEM()) &&
			bytes.Equal(v.Webhooks[0].ClientConfig.CABundle, cp.CA().RootPEM()) &&
			bytes.Equal(m.Webhooks[0].ClientConfig.CABundle, cp.CA().RootPEM()), err
	})

	dyn, err := dynamic.NewForConfig(kc.Config)
	if err != nil {
		t.Fatal(err)
	}
	se := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "networking.istio.io/v1", "kind": "ServiceEntry",
		"metadata": map[string]any{"name": "reviews", "namespace": "shop"},
		"spec": map[string]any{"hosts": []any{"reviews.shop.svc.cluster.local"}, "location": "MESH_INTERNAL",
			"ports":      []any{map[string]any{"number": int64(9080), "name": "http", "protocol": "HTTP"}},
			"resolution": "STATIC", "endpoints": []any{map[string]any{"address": "10.0.0.1"}}},
	}}
	gvr := schema.GroupVersionResource{Group: "networking.istio.io", Version: "v1", Resource: "serviceentries"}
	if _, err := dyn.Resource(gvr).Namespace("shop").Create(ctx, se, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	err = wait.PollUntilContextTimeout(ctx, 10*time.Millisecond, 20*time.Second, true, func(context.Context) (bool, error) {
		snap := cp.Snapshot()
		return snap != nil && len(snap.List(config.ServiceEntry)) == 1 && len(snap.ServicesByHost("reviews.shop.svc.cluster.local")) == 1, nil
	})
	if err != nil {
		t.Fatal("the ServiceEntry applied to the cluster did not reach the pushed snapshot")
	}

	// A VirtualService naming a Service the cluster does not have: its
	// status says so (Istio's analyzer: IST0101); once the Service
	// exists, the message goes.
	vs := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
		"metadata": map[string]any{"name": "ratings", "namespace": "shop"},
		"spec": map[string]any{"hosts": []any{"ratings"},
			"http": []any{map[string]any{"route": []any{map[string]any{"destination": map[string]any{"host": "ratings"}}}}}},
	}}
	vsGVR := schema.GroupVersionResource{Group: "networking.istio.io", Version: "v1", Resource: "virtualservices"}
	if _, err := dyn.Resource(vsGVR).Namespace("shop").Create(ctx, vs, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	statusText := func(ctx context.Context) (string, error) {
		u, err := dyn.Resource(vsGVR).Namespace("shop").Get(ctx, "ratings", metav1.GetOptions{})
		if err != nil {
			return "", err
		}
		msgs, _, _ := unstructured.NestedSlice(u.Object, "status", "validationMessages")
		return fmt.Sprint(msgs), nil
	}
	eventually(t, "a status message for the missing Service", func(ctx context.Context) (bool, error) {
		text, err := statusText(ctx)
		return strings.Contains(text, "host ratings (ratings.shop.svc.cluster.local) is not a Service of the cluster"), err
	})
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "ratings", Namespace: "shop"},
		Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 9080}}}}
	if _, err := kc.Client.CoreV1().Services("shop").Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the status message gone once the Service exists", func(ctx context.Context) (bool, error) {
		text, err := statusText(ctx)
		return err == nil && !strings.Contains(text, "not a Service"), err
	})

	// The webhook: TLS verified with the mesh root under the Service's
	// name, an invalid object denied with its field path.
	roots := x509.NewCertPool()
	roots.AddCert(cp.CA().Root())
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: "weft-control.istio-system.svc"}}}
	review := admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{
			UID: "1", Operation: admissionv1.Create, Namespace: "shop", Name: "bad",
			Kind:   metav1.GroupVersionKind{Group: "networking.istio.io", Version: "v1", Kind: "ServiceEntry"},
			Object: runtime.RawExtension{Raw: []byte(`{"apiVersion":"networking.istio.io/v1","kind":"ServiceEntry","metadata":{"name":"bad"},"spec":{"hosts":[]}}`)},
		},
	}
	body, _ := json.Marshal(review)
	resp, err := client.Post("https://"+cp.WebhookAddr().String()+"/validate", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out admissionv1.AdmissionReview
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	if out.Response == nil || out.Response.Allowed || !strings.Contains(out.Response.Result.Message, "spec.hosts") {
		t.Fatalf("webhook response %+v, want a denial naming spec.hosts", out.Response)
	}
}

// TestConfigSourceRequired: neither a directory nor a cluster is an error
// that names both flags.
func TestConfigSourceRequired(t *testing.T) {
	_, err := New(Options{XDSAddress: "127.0.0.1:0", HTTPAddress: "127.0.0.1:0", Logger: quiet})
	if err == nil || !strings.Contains(err.Error(), "--config-dir") || !strings.Contains(err.Error(), "--kubeconfig") {
		t.Fatalf("New without a source: %v", err)
	}
}
