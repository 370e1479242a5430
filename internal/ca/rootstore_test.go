package ca

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io/fs"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// memStore is an in-memory RootStore; creates counts successful Creates.
type memStore struct {
	mu      sync.Mutex
	m       *Material
	creates int
}

func (s *memStore) String() string { return "memory" }

func (s *memStore) Load(context.Context) (*Material, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		return nil, fmt.Errorf("memory: %w", fs.ErrNotExist)
	}
	c := *s.m
	return &c, nil
}

func (s *memStore) Create(_ context.Context, m *Material) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m != nil {
		return fmt.Errorf("memory: %w", fs.ErrExist)
	}
	c := *m
	s.m = &c
	s.creates++
	return nil
}

func (s *memStore) AddTokenKey(_ context.Context, key []byte) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		return nil, fmt.Errorf("memory: %w", fs.ErrNotExist)
	}
	if len(s.m.TokenKey) == 0 {
		s.m.TokenKey = key
	}
	return s.m.TokenKey, nil
}

// pemOf encodes certificates.
func pemOf(certs ...*testCert) []byte {
	var b []byte
	for _, c := range certs {
		b = append(b, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.cert.Raw})...)
	}
	return b
}

// TestStoreRace: CAs started concurrently on one empty store create it
// once and all end with the same root and token key; a later start
// reuses them.
func TestStoreRace(t *testing.T) {
	store := &memStore{}
	const n = 8
	cas := make([]*CA, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { cas[i], errs[i] = New(Options{Store: store, Logger: slog.New(slog.DiscardHandler)}) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("CA %d: %v", i, err)
		}
	}
	if store.creates != 1 {
		t.Fatalf("the store was created %d times, want once", store.creates)
	}
	tok, err := cas[0].Tokens().Mint(Identity{"default", "web"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range cas {
		if !c.Root().Equal(cas[0].Root()) {
			t.Fatalf("CA %d has another root", i)
		}
		if _, err := c.Tokens().Verify(tok); err != nil {
			t.Fatalf("CA %d refuses CA 0's token: %v", i, err)
		}
	}
	cert, err := cas[1].Sign(SignRequest{PublicKey: ecKey(t).Public(), Identity: Identity{"default", "web"}})
	if err != nil {
		t.Fatal(err)
	}
	verifyChain(t, cas[0], cert.ChainPEM)
	again := newTestCA(t, Options{Store: store})
	if !again.Root().Equal(cas[0].Root()) || store.creates != 1 {
		t.Fatal("a restart did not reuse the stored root")
	}
}

// TestStoreMaterial: a stored root without a token key gets one added
// (istiod's istio-ca-secret); supplied material (the plug-in cacerts) is
// the signing CA, its chain in Istio's layouts; bad material is refused
// with the place named.
func TestStoreMaterial(t *testing.T) {
	root := makeCA(t, "plug-in root", nil)
	mid := makeCA(t, "plug-in intermediate", root)
	keyPEM := func(c *testCert) []byte {
		der, err := x509.MarshalECPrivateKey(c.key)
		if err != nil {
			t.Fatal(err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})
	}

	// A root stored without a token key.
	store := &memStore{m: &Material{Source: "memory", CertPEM: pemOf(root), KeyPEM: keyPEM(root)}}
	c := newTestCA(t, Options{Store: store})
	if !c.Root().Equal(root.cert) || len(store.m.TokenKey) != tokenKeyBytes {
		t.Fatalf("stored root: root %s, token key of %d bytes", c.Root().Subject, len(store.m.TokenKey))
	}

	layouts := map[string]*Material{
		"chain with cert and root": {ChainPEM: pemOf(mid, root), RootPEM: pemOf(root)},
		"chain without root":       {ChainPEM: pemOf(mid), RootPEM: pemOf(root)},
		"root only":                {RootPEM: pemOf(root)},
		"chain only":               {ChainPEM: pemOf(root)},
	}
	for name, m := range layouts {
		m.Source, m.CertPEM, m.KeyPEM = "Secret test/cacerts", pemOf(mid), keyPEM(mid)
		tokens := &memStore{}
		c := newTestCA(t, Options{Store: tokens, Supplied: m})
		if !c.Root().Equal(root.cert) || tokens.m == nil || len(tokens.m.CertPEM) != 0 || len(tokens.m.TokenKey) == 0 {
			t.Fatalf("%s: root %s, token store %+v", name, c.Root().Subject, tokens.m != nil)
		}
		cert, err := c.Sign(SignRequest{PublicKey: ecKey(t).Public(), Identity: Identity{"ns", "sa"}})
		if err != nil {
			t.Fatal(err)
		}
		if len(cert.ChainPEM) != 3 {
			t.Fatalf("%s: chain of %d, want leaf, intermediate, root", name, len(cert.ChainPEM))
		}
		if leaf := verifyChain(t, c, cert.ChainPEM); leaf.CheckSignatureFrom(mid.cert) != nil {
			t.Fatalf("%s: the leaf is not signed by the plug-in intermediate", name)
		}
	}

	other := makeCA(t, "other", nil)
	bad := []struct {
		name string
		m    *Material
		want string
	}{
		{"no key", &Material{Source: "S", CertPEM: pemOf(mid)}, "S: needs ca-cert.pem and ca-key.pem"},
		{"no root", &Material{Source: "S", CertPEM: pemOf(mid), KeyPEM: keyPEM(mid)}, "S ca-cert.pem"},
		{"other root", &Material{Source: "S", CertPEM: pemOf(mid), KeyPEM: keyPEM(mid), RootPEM: pemOf(other)}, "does not chain up"},
		{"wrong key", &Material{Source: "S", CertPEM: pemOf(mid), KeyPEM: keyPEM(root), RootPEM: pemOf(root)}, "S ca-key.pem does not belong"},
		{"garbage chain", &Material{Source: "S", CertPEM: pemOf(mid), KeyPEM: keyPEM(mid), ChainPEM: []byte("x")}, "S cert-chain.pem"},
	}
	for _, tt := range bad {
		_, err := New(Options{Store: &memStore{}, Supplied: tt.m, Logger: slog.New(slog.DiscardHandler)})
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v, want an error containing %q", tt.name, err, tt.want)
		}
		if err != nil && bytes.Contains([]byte(err.Error()), []byte("PRIVATE KEY")) {
			t.Errorf("%s: the error shows key material", tt.name)
		}
	}
	if _, err := New(Options{Supplied: layouts["root only"]}); err == nil || !strings.Contains(err.Error(), "needs a Store") {
		t.Errorf("Supplied without a Store: %v", err)
	}
}
