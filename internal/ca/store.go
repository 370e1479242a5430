package ca

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// loadOrCreateRoot loads Dir's root, or generates and persists one when
// neither file exists.
func (c *CA) loadOrCreateRoot() error {
	certPath := filepath.Join(c.o.Dir, RootCertFile)
	keyPath := filepath.Join(c.o.Dir, RootKeyFile)
	haveCert, haveKey := exists(certPath), exists(keyPath)
	switch {
	case !haveCert && !haveKey:
		if err := c.generateRoot(certPath, keyPath); err != nil {
			return err
		}
	case haveCert != haveKey:
		return fmt.Errorf("CA directory %s has only one of %s and %s: restore the other, or remove both to generate a new root (every workload certificate then has to be reissued)", c.o.Dir, RootCertFile, RootKeyFile)
	}
	certPEM, err := os.ReadFile(certPath)
	if err != nil {
		return fmt.Errorf("root certificate: %w", err)
	}
	keyPEM, err := readPrivate(keyPath)
	if err != nil {
		return fmt.Errorf("root key: %w", err)
	}
	if err := c.setSigner(certPath, certPEM, keyPath, keyPEM); err != nil {
		return err
	}
	if !isSelfSigned(c.cert) {
		return fmt.Errorf("%s is not a self-signed root: pass a user-supplied intermediate with --ca-cert, --ca-key and --ca-chain", certPath)
	}
	c.root = c.cert
	return nil
}

// generateRoot creates a self-signed root (newRoot) and persists it in
// Dir. The key is written first: a crash in between leaves a key without
// a certificate, which New reports rather than overwrite.
func (c *CA) generateRoot(certPath, keyPath string) error {
	certPEM, keyPEM, err := c.newRoot()
	if err != nil {
		return err
	}
	if err := createExclusive(keyPath, keyPEM, 0o600); err != nil {
		return fmt.Errorf("root key: %w", err)
	}
	if err := createExclusive(certPath, certPEM, 0o644); err != nil {
		return fmt.Errorf("root certificate: %w", err)
	}
	c.log.Info("generated a new root CA", "dir", c.o.Dir, "trust_domain", c.o.TrustDomain, "key", string(c.o.RootKey))
	return nil
}

// newRoot generates a self-signed root in memory, after Istio's
// self-signed CA (security/pkg/pki/util GenCertKeyFromOptions with IsCA
// and IsSelfSigned): organisation = trust domain, key usage certSign (and
// cRLSign), 10 years. It returns the certificate and the PKCS#8 key, PEM.
func (c *CA) newRoot() (certPEM, keyPEM []byte, err error) {
	var key crypto.Signer
	if c.o.RootKey == RSA2048 {
		key, err = rsa.GenerateKey(rand.Reader, 2048)
	} else {
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("generate the root key: %w", err)
	}
	now := c.o.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serialNumber(),
		Subject:               pkix.Name{Organization: []string{c.o.TrustDomain}, CommonName: "weft root CA"},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              now.Add(c.o.RootTTL),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, nil, fmt.Errorf("self-sign the root: %w", err)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("encode the root key: %w", err)
	}
	c.log.Info("generated a root certificate", "trust_domain", c.o.TrustDomain, "key", string(c.o.RootKey), "serial", tmpl.SerialNumber.String(), "not_after", tmpl.NotAfter)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8}), nil
}

// loadSupplied loads a user-supplied signing certificate, key and chain,
// and checks that the signing certificate chains up to the root.
func (c *CA) loadSupplied() error {
	if c.o.CertFile == "" || c.o.KeyFile == "" {
		return errors.New("a user-supplied CA needs both --ca-cert and --ca-key")
	}
	certPEM, err := os.ReadFile(c.o.CertFile)
	if err != nil {
		return fmt.Errorf("--ca-cert: %w", err)
	}
	keyPEM, err := os.ReadFile(c.o.KeyFile)
	if err != nil {
		return fmt.Errorf("--ca-key: %w", err)
	}
	if err := c.setSigner(c.o.CertFile, certPEM, c.o.KeyFile, keyPEM); err != nil {
		return err
	}
	var chain []*x509.Certificate
	if c.o.ChainFile != "" {
		data, err := os.ReadFile(c.o.ChainFile)
		if err != nil {
			return fmt.Errorf("--ca-chain: %w", err)
		}
		if chain, err = parseCertificates(data); err != nil {
			return fmt.Errorf("--ca-chain %s: %w", c.o.ChainFile, err)
		}
	}
	if len(chain) > 0 && bytes.Equal(chain[0].Raw, c.cert.Raw) {
		chain = chain[1:] // Istio's cert-chain.pem starts with ca-cert.pem
	}
	return c.setChain(chain, "--ca-cert "+c.o.CertFile, "--ca-chain "+c.o.ChainFile)
}

