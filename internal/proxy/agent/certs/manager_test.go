package certs_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/weftmesh/weft/internal/proxy/agent/agenttest"
	"github.com/weftmesh/weft/internal/proxy/agent/certs"
)

const (
	testID    = "spiffe://cluster.local/ns/shop/sa/web"
	testToken = "tok-shop-web"
	wait      = 10 * time.Second
)

// run starts a Manager against ca (token testToken, identity testID)
// with the fake clock, and stops it with the test. mod adjusts options.
func run(t *testing.T, ca *agenttest.CA, clock *agenttest.Clock, addr string, mod func(*certs.Options)) (*certs.Manager, chan *certs.Secret) {
	t.Helper()
	secrets := make(chan *certs.Secret, 16)
	o := certs.Options{
		CAAddress: addr, RootCAs: ca.RootPool(), Token: certs.StaticToken(testToken),
		TrustDomain: "cluster.local", Namespace: "shop", ServiceAccount: "web",
		TTL: time.Hour, Clock: clock, OnSecret: func(s *certs.Secret) { secrets <- s },
	}
	if mod != nil {
		mod(&o)
	}
	m, err := certs.New(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != context.Canceled {
			t.Errorf("Run returned %v, want context.Canceled", err)
		}
	})
	return m, secrets
}

func next(t *testing.T, ch chan *certs.Secret) *certs.Secret {
	t.Helper()
	select {
	case s := <-ch:
		return s
	case <-time.After(wait):
		t.Fatal("no certificate published")
		return nil
	}
}

func startCA(t *testing.T, clock *agenttest.Clock, intermediate bool) *agenttest.CA {
	return agenttest.StartCA(t, agenttest.CAOptions{Tokens: map[string]string{testToken: testID}, Now: clock.Now, Intermediate: intermediate})
}

