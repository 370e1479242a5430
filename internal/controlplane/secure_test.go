package controlplane

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"io"
	"log/slog"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	pb "istio.io/api/security/v1alpha1"

	"github.com/weftmesh/weft/internal/ca"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// startSecure runs a control plane with the secure port on loopback and
// returns it.
func startSecure(t *testing.T) *ControlPlane {
	t.Helper()
	cp, err := New(Options{
		ConfigDir:     t.TempDir(),
		XDSAddress:    "127.0.0.1:0",
		HTTPAddress:   "127.0.0.1:0",
		SecureAddress: "127.0.0.1:0",
		CA:            ca.Options{Dir: t.TempDir(), MaxTTL: time.Hour},
		Logger:        quiet,
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- cp.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return cp
}

// dial connects to the secure port, verifying the server against roots
// under serverName.
func dial(t *testing.T, cp *ControlPlane, roots *x509.CertPool, serverName string) *grpc.ClientConn {
	t.Helper()
	creds := credentials.NewTLS(&tls.Config{RootCAs: roots, ServerName: serverName})
	cc, err := grpc.NewClient(cp.SecureAddr().String(), grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// csr returns a PEM CSR for a new P-256 key.
func csr(t *testing.T) string {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, k)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
}

// TestSecurePort: one TLS gRPC server answers both a CSR and ADS, and
// the client verifies it with the mesh root under each of its names.
func TestSecurePort(t *testing.T) {
	cp := startSecure(t)
	if cp.CA() == nil || cp.SecureAddr() == nil {
		t.Fatal("no CA or secure address")
	}
	for _, name := range []string{"weft-control", "istiod.istio-system.svc", "localhost", "127.0.0.1"} {
		cc := dial(t, cp, cp.CA().Roots(), name)

		tok, err := cp.CA().Tokens().Mint(ca.Identity{Namespace: "default", ServiceAccount: "web"}, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		ctx := metadata.AppendToOutgoingContext(testCtx(t), "authorization", "Bearer "+tok)
		resp, err := pb.NewIstioCertificateServiceClient(cc).CreateCertificate(ctx, &pb.IstioCertificateRequest{Csr: csr(t)})
		if err != nil {
			t.Fatalf("%s: CreateCertificate: %v", name, err)
		}
		if n := len(resp.GetCertChain()); n != 2 || !strings.Contains(resp.GetCertChain()[1], string(cp.CA().RootPEM())) {
			t.Fatalf("%s: chain of %d certificates, want leaf and the root", name, n)
		}

		stream, err := discoveryv3.NewAggregatedDiscoveryServiceClient(cc).StreamAggregatedResources(testCtx(t))
		if err != nil {
			t.Fatal(err)
		}
		const cds = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
		if err := stream.Send(&discoveryv3.DiscoveryRequest{
			Node:    &corev3.Node{Id: "sidecar~10.0.0.1~web-1.default~default.svc.cluster.local"},
			TypeUrl: cds,
		}); err != nil {
			t.Fatal(err)
		}
		r, err := stream.Recv()
		if err != nil {
			t.Fatalf("%s: ADS: %v", name, err)
		}
		if r.GetTypeUrl() != cds || r.GetVersionInfo() == "" {
			t.Fatalf("%s: ADS answered type %q version %q", name, r.GetTypeUrl(), r.GetVersionInfo())
		}
		stream.CloseSend()
	}
}

// TestSecurePortUntrusted: a client that does not trust the mesh root
// fails the handshake.
func TestSecurePortUntrusted(t *testing.T) {
	cp := startSecure(t)
	cc := dial(t, cp, x509.NewCertPool(), "weft-control")
	_, err := pb.NewIstioCertificateServiceClient(cc).CreateCertificate(testCtx(t), &pb.IstioCertificateRequest{Csr: csr(t)})
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("CreateCertificate through an untrusted server: %v, want a certificate verification error", err)
	}
}

// TestSecurePortRenewal: a renewed certificate is served to new
// handshakes, while established connections go on.
func TestSecurePortRenewal(t *testing.T) {
	cp := startSecure(t)
	serial := func() string {
		conn, err := tls.Dial("tcp", cp.SecureAddr().String(), &tls.Config{RootCAs: cp.CA().Roots(), ServerName: "weft-control", NextProtos: []string{"h2"}})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].SerialNumber.String()
	}
	cc := dial(t, cp, cp.CA().Roots(), "weft-control")
	client := pb.NewIstioCertificateServiceClient(cc)
	tok, err := cp.CA().Tokens().Mint(ca.Identity{Namespace: "default", ServiceAccount: "web"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	call := func() error {
		ctx := metadata.AppendToOutgoingContext(testCtx(t), "authorization", "Bearer "+tok)
		_, err := client.CreateCertificate(ctx, &pb.IstioCertificateRequest{Csr: csr(t)})
		return err
	}
	if err := call(); err != nil {
		t.Fatal(err)
	}
	before := serial()
	if err := cp.secure.renew(); err != nil {
		t.Fatal(err)
	}
	if after := serial(); after == before {
		t.Fatalf("serial %s served after renewal, want a new one", after)
	}
	if err := call(); err != nil {
		t.Fatalf("the established connection failed after renewal: %v", err)
	}
}

// TestRenewalDelay: renewal at half the lifetime counted from issuance
// (not from the backdated NotBefore), never negative.
func TestRenewalDelay(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	leaf := &x509.Certificate{NotBefore: start.Add(-time.Minute), NotAfter: start.Add(24 * time.Hour)}
	short := &x509.Certificate{NotBefore: start.Add(-time.Minute), NotAfter: start.Add(10 * time.Second)}
	for _, tt := range []struct {
		leaf *x509.Certificate
		now  time.Time
		want time.Duration
	}{
		{leaf, start, 12 * time.Hour},
		{leaf, start.Add(11 * time.Hour), time.Hour},
		{leaf, start.Add(13 * time.Hour), 0},
		{short, start, 5 * time.Second}, // a 10 s certificate is renewed after 5 s, not at once
	} {
		if got := renewalDelay(tt.leaf, start, tt.now); got != tt.want {
			t.Errorf("at %v: %v, want %v", tt.now, got, tt.want)
		}
	}
}

// TestNoSecurePort: without SecureAddress there is no CA and no port
// (the behaviour before the CA).
func TestNoSecurePort(t *testing.T) {
	cp, err := New(Options{ConfigDir: t.TempDir(), XDSAddress: "127.0.0.1:0", HTTPAddress: "127.0.0.1:0", Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	if cp.CA() != nil || cp.SecureAddr() != nil {
		t.Fatal("a CA without SecureAddress")
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- cp.Run(ctx) }()
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestSecurePortBadCA: a CA problem fails New and releases the ports.
func TestSecurePortBadCA(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	_, err = New(Options{ConfigDir: t.TempDir(), XDSAddress: addr, HTTPAddress: "127.0.0.1:0", SecureAddress: "127.0.0.1:0", Logger: quiet,
		CA: ca.Options{Dir: t.TempDir(), TrustDomain: "Not Valid"}})
	if err == nil || !strings.Contains(err.Error(), "trust domain") {
		t.Fatalf("New: %v, want a trust domain error", err)
	}
	ln, err = net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("the xDS port was not released: %v", err)
	}
	ln.Close()
}

// TestServingNamesFollowNamespace: the secure port's certificate names
// weft-control's Service in its own namespace (weft install -n NS), which
// the injected sidecars and the chart's gateway dial.
func TestServingNamesFollowNamespace(t *testing.T) {
	names := servingOptions("mesh-system").DNSNames
	for _, want := range []string{"weft-control.mesh-system.svc", "weft-control.mesh-system.svc.cluster.local", "localhost"} {
		if !slices.Contains(names, want) {
			t.Errorf("names %v lack %s", names, want)
		}
	}
	if slices.Contains(names, "weft-control.istio-system.svc") {
		t.Errorf("names %v still name istio-system", names)
	}
}
