package ca

import (
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestRootPersisted: the first New generates an ECDSA P-256 root and a
// token key with private modes; a second New on the same directory loads
// the same root and the same token key.
func TestRootPersisted(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ca")
	a := newTestCA(t, Options{Dir: dir})
	for name, want := range map[string]os.FileMode{RootKeyFile: 0o600, TokenKeyFile: 0o600, RootCertFile: 0o644} {
		st, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != want {
			t.Errorf("%s has mode %v, want %v", name, st.Mode().Perm(), want)
		}
	}
	root := a.Root()
	if !root.IsCA || root.KeyUsage&x509.KeyUsageCertSign == 0 || !isSelfSigned(root) {
		t.Errorf("root: IsCA %v, key usage %v, self-signed %v", root.IsCA, root.KeyUsage, isSelfSigned(root))
	}
	if k, ok := root.PublicKey.(*ecdsa.PublicKey); !ok || k.Curve.Params().Name != "P-256" {
		t.Errorf("root key %T, want ECDSA P-256", root.PublicKey)
	}
	if got := root.Subject.Organization; len(got) != 1 || got[0] != DefaultTrustDomain {
		t.Errorf("root organisation %v, want the trust domain", got)
	}
	if life := root.NotAfter.Sub(time.Now()); life < 9*365*24*time.Hour {
		t.Errorf("root lives %v, want about 10 years", life)
	}

	b := newTestCA(t, Options{Dir: dir})
	if !b.Root().Equal(root) {
		t.Fatal("the reloaded CA has another root")
	}
	tok, err := a.Tokens().Mint(Identity{"default", "web"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Tokens().Verify(tok); err != nil {
		t.Fatalf("a token of the first CA does not verify after a reload: %v", err)
	}
	// A certificate issued after the reload verifies against the first root.
	cert, err := b.Sign(SignRequest{PublicKey: ecKey(t).Public(), Identity: Identity{"default", "web"}})
	if err != nil {
		t.Fatal(err)
	}
	verifyChain(t, a, cert.ChainPEM)
}

// TestRootRSA: an RSA-2048 root signs ECDSA leaves.
func TestRootRSA(t *testing.T) {
	c := newTestCA(t, Options{RootKey: RSA2048})
	if k, ok := c.Root().PublicKey.(*rsa.PublicKey); !ok || k.N.BitLen() != 2048 {
		t.Fatalf("root key %T, want RSA-2048", c.Root().PublicKey)
	}
	cert, err := c.Sign(SignRequest{PublicKey: ecKey(t).Public(), Identity: Identity{"a", "b"}})
	if err != nil {
		t.Fatal(err)
	}
	verifyChain(t, c, cert.ChainPEM)
}

// TestCADirProblems: New refuses a directory it cannot trust rather than
// overwrite or expose it.
func TestCADirProblems(t *testing.T) {
	tests := []struct {
		name   string
		damage func(dir string) error
		want   string
	}{
		{"missing certificate", func(dir string) error { return os.Remove(filepath.Join(dir, RootCertFile)) }, "only one of"},
		{"missing key", func(dir string) error { return os.Remove(filepath.Join(dir, RootKeyFile)) }, "only one of"},
		{"readable key", func(dir string) error { return os.Chmod(filepath.Join(dir, RootKeyFile), 0o644) }, "chmod 600"},
		{"readable token key", func(dir string) error { return os.Chmod(filepath.Join(dir, TokenKeyFile), 0o640) }, "chmod 600"},
		{"garbage key", func(dir string) error { return os.WriteFile(filepath.Join(dir, RootKeyFile), []byte("nope"), 0o600) }, "no PEM private key"},
		{"short token key", func(dir string) error { return os.WriteFile(filepath.Join(dir, TokenKeyFile), []byte("AAAA\n"), 0o600) }, "needs at least 32"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			newTestCA(t, Options{Dir: dir})
			if err := tt.damage(dir); err != nil {
				t.Fatal(err)
			}
			_, err := New(Options{Dir: dir})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New: %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

// TestOptionsRejected: bad options are refused with a message naming them.
func TestOptionsRejected(t *testing.T) {
	tests := []struct {
		o    Options
		want string
	}{
		{Options{}, "--ca-dir"},
		{Options{Dir: "x", TrustDomain: "Bad/TD"}, "trust domain"},
		{Options{Dir: "x", MaxTTL: 5 * time.Second}, "at least 10s"},
		{Options{Dir: "x", RootKey: "ed25519"}, "root key algorithm"},
	}
	for _, tt := range tests {
		if _, err := New(tt.o); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("New(%+v): %v, want an error containing %q", tt.o, err, tt.want)
		}
	}
}

// TestUserSuppliedIntermediate: an intermediate signing certificate with
// its chain to the root; the issued chain is leaf, intermediate(s), root.
func TestUserSuppliedIntermediate(t *testing.T) {
	files := t.TempDir()
	root := makeCA(t, "test root", nil)
	mid := makeCA(t, "test intermediate", root)
	sub := makeCA(t, "test sub-intermediate", mid)
	certFile := writePEM(t, files, "ca-cert.pem", nil, sub.cert)
	keyFile := writePEM(t, files, "ca-key.pem", sub.key)
	chainFile := writePEM(t, files, "chain.pem", nil, mid.cert, root.cert)
	istioChain := writePEM(t, files, "cert-chain.pem", nil, sub.cert, mid.cert, root.cert)

	for _, chain := range []string{chainFile, istioChain} {
		c := newTestCA(t, Options{CertFile: certFile, KeyFile: keyFile, ChainFile: chain})
		if !c.Root().Equal(root.cert) {
			t.Fatalf("%s: root is %s, want the supplied root", chain, c.Root().Subject)
		}
		cert, err := c.Sign(SignRequest{PublicKey: ecKey(t).Public(), Identity: Identity{"ns", "sa"}})
		if err != nil {
			t.Fatal(err)
		}
		if len(cert.ChainPEM) != 4 {
			t.Fatalf("%s: chain of %d certificates, want leaf, 2 intermediates, root", chain, len(cert.ChainPEM))
		}
		leaf := verifyChain(t, c, cert.ChainPEM)
		if err := leaf.CheckSignatureFrom(sub.cert); err != nil {
			t.Fatalf("the leaf is not signed by the supplied signing certificate: %v", err)
		}
	}
	if _, err := os.Stat(filepath.Join(t.TempDir(), RootKeyFile)); err == nil {
		t.Fatal("a root key was generated although a CA was supplied")
	}

	// A supplied self-signed root needs no chain.
	rootCert := writePEM(t, files, "root-cert.pem", nil, root.cert)
	rootKey := writePEM(t, files, "root-key.pem", root.key)
	c := newTestCA(t, Options{CertFile: rootCert, KeyFile: rootKey})
	cert, err := c.Sign(SignRequest{PublicKey: ecKey(t).Public(), Identity: Identity{"ns", "sa"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(cert.ChainPEM) != 2 {
		t.Fatalf("chain of %d certificates, want leaf and root", len(cert.ChainPEM))
	}
	verifyChain(t, c, cert.ChainPEM)

	other := makeCA(t, "other root", nil)
	bad := []struct {
		name string
		o    Options
		want string
	}{
		{"no chain", Options{CertFile: certFile, KeyFile: keyFile}, "--ca-chain"},
		{"no key", Options{CertFile: certFile}, "both --ca-cert and --ca-key"},
		{"wrong key", Options{CertFile: certFile, KeyFile: rootKey, ChainFile: chainFile}, "does not belong"},
		{"chain to another root", Options{CertFile: certFile, KeyFile: keyFile, ChainFile: writePEM(t, files, "other.pem", nil, mid.cert, other.cert)}, "does not chain up"},
		{"chain without root", Options{CertFile: certFile, KeyFile: keyFile, ChainFile: writePEM(t, files, "noroot.pem", nil, mid.cert)}, "must end with the root"},
	}
	for _, tt := range bad {
		tt.o.Dir = t.TempDir()
		if _, err := New(tt.o); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v, want an error containing %q", tt.name, err, tt.want)
		}
	}
}
