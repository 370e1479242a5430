package agent

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	secretv3 "github.com/envoyproxy/go-control-plane/envoy/service/secret/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/weftmesh/weft/internal/proxy/agent/agenttest"
	"github.com/weftmesh/weft/internal/proxy/agent/certs"
	"github.com/weftmesh/weft/internal/proxy/agent/sds"
)

// TestSecurityWithWeftCA: the agent against weft-control's real CA
// (internal/ca) over TLS with a minted bootstrap token: an SDS client on
// the socket gets `default` (a chain and key that match, with the
// workload's SPIFFE id, verified by the CA's root) and `ROOTCA` (the
// CA's root); a renewal (fake clock at half the lifetime) pushes
// version 2; Stop removes the socket.
func TestSecurityWithWeftCA(t *testing.T) {
	weft := agenttest.StartWeftCA(t, time.Hour)
	clock := agenttest.NewClock(time.Now())
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(weft.CA.RootPEM())
	socket := filepath.Join(t.TempDir(), "agent", "sds.sock")
	sec, err := StartSecurity(SecurityOptions{
		Certs: certs.Options{CAAddress: weft.Addr, RootCAs: roots, Token: certs.StaticToken(weft.Token(t, "shop", "web")),
			TrustDomain: "cluster.local", Namespace: "shop", ServiceAccount: "web", TTL: time.Hour, Clock: clock},
		SDSSocket: socket,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sec.Stop()

	conn, err := grpc.NewClient("unix://"+socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c := secretv3.NewSecretDiscoveryServiceClient(conn)
	def := subscribeSecret(t, ctx, c, sds.WorkloadSecret)
	root := subscribeSecret(t, ctx, c, sds.RootSecret)

	v, s := recvSecret(t, def, sds.WorkloadSecret)
	chain, key := s.GetTlsCertificate().GetCertificateChain().GetInlineBytes(), s.GetTlsCertificate().GetPrivateKey().GetInlineBytes()
	pair, err := tls.X509KeyPair(chain, key)
	if err != nil {
		t.Fatalf("default: chain and key do not match: %v", err)
	}
	leaf, _ := x509.ParseCertificate(pair.Certificate[0])
	if v != "1" || len(leaf.URIs) != 1 || leaf.URIs[0].String() != "spiffe://cluster.local/ns/shop/sa/web" {
		t.Errorf("default version %s URIs %v", v, leaf.URIs)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: weft.CA.Roots(), Intermediates: weft.CA.Intermediates(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		t.Errorf("default does not verify with the CA's root: %v", err)
	}
	_, r := recvSecret(t, root, sds.RootSecret)
	got, _ := pem.Decode(r.GetValidationContext().GetTrustedCa().GetInlineBytes())
	if got == nil || !weft.CA.Root().Equal(mustParse(t, got.Bytes)) {
		t.Error("ROOTCA is not the CA's root")
	}

	waits := clock.WaitAfterCalls(t, 1, 10*time.Second)
	clock.Advance(waits[0])
	if v2, s2 := recvSecret(t, def, sds.WorkloadSecret); v2 != "2" || string(s2.GetTlsCertificate().GetPrivateKey().GetInlineBytes()) == string(key) {
		t.Errorf("after the renewal: version %s (want 2, with a new key)", v2)
	}
	sec.Stop()
	if _, err := os.Lstat(socket); !os.IsNotExist(err) {
		t.Errorf("the SDS socket is still there after Stop: %v", err)
	}
	if _, err := def.Recv(); err == nil {
		t.Error("the SDS stream is still open after Stop")
	}
}

func mustParse(t *testing.T, der []byte) *x509.Certificate {
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

type secretStream = secretv3.SecretDiscoveryService_StreamSecretsClient

func subscribeSecret(t *testing.T, ctx context.Context, c secretv3.SecretDiscoveryServiceClient, name string) secretStream {
	t.Helper()
	s, err := c.StreamSecrets(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Send(&discoveryv3.DiscoveryRequest{Node: &corev3.Node{Id: "sidecar~1.2.3.4~a.shop~shop.svc.cluster.local"},
		TypeUrl: resource.SecretType, ResourceNames: []string{name}}); err != nil {
		t.Fatal(err)
	}
	return s
}

// recvSecret reads one response, ACKs it and returns its version and
// secret.
func recvSecret(t *testing.T, s secretStream, name string) (string, *tlsv3.Secret) {
	t.Helper()
	resp, err := s.Recv()
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if len(resp.GetResources()) != 1 {
		t.Fatalf("%s: %d resources", name, len(resp.GetResources()))
	}
	sec := &tlsv3.Secret{}
	if err := resp.GetResources()[0].UnmarshalTo(sec); err != nil || sec.GetName() != name {
		t.Fatalf("%s: got %q (%v)", name, sec.GetName(), err)
	}
	if err := s.Send(&discoveryv3.DiscoveryRequest{TypeUrl: resource.SecretType, ResourceNames: []string{name},
		VersionInfo: resp.GetVersionInfo(), ResponseNonce: resp.GetNonce()}); err != nil {
		t.Fatal(err)
	}
	return resp.GetVersionInfo(), sec
}