// setChain checks the certificates above the signing certificate (up to
// and including the root) and keeps them; certName and chainName say
// where they came from in errors.
func (c *CA) setChain(chain []*x509.Certificate, certName, chainName string) error {
	if len(chain) == 0 {
		if !isSelfSigned(c.cert) {
			return fmt.Errorf("%s (%s) is not a self-signed root: pass the certificates above it, up to the root, in %s", certName, c.cert.Subject, strings.TrimSpace(chainName))
		}
		c.root = c.cert
		return nil
	}
	root := chain[len(chain)-1]
	if !isSelfSigned(root) {
		return fmt.Errorf("%s: its last certificate (%s) is not a self-signed root: the chain must end with the root", chainName, root.Subject)
	}
	c.root, c.above = root, chain[:len(chain)-1]
	roots, inter := x509.NewCertPool(), x509.NewCertPool()
	roots.AddCert(root)
	for _, x := range c.above {
		inter.AddCert(x)
	}
	_, err := c.cert.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: c.o.Now(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
	if err != nil {
		return fmt.Errorf("%s does not chain up to the root of %s: %w", certName, chainName, err)
	}
	return nil
}

// setSigner parses the signing certificate and key and checks that they
// belong together and may sign certificates.
func (c *CA) setSigner(certName string, certPEM []byte, keyName string, keyPEM []byte) error {
	certs, err := parseCertificates(certPEM)
	if err != nil {
		return fmt.Errorf("%s: %w", certName, err)
	}
	cert := certs[0]
	key, err := parsePrivateKey(keyPEM)
	if err != nil {
		return fmt.Errorf("%s: %w", keyName, err)
	}
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(cert.PublicKey) {
		return fmt.Errorf("the key %s does not belong to the certificate %s", keyName, certName)
	}
	if !cert.IsCA || !cert.BasicConstraintsValid {
		return fmt.Errorf("%s (%s) is not a CA certificate (basic constraints CA:TRUE)", certName, cert.Subject)
	}
	if cert.KeyUsage != 0 && cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		return fmt.Errorf("%s (%s) may not sign certificates (key usage lacks keyCertSign)", certName, cert.Subject)
	}
	if now := c.o.Now(); now.After(cert.NotAfter) {
		return fmt.Errorf("%s (%s) expired at %s: rotate the CA", certName, cert.Subject, cert.NotAfter)
	}
	c.cert, c.signer = cert, key
	return nil
}

// isSelfSigned reports whether x is signed by its own key.
func isSelfSigned(x *x509.Certificate) bool {
	return bytes.Equal(x.RawIssuer, x.RawSubject) && x.CheckSignatureFrom(x) == nil
}

// parseCertificates decodes every CERTIFICATE block of a PEM file (at
// least one).
func parseCertificates(data []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		x, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate %d: %w", len(out)+1, err)
		}
		out = append(out, x)
	}
	if len(out) == 0 {
		return nil, errors.New("no PEM CERTIFICATE block")
	}
	return out, nil
}

// parsePrivateKey decodes the first private key block: PKCS#8, SEC 1 (EC
// PRIVATE KEY) or PKCS#1 (RSA PRIVATE KEY); the key must be ECDSA or RSA.
func parsePrivateKey(data []byte) (crypto.Signer, error) {
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return nil, errors.New("no PEM private key block (PRIVATE KEY, EC PRIVATE KEY or RSA PRIVATE KEY)")
		}
		var key any
		var err error
		switch b.Type {
		case "PRIVATE KEY":
			key, err = x509.ParsePKCS8PrivateKey(b.Bytes)
		case "EC PRIVATE KEY":
			key, err = x509.ParseECPrivateKey(b.Bytes)
		case "RSA PRIVATE KEY":
			key, err = x509.ParsePKCS1PrivateKey(b.Bytes)
		default:
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", b.Type, err)
		}
		switch k := key.(type) {
		case *ecdsa.PrivateKey:
			return k, nil
		case *rsa.PrivateKey:
			return k, nil
		default:
			return nil, fmt.Errorf("unsupported key type %T: use ECDSA or RSA", key)
		}
	}
}
