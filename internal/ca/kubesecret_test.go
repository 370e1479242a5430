package ca_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"log/slog"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/weftmesh/weft/internal/ca"
	"github.com/weftmesh/weft/internal/ca/kubeca"
	"github.com/weftmesh/weft/internal/kubetest"
)

// weftControlUser is weft-control's service account as the API server
// sees it; tests impersonate it with only the RBAC the chart grants.
const weftControlUser = "system:serviceaccount:istio-system:weft-control"

// asWeftControl grants weft-control the chart's CA rules in namespace ns
// (secrets get, create, update: what SecretStore needs) and returns a
// client impersonating it.
func asWeftControl(t *testing.T, kc *kubetest.Cluster, ns string) kubernetes.Interface {
	t.Helper()
	ctx := context.Background()
	if _, err := kc.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	role := &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: "weft-control-ca", Namespace: ns},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"get", "create", "update"}}},
	}
	if _, err := kc.Client.RbacV1().Roles(ns).Create(ctx, role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	binding := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "weft-control-ca", Namespace: ns},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: role.Name},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: "weft-control", Namespace: "istio-system"}},
	}
	if _, err := kc.Client.RbacV1().RoleBindings(ns).Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	cfg := rest.CopyConfig(kc.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: weftControlUser, Groups: []string{"system:serviceaccounts", "system:serviceaccounts:istio-system", "system:authenticated"}}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

// TestKubeSecrets runs the Secret-backed CA against a real API server as
// weft-control with the chart's RBAC.
func TestKubeSecrets(t *testing.T) {
	kc := kubetest.Start(t, kubetest.Options{})
	t.Run("replicas share one root", func(t *testing.T) { testKubeReplicas(t, kc) })
	t.Run("plug-in cacerts", func(t *testing.T) { testKubePlugged(t, kc) })
	t.Run("istiod's secret without a token key", func(t *testing.T) { testKubeIstiodSecret(t, kc) })
}

func newKubeCA(t *testing.T, cs kubernetes.Interface, ns string) (*ca.CA, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return kubeca.NewKube(ctx, kubeca.KubeCAOptions{Client: cs, Namespace: ns, CA: ca.Options{Logger: slog.New(slog.DiscardHandler)}})
}

