package controlplane

import (
	"bytes"
	"context"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	configkube "github.com/weftmesh/weft/internal/config/kube"
	"github.com/weftmesh/weft/internal/inject"
	"github.com/weftmesh/weft/internal/kubetest"
)

// caBundleRules are the cluster-wide rules the chart grants weft-control
// for publishing the mesh root (what caBundlePublisher needs).
var caBundleRules = []rbacv1.PolicyRule{
	{APIGroups: []string{""}, Resources: []string{"namespaces"}, Verbs: []string{"list", "watch"}},
	{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"list", "watch", "create", "update"}},
	{APIGroups: []string{"admissionregistration.k8s.io"}, Resources: []string{"validatingwebhookconfigurations", "mutatingwebhookconfigurations"}, Verbs: []string{"list", "watch", "update"}},
}

// impersonateWeftControl binds rules cluster-wide to weft-control's
// service account and returns a client acting as it.
func impersonateWeftControl(t *testing.T, kc *kubetest.Cluster, rules []rbacv1.PolicyRule) kubernetes.Interface {
	t.Helper()
	ctx := context.Background()
	role := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "weft-control-test"}, Rules: rules}
	if _, err := kc.Client.RbacV1().ClusterRoles().Create(ctx, role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "weft-control-test"},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: role.Name},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: "weft-control", Namespace: "istio-system"}},
	}
	if _, err := kc.Client.RbacV1().ClusterRoleBindings().Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	cfg := rest.CopyConfig(kc.Config)
	cfg.Impersonate = rest.ImpersonationConfig{
		UserName: "system:serviceaccount:istio-system:weft-control",
		Groups:   []string{"system:serviceaccounts", "system:serviceaccounts:istio-system", "system:authenticated"},
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().Secrets("kube-system").List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Fatalf("listing secrets as weft-control: %v, want Forbidden (impersonation not in effect)", err)
	}
	return cs
}

// eventually polls cond for up to 20 s.
func eventually(t *testing.T, what string, cond func(ctx context.Context) (bool, error)) {
	t.Helper()
	if err := wait.PollUntilContextTimeout(context.Background(), 20*time.Millisecond, 20*time.Second, true, cond); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// TestCABundlePublisher: as weft-control with the chart's RBAC, the
// root ConfigMap appears in existing and new namespaces (not in
// kube-system), comes back when deleted, is restored when edited; both
// webhook configurations get the root as caBundle, again after a
// re-apply clears it, and one created after the start gets it too.
func TestCABundlePublisher(t *testing.T) {
	kc := kubetest.Start(t, kubetest.Options{})
	ctx := context.Background()
	admin := kc.Client
	for _, ns := range []string{"kube-system", "shop"} {
		if _, err := admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
	}
	vwc := configkube.ValidatingWebhookConfiguration(configkube.WebhookConfigOptions{})
	if _, err := admin.AdmissionregistrationV1().ValidatingWebhookConfigurations().Create(ctx, vwc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	cs := impersonateWeftControl(t, kc, caBundleRules)
	root := []byte("-----BEGIN CERTIFICATE-----\ntest root\n-----END CERTIFICATE-----\n")
	p, err := newCABundlePublisher(caBundleOptions{Client: cs, Root: root, Validating: configkube.ValidatingWebhookName, Mutating: InjectorWebhookName, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- p.run(runCtx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	})

	cms := func(ns string) func(context.Context) (bool, error) {
		return func(ctx context.Context) (bool, error) {
			cm, err := admin.CoreV1().ConfigMaps(ns).Get(ctx, RootCertConfigMap, metav1.GetOptions{})
			if apierrors.IsNotFound(err) {
				return false, nil
			}
			return err == nil && cm.Data[RootCertKey] == string(root) && cm.Labels["istio.io/config"] == "true", err
		}
	}
	eventually(t, "ConfigMap in an existing namespace", cms("shop"))
	eventually(t, "ConfigMap in the default namespace", cms("default"))
	if _, err := admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "later"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "ConfigMap in a namespace created later", cms("later"))

	if err := admin.CoreV1().ConfigMaps("shop").Delete(ctx, RootCertConfigMap, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "ConfigMap recreated after deletion", cms("shop"))
	cm, err := admin.CoreV1().ConfigMaps("shop").Get(ctx, RootCertConfigMap, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cm.Data[RootCertKey] = "tampered"
	delete(cm.Labels, "istio.io/config")
	if _, err := admin.CoreV1().ConfigMaps("shop").Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "ConfigMap restored after an edit", cms("shop"))

	// Validating: patched at the start, re-patched after a re-apply
	// that clears it.
	vwcHas := func(ctx context.Context) (bool, error) {
		got, err := admin.AdmissionregistrationV1().ValidatingWebhookConfigurations().Get(ctx, configkube.ValidatingWebhookName, metav1.GetOptions{})
		return err == nil && allBundles(got.Webhooks, func(w admissionregistrationv1.ValidatingWebhook) []byte { return w.ClientConfig.CABundle }, root), err
	}
	eventually(t, "validating caBundle patched", vwcHas)
	got, err := admin.AdmissionregistrationV1().ValidatingWebhookConfigurations().Get(ctx, configkube.ValidatingWebhookName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got.Webhooks[0].ClientConfig.CABundle = nil
	if _, err := admin.AdmissionregistrationV1().ValidatingWebhookConfigurations().Update(ctx, got, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "validating caBundle re-patched", vwcHas)

	// Mutating: absent at the start (a warning), patched when applied,
	// re-patched after a re-apply with another caBundle.
	mwc := inject.WebhookConfiguration(inject.WebhookOptions{})
	if _, err := admin.AdmissionregistrationV1().MutatingWebhookConfigurations().Create(ctx, mwc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	mwcHas := func(ctx context.Context) (bool, error) {
		got, err := admin.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, InjectorWebhookName, metav1.GetOptions{})
		return err == nil && allBundles(got.Webhooks, func(w admissionregistrationv1.MutatingWebhook) []byte { return w.ClientConfig.CABundle }, root), err
	}
	eventually(t, "mutating caBundle patched", mwcHas)
	gotM, err := admin.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, InjectorWebhookName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	gotM.Webhooks[len(gotM.Webhooks)-1].ClientConfig.CABundle = []byte("other")
	if _, err := admin.AdmissionregistrationV1().MutatingWebhookConfigurations().Update(ctx, gotM, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "mutating caBundle re-patched", mwcHas)

	// kube-system is ignored; checked last, after everything else was
	// reconciled, so the absence is not an accident of timing.
	if _, err := admin.CoreV1().ConfigMaps("kube-system").Get(ctx, RootCertConfigMap, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("ConfigMap in kube-system: %v, want NotFound", err)
	}
}

// allBundles reports whether every webhook has caBundle want.
func allBundles[W any](ws []W, bundle func(W) []byte, want []byte) bool {
	for _, w := range ws {
		if !bytes.Equal(bundle(w), want) {
			return false
		}
	}
	return len(ws) > 0
}
