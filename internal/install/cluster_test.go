package install

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/weftmesh/weft/internal/ca"
	"github.com/weftmesh/weft/internal/config/kube"
	"github.com/weftmesh/weft/internal/controlplane"
	"github.com/weftmesh/weft/internal/inject"
	"github.com/weftmesh/weft/internal/kubetest"
)

// TestCluster runs against one API server started with NO CRDs: the
// subtests share it and run in order, each leaving the cluster as it
// found it.
func TestCluster(t *testing.T) {
	kc := kubetest.Start(t, kubetest.Options{})
	t.Run("InstallUpgradeUninstall", func(t *testing.T) { testInstallUninstall(t, kc) })
	t.Run("WeftControlUnderChartRBAC", func(t *testing.T) { testChartRBAC(t, kc) })
	t.Run("Errors", func(t *testing.T) { testErrors(t, kc) })
}

func install(t *testing.T, kc *kubetest.Cluster, set ...string) string {
	t.Helper()
	var out bytes.Buffer
	if _, err := Install(context.Background(), Options{Config: kc.Config, Out: &out, Timeout: time.Minute, RenderOptions: RenderOptions{Set: set}}); err != nil {
		t.Fatalf("Install: %v\n%s", err, out.String())
	}
	return out.String()
}

func uninstall(t *testing.T, kc *kubetest.Cluster, purge bool) string {
	t.Helper()
	var out bytes.Buffer
	if err := Uninstall(context.Background(), UninstallOptions{Config: kc.Config, Out: &out, Purge: purge}); err != nil {
		t.Fatalf("Uninstall: %v\n%s", err, out.String())
	}
	return out.String()
}