// TestFirstCertificate: the first certificate has the SPIFFE URI SAN,
// matches the key, chains to the root (also through an intermediate);
// ROOTCA is the chain's last element; the token went as a bearer; the
// request carries no private key material.
func TestFirstCertificate(t *testing.T) {
	for _, intermediate := range []bool{false, true} {
		t.Run(fmt.Sprintf("intermediate=%v", intermediate), func(t *testing.T) {
			clock := agenttest.NewClock(time.Now())
			ca := startCA(t, clock, intermediate)
			m, secrets := run(t, ca, clock, ca.Addr(), nil)
			s := next(t, secrets)
			<-m.Ready()
			if m.Current() != s || s.Generation != 1 || m.Identity() != testID {
				t.Errorf("current %v generation %d identity %s", m.Current(), s.Generation, m.Identity())
			}
			if len(s.Leaf.URIs) != 1 || s.Leaf.URIs[0].String() != testID {
				t.Errorf("leaf URIs %v, want [%s]", s.Leaf.URIs, testID)
			}
			pair, err := tls.X509KeyPair(s.ChainPEM, s.KeyPEM)
			if err != nil {
				t.Fatalf("chain and key do not match: %v", err)
			}
			if wantCerts := map[bool]int{false: 1, true: 2}[intermediate]; len(pair.Certificate) != wantCerts {
				t.Errorf("chain has %d certificates, want %d (leaf [+ intermediate], no root)", len(pair.Certificate), wantCerts)
			}
			if !bytes.Equal(s.RootPEM, ca.RootPEM()) {
				t.Error("ROOTCA is not the CA's root")
			}
			inter := x509.NewCertPool()
			for _, der := range pair.Certificate[1:] {
				c, _ := x509.ParseCertificate(der)
				inter.AddCert(c)
			}
			if _, err := s.Leaf.Verify(x509.VerifyOptions{Roots: ca.RootPool(), Intermediates: inter, CurrentTime: clock.Now(),
				KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
				t.Errorf("leaf does not verify: %v", err)
			}
			if got := s.Expires.Sub(s.Leaf.NotBefore); got != time.Hour {
				t.Errorf("lifetime %v, want the TTL asked (1h)", got)
			}
			reqs := ca.Requests()
			if len(reqs) != 1 {
				t.Fatalf("%d requests", len(reqs))
			}
			r := reqs[0]
			if len(r.Authorization) != 1 || r.Authorization[0] != "Bearer "+testToken {
				t.Errorf("authorization metadata %q, want one \"Bearer %s\"", r.Authorization, testToken)
			}
			if r.Raw.GetValidityDuration() != 3600 {
				t.Errorf("validity_duration %d, want 3600", r.Raw.GetValidityDuration())
			}
			assertNoKeyInRequest(t, r.Raw.GetCsr(), mustMarshal(t, r.Raw), s)
			for _, shown := range []string{fmt.Sprint(s), fmt.Sprintf("%+v", s), fmt.Sprintf("%#v", s), logged(s)} {
				if strings.Contains(shown, "PRIVATE") || strings.Contains(shown, "BEGIN") || !strings.Contains(shown, testID) {
					t.Errorf("the secret prints as %q: want the identity and no PEM", shown)
				}
			}
		})
	}
}

// assertNoKeyInRequest: the request's only key material is the CSR's
// public key, which is the leaf's; neither the private scalar nor the
// key's encodings appear in the bytes sent.
func assertNoKeyInRequest(t *testing.T, csrPEM string, wire []byte, s *certs.Secret) {
	t.Helper()
	b, _ := pem.Decode([]byte(csrPEM))
	csr, err := x509.ParseCertificateRequest(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	pub, ok := csr.PublicKey.(*ecdsa.PublicKey)
	if !ok || !pub.Equal(s.Leaf.PublicKey) {
		t.Error("the CSR's public key is not the certificate's")
	}
	kb, _ := pem.Decode(s.KeyPEM)
	key, err := x509.ParsePKCS8PrivateKey(kb.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	priv := key.(*ecdsa.PrivateKey)
	d, err := priv.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	for name, secret := range map[string][]byte{"private scalar": d, "PKCS#8 key": kb.Bytes, "key PEM": s.KeyPEM} {
		if bytes.Contains(wire, secret) {
			t.Errorf("the request contains the %s", name)
		}
	}
	if bytes.Contains(wire, []byte("PRIVATE KEY")) {
		t.Error("the request contains a PEM private key")
	}
}

func mustMarshal(t *testing.T, m proto.Message) []byte {
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func logged(s *certs.Secret) string {
	var buf bytes.Buffer
	slog.New(slog.NewTextHandler(&buf, nil)).Info("x", "certificate", s)
	return buf.String()
}

// TestRotationAtHalfLife: with Istio's defaults (grace ratio 0.5,
// jitter 0.01) the renewal is scheduled after 49 %–51 % of the lifetime
// (the tolerance is the jitter); advancing the clock that far renews the
// certificate with a new key and publishes generation 2.
func TestRotationAtHalfLife(t *testing.T) {
	clock := agenttest.NewClock(time.Now())
	ca := startCA(t, clock, false)
	_, secrets := run(t, ca, clock, ca.Addr(), nil)
	first := next(t, secrets)
	waits := clock.WaitAfterCalls(t, 1, wait)
	d := waits[0]
	if d < 49*time.Hour/100 || d > 51*time.Hour/100 {
		t.Fatalf("renewal in %v, want 0.49h–0.51h of a 1h certificate", d)
	}
	clock.Advance(d - time.Second)
	if got := len(ca.Requests()); got != 1 {
		t.Fatalf("%d requests before the renewal time, want 1", got)
	}
	clock.Advance(time.Second)
	second := next(t, secrets)
	if second.Generation != 2 || second.Leaf.SerialNumber.Cmp(first.Leaf.SerialNumber) == 0 {
		t.Errorf("rotated certificate: generation %d serial %v (first %v)", second.Generation, second.Leaf.SerialNumber, first.Leaf.SerialNumber)
	}
	if bytes.Equal(second.KeyPEM, first.KeyPEM) || second.Leaf.PublicKey.(*ecdsa.PublicKey).Equal(first.Leaf.PublicKey) {
		t.Error("the rotation kept the key; Istio's agent generates a new key per certificate")
	}
	if !second.Created.Equal(clock.Now()) {
		t.Errorf("created %v, want the clock's now %v", second.Created, clock.Now())
	}
}

// TestCAUnavailable: while the CA answers Unavailable the manager
// retries with growing waits (1s, 2s, 4s, capped at 4s; ±10 % jitter),
// keeps publishing nothing new and keeps the current certificate; when
// the CA is back the next retry renews.
func TestCAUnavailable(t *testing.T) {
	clock := agenttest.NewClock(time.Now())
	ca := startCA(t, clock, false)
	m, secrets := run(t, ca, clock, ca.Addr(), func(o *certs.Options) {
		o.Backoff = certs.Backoff{Initial: time.Second, Max: 4 * time.Second, Jitter: 0.1}
	})
	first := next(t, secrets)
	ca.SetDown(true)
	waits := clock.WaitAfterCalls(t, 1, wait)
	clock.Advance(waits[0]) // renewal time: the CA is down
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 4 * time.Second}
	for i, base := range want {
		waits = clock.WaitAfterCalls(t, 2+i, wait)
		got := waits[1+i]
		if got < base*9/10 || got > base*11/10 {
			t.Errorf("retry %d waits %v, want %v ± 10 %%", i+1, got, base)
		}
		if m.Current() != first {
			t.Fatalf("retry %d: the current certificate changed while the CA is down", i+1)
		}
		if i < len(want)-1 {
			clock.Advance(got)
		}
	}
	if n := len(ca.Requests()); n != 1+len(want) {
		t.Errorf("%d requests, want %d (first + one per failure)", n, 1+len(want))
	}
	ca.SetDown(false)
	clock.Advance(waits[len(waits)-1])
	if s := next(t, secrets); s.Generation != 2 || m.Current() != s {
		t.Errorf("after the CA came back: generation %d", s.Generation)
	}
}

// TestCAUnreachable: nothing listens at the CA address: the manager
// retries with back-off and publishes nothing.
func TestCAUnreachable(t *testing.T) {
	clock := agenttest.NewClock(time.Now())
	ca := startCA(t, clock, false)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()
	m, _ := run(t, ca, clock, closed, func(o *certs.Options) {
		o.Backoff = certs.Backoff{Initial: time.Second, Max: time.Minute, Jitter: 0.1}
	})
	for i := 1; i <= 3; i++ {
		waits := clock.WaitAfterCalls(t, i, wait)
		base := time.Second << (i - 1)
		if got := waits[i-1]; got < base*9/10 || got > base*11/10 {
			t.Errorf("retry %d waits %v, want %v ± 10 %%", i, got, base)
		}
		clock.Advance(waits[i-1])
	}
	if m.Current() != nil {
		t.Error("a certificate was published without a CA")
	}
	select {
	case <-m.Ready():
		t.Error("Ready closed without a certificate")
	default:
	}
}

// TestTokenForAnotherIdentity: the CA refuses a token bound to another
// identity; the manager publishes nothing and retries. The token file is
// read at each attempt, so fixing it lets the next retry succeed.
func TestTokenForAnotherIdentity(t *testing.T) {
	clock := agenttest.NewClock(time.Now())
	ca := agenttest.StartCA(t, agenttest.CAOptions{Tokens: map[string]string{"other": "spiffe://cluster.local/ns/shop/sa/admin", testToken: testID}, Now: clock.Now})
	path := t.TempDir() + "/token"
	writeFile(t, path, "other\n")
	m, secrets := run(t, ca, clock, ca.Addr(), func(o *certs.Options) { o.Token = certs.FileToken(path) })
	waits := clock.WaitAfterCalls(t, 1, wait)
	if r := ca.Requests(); len(r) != 1 || r[0].Answered.String() != "PermissionDenied" || r[0].Authorization[0] != "Bearer other" {
		t.Fatalf("requests %+v, want one PermissionDenied with Bearer other", r)
	}
	if m.Current() != nil {
		t.Fatal("a certificate was published for a refused token")
	}
	writeFile(t, path, testToken+"\n")
	clock.Advance(waits[0])
	if s := next(t, secrets); s.Leaf.URIs[0].String() != testID {
		t.Errorf("identity %v", s.Leaf.URIs)
	}
}

func writeFile(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
}
