package kubeca

import (
	"errors"
	"strings"
	"testing"

	authnv1 "k8s.io/api/authentication/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/weftmesh/weft/internal/ca"
)

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
		want ca.Identity
		err  string
	}{
		{"service account", authnv1.TokenReviewStatus{Authenticated: true, Audiences: []string{"istio-ca"}, User: sa}, ca.Identity{Namespace: "shop", ServiceAccount: "cart"}, ""},
		{"not authenticated", authnv1.TokenReviewStatus{Error: "token has expired"}, ca.Identity{}, "token has expired"},
		{"no audience", authnv1.TokenReviewStatus{Authenticated: true, User: sa}, ca.Identity{}, "not valid for audience istio-ca"},
		{"other audience", authnv1.TokenReviewStatus{Authenticated: true, Audiences: []string{"api"}, User: sa}, ca.Identity{}, "audience"},
		{"a user", authnv1.TokenReviewStatus{Authenticated: true, Audiences: []string{"istio-ca"}, User: authnv1.UserInfo{Username: "alice", Groups: []string{"system:authenticated"}}}, ca.Identity{}, "not a Kubernetes service account"},
		{"malformed name", authnv1.TokenReviewStatus{Authenticated: true, Audiences: []string{"istio-ca"}, User: authnv1.UserInfo{Username: "system:serviceaccount:shop", Groups: sa.Groups}}, ca.Identity{}, "not of the form"},
		{"extra colon", authnv1.TokenReviewStatus{Authenticated: true, Audiences: []string{"istio-ca"}, User: authnv1.UserInfo{Username: "system:serviceaccount:shop:a:b", Groups: sa.Groups}}, ca.Identity{}, "not of the form"},
		{"bad namespace", authnv1.TokenReviewStatus{Authenticated: true, Audiences: []string{"istio-ca"}, User: authnv1.UserInfo{Username: "system:serviceaccount:Shop:cart", Groups: sa.Groups}}, ca.Identity{}, "namespace"},
	} {
		got, err := a.identity(tt.st)
		if got != tt.want || (err == nil) != (tt.err == "") || (err != nil && (!errors.Is(err, ca.ErrUnauthenticated) || !strings.Contains(err.Error(), tt.err))) {
			t.Errorf("%s: %v, %v; want %v, %q", tt.name, got, err, tt.want, tt.err)
		}
	}
}
