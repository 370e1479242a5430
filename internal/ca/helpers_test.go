package ca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

// clock is a settable clock for expiry tests.
type clock struct{ off atomic.Int64 }

func (c *clock) now() time.Time          { return time.Now().Add(time.Duration(c.off.Load())) }
func (c *clock) advance(d time.Duration) { c.off.Add(int64(d)) }

// newTestCA returns a CA with a generated root in a temporary directory.
func newTestCA(t testing.TB, o Options) *CA {
	t.Helper()
	if o.Dir == "" {
		o.Dir = t.TempDir()
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	c, err := New(o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c
}

// ecKey returns a fresh P-256 key.
func ecKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// csrPEM returns a PEM CSR signed by key, asking for the given URIs.
func csrPEM(t testing.TB, key crypto.Signer, uris ...string) string {
	t.Helper()
	tmpl := &x509.CertificateRequest{}
	for _, s := range uris {
		u, err := url.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		tmpl.URIs = append(tmpl.URIs, u)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
}

// testCert is a certificate and key made by the tests (user-supplied CAs).
type testCert struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

// makeCA makes a CA certificate signed by parent (nil: self-signed).
func makeCA(t testing.TB, cn string, parent *testCert) *testCert {
	t.Helper()
	key := ecKey(t)
	tmpl := &x509.Certificate{
		SerialNumber:          serialNumber(),
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	signer, signerKey := tmpl, key
	if parent != nil {
		signer, signerKey = parent.cert, parent.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, key.Public(), signerKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCert{cert: cert, key: key}
}

// writePEM writes certificates (and, with key, the key) to dir/name.
func writePEM(t testing.TB, dir, name string, key *ecdsa.PrivateKey, certs ...*x509.Certificate) string {
	t.Helper()
	var b []byte
	for _, c := range certs {
		b = append(b, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	if key != nil {
		der, err := x509.MarshalECPrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		b = append(b, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})...)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// verifyChain parses a cert_chain and verifies the leaf against the CA's
// root using only the chain's own intermediates; it returns the leaf.
func verifyChain(t testing.TB, c *CA, chain []string) *x509.Certificate {
	t.Helper()
	if len(chain) < 2 {
		t.Fatalf("chain has %d certificates, want leaf..root", len(chain))
	}
	var certs []*x509.Certificate
	for i, p := range chain {
		xs, err := parseCertificates([]byte(p))
		if err != nil || len(xs) != 1 {
			t.Fatalf("chain[%d]: %v (%d certificates)", i, err, len(xs))
		}
		certs = append(certs, xs[0])
	}
	if !certs[len(certs)-1].Equal(c.Root()) {
		t.Fatalf("the chain's last certificate is not the CA's root")
	}
	inter := x509.NewCertPool()
	for _, x := range certs[1 : len(certs)-1] {
		inter.AddCert(x)
	}
	roots := x509.NewCertPool()
	roots.AddCert(c.Root())
	for _, eku := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
		if _, err := certs[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{eku}}); err != nil {
			t.Fatalf("leaf does not verify against the root for %v: %v", eku, err)
		}
	}
	return certs[0]
}
