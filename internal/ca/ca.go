// Package ca is weft-control's certificate authority: it keeps the mesh's
// signing certificate (a self-signed root persisted in a directory, or a
// user-supplied root or intermediate with its chain), issues X.509 SVIDs
// whose only SAN is the SPIFFE ID spiffe://<trust-domain>/ns/<ns>/sa/<sa>,
// mints and verifies local-mode bootstrap tokens, and serves Istio's
// IstioCertificateService (istio.io/api security/v1alpha1) so that an
// Istio agent, or weft-proxy's, can obtain certificates with a CSR.
//
// The CA directory holds root-cert.pem, root-key.pem (0600) and token-key
// (0600). On Kubernetes (kubeca.NewKube, package kubeca) the material lives in
// Secrets instead, in Istio's layout, shared by the replicas: the plug-in
// CA cacerts when present, else istio-ca-secret, created by the first
// replica (Options.Store, rootstore.go). Keys, tokens and certificates are never logged (subjects,
// identities and serial numbers are).
package ca

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"
)

// Defaults and bounds.
const (
	// DefaultMaxTTL is the lifetime of workload certificates when neither
	// the request nor the configuration asks for less (Istio's
	// DEFAULT_WORKLOAD_CERT_TTL).
	DefaultMaxTTL = 24 * time.Hour
	// MinTTL is the shortest certificate lifetime issued: short enough to
	// watch rotation happen in a demo or a test, long enough that an agent
	// renewing at half the lifetime does not flood the CA.
	MinTTL = 10 * time.Second
	// DefaultRootTTL is the lifetime of a generated root (Istio's
	// self-signed root: 10 years).
	DefaultRootTTL = 10 * 365 * 24 * time.Hour
	// clockSkew backdates NotBefore so that peers whose clocks lag a little
	// accept a fresh certificate.
	clockSkew = time.Minute
)

// KeyAlgorithm names the key type of a generated root.
type KeyAlgorithm string

// Root key algorithms.
const (
	ECDSAP256 KeyAlgorithm = "ECDSA-P256" // the default
	RSA2048   KeyAlgorithm = "RSA-2048"
)

// Options configure a CA.
type Options struct {
	// Dir is the CA directory (required unless Store is set): the
	// generated root (root-cert.pem, root-key.pem) and the token key
	// (token-key) live there. It is created (0700) if missing.
	Dir string
	// Store, when set, replaces Dir (rootstore.go): the root and the token
	// key are loaded from it, or generated and created there on the first
	// start; when another replica creates them first, theirs are used, so
	// that replicas sharing the store share the root (Kubernetes: the
	// Secret istio-ca-secret, kubeca.SecretStore).
	Store RootStore
	// Supplied, with Store, is a user-supplied signing CA in memory
	// (Istio's plug-in Secret cacerts), checked as CertFile, KeyFile and
	// ChainFile are; Store then holds only the token key.
	Supplied *Material
	// TrustDomain of issued SPIFFE IDs (default cluster.local).
	TrustDomain string
	// MaxTTL is the longest lifetime of a workload certificate and the
	// lifetime given when a request asks for none (default 24 h, at least
	// MinTTL).
	MaxTTL time.Duration
	// RootKey is the key type of a generated root (default ECDSA-P256).
	RootKey KeyAlgorithm
	// RootTTL is the lifetime of a generated root (default 10 years).
	RootTTL time.Duration

	// CertFile and KeyFile name a user-supplied signing certificate (a
	// root or an intermediate CA) and its private key (PEM: PKCS#8, SEC 1
	// or PKCS#1). When set, no root is generated.
	CertFile, KeyFile string
	// ChainFile holds the certificates above CertFile up to and including
	// the root, in order (PEM); it may start with CertFile's certificate,
	// as Istio's cert-chain.pem does. Required unless CertFile is a
	// self-signed root.
	ChainFile string

	// Now is the clock (nil: time.Now); tests move it.
	Now    func() time.Time
	Logger *slog.Logger
}

// CA issues certificates. It is immutable after New and safe for
// concurrent use.
type CA struct {
	o      Options
	log    *slog.Logger
	signer crypto.Signer
	cert   *x509.Certificate // the signing certificate
	// above are the certificates from the one above cert up to the root,
	// excluding the root; root is the trust anchor (== cert for a root).
	above    []*x509.Certificate
	root     *x509.Certificate
	chainPEM []string // signing chain after the leaf: cert (unless root), above..., root
	roots    *x509.CertPool
	tokens   *TokenKey
}

