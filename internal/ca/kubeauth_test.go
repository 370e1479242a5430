package ca

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
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
	good := requestToken(ctx, t, client, "shop", "cart", DefaultTokenAudience)
	otherAud := requestToken(ctx, t, client, "shop", "cart", "some-other-audience")
	forged := forgeSubject(t, good, "system:serviceaccount:shop:db")

	c := newTestCA(t, Options{})
	auth, err := NewKubeAuthenticator(KubeAuthenticatorOptions{Client: client})
	if err != nil {
		t.Fatal(err)
	}
	// The bootstrap tokens stay usable beside Kubernetes tokens.
	csrClient := serve(t, c, Authenticators{auth, TokenAuthenticator{Keys: c.Tokens()}})
	bootstrap, err := c.Tokens().Mint(Identity{"local", "vm"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	key := ecKey(t)
	cart := csrPEM(t, key, "spiffe://cluster.local/ns/shop/sa/cart")
	tests := []struct {
		name, tok, csr string
		code           codes.Code
		want           string // the leaf's URI when OK, else part of the message
	}{
		{"projected token", good, cart, codes.OK, "spiffe://cluster.local/ns/shop/sa/cart"},
		{"no SAN asked", good, csrPEM(t, key), codes.OK, "spiffe://cluster.local/ns/shop/sa/cart"},
		{"bootstrap token in the chain", bootstrap, csrPEM(t, key), codes.OK, "spiffe://cluster.local/ns/local/sa/vm"},
		{"another identity", good, csrPEM(t, key, "spiffe://cluster.local/ns/shop/sa/db"), codes.PermissionDenied, "own identity"},
		{"forged token", forged, cart, codes.Unauthenticated, "cryptographic"},
		{"other audience", otherAud, cart, codes.Unauthenticated, "is invalid for the target audiences"},
		{"garbage", "not-a-token", cart, codes.Unauthenticated, "TokenReview"},
		{"no token", "", cart, codes.Unauthenticated, "no credentials"},
	}
	for _, tt := range tests {
		resp, err := csrClient.CreateCertificate(withToken(t, tt.tok), &pb.IstioCertificateRequest{Csr: tt.csr})
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
		leaf := verifyChain(t, c, resp.GetCertChain())
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
	unreachable, err := NewKubeAuthenticator(KubeAuthenticatorOptions{Client: bc})
	if err != nil {
		t.Fatal(err)
	}
	_, err = serve(t, c, unreachable).CreateCertificate(withToken(t, good), &pb.IstioCertificateRequest{Csr: cart})
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

// TestKubeIdentity: what a TokenReview result must say to become an
// identity.
func TestKubeIdentity(t *testing.T) {
	a, err := NewKubeAuthenticator(KubeAuthenticatorOptions{Client: &kubernetes.Clientset{}, Audiences: []string{"istio-ca", ""}})
	if err != nil {
		t.Fatal(err)
	}
	sa := authnv1.UserInfo{Username: "system:serviceaccount:shop:cart", Groups: []string{"system:serviceaccounts", "system:serviceaccounts:shop", "system:authenticated"}}
	for _, tt := range []struct {
		name string
		st   authnv1.TokenReviewStatus
		want Identity
		err  string
	}{
		{"service account", authnv1.TokenReviewStatus{Authenticated: true, Audiences: []string{"istio-ca"}, User: sa}, Identity{"shop", "cart"}, ""},
		{"not authenticated", authnv1.TokenReviewStatus{Error: "token has expired"}, Identity{}, "token has expired"},
		{"no audience", authnv1.TokenReviewStatus{Authenticated: true, User: sa}, Identity{}, "not valid for audience istio-ca"},
		{"other audience", authnv1.TokenReviewStatus{Authenticated: true, Audiences: []string{"api"}, User: sa}, Identity{}, "audience"},
		{"a user", authnv1.TokenReviewStatus{Authenticated: true, Audiences: []string{"istio-ca"}, User: authnv1.UserInfo{Username: "alice", Groups: []string{"system:authenticated"}}}, Identity{}, "not a Kubernetes service account"},
		{"malformed name", authnv1.TokenReviewStatus{Authenticated: true, Audiences: []string{"istio-ca"}, User: authnv1.UserInfo{Username: "system:serviceaccount:shop", Groups: sa.Groups}}, Identity{}, "not of the form"},
		{"extra colon", authnv1.TokenReviewStatus{Authenticated: true, Audiences: []string{"istio-ca"}, User: authnv1.UserInfo{Username: "system:serviceaccount:shop:a:b", Groups: sa.Groups}}, Identity{}, "not of the form"},
		{"bad namespace", authnv1.TokenReviewStatus{Authenticated: true, Audiences: []string{"istio-ca"}, User: authnv1.UserInfo{Username: "system:serviceaccount:Shop:cart", Groups: sa.Groups}}, Identity{}, "namespace"},
	} {
		got, err := a.identity(tt.st)
		if got != tt.want || (err == nil) != (tt.err == "") || (err != nil && (!errors.Is(err, ErrUnauthenticated) || !strings.Contains(err.Error(), tt.err))) {
			t.Errorf("%s: %v, %v; want %v, %q", tt.name, got, err, tt.want, tt.err)
		}
	}
}

// TestAuthenticatorsChain: the first identity wins; refusals pass on and
// are listed; an authenticator that cannot decide stops the chain.
func TestAuthenticatorsChain(t *testing.T) {
	refuse := authFunc(func(context.Context) (Identity, error) {
		return Identity{}, errors.Join(ErrUnauthenticated, errors.New("nope"))
	})
	accept := authFunc(func(context.Context) (Identity, error) { return Identity{"a", "b"}, nil })
	for _, tt := range []struct {
		name                string
		chain               Authenticators
		want                Identity
		unauth, unavailable bool
	}{
		{"first refuses, second accepts", Authenticators{refuse, accept}, Identity{"a", "b"}, false, false},
		{"all refuse", Authenticators{refuse, refuse}, Identity{}, true, false},
		{"cannot decide", Authenticators{failingAuth{}, accept}, Identity{}, false, true},
		{"empty", nil, Identity{}, true, false},
	} {
		got, err := tt.chain.Authenticate(context.Background())
		if got != tt.want || errors.Is(err, ErrUnauthenticated) != tt.unauth || (tt.unavailable && err == nil) {
			t.Errorf("%s: %v, %v", tt.name, got, err)
		}
	}
}

type authFunc func(context.Context) (Identity, error)

func (f authFunc) Authenticate(ctx context.Context) (Identity, error) { return f(ctx) }