// exists reports whether the object of the manifest is in the cluster.
func exists(t *testing.T, kc *kubetest.Cluster, obj *unstructured.Unstructured) bool {
	t.Helper()
	c, err := newClient(kc.Config, nil, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	ri, _, err := c.resource(obj)
	if err != nil {
		t.Fatal(err)
	}
	_, err = ri.Get(context.Background(), obj.GetName(), metav1.GetOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		t.Fatal(err)
	}
	return err == nil
}

func testInstallUninstall(t *testing.T, kc *kubetest.Cluster) {
	ctx := context.Background()
	out := install(t, kc)
	m := render(t, RenderOptions{})
	for _, obj := range m.All() {
		if !strings.Contains(out, describe(obj)+" created\n") {
			t.Errorf("first install did not report %s created:\n%s", describe(obj), out)
		}
		if !exists(t, kc, obj) {
			t.Errorf("%s not installed", describe(obj))
		}
	}
	if !strings.Contains(out, "namespace/istio-system created") {
		t.Errorf("the namespace was not created:\n%s", out)
	}
	dyn, err := dynamic.NewForConfig(kc.Config)
	if err != nil {
		t.Fatal(err)
	}
	for _, crd := range m.CRDs {
		u, err := dyn.Resource(crdGVR).Get(ctx, crd.GetName(), metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if ok, msg := condition(u, "Established"); !ok {
			t.Errorf("CRD %s not Established: %s", crd.GetName(), msg)
		}
	}
	// weft-control patches the caBundle; a second install keeps it.
	vwc := kc.Client.AdmissionregistrationV1().ValidatingWebhookConfigurations()
	got, err := vwc.Get(ctx, kube.ValidatingWebhookName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got.Webhooks[0].ClientConfig.CABundle = []byte("root")
	if _, err := vwc.Update(ctx, got, metav1.UpdateOptions{FieldManager: "weft-control"}); err != nil {
		t.Fatal(err)
	}

	// Again with the same values: nothing changes. Then an upgrade of a
	// value: the Deployment is configured, the rest unchanged.
	out = install(t, kc)
	for _, obj := range m.All() {
		if !strings.Contains(out, describe(obj)+" unchanged\n") {
			t.Errorf("second install did not report %s unchanged:\n%s", describe(obj), out)
		}
	}
	out = install(t, kc, "replicaCount=2")
	for _, want := range []string{"deployment.apps/weft-control configured", "poddisruptionbudget.policy/weft-control created", "service/weft-control unchanged"} {
		if !strings.Contains(out, want+"\n") {
			t.Errorf("upgrade did not report %q:\n%s", want, out)
		}
	}
	d, err := kc.Client.AppsV1().Deployments(DefaultNamespace).Get(ctx, "weft-control", metav1.GetOptions{})
	if err != nil || *d.Spec.Replicas != 2 {
		t.Fatalf("Deployment after the upgrade: %v %v", d, err)
	}
	got, err = vwc.Get(ctx, kube.ValidatingWebhookName, metav1.GetOptions{})
	if err != nil || string(got.Webhooks[0].ClientConfig.CABundle) != "root" {
		t.Errorf("reinstall lost weft-control's caBundle: %v", err)
	}

	// --wait on a cluster without a kubelet times out naming the Deployment.
	_, err = Install(ctx, Options{Config: kc.Config, Wait: true, Timeout: time.Second, RenderOptions: RenderOptions{Set: []string{"replicaCount=2"}}})
	if err == nil || !strings.Contains(err.Error(), "Deployment istio-system/weft-control is not available") || !strings.Contains(err.Error(), "kubectl -n istio-system describe deployment weft-control") {
		t.Errorf("Install --wait: %v", err)
	}

	// A published root certificate, and a user's ConfigMap with the same label.
	for _, cm := range []*corev1.ConfigMap{
		{ObjectMeta: metav1.ObjectMeta{Name: RootCertConfigMap, Namespace: "default", Labels: map[string]string{RootCertLabel: "true"}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "mine", Namespace: "default", Labels: map[string]string{RootCertLabel: "true"}}},
	} {
		if _, err := kc.Client.CoreV1().ConfigMaps("default").Create(ctx, cm, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := kc.Client.CoreV1().Secrets(DefaultNamespace).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: CASecret}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	out = uninstall(t, kc, false)
	for _, obj := range m.Objects {
		if exists(t, kc, obj) {
			t.Errorf("%s survived uninstall", describe(obj))
		}
	}
	for _, crd := range m.CRDs {
		if !exists(t, kc, crd) {
			t.Errorf("uninstall deleted %s", describe(crd))
		}
	}
	if _, err := kc.Client.CoreV1().ConfigMaps("default").Get(ctx, RootCertConfigMap, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("istio-ca-root-cert after uninstall: %v", err)
	}
	if _, err := kc.Client.CoreV1().ConfigMaps("default").Get(ctx, "mine", metav1.GetOptions{}); err != nil {
		t.Errorf("uninstall deleted a user's ConfigMap: %v", err)
	}
	if _, err := kc.Client.CoreV1().Secrets(DefaultNamespace).Get(ctx, CASecret, metav1.GetOptions{}); err != nil {
		t.Errorf("uninstall deleted the CA Secret: %v", err)
	}
	if !strings.Contains(out, "kept:") || !strings.Contains(out, "--purge") {
		t.Errorf("uninstall does not say what it kept:\n%s", out)
	}

	uninstall(t, kc, true)
	if _, err := kc.Client.CoreV1().Secrets(DefaultNamespace).Get(ctx, CASecret, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("the CA Secret after --purge: %v", err)
	}
	waitGone(t, kc, m.CRDs)
	if err := kc.Client.CoreV1().ConfigMaps("default").Delete(ctx, "mine", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
}

// waitGone waits until the objects are deleted (CRDs go after their
// finalizer ran).
func waitGone(t *testing.T, kc *kubetest.Cluster, objs []*unstructured.Unstructured) {
	t.Helper()
	for _, obj := range objs {
		// The API server's CRD finalizer deletes the instances first; on a
		// loaded machine that has taken over 30 s once.
		err := wait.PollUntilContextTimeout(context.Background(), 50*time.Millisecond, 90*time.Second, true, func(context.Context) (bool, error) {
			return !exists(t, kc, obj), nil
		})
		if err != nil {
			u, _ := dynamic.NewForConfigOrDie(kc.Config).Resource(schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}).Get(context.Background(), obj.GetName(), metav1.GetOptions{})
			var conds any
			if u != nil {
				conds, _, _ = unstructured.NestedSlice(u.Object, "status", "conditions")
			}
			t.Errorf("%s still exists 90 s after uninstall --purge; conditions %v", describe(obj), conds)
		}
	}
}

// impersonate returns cfg acting as weft-control in the cluster: the chart's
// ServiceAccount, as a pod's token authenticates it.
func impersonate(cfg *rest.Config) *rest.Config {
	c := rest.CopyConfig(cfg)
	c.Impersonate = rest.ImpersonationConfig{
		UserName: "system:serviceaccount:" + DefaultNamespace + ":weft-control",
		Groups:   []string{"system:serviceaccounts", "system:serviceaccounts:" + DefaultNamespace, "system:authenticated"},
	}
	return c
}

// freePort returns a loopback port that was free a moment ago (the
// webhook URL must be in the chart before weft-control binds it).
func freePort(t *testing.T) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// testChartRBAC runs weft-control in process as the chart's
// ServiceAccount (impersonated) against what the chart installed: its
// caches sync, it patches the webhook's caBundle, the API server calls
// its webhooks (an invalid VirtualService is refused, a pod is injected),
// and the role refuses what weft-control has no business doing.
func testChartRBAC(t *testing.T, kc *kubetest.Cluster) {
	ctx := context.Background()
	port := freePort(t)
	install(t, kc, "webhook.url=https://127.0.0.1:"+strconv.Itoa(port))
	t.Cleanup(func() { uninstall(t, kc, true) })

	sa := impersonate(kc.Config)
	cp, err := controlplane.New(controlplane.Options{
		Kubernetes:     &controlplane.KubernetesOptions{Config: sa, Namespace: DefaultNamespace, CASecrets: true},
		XDSAddress:     "127.0.0.1:0",
		HTTPAddress:    "127.0.0.1:0",
		SecureAddress:  "127.0.0.1:0",
		WebhookAddress: "127.0.0.1:" + strconv.Itoa(port),
		Injection:      &inject.Options{},
		CA:             ca.Options{MaxTTL: time.Hour},
		Debounce:       20 * time.Millisecond,
		Logger:         slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatalf("controlplane.New as the chart's ServiceAccount: %v", err)
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
	// Ready: the caches synced under the chart's RBAC.
	ready := "http://" + cp.HTTPAddr().String() + "/ready"
	err = wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		resp, err := http.Get(ready)
		if err != nil {
			return false, nil
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, nil
	})
	if err != nil {
		t.Fatal("weft-control did not become ready under the chart's RBAC")
	}

	root := cp.CA().RootPEM()
	admission := kc.Client.AdmissionregistrationV1()
	var vwc *admissionregistrationv1.ValidatingWebhookConfiguration
	err = wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		var err error
		vwc, err = admission.ValidatingWebhookConfigurations().Get(ctx, kube.ValidatingWebhookName, metav1.GetOptions{})
		return err == nil && bytes.Equal(vwc.Webhooks[0].ClientConfig.CABundle, root), nil
	})
	if err != nil {
		t.Fatal("weft-control did not make the mesh root the validating webhook's caBundle")
	}
	// The mutating caBundle too (the injector's webhook).
	saClient := kubernetes.NewForConfigOrDie(sa)
	err = wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		mwc, err := admission.MutatingWebhookConfigurations().Get(ctx, "weft-sidecar-injector", metav1.GetOptions{})
		return err == nil && bytes.Equal(mwc.Webhooks[0].ClientConfig.CABundle, root), nil
	})
	if err != nil {
		t.Fatal("weft-control did not make the mesh root the injector webhook's caBundle")
	}
	// The root was created in the Secret the chart's Role lets it write.
	if sec, err := kc.Client.CoreV1().Secrets(DefaultNamespace).Get(ctx, CASecret, metav1.GetOptions{}); err != nil || !bytes.Equal(sec.Data["ca-cert.pem"], root) {
		t.Fatalf("the root is not in Secret %s/%s: %v", DefaultNamespace, CASecret, err)
	}

	// An invalid VirtualService is refused at create time.
	dyn := dynamic.NewForConfigOrDie(kc.Config)
	vs := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
		"metadata": map[string]any{"name": "bad", "namespace": "default"},
		"spec":     map[string]any{"hosts": []any{}},
	}}
	_, err = dyn.Resource(schema.GroupVersionResource{Group: "networking.istio.io", Version: "v1", Resource: "virtualservices"}).Namespace("default").Create(ctx, vs, metav1.CreateOptions{})
	if err == nil || !strings.Contains(err.Error(), kube.ValidatingWebhookName) {
		t.Errorf("invalid VirtualService: %v, want a denial by %s", err, kube.ValidatingWebhookName)
	}

	// A pod in a namespace labelled istio-injection=enabled gets the sidecar.
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop", Labels: map[string]string{"istio-injection": "enabled"}}}
	if _, err := kc.Client.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = kc.Client.CoreV1().Namespaces().Delete(ctx, "shop", metav1.DeleteOptions{}) })
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "app", Namespace: "shop"},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "example.com/app:1"}}},
	}
	created, err := kc.Client.CoreV1().Pods("shop").Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("creating a pod in an injected namespace: %v", err)
	}
	injected := false
	for _, c := range created.Spec.InitContainers {
		if c.Name == inject.ProxyContainerName && c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways {
			injected = true
		}
	}
	if !injected {
		t.Errorf("the pod was not injected: init containers %+v", created.Spec.InitContainers)
	}

	// What the role must not allow.
	for name, forbidden := range map[string]func() error{
		"delete namespaces": func() error {
			return saClient.CoreV1().Namespaces().Delete(ctx, "shop", metav1.DeleteOptions{DryRun: []string{metav1.DryRunAll}})
		},
		"read secrets in another namespace": func() error {
			_, err := saClient.CoreV1().Secrets("default").List(ctx, metav1.ListOptions{})
			return err
		},
		"update another webhook configuration": func() error {
			other := vwc.DeepCopy()
			other.ObjectMeta = metav1.ObjectMeta{Name: "someone-else"}
			_, err := saClient.AdmissionregistrationV1().ValidatingWebhookConfigurations().Create(ctx, other, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
			return err
		},
		"delete pods": func() error {
			return saClient.CoreV1().Pods("shop").Delete(ctx, "app", metav1.DeleteOptions{DryRun: []string{metav1.DryRunAll}})
		},
	} {
		if err := forbidden(); !apierrors.IsForbidden(err) {
			t.Errorf("the chart's ServiceAccount can %s: %v", name, err)
		}
	}
	// The mesh root is published into the new namespace.
	err = wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		cm, err := kc.Client.CoreV1().ConfigMaps("shop").Get(ctx, RootCertConfigMap, metav1.GetOptions{})
		return err == nil && cm.Data["root-cert.pem"] == string(root) && cm.Labels[RootCertLabel] == "true", nil
	})
	if err != nil {
		t.Errorf("weft-control did not publish %s into shop under the chart's RBAC", RootCertConfigMap)
	}
}

// testErrors: an unreachable server and missing rights are named.
func testErrors(t *testing.T, kc *kubetest.Cluster) {
	ctx := context.Background()
	port := freePort(t)
	_, err := Install(ctx, Options{Config: &rest.Config{Host: "https://127.0.0.1:" + strconv.Itoa(port)}})
	if err == nil || !strings.Contains(err.Error(), "cannot reach the Kubernetes API server https://127.0.0.1:"+strconv.Itoa(port)) {
		t.Errorf("unreachable: %v", err)
	}
	nobody := rest.CopyConfig(kc.Config)
	nobody.Impersonate = rest.ImpersonationConfig{UserName: "jane", Groups: []string{"system:authenticated"}}
	_, err = Install(ctx, Options{Config: nobody, RenderOptions: RenderOptions{Namespace: "default"}})
	if err == nil || !strings.Contains(err.Error(), "not allowed to get namespaces cluster-wide") {
		t.Errorf("without rights: %v", err)
	}
}
