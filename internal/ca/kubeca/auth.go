// Package kubeca keeps the mesh CA's Kubernetes parts apart from package
// ca, so that binaries which never talk to an API server (weft-proxy, whose
// sidecar only mints local-mode tokens with package ca) do not link
// client-go: KubeAuthenticator checks a workload's service-account token
// with a TokenReview, and SecretStore / NewKube keep the CA's material in
// Istio's CA Secrets.
package kubeca

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	authnv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/weftmesh/weft/internal/ca"
)

// DefaultTokenAudience is the audience a workload's projected service
// account token must carry for the CA (Istio's default, "istio-ca").
const DefaultTokenAudience = "istio-ca"

// Kubernetes service-account user names and group (TokenReview results).
const (
	serviceAccountUserPrefix = "system:serviceaccount:"
	serviceAccountsGroup     = "system:serviceaccounts"
)

// KubeAuthenticatorOptions configure a KubeAuthenticator.
type KubeAuthenticatorOptions struct {
	// Client reaches the API server that issued the tokens (required). It
	// needs permission to create tokenreviews.authentication.k8s.io.
	Client kubernetes.Interface
	// Audiences the token must be valid for: the API server checks that
	// the token carries at least one of them (default
	// [DefaultTokenAudience]).
	Audiences []string
}

// KubeAuthenticator authenticates callers by a Kubernetes service-account
// token (the pod's projected token, audience istio-ca) in the gRPC
// metadata "authorization: Bearer <token>", with a TokenReview against the
// API server, as Istio's KubeJWTAuthenticator does
// (security/pkg/server/ca/authenticate/kubeauth). The reviewed user must
// be a service account (system:serviceaccount:NS:SA, in group
// system:serviceaccounts): it becomes the Identity {NS, SA}. Anything else
// (an invalid, expired or forged token, another audience, a user that is
// not a service account) is refused with ErrUnauthenticated. An API error
// (unreachable, forbidden) is returned as is: the caller is told to retry.
//
// Every request costs one TokenReview; there is no cache (Istio has none
// for CSRs either). Safe for concurrent use.
type KubeAuthenticator struct {
	client    kubernetes.Interface
	audiences []string
}

var _ ca.Authenticator = (*KubeAuthenticator)(nil)

// NewKubeAuthenticator returns the authenticator.
func NewKubeAuthenticator(o KubeAuthenticatorOptions) (*KubeAuthenticator, error) {
	if o.Client == nil {
		return nil, errors.New("kubeca.NewKubeAuthenticator: KubeAuthenticatorOptions.Client is required")
	}
	aud := slices.DeleteFunc(slices.Clone(o.Audiences), func(s string) bool { return s == "" })
	if len(aud) == 0 {
		aud = []string{DefaultTokenAudience}
	}
	return &KubeAuthenticator{client: o.Client, audiences: aud}, nil
}

// Authenticate implements Authenticator.
func (a *KubeAuthenticator) Authenticate(ctx context.Context) (ca.Identity, error) {
	tok, err := ca.BearerToken(ctx)
	if err != nil {
		return ca.Identity{}, err
	}
	review := &authnv1.TokenReview{Spec: authnv1.TokenReviewSpec{Token: tok, Audiences: a.audiences}}
	res, err := a.client.AuthenticationV1().TokenReviews().Create(ctx, review, metav1.CreateOptions{})
	if err != nil {
		return ca.Identity{}, fmt.Errorf("Kubernetes TokenReview: %w", err)
	}
	return a.identity(res.Status)
}

// identity checks a TokenReview's result and returns the service account
// it names.
func (a *KubeAuthenticator) identity(st authnv1.TokenReviewStatus) (ca.Identity, error) {
	if !st.Authenticated {
		// st.Error says why (expired, bad signature, wrong audience); it
		// never contains the token.
		msg := st.Error
		if msg == "" {
			msg = "the token is not authenticated"
		}
		return ca.Identity{}, fmt.Errorf("%w: Kubernetes TokenReview (audiences %s): %s", ca.ErrUnauthenticated, strings.Join(a.audiences, ","), msg)
	}
	// The API server returns the audiences of ours the token is valid for
	// (an empty list when the request named none; ours never is empty).
	if !slices.ContainsFunc(st.Audiences, func(s string) bool { return slices.Contains(a.audiences, s) }) {
		return ca.Identity{}, fmt.Errorf("%w: the token is not valid for audience %s: request a projected token with that audience", ca.ErrUnauthenticated, strings.Join(a.audiences, " or "))
	}
	if !slices.Contains(st.User.Groups, serviceAccountsGroup) {
		return ca.Identity{}, fmt.Errorf("%w: user %q is not a Kubernetes service account", ca.ErrUnauthenticated, st.User.Username)
	}
	rest, ok := strings.CutPrefix(st.User.Username, serviceAccountUserPrefix)
	ns, sa, ok2 := strings.Cut(rest, ":")
	if !ok || !ok2 || strings.Contains(sa, ":") {
		return ca.Identity{}, fmt.Errorf("%w: user %q is not of the form system:serviceaccount:NAMESPACE:NAME", ca.ErrUnauthenticated, st.User.Username)
	}
	id := ca.Identity{Namespace: ns, ServiceAccount: sa}
	if err := id.Validate(); err != nil {
		return ca.Identity{}, fmt.Errorf("%w: %v", ca.ErrUnauthenticated, err)
	}
	return id, nil
}
