package certs

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"log/slog"
	"net/url"
	"time"
)

// Secret is one workload certificate with its private key and the trust
// bundle, as published by the Manager. It is immutable: a rotation
// publishes a new Secret. Its String, GoString and LogValue never show
// the key.
type Secret struct {
	// ChainPEM is the leaf certificate then the intermediates (PEM). The
	// root is left out: RFC 8446 §4.4.2 lets a sender omit the trust
	// anchor, and peers verify against their own ROOTCA.
	ChainPEM []byte
	// KeyPEM is the private key (PKCS#8 PEM). It lives only in this
	// process's memory and on the SDS socket to the proxy.
	KeyPEM []byte
	// RootPEM is the trust bundle: the last element of the CA's
	// cert_chain, as Istio's agent takes it.
	RootPEM []byte
	// Leaf is the parsed leaf certificate.
	Leaf *x509.Certificate
	// Created is when the certificate was received (Istio's CreatedTime);
	// Expires is the leaf's NotAfter.
	Created, Expires time.Time
	// Generation is 1 for the first certificate and grows by one with
	// each rotation.
	Generation uint64
}

// String describes the certificate without the key or the PEM.
func (s *Secret) String() string {
	if s == nil || s.Leaf == nil {
		return "<no certificate>"
	}
	return fmt.Sprintf("certificate %s serial %x generation %d expires %s",
		identity(s.Leaf), s.Leaf.SerialNumber, s.Generation, s.Expires.UTC().Format(time.RFC3339))
}

// GoString is String: %#v must not print the key either.
func (s *Secret) GoString() string { return s.String() }

// LogValue is what slog shows: identity, serial, generation and expiry.
func (s *Secret) LogValue() slog.Value {
	if s == nil || s.Leaf == nil {
		return slog.StringValue("<no certificate>")
	}
	return slog.GroupValue(
		slog.String("identity", identity(s.Leaf)),
		slog.String("serial", fmt.Sprintf("%x", s.Leaf.SerialNumber)),
		slog.Uint64("generation", s.Generation),
		slog.Time("expires", s.Expires),
	)
}

func identity(c *x509.Certificate) string {
	if len(c.URIs) > 0 {
		return c.URIs[0].String()
	}
	return c.Subject.String()
}

// newKeyAndCSR generates an ECDSA P-256 key and a PEM CSR whose only
// identity is the SPIFFE URI SAN, as Istio's agent builds it
// (security/pkg/pki/util GenCSR with the SPIFFE id as host).
func newKeyAndCSR(id *url.URL) (*ecdsa.PrivateKey, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generating the workload key: %w", err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		URIs:               []*url.URL{id},
		SignatureAlgorithm: x509.ECDSAWithSHA256,
	}, key)
	if err != nil {
		return nil, nil, fmt.Errorf("building the CSR: %w", err)
	}
	return key, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), nil
}

// parseChain reads every CERTIFICATE block of every element of the CA's
// cert_chain, in order.
func parseChain(chain []string) ([][]*x509.Certificate, error) {
	out := make([][]*x509.Certificate, len(chain))
	for i, el := range chain {
		rest := []byte(el)
		for {
			var b *pem.Block
			b, rest = pem.Decode(rest)
			if b == nil {
				break
			}
			if b.Type != "CERTIFICATE" {
				continue
			}
			c, err := x509.ParseCertificate(b.Bytes)
			if err != nil {
				return nil, fmt.Errorf("cert_chain[%d]: %w", i, err)
			}
			out[i] = append(out[i], c)
		}
		if len(out[i]) == 0 {
			return nil, fmt.Errorf("cert_chain[%d]: no PEM certificate", i)
		}
	}
	return out, nil
}

// newSecret checks the CA's answer against the request and builds the
// Secret: at least a leaf and a root (Istio's CA client refuses a
// shorter chain), the leaf carries our public key and our SPIFFE id, it
// chains to the root, and it has not expired at now. The chain is
// verified at the leaf's NotBefore so that a clock skew between the
// proxy and the CA does not reject a good certificate.
func newSecret(chain []string, key *ecdsa.PrivateKey, id *url.URL, now time.Time) (*Secret, error) {
	if len(chain) < 2 {
		return nil, fmt.Errorf("cert_chain has %d element(s): the CA must send the leaf first and the root last", len(chain))
	}
	certs, err := parseChain(chain)
	if err != nil {
		return nil, err
	}
	leaf := certs[0][0]
	rootEl := certs[len(certs)-1]
	root := rootEl[len(rootEl)-1]
	if !key.PublicKey.Equal(leaf.PublicKey) {
		return nil, fmt.Errorf("cert_chain[0]: the leaf's public key is not the CSR's")
	}
	if !hasURI(leaf, id) {
		return nil, fmt.Errorf("cert_chain[0]: the leaf does not carry the URI SAN %s", id)
	}
	inter := x509.NewCertPool()
	var chainPEM bytes.Buffer
	for i, el := range certs {
		for j, c := range el {
			if c == root {
				continue
			}
			if i > 0 || j > 0 {
				inter.AddCert(c)
			}
			pem.Encode(&chainPEM, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
		}
	}
	roots := x509.NewCertPool()
	roots.AddCert(root)
	if _, err := leaf.Verify(x509.VerifyOptions{
		Roots: roots, Intermediates: inter, CurrentTime: leaf.NotBefore,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	}); err != nil {
		return nil, fmt.Errorf("cert_chain: the leaf does not chain to the root (last element): %w", err)
	}
	if !now.Before(leaf.NotAfter) {
		return nil, fmt.Errorf("cert_chain[0]: expired at %s on arrival (check the clocks of the proxy and the CA)", leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encoding the workload key: %w", err)
	}
	return &Secret{
		ChainPEM: chainPEM.Bytes(),
		KeyPEM:   pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}),
		RootPEM:  pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: root.Raw}),
		Leaf:     leaf,
		Created:  now,
		Expires:  leaf.NotAfter,
	}, nil
}

func hasURI(c *x509.Certificate, id *url.URL) bool {
	for _, u := range c.URIs {
		if u.String() == id.String() {
			return true
		}
	}
	return false
}

// SPIFFEID is the workload identity spiffe://TRUST-DOMAIN/ns/NS/sa/SA.
func SPIFFEID(trustDomain, namespace, serviceAccount string) *url.URL {
	return &url.URL{Scheme: "spiffe", Host: trustDomain, Path: "/ns/" + namespace + "/sa/" + serviceAccount}
}
