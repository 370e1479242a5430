// Package agenttest holds test doubles for the sidecar agent: a small
// IstioCertificateService (istio.io/api security/v1alpha1) that signs
// CSRs with crypto/x509 over TLS on loopback, and a fake clock. It stands
// in for weft-control's CA (internal/ca) in the agent's tests.
package agenttest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	pb "istio.io/api/security/v1alpha1"
)

// CAOptions configure StartCA.
type CAOptions struct {
	// Tokens maps the accepted bearer tokens to the SPIFFE id each may
	// obtain (the contract of weft's CA: a caller gets its own identity
	// only). Empty: any non-empty token, any identity.
	Tokens map[string]string
	// Now is the CA's clock (default time.Now): certificates run from
	// Now() to Now()+validity.
	Now func() time.Time
	// Intermediate makes the CA sign with an intermediate, answering
	// [leaf, intermediate, root].
	Intermediate bool
}

// CA is a running test CA.
type CA struct {
	o        CAOptions
	addr     string
	rootPEM  []byte
	root     *x509.Certificate
	signer   *x509.Certificate
	signKey  *ecdsa.PrivateKey
	interPEM []byte
	srv      *grpc.Server
	serial   atomic.Int64
	down     atomic.Bool

	mu       sync.Mutex
	requests []Request
	changed  chan struct{}
}

// Request is what the CA received in one call.
type Request struct {
	// Raw is the request as marshalled on the wire.
	Raw *pb.IstioCertificateRequest
	// Authorization is the authorization metadata, as sent.
	Authorization []string
	// Answered is the gRPC code returned.
	Answered codes.Code
}

// StartCA starts the CA on 127.0.0.1:0; it stops with the test.
func StartCA(t testing.TB, o CAOptions) *CA {
	t.Helper()
	if o.Now == nil {
		o.Now = time.Now
	}
	ca := &CA{o: o, changed: make(chan struct{})}
	rootKey := newKey(t)
	ca.root = selfSign(t, rootKey, "weft test root")
	ca.rootPEM = pemCert(ca.root)
	ca.signer, ca.signKey = ca.root, rootKey
	if o.Intermediate {
		ik := newKey(t)
		ca.signer = sign(t, &x509.Certificate{Subject: pkix.Name{CommonName: "weft test intermediate"}, IsCA: true, BasicConstraintsValid: true,
			KeyUsage: x509.KeyUsageCertSign, NotBefore: o.Now().Add(-time.Hour), NotAfter: o.Now().Add(10 * 365 * 24 * time.Hour)}, &ik.PublicKey, ca.root, rootKey)
		ca.signKey = ik
		ca.interPEM = pemCert(ca.signer)
	}
	sk := newKey(t)
	serverCert := sign(t, &x509.Certificate{Subject: pkix.Name{CommonName: "weft-control"}, DNSNames: []string{"weft-control", "localhost"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour)}, &sk.PublicKey, ca.root, rootKey)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ca.addr = ln.Addr().String()
	ca.srv = grpc.NewServer(grpc.Creds(credentials.NewTLS(&tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{serverCert.Raw}, PrivateKey: sk}}, MinVersion: tls.VersionTLS12,
	})))
	pb.RegisterIstioCertificateServiceServer(ca.srv, service{ca: ca})
	done := make(chan struct{})
	go func() { defer close(done); ca.srv.Serve(ln) }()
	t.Cleanup(func() { ca.srv.Stop(); <-done })
	return ca
}

// Addr is the CA's host:port.
func (ca *CA) Addr() string { return ca.addr }

// RootPEM is the root certificate (what --ca-root names).
func (ca *CA) RootPEM() []byte { return ca.rootPEM }

// RootPool holds the root.
func (ca *CA) RootPool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.root)
	return p
}