// testKubeReplicas: two CAs started concurrently on an empty namespace
// end with the same root, stored in istio-ca-secret in Istio's layout; a
// certificate and a token of one are accepted by the other; a restart
// reuses the Secret.
func testKubeReplicas(t *testing.T, kc *kubetest.Cluster) {
	const ns = "istio-system"
	cs := asWeftControl(t, kc, ns)
	// The impersonation holds: no rights beyond the Role.
	if _, err := cs.CoreV1().Secrets("default").List(context.Background(), metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Fatalf("listing secrets as weft-control: %v, want Forbidden", err)
	}
	var a, b *ca.CA
	var errA, errB error
	var wg sync.WaitGroup
	wg.Go(func() { a, errA = newKubeCA(t, cs, ns) })
	wg.Go(func() { b, errB = newKubeCA(t, cs, ns) })
	wg.Wait()
	if errA != nil || errB != nil {
		t.Fatalf("NewKube: %v, %v", errA, errB)
	}
	if !a.Root().Equal(b.Root()) {
		t.Fatal("the two replicas have different roots")
	}
	sec, err := kc.Client.CoreV1().Secrets(ns).Get(context.Background(), kubeca.SelfSignedSecretName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if sec.Type != kubeca.SelfSignedSecretType {
		t.Errorf("Secret type %q, want %q", sec.Type, kubeca.SelfSignedSecretType)
	}
	for _, k := range []string{kubeca.SecretCACertKey, kubeca.SecretCAKeyKey, kubeca.SecretCertChainKey, kubeca.SecretRootCertKey, kubeca.SecretTokenKeyKey} {
		if _, ok := sec.Data[k]; !ok {
			t.Errorf("Secret %s has no key %s", kubeca.SelfSignedSecretName, k)
		}
	}
	if !bytes.Equal(sec.Data[kubeca.SecretCACertKey], a.RootPEM()) || !bytes.Equal(sec.Data[kubeca.SecretRootCertKey], a.RootPEM()) {
		t.Error("the Secret's ca-cert.pem and root-cert.pem are not the shared root")
	}
	if blk, _ := pem.Decode(sec.Data[kubeca.SecretCAKeyKey]); blk == nil || blk.Type != "PRIVATE KEY" {
		t.Error("ca-key.pem is not a PEM private key")
	}
	if _, err := kc.Client.CoreV1().Secrets(ns).Get(context.Background(), kubeca.TokenKeySecretName, metav1.GetOptions{}); err == nil {
		t.Errorf("Secret %s created although no plug-in CA is used", kubeca.TokenKeySecretName)
	}

	cert, err := a.Sign(ca.SignRequest{PublicKey: ca.ECKey(t).Public(), Identity: ca.Identity{Namespace: "shop", ServiceAccount: "web"}})
	if err != nil {
		t.Fatal(err)
	}
	ca.VerifyChain(t, b, cert.ChainPEM)
	tok, err := b.Tokens().Mint(ca.Identity{Namespace: "shop", ServiceAccount: "web"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Tokens().Verify(tok); err != nil {
		t.Fatalf("a token of one replica is refused by the other: %v", err)
	}

	restarted, err := newKubeCA(t, cs, ns)
	if err != nil {
		t.Fatal(err)
	}
	if !restarted.Root().Equal(a.Root()) {
		t.Fatal("a restart generated another root")
	}
	if _, err := restarted.Tokens().Verify(tok); err != nil {
		t.Fatalf("a restart lost the token key: %v", err)
	}
}

// testKubePlugged: with Istio's plug-in Secret cacerts (an intermediate
// made here), issued chains go through it up to its root; the token key
// lands in weft-token-key and istio-ca-secret is not created.
func testKubePlugged(t *testing.T, kc *kubetest.Cluster) {
	const ns = "plugged"
	cs := asWeftControl(t, kc, ns)
	root := ca.MakeCA(t, "operator root", nil)
	mid := ca.MakeCA(t, "cluster intermediate", root)
	der, err := x509.MarshalPKCS8PrivateKey(mid.Key())
	if err != nil {
		t.Fatal(err)
	}
	cacerts := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: kubeca.PluggedSecretName, Namespace: ns},
		Data: map[string][]byte{
			kubeca.SecretCACertKey:    ca.PEMOf(mid),
			kubeca.SecretCAKeyKey:     pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}),
			kubeca.SecretCertChainKey: ca.PEMOf(mid, root),
			kubeca.SecretRootCertKey:  ca.PEMOf(root),
		},
	}
	if _, err := kc.Client.CoreV1().Secrets(ns).Create(context.Background(), cacerts, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	c, err := newKubeCA(t, cs, ns)
	if err != nil {
		t.Fatal(err)
	}
	if !c.Root().Equal(root.Cert()) {
		t.Fatalf("root %s, want the plug-in root", c.Root().Subject)
	}
	cert, err := c.Sign(ca.SignRequest{PublicKey: ca.ECKey(t).Public(), Identity: ca.Identity{Namespace: "shop", ServiceAccount: "web"}})
	if err != nil {
		t.Fatal(err)
	}
	if leaf := ca.VerifyChain(t, c, cert.ChainPEM); leaf.CheckSignatureFrom(mid.Cert()) != nil || len(cert.ChainPEM) != 3 {
		t.Fatalf("the leaf is not issued by the plug-in intermediate (chain of %d)", len(cert.ChainPEM))
	}
	if _, err := kc.Client.CoreV1().Secrets(ns).Get(context.Background(), kubeca.SelfSignedSecretName, metav1.GetOptions{}); err == nil {
		t.Errorf("%s created although cacerts is present", kubeca.SelfSignedSecretName)
	}
	tk, err := kc.Client.CoreV1().Secrets(ns).Get(context.Background(), kubeca.TokenKeySecretName, metav1.GetOptions{})
	if err != nil || len(tk.Data[kubeca.SecretTokenKeyKey]) != ca.TokenKeyBytes {
		t.Fatalf("token key Secret: %v", err)
	}
	again, err := newKubeCA(t, cs, ns)
	if err != nil {
		t.Fatal(err)
	}
	tok, _ := c.Tokens().Mint(ca.Identity{Namespace: "shop", ServiceAccount: "web"}, time.Hour)
	if _, err := again.Tokens().Verify(tok); err != nil {
		t.Fatalf("the token key is not shared: %v", err)
	}
}

// testKubeIstiodSecret: an istio-ca-secret as istiod writes it (no
// cert-chain.pem, no root-cert.pem, no weft-token-key) is used, and the
// token key is added to it.
func testKubeIstiodSecret(t *testing.T, kc *kubetest.Cluster) {
	const ns = "from-istiod"
	cs := asWeftControl(t, kc, ns)
	root := ca.MakeCA(t, "istiod root", nil)
	der, err := x509.MarshalPKCS8PrivateKey(root.Key())
	if err != nil {
		t.Fatal(err)
	}
	sec := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: kubeca.SelfSignedSecretName, Namespace: ns},
		Type:       kubeca.SelfSignedSecretType,
		Data: map[string][]byte{
			kubeca.SecretCACertKey: ca.PEMOf(root), kubeca.SecretCAKeyKey: pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}),
			kubeca.SecretCertChainKey: nil, kubeca.SecretRootCertKey: nil,
		},
	}
	if _, err := kc.Client.CoreV1().Secrets(ns).Create(context.Background(), sec, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	c, err := newKubeCA(t, cs, ns)
	if err != nil {
		t.Fatal(err)
	}
	if !c.Root().Equal(root.Cert()) {
		t.Fatal("istiod's root is not used")
	}
	got, err := kc.Client.CoreV1().Secrets(ns).Get(context.Background(), kubeca.SelfSignedSecretName, metav1.GetOptions{})
	if err != nil || len(got.Data[kubeca.SecretTokenKeyKey]) != ca.TokenKeyBytes {
		t.Fatalf("the token key was not added to istiod's Secret: %v", err)
	}
}
