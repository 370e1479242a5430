package tlsctx

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"sort"
	"sync"
	"sync/atomic"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
)

// Secret is a compiled SDS secret (or the inline equivalent): a
// certificate with its key, or a validation context. It is immutable.
type Secret struct {
	// Cert is set for a tls_certificate secret.
	Cert *tls.Certificate
	// Validation is set for a validation_context secret.
	Validation *Validation
}

// Provider returns the current version of SDS secrets. Implementations
// must be safe for concurrent use and cheap (handshakes call Secret).
type Provider interface {
	// Secret returns the secret named name, or nil when it has not
	// arrived (or was removed).
	Secret(name string) *Secret
}

// Store is a Provider whose secrets are set by the SDS client (or by
// tests). Reads are lock-free; writes are serialized.
type Store struct {
	mu      sync.Mutex
	secrets atomic.Pointer[map[string]*Secret]
	// changed is closed and replaced on every Set or Remove.
	changed chan struct{}
}

var _ Provider = (*Store)(nil)

// NewStore returns an empty store.
func NewStore() *Store {
	s := &Store{changed: make(chan struct{})}
	m := map[string]*Secret{}
	s.secrets.Store(&m)
	return s
}

// Secret implements Provider.
func (s *Store) Secret(name string) *Secret { return (*s.secrets.Load())[name] }

// Has reports whether every named secret is present.
func (s *Store) Has(names ...string) bool {
	m := *s.secrets.Load()
	for _, n := range names {
		if m[n] == nil {
			return false
		}
	}
	return true
}

// Names returns the names of the secrets present, sorted.
func (s *Store) Names() []string {
	m := *s.secrets.Load()
	out := make([]string, 0, len(m))
	for n := range m {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Changed returns a channel closed at the next Set or Remove.
func (s *Store) Changed() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.changed
}

// Set publishes sec under name; the next handshake uses it.
func (s *Store) Set(name string, sec *Secret) {
	s.update(func(m map[string]*Secret) { m[name] = sec })
}

// Remove removes the secret named name.
func (s *Store) Remove(name string) {
	s.update(func(m map[string]*Secret) { delete(m, name) })
}

func (s *Store) update(f func(map[string]*Secret)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := *s.secrets.Load()
	next := make(map[string]*Secret, len(old)+1)
	for k, v := range old {
		next[k] = v
	}
	f(next)
	s.secrets.Store(&next)
	close(s.changed)
	s.changed = make(chan struct{})
}

// CompileSecret checks and compiles an SDS Secret resource: a
// tls_certificate (certificate_chain and private_key) or a
// validation_context. Errors name the field.
func CompileSecret(sec *tlsv3.Secret) (*Secret, error) {
	switch {
	case sec.GetTlsCertificate() != nil:
		c, err := compileCert(sec.GetTlsCertificate())
		if err != nil {
			return nil, fmt.Errorf("tls_certificate.%w", err)
		}
		return &Secret{Cert: c}, nil
	case sec.GetValidationContext() != nil:
		v, err := compileValidation(sec.GetValidationContext())
		if err != nil {
			return nil, fmt.Errorf("validation_context.%w", err)
		}
		return &Secret{Validation: v}, nil
	}
	return nil, errors.New("type: a tls_certificate or a validation_context is required (session_ticket_keys and generic_secret are not supported)")
}

// compileCert loads a certificate chain and its private key (PEM).
func compileCert(tc *tlsv3.TlsCertificate) (*tls.Certificate, error) {
	chain, err := readSource(tc.GetCertificateChain())
	if err != nil {
		return nil, fmt.Errorf("certificate_chain: %w", err)
	}
	key, err := readSource(tc.GetPrivateKey())
	if err != nil {
		return nil, fmt.Errorf("private_key: %w", err)
	}
	// The error of X509KeyPair never contains key material.
	cert, err := tls.X509KeyPair(chain, key)
	if err != nil {
		return nil, fmt.Errorf("certificate_chain, private_key: %w", err)
	}
	if cert.Leaf == nil {
		if cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, fmt.Errorf("certificate_chain: %w", err)
		}
	}
	return &cert, nil
}

// readSource reads a DataSource: filename, inline_bytes or inline_string.
func readSource(ds *corev3.DataSource) ([]byte, error) {
	switch s := ds.GetSpecifier().(type) {
	case *corev3.DataSource_Filename:
		b, err := os.ReadFile(s.Filename)
		if err != nil {
			return nil, fmt.Errorf("filename: %w", err)
		}
		return b, nil
	case *corev3.DataSource_InlineBytes:
		return s.InlineBytes, nil
	case *corev3.DataSource_InlineString:
		return []byte(s.InlineString), nil
	}
	return nil, errors.New("required (filename, inline_bytes or inline_string)")
}
