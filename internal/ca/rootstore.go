package ca

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"time"
)

// Material is a CA's signing material in Istio's layout (the keys of the
// Secrets istio-ca-secret and cacerts), plus weft's bootstrap-token key.
type Material struct {
	// Source names where the material came from in errors and logs
	// ("Secret istio-system/cacerts"); never its content.
	Source string
	// CertPEM is the signing certificate (ca-cert.pem).
	CertPEM []byte
	// KeyPEM is its private key (ca-key.pem: PKCS#8, SEC 1 or PKCS#1).
	KeyPEM []byte
	// ChainPEM holds the certificates above CertPEM up to the root
	// (cert-chain.pem); it may start with CertPEM's certificate and may
	// leave out the root when RootPEM holds it. Empty for a root.
	ChainPEM []byte
	// RootPEM is the root (root-cert.pem); empty when CertPEM is the root
	// or ChainPEM ends with it. Only its first certificate is used.
	RootPEM []byte
	// TokenKey is the HMAC key of `weft token` tokens (raw bytes, at
	// least 32); nil when not stored yet.
	TokenKey []byte
}

// RootStore keeps a CA's material where every weft-control replica finds
// it (a Kubernetes Secret: kubeca.SecretStore). Implementations are safe for
// concurrent use by several processes: Create is the arbiter of a race.
type RootStore interface {
	// Load returns the stored material, or an error wrapping
	// fs.ErrNotExist when nothing is stored.
	Load(ctx context.Context) (*Material, error)
	// Create stores m when nothing is stored yet. When something already
	// is (another replica won the race), it returns an error wrapping
	// fs.ErrExist and stores nothing: the caller loads the winner's.
	Create(ctx context.Context, m *Material) error
	// AddTokenKey stores key as the token key unless one is stored
	// already, and returns the stored one (so that racing replicas agree).
	// The material must exist.
	AddTokenKey(ctx context.Context, key []byte) ([]byte, error)
	// String names the store in logs and errors.
	String() string
}

// storeTimeout bounds New's calls to a RootStore.
const storeTimeout = 30 * time.Second

// newFromStore is New with Options.Store: the supplied material
// (Options.Supplied), else the store's, generated and created on first
// use; the token key always comes from the store.
// The options are already defaulted.
func newFromStore(ctx context.Context, o Options) (*CA, error) {
	c := &CA{o: o, log: o.Logger}
	stored, err := c.loadOrCreate(ctx, o.Supplied == nil)
	if err != nil {
		return nil, err
	}
	m := stored
	if o.Supplied != nil {
		m = o.Supplied
	}
	if err := c.setMaterial(m); err != nil {
		return nil, err
	}
	c.buildChain()
	key := stored.TokenKey
	if len(key) == 0 {
		if key, err = o.Store.AddTokenKey(ctx, newTokenKeyBytes()); err != nil {
			return nil, fmt.Errorf("adding the token key: %w", err)
		}
	}
	if c.tokens, err = NewTokenKey(key, o.Now); err != nil {
		return nil, fmt.Errorf("token key in %s: %w", o.Store, err)
	}
	c.warnExpiry()
	return c, nil
}

// loadOrCreate returns the store's material. When there is none it
// creates it: a generated root and a token key (withRoot), or a token key
// alone; when another replica created it first, theirs is loaded.
func (c *CA) loadOrCreate(ctx context.Context, withRoot bool) (*Material, error) {
	store := c.o.Store
	m, err := store.Load(ctx)
	if err == nil {
		c.log.Info("CA material loaded", "from", store.String())
		return m, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("loading the CA material: %w", err)
	}
	m = &Material{Source: store.String(), TokenKey: newTokenKeyBytes()}
	if withRoot {
		if m.CertPEM, m.KeyPEM, err = c.newRoot(); err != nil {
			return nil, err
		}
		m.RootPEM = m.CertPEM
	}
	err = store.Create(ctx, m)
	switch {
	case err == nil:
		c.log.Info("CA material created", "in", store.String(), "with_root", withRoot)
		return m, nil
	case errors.Is(err, fs.ErrExist):
		// Another replica created it between our Load and Create: use
		// theirs, so that every replica has the same root.
		if m, err = store.Load(ctx); err != nil {
			return nil, fmt.Errorf("loading the CA material another replica created: %w", err)
		}
		c.log.Info("CA material loaded (created by another replica)", "from", store.String())
		return m, nil
	default:
		return nil, fmt.Errorf("creating the CA material: %w", err)
	}
}

// setMaterial checks m as a signing CA (the checks of a user-supplied
// --ca-cert, --ca-key, --ca-chain) and keeps it.
func (c *CA) setMaterial(m *Material) error {
	if len(m.CertPEM) == 0 || len(m.KeyPEM) == 0 {
		return fmt.Errorf("%s: needs ca-cert.pem and ca-key.pem (Istio's CA layout)", m.Source)
	}
	certName, keyName := m.Source+" ca-cert.pem", m.Source+" ca-key.pem"
	if err := c.setSigner(certName, m.CertPEM, keyName, m.KeyPEM); err != nil {
		return err
	}
	var chain []*x509.Certificate
	if len(bytes.TrimSpace(m.ChainPEM)) > 0 {
		var err error
		if chain, err = parseCertificates(m.ChainPEM); err != nil {
			return fmt.Errorf("%s cert-chain.pem: %w", m.Source, err)
		}
	}
	if len(chain) > 0 && bytes.Equal(chain[0].Raw, c.cert.Raw) {
		chain = chain[1:] // Istio's cert-chain.pem starts with ca-cert.pem
	}
	if len(bytes.TrimSpace(m.RootPEM)) > 0 {
		roots, err := parseCertificates(m.RootPEM)
		if err != nil {
			return fmt.Errorf("%s root-cert.pem: %w", m.Source, err)
		}
		root := roots[0]
		last := c.cert
		if len(chain) > 0 {
			last = chain[len(chain)-1]
		}
		if !last.Equal(root) {
			chain = append(chain, root) // cert-chain.pem without the root
		}
	}
	return c.setChain(chain, certName, m.Source+" cert-chain.pem (and root-cert.pem)")
}

// newTokenKeyBytes returns a fresh random token key.
func newTokenKeyBytes() []byte {
	key := make([]byte, tokenKeyBytes)
	rand.Read(key)
	return key
}
