package main

import (
	"io"
	"path/filepath"
	"strings"
	"testing"

	"github.com/weftmesh/weft/internal/ca"
)

// TestSidecarLocalCA: with neither --ca-root nor a token, a sidecar whose
// CA directory holds weft-control's root and token key runs with a
// certificate (local mode): it trusts root-cert.pem and mints tokens for
// its own identity that the CA accepts. Without the files, or with
// --ca-dir=, it runs in plain text.
func TestSidecarLocalCA(t *testing.T) {
	home := t.TempDir()
	dir := filepath.Join(home, ".config", "weft", "ca")
	authority, err := ca.New(ca.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	base := []string{"--name", "reviews-1", "--namespace", "shop", "--service-account", "reviews"}

	t.Run("default_dir_from_HOME", func(t *testing.T) {
		o, err := parseSidecar(base, []string{"HOME=" + home, "TMPDIR=/x"}, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		if !o.security() || !o.localCA || o.caRoot != filepath.Join(dir, ca.RootCertFile) {
			t.Fatalf("local mode off: security %v local %v root %q", o.security(), o.localCA, o.caRoot)
		}
		claims, err := authority.Tokens().Verify(token(t, o))
		if err != nil {
			t.Fatalf("the CA rejects the minted token: %v", err)
		}
		if want := (ca.Identity{Namespace: "shop", ServiceAccount: "reviews"}); claims.Identity != want {
			t.Errorf("token for %v, want %v", claims.Identity, want)
		}
		ao, err := o.agent()
		if err != nil {
			t.Fatal(err)
		}
		if ao.Labels[tlsModeLabel] != "istio" {
			t.Errorf("labels %v: want %s=istio", ao.Labels, tlsModeLabel)
		}
	})
	t.Run("XDG_CONFIG_HOME_and_flag", func(t *testing.T) {
		for _, environ := range [][]string{
			{"XDG_CONFIG_HOME=" + filepath.Join(home, ".config"), "HOME=/nonexistent"},
			{"WEFT_CA_DIR=" + dir, "HOME=/nonexistent"},
		} {
			o, err := parseSidecar(base, environ, io.Discard)
			if err != nil || !o.localCA {
				t.Errorf("%v: local %v err %v", environ, o != nil && o.localCA, err)
			}
		}
		o, err := parseSidecar(append([]string{"--ca-dir", dir}, base...), []string{"HOME=/nonexistent"}, io.Discard)
		if err != nil || !o.localCA {
			t.Errorf("--ca-dir: local %v err %v", o != nil && o.localCA, err)
		}
	})
	t.Run("turned_off", func(t *testing.T) {
		o, err := parseSidecar(append([]string{"--ca-dir="}, base...), []string{"HOME=" + home}, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		if o.security() || o.localNote != "" {
			t.Errorf("--ca-dir= : security %v note %q", o.security(), o.localNote)
		}
	})
	t.Run("no_ca_yet", func(t *testing.T) {
		o, err := parseSidecar(base, []string{"HOME=" + t.TempDir()}, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		if o.security() || !strings.Contains(o.localNote, "weft-control creates it") {
			t.Errorf("security %v note %q", o.security(), o.localNote)
		}
	})
	t.Run("explicit_settings_win", func(t *testing.T) {
		o, err := parseSidecar(append([]string{"--ca-root", "/r.pem", "--token", "tok"}, base...), []string{"HOME=" + home}, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		if o.localCA || o.caRoot != "/r.pem" || token(t, o) != "tok" {
			t.Errorf("local %v root %q token %q", o.localCA, o.caRoot, token(t, o))
		}
	})
}