// New loads or creates the CA. Without CertFile it loads the root from
// Dir, or generates and persists one on the first start, so that a
// restart keeps it. The token key is loaded from Dir, or created.
func New(o Options) (*CA, error) {
	if err := o.defaults(); err != nil {
		return nil, err
	}
	if o.Store != nil {
		ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
		defer cancel()
		return newFromStore(ctx, o) // rootstore.go
	}
	if err := os.MkdirAll(o.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("CA directory: %w", err)
	}
	c := &CA{o: o, log: o.Logger}
	var err error
	if o.CertFile != "" || o.KeyFile != "" || o.ChainFile != "" {
		err = c.loadSupplied()
	} else {
		err = c.loadOrCreateRoot()
	}
	if err != nil {
		return nil, err
	}
	c.buildChain()
	if c.tokens, err = loadOrCreateTokenKey(o.Dir, o.Now); err != nil {
		return nil, err
	}
	c.warnExpiry()
	return c, nil
}

// NewContext is New with ctx bounding the calls to Options.Store (New
// gives them 30 s); with no Store it is New. For a store whose caller
// has its own deadline (kubeca.NewKube).
func NewContext(ctx context.Context, o Options) (*CA, error) {
	if o.Store == nil {
		return New(o)
	}
	if err := o.defaults(); err != nil {
		return nil, err
	}
	return newFromStore(ctx, o)
}

// defaults fills and checks the options.
func (o *Options) defaults() error {
	switch {
	case o.Supplied != nil && o.Store == nil:
		return errors.New("ca.Options.Supplied needs a Store for the token key")
	case o.Store == nil && o.Dir == "":
		return errors.New("the CA needs a directory (--ca-dir)")
	case o.Store != nil && (o.CertFile != "" || o.KeyFile != "" || o.ChainFile != ""):
		return errors.New("ca.Options: CertFile, KeyFile and ChainFile are for Dir mode; pass Supplied with a Store")
	}
	if o.TrustDomain == "" {
		o.TrustDomain = DefaultTrustDomain
	}
	if err := ValidateTrustDomain(o.TrustDomain); err != nil {
		return err
	}
	if o.MaxTTL == 0 {
		o.MaxTTL = DefaultMaxTTL
	}
	if o.MaxTTL < MinTTL {
		return fmt.Errorf("certificate lifetime %v: must be at least %v", o.MaxTTL, MinTTL)
	}
	if o.RootKey == "" {
		o.RootKey = ECDSAP256
	}
	if o.RootKey != ECDSAP256 && o.RootKey != RSA2048 {
		return fmt.Errorf("root key algorithm %q: use %s or %s", o.RootKey, ECDSAP256, RSA2048)
	}
	if o.RootTTL <= 0 {
		o.RootTTL = DefaultRootTTL
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return nil
}

// buildChain fills chainPEM and roots from cert, above and root.
func (c *CA) buildChain() {
	certs := append([]*x509.Certificate{}, c.above...)
	if c.cert != c.root {
		certs = append([]*x509.Certificate{c.cert}, certs...)
	}
	certs = append(certs, c.root)
	for _, x := range certs {
		c.chainPEM = append(c.chainPEM, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: x.Raw})))
	}
	c.roots = x509.NewCertPool()
	c.roots.AddCert(c.root)
}

// warnExpiry logs when the signing certificate is close to its end.
func (c *CA) warnExpiry() {
	left := c.cert.NotAfter.Sub(c.o.Now())
	if left < 30*24*time.Hour {
		c.log.Warn("the CA's signing certificate expires soon: rotate it", "subject", c.cert.Subject.String(), "serial", c.cert.SerialNumber.String(), "not_after", c.cert.NotAfter)
	}
}

// TrustDomain returns the trust domain of issued SPIFFE IDs.
func (c *CA) TrustDomain() string { return c.o.TrustDomain }

// MaxTTL returns the longest lifetime of a workload certificate.
func (c *CA) MaxTTL() time.Duration { return c.o.MaxTTL }

// Root returns the trust anchor (do not modify it).
func (c *CA) Root() *x509.Certificate { return c.root }

// RootPEM returns the trust anchor in PEM (the ROOTCA bundle).
func (c *CA) RootPEM() []byte { return []byte(c.chainPEM[len(c.chainPEM)-1]) }

// Roots returns a pool holding the trust anchor, to verify issued
// certificates (do not modify it).
func (c *CA) Roots() *x509.CertPool { return c.roots }

// Intermediates returns a pool of the certificates between issued leaves
// and the root (empty for a root CA).
func (c *CA) Intermediates() *x509.CertPool {
	p := x509.NewCertPool()
	if c.cert != c.root {
		p.AddCert(c.cert)
	}
	for _, x := range c.above {
		p.AddCert(x)
	}
	return p
}

// Tokens returns the token key (of the CA directory or the Store).
func (c *CA) Tokens() *TokenKey { return c.tokens }
