package ca

import (
	"context"
	"errors"
	"testing"
)

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