// WriteRoot writes the root to a file in dir and returns its path.
func (ca *CA) WriteRoot(t testing.TB, dir string) string {
	t.Helper()
	p := filepath.Join(dir, "root-cert.pem")
	if err := os.WriteFile(p, ca.rootPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// SetDown makes every call fail with Unavailable (true) or succeed again.
func (ca *CA) SetDown(down bool) { ca.down.Store(down) }

// Requests is a copy of the calls so far.
func (ca *CA) Requests() []Request {
	ca.mu.Lock()
	defer ca.mu.Unlock()
	return append([]Request(nil), ca.requests...)
}

// WaitRequests waits until the CA has received at least n calls.
func (ca *CA) WaitRequests(t testing.TB, n int, timeout time.Duration) []Request {
	t.Helper()
	deadline := time.After(timeout)
	for {
		ca.mu.Lock()
		got, ch := len(ca.requests), ca.changed
		ca.mu.Unlock()
		if got >= n {
			return ca.Requests()
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("the CA received %d calls, want %d within %v", got, n, timeout)
		}
	}
}

func (ca *CA) record(r Request) {
	ca.mu.Lock()
	defer ca.mu.Unlock()
	ca.requests = append(ca.requests, r)
	close(ca.changed)
	ca.changed = make(chan struct{})
}

type service struct {
	pb.UnimplementedIstioCertificateServiceServer
	ca *CA
}

func (s service) CreateCertificate(ctx context.Context, req *pb.IstioCertificateRequest) (*pb.IstioCertificateResponse, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	resp, err := s.ca.create(md.Get("authorization"), req)
	s.ca.record(Request{Raw: req, Authorization: md.Get("authorization"), Answered: status.Code(err)})
	return resp, err
}

func (ca *CA) create(auth []string, req *pb.IstioCertificateRequest) (*pb.IstioCertificateResponse, error) {
	if ca.down.Load() {
		return nil, status.Error(codes.Unavailable, "test CA is down")
	}
	if len(auth) != 1 || len(auth[0]) <= len("Bearer ") || auth[0][:len("Bearer ")] != "Bearer " {
		return nil, status.Error(codes.Unauthenticated, "want one authorization: Bearer TOKEN")
	}
	token := auth[0][len("Bearer "):]
	b, _ := pem.Decode([]byte(req.GetCsr()))
	if b == nil || b.Type != "CERTIFICATE REQUEST" {
		return nil, status.Error(codes.InvalidArgument, "csr: not a PEM certificate request")
	}
	csr, err := x509.ParseCertificateRequest(b.Bytes)
	if err == nil {
		err = csr.CheckSignature()
	}
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "csr: %v", err)
	}
	if len(csr.URIs) != 1 {
		return nil, status.Error(codes.InvalidArgument, "csr: want exactly one URI SAN")
	}
	if len(ca.o.Tokens) > 0 {
		id, ok := ca.o.Tokens[token]
		if !ok {
			return nil, status.Error(codes.Unauthenticated, "unknown token")
		}
		if csr.URIs[0].String() != id {
			return nil, status.Errorf(codes.PermissionDenied, "the token is for %s, not %s", id, csr.URIs[0])
		}
	}
	ttl := time.Duration(req.GetValidityDuration()) * time.Second
	if ttl <= 0 {
		ttl = 24 * time.Hour
	}
	now := ca.o.Now()
	leaf, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{
		SerialNumber: big.NewInt(ca.serial.Add(1)), URIs: []*url.URL{csr.URIs[0]}, NotBefore: now, NotAfter: now.Add(ttl),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}, ca.signer, csr.PublicKey, ca.signKey)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "sign: %v", err)
	}
	chain := []string{string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leaf}))}
	if ca.interPEM != nil {
		chain = append(chain, string(ca.interPEM))
	}
	return &pb.IstioCertificateResponse{CertChain: append(chain, string(ca.rootPEM))}, nil
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func selfSign(t testing.TB, key *ecdsa.PrivateKey, cn string) *x509.Certificate {
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign, NotBefore: time.Now().Add(-100 * 24 * time.Hour), NotAfter: time.Now().Add(10 * 365 * 24 * time.Hour)}
	return sign(t, tmpl, &key.PublicKey, tmpl, key)
}

func sign(t testing.TB, tmpl *x509.Certificate, pub any, parent *x509.Certificate, key *ecdsa.PrivateKey) *x509.Certificate {
	t.Helper()
	if tmpl.SerialNumber == nil {
		tmpl.SerialNumber = big.NewInt(time.Now().UnixNano())
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, key)
	if err == nil {
		var c *x509.Certificate
		if c, err = x509.ParseCertificate(der); err == nil {
			return c
		}
	}
	t.Fatal(errors.Join(errors.New("agenttest: signing"), err))
	return nil
}

func pemCert(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}
