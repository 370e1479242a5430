package ca

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
	"time"
)

// Local-mode bootstrap tokens.
//
// A token is "v1.<payload>.<mac>": payload is the base64url (unpadded)
// JSON {"ns":..,"sa":..,"exp":<unix seconds>}, mac the base64url
// HMAC-SHA256, keyed with the CA directory's token-key, of
// "weft-token-v1." + payload. Tokens are bearer credentials: whoever holds
// one can obtain certificates for its identity until it expires.

const (
	tokenPrefix   = "v1."
	tokenMACLabel = "weft-token-v1."
	tokenKeyBytes = 32
	// maxTokenLen bounds the input verified (a token is about 150 bytes).
	maxTokenLen = 4096
	// DefaultTokenTTL is the lifetime of a token when none is given.
	DefaultTokenTTL = 24 * time.Hour
)

// TokenClaims is what a token carries.
type TokenClaims struct {
	Identity Identity
	// Expiry is when the token stops being accepted (second precision).
	Expiry time.Time
}

// tokenPayload is the JSON form of TokenClaims.
type tokenPayload struct {
	Namespace      string `json:"ns"`
	ServiceAccount string `json:"sa"`
	Expiry         int64  `json:"exp"`
}

// TokenKey mints and verifies tokens. It is safe for concurrent use.
type TokenKey struct {
	key []byte
	now func() time.Time
}

// NewTokenKey returns a TokenKey for a key of at least 32 bytes; now
// (nil: time.Now) is the clock used for expiry.
func NewTokenKey(key []byte, now func() time.Time) (*TokenKey, error) {
	if len(key) < tokenKeyBytes {
		return nil, fmt.Errorf("token key has %d bytes, needs at least %d", len(key), tokenKeyBytes)
	}
	if now == nil {
		now = time.Now
	}
	return &TokenKey{key: bytes.Clone(key), now: now}, nil
}

// LoadTokenKey reads dir/token-key (base64, mode 0600).
func LoadTokenKey(dir string, now func() time.Time) (*TokenKey, error) {
	path := filepath.Join(dir, TokenKeyFile)
	data, err := readPrivate(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("no token key %s: weft-control creates it on its first start with --ca-dir %s", path, dir)
	}
	if err != nil {
		return nil, fmt.Errorf("token key: %w", err)
	}
	key, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(data)))
	if err != nil {
		return nil, fmt.Errorf("token key %s is not base64: %w", path, err)
	}
	k, err := NewTokenKey(key, now)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return k, nil
}

// loadOrCreateTokenKey loads dir/token-key, creating it with a random key
// (mode 0600) if it does not exist.
func loadOrCreateTokenKey(dir string, now func() time.Time) (*TokenKey, error) {
	path := filepath.Join(dir, TokenKeyFile)
	if !exists(path) {
		key := make([]byte, tokenKeyBytes)
		rand.Read(key)
		data := []byte(base64.StdEncoding.EncodeToString(key) + "\n")
		if err := createExclusive(path, data, 0o600); err != nil && !errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("create token key: %w", err)
		}
	}
	return LoadTokenKey(dir, now)
}

// Mint returns a token for id that expires after ttl (rounded up to the
// second).
func (k *TokenKey) Mint(id Identity, ttl time.Duration) (string, error) {
	if err := id.Validate(); err != nil {
		return "", err
	}
	if ttl <= 0 {
		return "", fmt.Errorf("token lifetime %v: must be positive", ttl)
	}
	exp := k.now().Add(ttl + time.Second - 1).Unix()
	payload, err := json.Marshal(tokenPayload{Namespace: id.Namespace, ServiceAccount: id.ServiceAccount, Expiry: exp})
	if err != nil {
		return "", err
	}
	p := base64.RawURLEncoding.EncodeToString(payload)
	return tokenPrefix + p + "." + base64.RawURLEncoding.EncodeToString(k.mac(p)), nil
}

// Verify checks a token's MAC and expiry and returns its claims. Errors
// wrap ErrUnauthenticated and never contain the token.
func (k *TokenKey) Verify(token string) (TokenClaims, error) {
	payload, mac, err := splitToken(token)
	if err != nil {
		return TokenClaims{}, err
	}
	if !hmac.Equal(mac, k.mac(payload)) {
		return TokenClaims{}, fmt.Errorf("%w: the token's signature does not match this CA's token key (minted for another --ca-dir?)", ErrUnauthenticated)
	}
	c, err := decodeTokenPayload(payload)
	if err != nil {
		return TokenClaims{}, err
	}
	if !k.now().Before(c.Expiry) {
		return TokenClaims{}, fmt.Errorf("%w: the token expired at %s (mint a new one with weft token)", ErrUnauthenticated, c.Expiry.UTC().Format(time.RFC3339))
	}
	return c, nil
}

func (k *TokenKey) mac(payload string) []byte {
	h := hmac.New(sha256.New, k.key)
	h.Write([]byte(tokenMACLabel))
	h.Write([]byte(payload))
	return h.Sum(nil)
}

// ParseToken decodes a token's claims without checking its MAC or
// expiry: for inspection only, never for authentication.
func ParseToken(token string) (TokenClaims, error) {
	payload, _, err := splitToken(token)
	if err != nil {
		return TokenClaims{}, err
	}
	return decodeTokenPayload(payload)
}

// splitToken returns the payload (still base64) and the decoded MAC.
func splitToken(token string) (payload string, mac []byte, err error) {
	malformed := func(why string) error {
		return fmt.Errorf("%w: malformed token (%s)", ErrUnauthenticated, why)
	}
	if len(token) > maxTokenLen {
		return "", nil, malformed("too long")
	}
	rest, ok := strings.CutPrefix(token, tokenPrefix)
	if !ok {
		return "", nil, malformed("not a weft v1 token")
	}
	payload, m, ok := strings.Cut(rest, ".")
	if !ok || payload == "" {
		return "", nil, malformed("missing part")
	}
	mac, err = base64.RawURLEncoding.Strict().DecodeString(m)
	if err != nil || len(mac) != sha256.Size {
		return "", nil, malformed("bad signature encoding")
	}
	return payload, mac, nil
}

// decodeTokenPayload decodes and validates the JSON claims.
func decodeTokenPayload(payload string) (TokenClaims, error) {
	raw, err := base64.RawURLEncoding.Strict().DecodeString(payload)
	if err != nil {
		return TokenClaims{}, fmt.Errorf("%w: malformed token (bad payload encoding)", ErrUnauthenticated)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var p tokenPayload
	if err := dec.Decode(&p); err != nil || dec.More() {
		return TokenClaims{}, fmt.Errorf("%w: malformed token (bad payload)", ErrUnauthenticated)
	}
	id := Identity{Namespace: p.Namespace, ServiceAccount: p.ServiceAccount}
	if err := id.Validate(); err != nil {
		return TokenClaims{}, fmt.Errorf("%w: token: %v", ErrUnauthenticated, err)
	}
	if p.Expiry <= 0 {
		return TokenClaims{}, fmt.Errorf("%w: malformed token (no expiry)", ErrUnauthenticated)
	}
	return TokenClaims{Identity: id, Expiry: time.Unix(p.Expiry, 0)}, nil
}
