package ca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"time"
)

// maxCSRBytes bounds a PEM CSR (an RSA-4096 CSR is about 1.7 KB).
const maxCSRBytes = 64 << 10

// SignRequest is what Sign issues a workload certificate for.
type SignRequest struct {
	// PublicKey is the subject's key (ECDSA or RSA), normally from a CSR
	// checked by ParseCSR.
	PublicKey crypto.PublicKey
	// Identity is the only SAN of the certificate, as a SPIFFE ID: the
	// authenticated caller's, never what a CSR asks for.
	Identity Identity
	// TTL is the requested lifetime: 0 means the CA's MaxTTL; it is
	// capped at MaxTTL and raised to MinTTL.
	TTL time.Duration
}

// Certificate is an issued certificate.
type Certificate struct {
	Leaf *x509.Certificate
	// ChainPEM is the leaf, the intermediates, then the root, one PEM
	// certificate each (IstioCertificateResponse.cert_chain).
	ChainPEM []string
}

// Sign issues an X.509 SVID, after Istio's certificates for CSRs
// (security/pkg/pki/util genCertTemplateFromCSR): an empty subject, the
// SPIFFE ID as the only SAN (critical, because the subject is empty, as
// RFC 5280 4.2.1.6 requires), key usage digitalSignature and
// keyEncipherment, extended key usage serverAuth and clientAuth, not a
// CA, a random 128-bit serial. NotBefore is backdated by a minute for
// clock skew; NotAfter is now + TTL, never after the signing
// certificate's own NotAfter.
func (c *CA) Sign(r SignRequest) (*Certificate, error) {
	if err := checkPublicKey(r.PublicKey); err != nil {
		return nil, err
	}
	if err := r.Identity.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadCSR, err)
	}
	now := c.o.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serialNumber(),
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              c.notAfter(now, c.ttl(r.TTL)),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		URIs:                  []*url.URL{r.Identity.SPIFFEID(c.o.TrustDomain)},
	}
	return c.issue(tmpl, r.PublicKey)
}

// ServingOptions describe a TLS server certificate.
type ServingOptions struct {
	DNSNames    []string
	IPAddresses []net.IP
	// TTL is the certificate's lifetime (0: MaxTTL; capped at MaxTTL).
	TTL time.Duration
}

// IssueServing generates an ECDSA P-256 key and issues a TLS server
// certificate for it with the given DNS and IP SANs (for weft-control's
// secure port). The returned certificate's chain holds the leaf and the
// intermediates, not the root; Leaf is set.
func (c *CA) IssueServing(o ServingOptions) (*tls.Certificate, error) {
	if len(o.DNSNames) == 0 && len(o.IPAddresses) == 0 {
		return nil, errors.New("a serving certificate needs at least one DNS name or IP address")
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate the serving key: %w", err)
	}
	now := c.o.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serialNumber(),
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              c.notAfter(now, c.ttl(o.TTL)),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		DNSNames:              o.DNSNames,
		IPAddresses:           o.IPAddresses,
	}
	issued, err := c.issue(tmpl, key.Public())
	if err != nil {
		return nil, err
	}
	tc := &tls.Certificate{PrivateKey: key, Leaf: issued.Leaf, Certificate: [][]byte{issued.Leaf.Raw}}
	if c.cert != c.root {
		tc.Certificate = append(tc.Certificate, c.cert.Raw)
	}
	for _, x := range c.above {
		tc.Certificate = append(tc.Certificate, x.Raw)
	}
	return tc, nil
}

// issue signs tmpl for pub and returns the leaf with the chain.
func (c *CA) issue(tmpl *x509.Certificate, pub crypto.PublicKey) (*Certificate, error) {
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.cert, pub, c.signer)
	if err != nil {
		return nil, fmt.Errorf("sign the certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parse the issued certificate: %w", err)
	}
	chain := make([]string, 0, 1+len(c.chainPEM))
	chain = append(chain, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
	chain = append(chain, c.chainPEM...)
	return &Certificate{Leaf: leaf, ChainPEM: chain}, nil
}

// ttl applies the defaults and bounds to a requested lifetime.
func (c *CA) ttl(req time.Duration) time.Duration {
	switch {
	case req <= 0 || req > c.o.MaxTTL:
		return c.o.MaxTTL
	case req < MinTTL:
		return MinTTL
	}
	return req
}

// notAfter is now+ttl, but not after the signing certificate (a leaf that
// outlives its issuer would not verify anyway).
func (c *CA) notAfter(now time.Time, ttl time.Duration) time.Time {
	t := now.Add(ttl)
	if t.After(c.cert.NotAfter) {
		return c.cert.NotAfter
	}
	return t
}

// ParseCSR decodes a PEM certificate request ("CERTIFICATE REQUEST", or
// the older "NEW CERTIFICATE REQUEST"), checks its signature (proof that
// the caller holds the key) and its key type. Errors wrap ErrBadCSR.
func ParseCSR(pemData []byte) (*x509.CertificateRequest, error) {
	if len(pemData) == 0 {
		return nil, fmt.Errorf("%w: csr is empty", ErrBadCSR)
	}
	if len(pemData) > maxCSRBytes {
		return nil, fmt.Errorf("%w: csr has %d bytes, at most %d accepted", ErrBadCSR, len(pemData), maxCSRBytes)
	}
	b, _ := pem.Decode(pemData)
	if b == nil {
		return nil, fmt.Errorf("%w: csr is not PEM", ErrBadCSR)
	}
	if b.Type != "CERTIFICATE REQUEST" && b.Type != "NEW CERTIFICATE REQUEST" {
		return nil, fmt.Errorf("%w: csr is a PEM %q block, expected \"CERTIFICATE REQUEST\"", ErrBadCSR, b.Type)
	}
	csr, err := x509.ParseCertificateRequest(b.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadCSR, err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("%w: the CSR's signature does not verify: %v", ErrBadCSR, err)
	}
	if err := checkPublicKey(csr.PublicKey); err != nil {
		return nil, err
	}
	return csr, nil
}

// checkPublicKey accepts ECDSA P-256, P-384 and P-521 and RSA of at
// least 2048 bits. Errors wrap ErrBadCSR.
func checkPublicKey(pub crypto.PublicKey) error {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256(), elliptic.P384(), elliptic.P521():
			return nil
		}
		return fmt.Errorf("%w: ECDSA curve %s: use P-256, P-384 or P-521", ErrBadCSR, k.Curve.Params().Name)
	case *rsa.PublicKey:
		if k.N.BitLen() < 2048 {
			return fmt.Errorf("%w: RSA key of %d bits: use at least 2048", ErrBadCSR, k.N.BitLen())
		}
		return nil
	case nil:
		return fmt.Errorf("%w: no public key", ErrBadCSR)
	default:
		return fmt.Errorf("%w: unsupported public key type %T: use ECDSA or RSA", ErrBadCSR, pub)
	}
}

// serialNumber returns a random positive 128-bit serial (RFC 5280 allows
// 20 octets; Istio uses 128 bits).
func serialNumber() *big.Int {
	b := make([]byte, 16)
	rand.Read(b)
	b[0] &= 0x7f
	b[0] |= 0x01 // non-zero leading bits: always 16 octets, positive
	return new(big.Int).SetBytes(b)
}
