package ca

import (
	"bytes"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"
)

func testKey(t testing.TB, fill byte, now func() time.Time) *TokenKey {
	t.Helper()
	k, err := NewTokenKey(bytes.Repeat([]byte{fill}, 32), now)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestTokenRoundTrip: a minted token verifies to its identity and expiry.
func TestTokenRoundTrip(t *testing.T) {
	k := testKey(t, 1, nil)
	id := Identity{"shop", "cart.v2"}
	start := time.Now()
	tok, err := k.Mint(id, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	c, err := k.Verify(tok)
	if err != nil {
		t.Fatal(err)
	}
	if c.Identity != id {
		t.Errorf("identity %v, want %v", c.Identity, id)
	}
	// Expiry has second precision, rounded up.
	if d := c.Expiry.Sub(start.Add(time.Hour)); d < -time.Second || d > 2*time.Second {
		t.Errorf("expiry %v off by %v", c.Expiry, d)
	}
	if p, err := ParseToken(tok); err != nil || p != c {
		t.Errorf("ParseToken: %v %v, want %v", p, err, c)
	}
}

// TestTokenRefused: expired, forged, tampered and malformed tokens are
// refused with ErrUnauthenticated, and the error never echoes the token.
func TestTokenRefused(t *testing.T) {
	var clk clock
	k := testKey(t, 1, clk.now)
	tok, err := k.Mint(Identity{"a", "b"}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	forged, err := testKey(t, 2, nil).Mint(Identity{"a", "b"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	payload, mac, _ := strings.Cut(strings.TrimPrefix(tok, tokenPrefix), ".")
	raw, _ := base64.RawURLEncoding.DecodeString(payload)
	other := base64.RawURLEncoding.EncodeToString(bytes.Replace(raw, []byte(`"ns":"a"`), []byte(`"ns":"c"`), 1))
	tests := map[string]struct{ tok, want string }{
		"forged":      {forged, "signature does not match"},
		"tampered":    {tokenPrefix + other + "." + mac, "signature does not match"},
		"empty":       {"", "not a weft v1 token"},
		"other kind":  {"eyJhbGciOi.x.y", "not a weft v1 token"},
		"no mac":      {tokenPrefix + payload, "missing part"},
		"bad mac":     {tokenPrefix + payload + ".!!", "signature encoding"},
		"short mac":   {tokenPrefix + payload + ".AAAA", "signature encoding"},
		"extra dot":   {tok + ".x", "signature encoding"},
		"too long":    {tokenPrefix + strings.Repeat("A", maxTokenLen), "too long"},
		"padded mac":  {tok + "=", "signature encoding"},
		"empty claim": {tokenPrefix + "." + mac, "missing part"},
	}
	for name, tt := range tests {
		_, err := k.Verify(tt.tok)
		if !errors.Is(err, ErrUnauthenticated) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v, want ErrUnauthenticated containing %q", name, err, tt.want)
		}
		if err != nil && tt.tok != "" && strings.Contains(err.Error(), tt.tok) {
			t.Errorf("%s: the error contains the token", name)
		}
	}

	if _, err := k.Verify(tok); err != nil {
		t.Fatalf("fresh token: %v", err)
	}
	clk.advance(2 * time.Minute)
	if _, err := k.Verify(tok); !errors.Is(err, ErrUnauthenticated) || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("expired token: %v", err)
	}
}

// TestMintRefused: invalid identities and lifetimes are not minted.
func TestMintRefused(t *testing.T) {
	k := testKey(t, 1, nil)
	for _, tt := range []struct {
		id  Identity
		ttl time.Duration
	}{
		{Identity{"", "b"}, time.Hour},
		{Identity{"a", ""}, time.Hour},
		{Identity{"a/b", "c"}, time.Hour},
		{Identity{"A", "c"}, time.Hour},
		{Identity{"a", "b/../c"}, time.Hour},
		{Identity{"a", "b"}, 0},
		{Identity{"a", "b"}, -time.Minute},
	} {
		if tok, err := k.Mint(tt.id, tt.ttl); err == nil {
			t.Errorf("Mint(%v, %v) = %q, want an error", tt.id, tt.ttl, tok)
		}
	}
}

// FuzzVerifyToken: Verify and ParseToken never panic; whatever verifies
// has a valid identity and an expiry in the future, and every error
// wraps ErrUnauthenticated.
func FuzzVerifyToken(f *testing.F) {
	k := testKey(f, 7, nil)
	tok, err := k.Mint(Identity{"default", "web"}, time.Hour)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(tok)
	f.Add("")
	f.Add("v1.")
	f.Add("v1.e30.AAAA")
	f.Add(tok + "x")
	f.Add(strings.Replace(tok, "v1.", "v2.", 1))
	f.Fuzz(func(t *testing.T, s string) {
		if c, err := ParseToken(s); err == nil {
			if c.Identity.Validate() != nil {
				t.Fatalf("ParseToken accepted an invalid identity %v", c.Identity)
			}
		} else if !errors.Is(err, ErrUnauthenticated) {
			t.Fatalf("ParseToken error %v does not wrap ErrUnauthenticated", err)
		}
		c, err := k.Verify(s)
		if err != nil {
			if !errors.Is(err, ErrUnauthenticated) {
				t.Fatalf("Verify error %v does not wrap ErrUnauthenticated", err)
			}
			return
		}
		if c.Identity.Validate() != nil || !c.Expiry.After(time.Now()) {
			t.Fatalf("Verify accepted %+v", c)
		}
	})
}
