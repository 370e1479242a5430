package ca

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"net"
	"testing"
	"time"
)

// TestSign: the SVID's contents, after Istio's CA.
func TestSign(t *testing.T) {
	c := newTestCA(t, Options{TrustDomain: "example.org", MaxTTL: 2 * time.Hour})
	start := time.Now()
	cert, err := c.Sign(SignRequest{PublicKey: ecKey(t).Public(), Identity: Identity{"shop", "cart"}})
	if err != nil {
		t.Fatal(err)
	}
	leaf := verifyChain(t, c, cert.ChainPEM)
	if len(leaf.URIs) != 1 || leaf.URIs[0].String() != "spiffe://example.org/ns/shop/sa/cart" {
		t.Errorf("URIs %v, want only spiffe://example.org/ns/shop/sa/cart", leaf.URIs)
	}
	if len(leaf.DNSNames)+len(leaf.IPAddresses)+len(leaf.EmailAddresses) != 0 {
		t.Errorf("other SANs: %v %v %v", leaf.DNSNames, leaf.IPAddresses, leaf.EmailAddresses)
	}
	if leaf.IsCA || !leaf.BasicConstraintsValid {
		t.Errorf("IsCA %v, basic constraints %v", leaf.IsCA, leaf.BasicConstraintsValid)
	}
	if leaf.KeyUsage != x509.KeyUsageDigitalSignature|x509.KeyUsageKeyEncipherment {
		t.Errorf("key usage %v", leaf.KeyUsage)
	}
	if len(leaf.ExtKeyUsage) != 2 || leaf.ExtKeyUsage[0] != x509.ExtKeyUsageServerAuth || leaf.ExtKeyUsage[1] != x509.ExtKeyUsageClientAuth {
		t.Errorf("ext key usage %v", leaf.ExtKeyUsage)
	}
	if len(leaf.Subject.Names) != 0 {
		t.Errorf("subject %q, want empty (as Istio)", leaf.Subject)
	}
	sanOID := asn1.ObjectIdentifier{2, 5, 29, 17}
	for _, e := range leaf.Extensions {
		if e.Id.Equal(sanOID) && !e.Critical {
			t.Error("the SAN extension is not critical although the subject is empty (RFC 5280 4.2.1.6)")
		}
	}
	if leaf.SerialNumber.BitLen() < 120 {
		t.Errorf("serial of %d bits, want 128", leaf.SerialNumber.BitLen())
	}
	// Default TTL: MaxTTL; a second of tolerance for the test's own run time.
	if d := leaf.NotAfter.Sub(start.Add(2 * time.Hour)); d < -time.Second || d > 2*time.Second {
		t.Errorf("NotAfter is %v off now+MaxTTL", d)
	}
	if !leaf.NotBefore.Before(start) {
		t.Errorf("NotBefore %v is not backdated", leaf.NotBefore)
	}
}

// TestSignTTL: a requested TTL is honoured between MinTTL and MaxTTL.
func TestSignTTL(t *testing.T) {
	c := newTestCA(t, Options{MaxTTL: time.Hour})
	tests := []struct{ req, want time.Duration }{
		{0, time.Hour},
		{10 * time.Minute, 10 * time.Minute},
		{time.Hour, time.Hour},
		{48 * time.Hour, time.Hour},
		{time.Second, MinTTL},
	}
	for _, tt := range tests {
		start := time.Now()
		cert, err := c.Sign(SignRequest{PublicKey: ecKey(t).Public(), Identity: Identity{"a", "b"}, TTL: tt.req})
		if err != nil {
			t.Fatal(err)
		}
		// Tolerance: a second for the test's own run time (NotAfter has
		// second precision).
		if d := cert.Leaf.NotAfter.Sub(start.Add(tt.want)); d < -time.Second || d > 2*time.Second {
			t.Errorf("TTL %v: NotAfter is %v off now+%v", tt.req, d, tt.want)
		}
	}
}

// TestSignRSAKey: an RSA public key from a CSR is accepted; a weak one is
// refused as a bad CSR.
func TestSignRSAKey(t *testing.T) {
	c := newTestCA(t, Options{})
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := c.Sign(SignRequest{PublicKey: k.Public(), Identity: Identity{"a", "b"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := verifyChain(t, c, cert.ChainPEM).PublicKey.(*rsa.PublicKey); !ok {
		t.Fatal("the leaf does not carry the RSA key")
	}
	weak, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Sign(SignRequest{PublicKey: weak.Public(), Identity: Identity{"a", "b"}}); !errors.Is(err, ErrBadCSR) {
		t.Fatalf("RSA-1024: %v, want ErrBadCSR", err)
	}
}

// TestIssueServing: the serving certificate has the DNS and IP SANs, is
// for servers only, and verifies against the root.
func TestIssueServing(t *testing.T) {
	c := newTestCA(t, Options{})
	tc, err := c.IssueServing(ServingOptions{DNSNames: []string{"weft-control", "localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}})
	if err != nil {
		t.Fatal(err)
	}
	leaf := tc.Leaf
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: c.Roots(), DNSName: "weft-control"}); err != nil {
		t.Fatal(err)
	}
	if err := leaf.VerifyHostname("127.0.0.1"); err != nil {
		t.Fatal(err)
	}
	if len(leaf.URIs) != 0 || len(leaf.ExtKeyUsage) != 1 || leaf.ExtKeyUsage[0] != x509.ExtKeyUsageServerAuth {
		t.Errorf("URIs %v, ext key usage %v", leaf.URIs, leaf.ExtKeyUsage)
	}
	if _, err := c.IssueServing(ServingOptions{}); err == nil {
		t.Fatal("a serving certificate without names was issued")
	}
}

// TestParseCSR: malformed CSRs are bad CSRs.
func TestParseCSR(t *testing.T) {
	good := csrPEM(t, ecKey(t), "spiffe://cluster.local/ns/a/sa/b")
	if _, err := ParseCSR([]byte(good)); err != nil {
		t.Fatalf("a good CSR: %v", err)
	}
	tampered := []byte(good)
	tampered[len(tampered)/2] ^= 0x01
	for name, in := range map[string]string{
		"empty":       "",
		"not PEM":     "hello",
		"certificate": "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
		"bad DER":     "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
		"tampered":    string(tampered),
	} {
		if _, err := ParseCSR([]byte(in)); !errors.Is(err, ErrBadCSR) {
			t.Errorf("%s: %v, want ErrBadCSR", name, err)
		}
	}
}

// BenchmarkSign: one workload certificate from an ECDSA P-256 root.
func BenchmarkSign(b *testing.B) {
	c := newTestCA(b, Options{})
	pub := ecKey(b).Public()
	id := Identity{"default", "web"}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Sign(SignRequest{PublicKey: pub, Identity: id}); err != nil {
			b.Fatal(err)
		}
	}
}
