package agenttest

import (
	"crypto/tls"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/weftmesh/weft/internal/ca"
)

// WeftCA is weft-control's own CA (internal/ca) serving its
// IstioCertificateService over TLS on loopback, as weft-control's secure
// port does.
type WeftCA struct {
	CA   *ca.CA
	Addr string
}

// StartWeftCA creates a CA in a temporary directory and serves its CSR
// service on 127.0.0.1:0 with a serving certificate it issued (SANs
// 127.0.0.1 and localhost); it stops with the test.
func StartWeftCA(t testing.TB, maxTTL time.Duration) *WeftCA {
	t.Helper()
	authority, err := ca.New(ca.Options{Dir: t.TempDir(), MaxTTL: maxTTL})
	if err != nil {
		t.Fatal(err)
	}
	serving, err := authority.IssueServing(ca.ServingOptions{DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := ca.NewService(ca.ServiceOptions{CA: authority})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer(grpc.Creds(credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{*serving}, MinVersion: tls.VersionTLS12})))
	svc.Register(g)
	done := make(chan struct{})
	go func() { defer close(done); g.Serve(ln) }()
	t.Cleanup(func() { g.Stop(); <-done })
	return &WeftCA{CA: authority, Addr: ln.Addr().String()}
}

// Token mints a bootstrap token for namespace/serviceAccount.
func (w *WeftCA) Token(t testing.TB, namespace, serviceAccount string) string {
	t.Helper()
	tok, err := w.CA.Tokens().Mint(ca.Identity{Namespace: namespace, ServiceAccount: serviceAccount}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}
