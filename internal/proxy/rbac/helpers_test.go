package rbac

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net/netip"
	"net/url"
	"testing"
	"time"

	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/weftmesh/weft/internal/proxy/headers"
	"github.com/weftmesh/weft/internal/proxy/network"
)

// peerCert returns a parsed self-signed certificate carrying uri as its
// URI SAN (a workload identity), as the TLS transport socket would leave
// in network.Conn.TLS.PeerCertificates.
func peerCert(t testing.TB, uri string) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(uri)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "workload"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		URIs:         []*url.URL{u},
		DNSNames:     []string{"workload.example"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// connOpts describe a test connection.
type connOpts struct {
	remote, local string // "ip:port"
	sni           string
	cert          *x509.Certificate // nil: plaintext
}

func testConn(o connOpts) *network.Conn {
	c := &network.Conn{ServerName: o.sni}
	if o.remote == "" {
		o.remote = "10.1.2.3:40000"
	}
	if o.local == "" {
		o.local = "10.0.0.1:8000"
	}
	c.Remote = netip.MustParseAddrPort(o.remote)
	c.Local = netip.MustParseAddrPort(o.local)
	if o.cert != nil {
		c.TLS = &tls.ConnectionState{PeerCertificates: []*x509.Certificate{o.cert}}
	}
	return c
}

// testReq builds request headers: method, path, authority, then name/value
// pairs.
func testReq(method, path, authority string, kv ...string) *headers.Request {
	r := &headers.Request{Method: []byte(method), Path: []byte(path), Authority: []byte(authority), Scheme: []byte("http")}
	for i := 0; i+1 < len(kv); i += 2 {
		r.Add(kv[i], kv[i+1])
	}
	return r
}

// mustRBAC decodes an envoy.config.rbac.v3.RBAC from JSON.
func mustRBAC(t testing.TB, js string) *rbacv3.RBAC {
	t.Helper()
	var cfg rbacv3.RBAC
	if err := protojson.Unmarshal([]byte(js), &cfg); err != nil {
		t.Fatalf("decode %s: %v", js, err)
	}
	if err := cfg.ValidateAll(); err != nil {
		t.Fatalf("PGV %s: %v", js, err)
	}
	return &cfg
}

// mustEngine compiles a configuration.
func mustEngine(t testing.TB, js string) *Engine {
	t.Helper()
	e, err := Compile(mustRBAC(t, js))
	if err != nil {
		t.Fatalf("compile %s: %v", js, err)
	}
	return e
}

// fakeWriter records a response (httpfilter.ResponseWriter).
type fakeWriter struct {
	status int
	hdr    headers.Map
	body   bytes.Buffer
	sent   bool
	done   bool
}

func (w *fakeWriter) WriteHeaders(h *headers.Response, end bool) error {
	w.status, w.sent, w.done = h.Status, true, end
	w.hdr.CopyFrom(&h.Map)
	return nil
}
func (w *fakeWriter) Write(p []byte) (int, error) { return w.body.Write(p) }
func (w *fakeWriter) Flush() error                { return nil }
func (w *fakeWriter) Finish(*headers.Map) error   { w.done = true; return nil }
func (w *fakeWriter) HeadersSent() bool           { return w.sent }
func (w *fakeWriter) Abort()                      {}
