package certs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
)

// TokenSource returns the bearer token the CA authenticates the caller
// with. It is called before every certificate request, so a token file
// that is rewritten (a projected service account token, a re-issued
// bootstrap token) is picked up at the next renewal. Errors must not
// contain the token.
type TokenSource func(ctx context.Context) (string, error)

// StaticToken is a fixed token (--token or WEFT_TOKEN).
func StaticToken(token string) TokenSource {
	return func(context.Context) (string, error) {
		if token == "" {
			return "", errors.New("the token is empty")
		}
		return token, nil
	}
}

// FileToken reads the token from path at every call, trimming
// surrounding white space (--token-file).
func FileToken(path string) TokenSource {
	return func(context.Context) (string, error) {
		b, err := os.ReadFile(path)
		if err != nil {
			return "", fmt.Errorf("token file: %w", err)
		}
		tok := string(bytes.TrimSpace(b))
		if tok == "" {
			return "", fmt.Errorf("token file %s is empty", path)
		}
		return tok, nil
	}
}

// bearer sends the token as gRPC metadata `authorization: Bearer TOKEN`,
// as Istio's agent does towards istiod, and only over TLS.
type bearer struct{ src TokenSource }

func (b bearer) GetRequestMetadata(ctx context.Context, _ ...string) (map[string]string, error) {
	tok, err := b.src(ctx)
	if err != nil {
		return nil, err
	}
	return map[string]string{"authorization": "Bearer " + tok}, nil
}

func (bearer) RequireTransportSecurity() bool { return true }
