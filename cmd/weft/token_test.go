package main

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/ca"
)

// TestToken: the printed token verifies with the CA directory's key, for
// the identity and lifetime asked.
func TestToken(t *testing.T) {
	dir := t.TempDir()
	authority, err := ca.New(ca.Options{Dir: dir, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	code, out, errOut := weft("token", "--ca-dir", dir, "--namespace", "shop", "--service-account", "cart", "--ttl", "1h")
	if code != 0 || errOut != "" {
		t.Fatalf("status %d, stderr %q", code, errOut)
	}
	if !strings.HasSuffix(out, "\n") || strings.Count(out, "\n") != 1 {
		t.Fatalf("output %q, want the token on one line", out)
	}
	c, err := authority.Tokens().Verify(strings.TrimSpace(out))
	if err != nil {
		t.Fatalf("the printed token does not verify: %v", err)
	}
	if c.Identity != (ca.Identity{Namespace: "shop", ServiceAccount: "cart"}) {
		t.Errorf("identity %v", c.Identity)
	}
	// Tolerance: the test's run time plus the expiry's second precision.
	if d := c.Expiry.Sub(start.Add(time.Hour)); d < -time.Second || d > 3*time.Second {
		t.Errorf("expiry %v is %v off now+1h", c.Expiry, d)
	}

	// The default lifetime and the -n shorthand.
	code, out, _ = weft("token", "--ca-dir", dir, "-n", "shop", "--service-account", "cart")
	if code != 0 {
		t.Fatalf("status %d", code)
	}
	if c, err = authority.Tokens().Verify(strings.TrimSpace(out)); err != nil || c.Expiry.Sub(start) < 23*time.Hour {
		t.Fatalf("default token: %v, expiry %v", err, c.Expiry)
	}
}

// TestTokenErrors: status 1 and a message that says what to do.
func TestTokenErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := ca.New(ca.Options{Dir: dir, Logger: slog.New(slog.DiscardHandler)}); err != nil {
		t.Fatal(err)
	}
	empty := t.TempDir()
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--ca-dir", dir, "--service-account", "cart"}, `"namespace" not set`},
		{[]string{"--ca-dir", dir, "-n", "shop"}, `"service-account" not set`},
		{[]string{"--ca-dir", empty, "-n", "shop", "--service-account", "cart"}, "weft-control creates it on its first start"},
		{[]string{"--ca-dir", dir, "-n", "Shop/x", "--service-account", "cart"}, "namespace"},
		{[]string{"--ca-dir", dir, "-n", "shop", "--service-account", "cart", "--ttl", "0s"}, "must be positive"},
		{[]string{"--ca-dir", dir, "-n", "shop", "--service-account", "cart", "extra"}, "unknown command"},
	}
	for _, tt := range tests {
		code, out, errOut := weft(append([]string{"token"}, tt.args...)...)
		if code != 1 || out != "" || !strings.Contains(errOut, tt.want) {
			t.Errorf("%v: status %d, stdout %q, stderr %q, want 1 and %q", tt.args, code, out, errOut, tt.want)
		}
	}
}
