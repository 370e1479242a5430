package ca

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	pb "istio.io/api/security/v1alpha1"
)

// serve starts the CSR service over TLS on loopback (port 0) and returns
// a client that verifies the server against the CA's root.
func serve(t *testing.T, c *CA, auth Authenticator) pb.IstioCertificateServiceClient {
	t.Helper()
	svc, err := NewService(ServiceOptions{CA: c, Authenticator: auth, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	sc, err := c.IssueServing(ServingOptions{DNSNames: []string{"weft-control"}})
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer(grpc.Creds(credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{*sc}, MinVersion: tls.VersionTLS12})))
	svc.Register(g)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- g.Serve(ln) }()
	t.Cleanup(func() {
		g.Stop()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	creds := credentials.NewTLS(&tls.Config{RootCAs: c.Roots(), ServerName: "weft-control"})
	cc, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return pb.NewIstioCertificateServiceClient(cc)
}

// withToken returns a context carrying "authorization: Bearer tok".
func withToken(t *testing.T, tok string) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	if tok == "" {
		return ctx
	}
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+tok)
}

// TestCreateCertificate: a caller with a token gets a certificate for its
// own identity, over TLS; the chain verifies; validity_duration is
// honoured up to the maximum.
func TestCreateCertificate(t *testing.T) {
	c := newTestCA(t, Options{MaxTTL: 2 * time.Hour})
	client := serve(t, c, nil)
	tok, err := c.Tokens().Mint(Identity{"shop", "cart"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	key := ecKey(t)
	tests := []struct {
		name     string
		csr      string
		validity int64
		ttl      time.Duration
	}{
		{"own identity", csrPEM(t, key, "spiffe://cluster.local/ns/shop/sa/cart"), 3600, time.Hour},
		{"no SAN asked", csrPEM(t, key), 0, 2 * time.Hour},
		{"capped", csrPEM(t, key), 86400, 2 * time.Hour},
	}
	for _, tt := range tests {
		start := time.Now()
		resp, err := client.CreateCertificate(withToken(t, tok), &pb.IstioCertificateRequest{Csr: tt.csr, ValidityDuration: tt.validity})
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		leaf := verifyChain(t, c, resp.GetCertChain())
		if len(leaf.URIs) != 1 || leaf.URIs[0].String() != "spiffe://cluster.local/ns/shop/sa/cart" {
			t.Errorf("%s: URIs %v", tt.name, leaf.URIs)
		}
		if !key.PublicKey.Equal(leaf.PublicKey) {
			t.Errorf("%s: the leaf does not carry the CSR's key", tt.name)
		}
		// Tolerance: the test's run time plus NotAfter's second precision.
		if d := leaf.NotAfter.Sub(start.Add(tt.ttl)); d < -time.Second || d > 5*time.Second {
			t.Errorf("%s: NotAfter is %v off now+%v", tt.name, d, tt.ttl)
		}
	}
}

// TestCreateCertificateRefused: each refusal has its gRPC code and a
// message that says why.
func TestCreateCertificateRefused(t *testing.T) {
	var clk clock
	c := newTestCA(t, Options{Now: clk.now})
	client := serve(t, c, nil)
	good, err := c.Tokens().Mint(Identity{"a", "web"}, 10*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	short, err := c.Tokens().Mint(Identity{"a", "web"}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	forged, err := testKey(t, 9, nil).Mint(Identity{"a", "web"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	key := ecKey(t)
	mine := csrPEM(t, key, "spiffe://cluster.local/ns/a/sa/web")
	clk.advance(2 * time.Minute) // short has expired, good has not
	tests := []struct {
		name     string
		tok, csr string
		validity int64
		code     codes.Code
		want     string
	}{
		{"no token", "", mine, 0, codes.Unauthenticated, "no credentials"},
		{"expired token", short, mine, 0, codes.Unauthenticated, "expired"},
		{"forged token", forged, mine, 0, codes.Unauthenticated, "signature does not match"},
		{"garbage token", "hello", mine, 0, codes.Unauthenticated, "malformed"},
		{"other namespace", good, csrPEM(t, key, "spiffe://cluster.local/ns/b/sa/web"), 0, codes.PermissionDenied, "can only obtain a certificate for its own identity"},
		{"other service account", good, csrPEM(t, key, "spiffe://cluster.local/ns/a/sa/db"), 0, codes.PermissionDenied, `authenticated as "spiffe://cluster.local/ns/a/sa/web"`},
		{"other trust domain", good, csrPEM(t, key, "spiffe://evil.org/ns/a/sa/web"), 0, codes.PermissionDenied, "own identity"},
		{"own and another", good, csrPEM(t, key, "spiffe://cluster.local/ns/a/sa/web", "spiffe://cluster.local/ns/b/sa/web"), 0, codes.PermissionDenied, "ns/b/sa/web"},
		{"malformed CSR", good, "not a csr", 0, codes.InvalidArgument, "not PEM"},
		{"empty CSR", good, "", 0, codes.InvalidArgument, "empty"},
		{"negative validity", good, mine, -5, codes.InvalidArgument, "validity_duration"},
	}
	for _, tt := range tests {
		_, err := client.CreateCertificate(withToken(t, tt.tok), &pb.IstioCertificateRequest{Csr: tt.csr, ValidityDuration: tt.validity})
		st := status.Convert(err)
		if st.Code() != tt.code || !strings.Contains(st.Message(), tt.want) {
			t.Errorf("%s: %v %q, want %v containing %q", tt.name, st.Code(), st.Message(), tt.code, tt.want)
		}
		if tt.tok != "" && strings.Contains(st.Message(), tt.tok) {
			t.Errorf("%s: the error message contains the token", tt.name)
		}
	}
}

// failingAuth is an authenticator that cannot decide.
type failingAuth struct{}

func (failingAuth) Authenticate(context.Context) (Identity, error) {
	return Identity{}, errors.New("token review: connection refused")
}

// TestAuthenticatorUnavailable: an authenticator's own failure is
// Unavailable, not Unauthenticated.
func TestAuthenticatorUnavailable(t *testing.T) {
	c := newTestCA(t, Options{})
	client := serve(t, c, failingAuth{})
	_, err := client.CreateCertificate(withToken(t, "x"), &pb.IstioCertificateRequest{Csr: csrPEM(t, ecKey(t))})
	if st := status.Convert(err); st.Code() != codes.Unavailable || !strings.Contains(st.Message(), "connection refused") {
		t.Fatalf("%v %q, want Unavailable", st.Code(), st.Message())
	}
}

// TestBearerToken: the metadata forms accepted and refused.
func TestBearerToken(t *testing.T) {
	for _, tt := range []struct {
		vals []string
		want string
		ok   bool
	}{
		{[]string{"Bearer abc"}, "abc", true},
		{[]string{"bearer   abc "}, "abc", true},
		{[]string{"Basic abc"}, "", false},
		{[]string{"Bearer"}, "", false},
		{[]string{"Bearer a", "Bearer b"}, "", false},
		{nil, "", false},
	} {
		md := metadata.MD{}
		if tt.vals != nil {
			md["authorization"] = tt.vals
		}
		got, err := BearerToken(metadata.NewIncomingContext(context.Background(), md))
		if got != tt.want || (err == nil) != tt.ok || (err != nil && !errors.Is(err, ErrUnauthenticated)) {
			t.Errorf("%q: %q, %v", tt.vals, got, err)
		}
	}
}
