package ca

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"google.golang.org/grpc/metadata"
)

// Typed errors of the package. The CSR service maps them to gRPC status
// codes in one place (statusOf).
var (
	// ErrUnauthenticated: the caller's credentials are missing or invalid
	// (codes.Unauthenticated).
	ErrUnauthenticated = errors.New("unauthenticated")
	// ErrPermissionDenied: the caller asked for an identity it does not
	// have (codes.PermissionDenied).
	ErrPermissionDenied = errors.New("permission denied")
	// ErrBadCSR: the certificate signing request is unusable
	// (codes.InvalidArgument).
	ErrBadCSR = errors.New("invalid certificate signing request")
)

// Authenticator establishes who calls the CSR service, as Istio's
// security.Authenticator does. Implementations: TokenAuthenticator (local
// mode), kubeca.KubeAuthenticator (Kubernetes TokenReview) and Authenticators (a
// chain of them).
//
// Authenticate is called once per request, from the gRPC handler's
// goroutine, concurrently for concurrent requests: it must be safe for
// concurrent use. It reads the caller's credentials from ctx (gRPC
// metadata, or the peer's TLS state) and returns the caller's identity.
// When the credentials are missing or invalid the error wraps
// ErrUnauthenticated; any other error means the authenticator could not
// decide (say, the Kubernetes API is unreachable) and the caller is told
// to retry (codes.Unavailable). Errors must not contain the credentials.
type Authenticator interface {
	Authenticate(ctx context.Context) (Identity, error)
}

// TokenAuthenticator authenticates callers by the local-mode bootstrap
// token in the gRPC metadata "authorization: Bearer <token>".
type TokenAuthenticator struct {
	Keys *TokenKey
}

var _ Authenticator = TokenAuthenticator{}

// Authenticate verifies the bearer token and returns its identity.
func (a TokenAuthenticator) Authenticate(ctx context.Context) (Identity, error) {
	tok, err := BearerToken(ctx)
	if err != nil {
		return Identity{}, err
	}
	c, err := a.Keys.Verify(tok)
	if err != nil {
		return Identity{}, err
	}
	return c.Identity, nil
}

// BearerToken returns the token of the incoming gRPC metadata
// "authorization: Bearer <token>" (the scheme is case-insensitive, as in
// RFC 6750). Errors wrap ErrUnauthenticated.
func BearerToken(ctx context.Context) (string, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	vals := md.Get("authorization")
	switch {
	case len(vals) == 0:
		return "", fmt.Errorf("%w: no credentials: send the gRPC metadata \"authorization: Bearer <token>\" (weft token mints one)", ErrUnauthenticated)
	case len(vals) > 1:
		return "", fmt.Errorf("%w: %d authorization headers, expected one", ErrUnauthenticated, len(vals))
	}
	scheme, tok, ok := strings.Cut(strings.TrimSpace(vals[0]), " ")
	tok = strings.TrimSpace(tok)
	if !ok || !strings.EqualFold(scheme, "bearer") || tok == "" {
		return "", fmt.Errorf("%w: the authorization header is not \"Bearer <token>\"", ErrUnauthenticated)
	}
	return tok, nil
}

// Authenticators tries each authenticator in order and returns the first
// identity established. An authenticator that says ErrUnauthenticated
// passes the request to the next; any other error stops the chain (the
// caller retries). When all refuse, the error lists each one's reason.
// Safe for concurrent use when its members are.
type Authenticators []Authenticator

var _ Authenticator = Authenticators(nil)

// Authenticate implements Authenticator.
func (as Authenticators) Authenticate(ctx context.Context) (Identity, error) {
	var reasons []string
	for _, a := range as {
		id, err := a.Authenticate(ctx)
		if err == nil {
			return id, nil
		}
		if !errors.Is(err, ErrUnauthenticated) {
			return Identity{}, err
		}
		if r := strings.TrimPrefix(err.Error(), ErrUnauthenticated.Error()+": "); !slices.Contains(reasons, r) {
			reasons = append(reasons, r)
		}
	}
	if len(reasons) == 0 {
		return Identity{}, fmt.Errorf("%w: no authenticator is configured", ErrUnauthenticated)
	}
	return Identity{}, fmt.Errorf("%w: %s", ErrUnauthenticated, strings.Join(reasons, "; "))
}
