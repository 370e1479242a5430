package certs

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"os"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	pb "istio.io/api/security/v1alpha1"

	"github.com/weftmesh/weft/internal/proxy/agent/agenttest"
)

func TestRotateDelay(t *testing.T) {
	created := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	expires := created.Add(24 * time.Hour)
	for _, tc := range []struct {
		name       string
		now        time.Time
		ratio, jit float64
		r01        float64
		positive   bool
		want       time.Duration
	}{
		{"half_no_jitter", created, 0.5, 0, 0.3, true, 12 * time.Hour},
		{"jitter_plus_one_percent", created, 0.5, 0.01, 1, true, 12*time.Hour - 864*time.Second}, // grace 0.51
		{"jitter_minus_one_percent", created, 0.5, 0.01, 1, false, 12*time.Hour + 864*time.Second},
		{"later_now", created.Add(time.Hour), 0.5, 0, 0, true, 11 * time.Hour},
		{"past_due", created.Add(20 * time.Hour), 0.5, 0, 0, true, 0},
		{"clamped_to_1", created, 0.99, 0.5, 1, true, 0},
		{"clamped_to_0", created, 0.01, 0.5, 1, false, 24 * time.Hour},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := rotateDelay(tc.now, created, expires, tc.ratio, tc.jit, tc.r01, tc.positive); got != tc.want {
				t.Errorf("rotateDelay = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestNewSecretRejects: answers the manager must not publish.
func TestNewSecretRejects(t *testing.T) {
	clock := agenttest.NewClock(time.Now())
	ca := agenttest.StartCA(t, agenttest.CAOptions{Now: clock.Now})
	other := agenttest.StartCA(t, agenttest.CAOptions{Now: clock.Now})
	id := SPIFFEID("cluster.local", "shop", "web")
	key, csr, err := newKeyAndCSR(id)
	if err != nil {
		t.Fatal(err)
	}
	chain := sign(t, ca, csr)
	otherRoot := sign(t, other, csr)[1]
	wrongKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if _, err := newSecret(chain, key, id, clock.Now()); err != nil {
		t.Fatalf("a good answer was refused: %v", err)
	}
	for _, tc := range []struct {
		name, want string
		chain      []string
		key        *ecdsa.PrivateKey
		id         string
		now        time.Time
	}{
		{"leaf_only", "1 element", chain[:1], key, id.String(), clock.Now()},
		{"not_pem", "no PEM certificate", []string{chain[0], "junk"}, key, id.String(), clock.Now()},
		{"other_key", "public key", chain, wrongKey, id.String(), clock.Now()},
		{"other_identity", "URI SAN", chain, key, "spiffe://cluster.local/ns/shop/sa/admin", clock.Now()},
		{"other_root", "does not chain", []string{chain[0], otherRoot}, key, id.String(), clock.Now()},
		{"expired", "expired", chain, key, id.String(), clock.Now().Add(25 * time.Hour)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := SPIFFEID("cluster.local", "shop", "web")
			if tc.id != want.String() {
				want = SPIFFEID("cluster.local", "shop", "admin")
			}
			_, err := newSecret(tc.chain, tc.key, want, tc.now)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("newSecret = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// sign asks ca for a certificate over gRPC (TLS, bearer token).
func sign(t *testing.T, ca *agenttest.CA, csr []byte) []string {
	t.Helper()
	conn, err := grpc.NewClient(ca.Addr(),
		grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: ca.RootPool(), ServerName: "127.0.0.1"})),
		grpc.WithPerRPCCredentials(bearer{src: StaticToken("t")}))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	resp, err := pb.NewIstioCertificateServiceClient(conn).CreateCertificate(context.Background(), &pb.IstioCertificateRequest{Csr: string(csr), ValidityDuration: 86400})
	if err != nil {
		t.Fatal(err)
	}
	return resp.GetCertChain()
}

func TestTokenSources(t *testing.T) {
	ctx := context.Background()
	if _, err := StaticToken("")(ctx); err == nil {
		t.Error("an empty static token was accepted")
	}
	path := t.TempDir() + "/tok"
	if _, err := FileToken(path)(ctx); err == nil {
		t.Error("a missing token file was accepted")
	}
	os.WriteFile(path, []byte(" \n"), 0o600)
	if _, err := FileToken(path)(ctx); err == nil || strings.Contains(err.Error(), "\n") {
		t.Errorf("blank token file: %v", err)
	}
	os.WriteFile(path, []byte("abc\n"), 0o600)
	md, err := bearer{src: FileToken(path)}.GetRequestMetadata(ctx)
	if err != nil || md["authorization"] != "Bearer abc" {
		t.Errorf("metadata %v, %v", md, err)
	}
	if !(bearer{}).RequireTransportSecurity() {
		t.Error("the token must only travel over TLS")
	}
}

func TestOptionsCheck(t *testing.T) {
	ok := Options{CAAddress: "127.0.0.1:15012", RootCAs: agenttestPool(t), Token: StaticToken("t"), TrustDomain: "cluster.local", Namespace: "a", ServiceAccount: "b"}
	if _, err := New(ok); err != nil {
		t.Fatalf("valid options refused: %v", err)
	}
	for _, tc := range []struct {
		name, want string
		mod        func(*Options)
	}{
		{"no_port", "want host:port", func(o *Options) { o.CAAddress = "ca" }},
		{"no_roots", "CA root", func(o *Options) { o.RootCAs = nil }},
		{"no_token", "token", func(o *Options) { o.Token = nil }},
		{"slash_in_sa", "service account", func(o *Options) { o.ServiceAccount = "a/b" }},
		{"empty_ns", "namespace", func(o *Options) { o.Namespace = "" }},
		{"ratio", "grace ratio", func(o *Options) { o.GraceRatio = 1.5 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := ok
			tc.mod(&o)
			if _, err := New(o); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("New = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func agenttestPool(t *testing.T) *x509.CertPool {
	return agenttest.StartCA(t, agenttest.CAOptions{}).RootPool()
}
