package ca_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	pb "istio.io/api/security/v1alpha1"
	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/weftmesh/weft/internal/ca"
	"github.com/weftmesh/weft/internal/ca/kubeca"
	"github.com/weftmesh/weft/internal/kubetest"
)

// TestKubeAuthenticator runs the CSR service with TokenReview
// authentication against a real API server: a projected token of service
// account shop/cart with audience istio-ca gets spiffe://…/ns/shop/sa/cart;
// a forged token, a token for another audience, a CSR for another
// identity and no token are refused with their codes.
func TestKubeAuthenticator(t *testing.T) {
	cluster := kubetest.Start(t, kubetest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	client := cluster.Client
	createServiceAccounts(ctx, t, client, "shop", "cart", "db")
	good := requestToken(ctx, t, client, "shop", "cart", kubeca.DefaultTokenAudience)
	otherAud := requestToken(ctx, t, client, "shop", "cart", "some-other-audience")
	forged := forgeSubject(t, good, "system:serviceaccount:shop:db")

	c := ca.NewTestCA(t, ca.Options{})
	auth, err := kubeca.NewKubeAuthenticator(kubeca.KubeAuthenticatorOptions{Client: client})
	if err != nil {
		t.Fatal(err)
	}
	// The bootstrap tokens stay usable beside Kubernetes tokens.
	csrClient := ca.Serve(t, c, ca.Authenticators{auth, ca.TokenAuthenticator{Keys: c.Tokens()}})
	bootstrap, err := c.Tokens().Mint(ca.Identity{Namespace: "local", ServiceAccount: "vm"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	key := ca.ECKey(t)
	cart := ca.CSRPEM(t, key, "spiffe://cluster.local/ns/shop/sa/cart")
	tests := []struct {
		name, tok, csr string
		code           codes.Code
		want           string // the leaf's URI when OK, else part of the message
	}{
		{"projected token", good, cart, codes.OK, "spiffe://cluster.local/ns/shop/sa/cart"},
		{"no SAN asked", good, ca.CSRPEM(t, key), codes.OK, "spiffe://cluster.local/ns/shop/sa/cart"},
		{"bootstrap token in the chain", bootstrap, ca.CSRPEM(t, key), codes.OK, "spiffe://cluster.local/ns/local/sa/vm"},
		{"another identity", good, ca.CSRPEM(t, key, "spiffe://cluster.local/ns/shop/sa/db"), codes.PermissionDenied, "own identity"},
		{"forged token", forged, cart, codes.Unauthenticated, "cryptographic"},
		{"other audience", otherAud, cart, codes.Unauthenticated, "is invalid for the target audiences"},
		{"garbage", "not-a-token", cart, codes.Unauthenticated, "TokenReview"},
		{"no token", "", cart, codes.Unauthenticated, "no credentials"},
	}
	for _, tt := range tests {
		resp, err := csrClient.CreateCertificate(ca.WithToken(t, tt.tok), &pb.IstioCertificateRequest{Csr: tt.csr})
		st := status.Convert(err)
		if st.Code() != tt.code {
			t.Errorf("%s: %v %q, want %v", tt.name, st.Code(), st.Message(), tt.code)
			continue
		}
		if tt.code != codes.OK {
			t.Logf("%s: %v %s", tt.name, st.Code(), st.Message())
			if !strings.Contains(st.Message(), tt.want) {
				t.Errorf("%s: message %q, want it to contain %q", tt.name, st.Message(), tt.want)
			}
			if tt.tok != "" && strings.Contains(st.Message(), tt.tok) {
				t.Errorf("%s: the error message contains the token", tt.name)
			}
			continue
		}
		leaf := ca.VerifyChain(t, c, resp.GetCertChain())
		if len(leaf.URIs) != 1 || leaf.URIs[0].String() != tt.want {
			t.Errorf("%s: URIs %v, want %s", tt.name, leaf.URIs, tt.want)
		}
	}

	// An unreachable API server is no refusal: the caller retries.
	broken := *cluster.Config
	broken.Host = "https://127.0.0.1:1"
	bc, err := kubernetes.NewForConfig(&broken)
	if err != nil {
		t.Fatal(err)
	}
	unreachable, err := kubeca.NewKubeAuthenticator(kubeca.KubeAuthenticatorOptions{Client: bc})
	if err != nil {
		t.Fatal(err)
	}
	_, err = ca.Serve(t, c, unreachable).CreateCertificate(ca.WithToken(t, good), &pb.IstioCertificateRequest{Csr: cart})
	if st := status.Convert(err); st.Code() != codes.Unavailable {
		t.Errorf("unreachable API server: %v %q, want Unavailable", st.Code(), st.Message())
	}
}

func createServiceAccounts(ctx context.Context, t *testing.T, client kubernetes.Interface, ns string, names ...string) {
	t.Helper()
	if _, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: n, Namespace: ns}}
		if _, err := client.CoreV1().ServiceAccounts(ns).Create(ctx, sa, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
}

// requestToken asks the TokenRequest API for a token of ns/sa with one
// audience, as the kubelet does for a projected volume.
func requestToken(ctx context.Context, t *testing.T, client kubernetes.Interface, ns, sa, audience string) string {
	t.Helper()
	exp := int64(600)
	tr, err := client.CoreV1().ServiceAccounts(ns).CreateToken(ctx, sa, &authnv1.TokenRequest{
		Spec: authnv1.TokenRequestSpec{Audiences: []string{audience}, ExpirationSeconds: &exp},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("TokenRequest %s/%s: %v", ns, sa, err)
	}
	return tr.Status.Token
}

// forgeSubject returns tok with its payload's sub claim replaced: the
// header and signature are the real ones, so only the signature check can
// catch it.
func forgeSubject(t *testing.T, tok, sub string) string {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("the token is not a JWS: %d parts", len(parts))
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var claims map[string]any
	if err := json.Unmarshal(raw, &claims); err != nil {
		t.Fatal(err)
	}
	claims["sub"] = sub
	if k, ok := claims["kubernetes.io"].(map[string]any); ok {
		k["serviceaccount"] = map[string]any{"name": "db", "uid": "00000000-0000-0000-0000-000000000000"}
	}
	raw, err = json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	parts[1] = base64.RawURLEncoding.EncodeToString(raw)
	return strings.Join(parts, ".")
}
