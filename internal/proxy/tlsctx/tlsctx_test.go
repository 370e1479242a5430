package tlsctx_test

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/weftmesh/weft/internal/proxy/tlsctx"
	"github.com/weftmesh/weft/internal/proxy/tlsctx/tlsctxtest"
)

func inline(b []byte) *corev3.DataSource {
	return &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: b}}
}

func certOf(l *tlsctxtest.Leaf) *tlsv3.TlsCertificate {
	return &tlsv3.TlsCertificate{CertificateChain: inline(l.CertPEM), PrivateKey: inline(l.KeyPEM)}
}

func exact(s string) *matcherv3.StringMatcher {
	return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: s}}
}

func uriSAN(m *matcherv3.StringMatcher) *tlsv3.SubjectAltNameMatcher {
	return &tlsv3.SubjectAltNameMatcher{SanType: tlsv3.SubjectAltNameMatcher_URI, Matcher: m}
}

var sdsSource = &corev3.ConfigSource{ConfigSourceSpecifier: &corev3.ConfigSource_ApiConfigSource{ApiConfigSource: &corev3.ApiConfigSource{
	ApiType:      corev3.ApiConfigSource_GRPC,
	GrpcServices: []*corev3.GrpcService{{TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{ClusterName: "sds-grpc"}}}},
}}}

type pki struct {
	ca, other      *tlsctxtest.CA
	server, client *tlsctxtest.Leaf
	rogue          *tlsctxtest.Leaf // issued by another CA
}

func newPKI(t *testing.T) *pki {
	ca := tlsctxtest.NewCA(t, "root")
	other := tlsctxtest.NewCA(t, "other")
	return &pki{
		ca: ca, other: other,
		server: ca.Issue(t, tlsctxtest.LeafOptions{URIs: []string{"spiffe://cluster.local/ns/default/sa/server"}, DNS: []string{"*.example.com"}}),
		client: ca.Issue(t, tlsctxtest.LeafOptions{CommonName: "client", URIs: []string{"spiffe://cluster.local/ns/default/sa/client"}}),
		rogue:  other.Issue(t, tlsctxtest.LeafOptions{URIs: []string{"spiffe://cluster.local/ns/default/sa/client"}}),
	}
}

// handshake runs both sides over a loopback TCP connection and returns
// the client's and the server's errors and states.
func handshake(t *testing.T, srv *tls.Config, cl *tlsctx.Client) (cerr, serr error, cs, ss tls.ConnectionState) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		c, err := ln.Accept()
		if err != nil {
			serr = err
			return
		}
		defer c.Close()
		tc := tls.Server(c, srv)
		c.SetDeadline(time.Now().Add(5 * time.Second))
		serr = tc.Handshake()
		ss = tc.ConnectionState()
		if serr == nil {
			tc.Read(make([]byte, 1)) // TLS 1.3: the client's certificate is verified by now
			tc.Write([]byte{1})
		}
	}()
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	tc, cerr := cl.Handshake(ctx, conn)
	if cerr == nil {
		tc.Write([]byte{0})
		tc.SetReadDeadline(time.Now().Add(5 * time.Second))
		tc.Read(make([]byte, 1)) // processes the session tickets
		cs = tc.ConnectionState()
		tc.Close()
	}
	wg.Wait()
	return cerr, serr, cs, ss
}

func TestMutualTLSAndSANMatching(t *testing.T) {
	p := newPKI(t)
	serverCtx := &tlsv3.DownstreamTlsContext{
		RequireClientCertificate: wrapperspb.Bool(true),
		CommonTlsContext: &tlsv3.CommonTlsContext{
			TlsCertificates:       []*tlsv3.TlsCertificate{certOf(p.server)},
			ValidationContextType: &tlsv3.CommonTlsContext_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{TrustedCa: inline(p.ca.CertPEM)}},
			AlpnProtocols:         []string{"h2", "http/1.1"},
		},
	}
	srv, err := tlsctx.NewServer(serverCtx, tlsctx.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name      string
		cert      *tlsctxtest.Leaf
		sans      []*tlsv3.SubjectAltNameMatcher
		legacy    []*matcherv3.StringMatcher
		alpn      []string
		wantErr   string // client side
		serverErr bool
		wantALPN  string
	}{
		{name: "uri exact", cert: p.client, sans: []*tlsv3.SubjectAltNameMatcher{uriSAN(exact("spiffe://cluster.local/ns/default/sa/server"))}, alpn: []string{"h2"}, wantALPN: "h2"},
		{name: "uri prefix", cert: p.client, sans: []*tlsv3.SubjectAltNameMatcher{uriSAN(&matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: "spiffe://cluster.local/ns/default/"}})}},
		{name: "uri mismatch", cert: p.client, sans: []*tlsv3.SubjectAltNameMatcher{uriSAN(exact("spiffe://cluster.local/ns/default/sa/other"))}, wantErr: "SAN does not match"},
		{name: "dns wildcard SAN matches exact", cert: p.client, sans: []*tlsv3.SubjectAltNameMatcher{{SanType: tlsv3.SubjectAltNameMatcher_DNS, Matcher: exact("api.example.com")}}},
		{name: "dns type does not look at URIs", cert: p.client, sans: []*tlsv3.SubjectAltNameMatcher{{SanType: tlsv3.SubjectAltNameMatcher_DNS, Matcher: exact("spiffe://cluster.local/ns/default/sa/server")}}, wantErr: "SAN does not match"},
		{name: "deprecated any-type matcher", cert: p.client, legacy: []*matcherv3.StringMatcher{{MatchPattern: &matcherv3.StringMatcher_Suffix{Suffix: "/sa/SERVER"}, IgnoreCase: true}}},
		{name: "no client certificate", cert: nil, serverErr: true},
		{name: "client certificate of another CA", cert: p.rogue, serverErr: true},
		{name: "ALPN without overlap goes on without ALPN", cert: p.client, alpn: []string{"istio-peer-exchange", "istio"}, wantALPN: ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cc := &tlsv3.CommonTlsContext{
				ValidationContextType: &tlsv3.CommonTlsContext_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
					TrustedCa: inline(p.ca.CertPEM), MatchTypedSubjectAltNames: tc.sans, MatchSubjectAltNames: tc.legacy,
				}},
				AlpnProtocols: tc.alpn,
			}
			if tc.cert != nil {
				cc.TlsCertificates = []*tlsv3.TlsCertificate{certOf(tc.cert)}
			}
			cl, err := tlsctx.NewClient(&tlsv3.UpstreamTlsContext{CommonTlsContext: cc, Sni: "server.example.com"}, tlsctx.Options{})
			if err != nil {
				t.Fatal(err)
			}
			cerr, serr, cs, ss := handshake(t, srv.Config(), cl)
			switch {
			case tc.wantErr != "":
				if cerr == nil || !strings.Contains(cerr.Error(), tc.wantErr) || !strings.HasPrefix(cerr.Error(), "TLS error: ") {
					t.Fatalf("client error = %v, want one containing %q", cerr, tc.wantErr)
				}
			case tc.serverErr:
				if serr == nil {
					t.Fatalf("server accepted the client")
				}
			default:
				if cerr != nil || serr != nil {
					t.Fatalf("handshake: client %v, server %v", cerr, serr)
				}
				if cs.NegotiatedProtocol != tc.wantALPN {
					t.Errorf("ALPN = %q, want %q", cs.NegotiatedProtocol, tc.wantALPN)
				}
				if ss.ServerName != "server.example.com" {
					t.Errorf("SNI = %q", ss.ServerName)
				}
				if got := ss.PeerCertificates[0].URIs[0].String(); got != "spiffe://cluster.local/ns/default/sa/client" {
					t.Errorf("server saw peer %q", got)
				}
			}
		})
	}
}

// TestSDSRotation: secrets read through the store apply to the next
// handshake; a missing secret fails the handshake.
func TestSDSRotation(t *testing.T) {
	p := newPKI(t)
	store := tlsctx.NewStore()
	sds := func(name string) *tlsv3.SdsSecretConfig {
		return &tlsv3.SdsSecretConfig{Name: name, SdsConfig: sdsSource}
	}
	srv, err := tlsctx.NewServer(&tlsv3.DownstreamTlsContext{
		RequireClientCertificate: wrapperspb.Bool(true),
		CommonTlsContext: &tlsv3.CommonTlsContext{
			TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{sds("default")},
			ValidationContextType: &tlsv3.CommonTlsContext_CombinedValidationContext{CombinedValidationContext: &tlsv3.CommonTlsContext_CombinedCertificateValidationContext{
				DefaultValidationContext:         &tlsv3.CertificateValidationContext{MatchTypedSubjectAltNames: []*tlsv3.SubjectAltNameMatcher{uriSAN(exact("spiffe://cluster.local/ns/default/sa/client"))}},
				ValidationContextSdsSecretConfig: sds("ROOTCA"),
			}},
		},
	}, tlsctx.Options{Secrets: store})
	if err != nil {
		t.Fatal(err)
	}
	if refs := srv.SecretRefs(); len(refs) != 2 || refs[0].Name != "default" || refs[1].Cluster() != "sds-grpc" {
		t.Fatalf("SecretRefs = %+v", refs)
	}
	cl, err := tlsctx.NewClient(&tlsv3.UpstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{
		TlsCertificates: []*tlsv3.TlsCertificate{certOf(p.client)},
		ValidationContextType: &tlsv3.CommonTlsContext_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
			TrustedCa: inline(p.ca.CertPEM)}},
	}}, tlsctx.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if cerr, _, _, _ := handshake(t, srv.Config(), cl); cerr == nil {
		t.Fatal("handshake succeeded without the server's secret")
	}
	setSecrets := func(leaf *tlsctxtest.Leaf) {
		for name, sec := range map[string]*tlsv3.Secret{
			"default": {Name: "default", Type: &tlsv3.Secret_TlsCertificate{TlsCertificate: certOf(leaf)}},
			"ROOTCA":  {Name: "ROOTCA", Type: &tlsv3.Secret_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{TrustedCa: inline(p.ca.CertPEM)}}},
		} {
			c, err := tlsctx.CompileSecret(sec)
			if err != nil {
				t.Fatal(err)
			}
			store.Set(name, c)
		}
	}
	setSecrets(p.server)
	_, _, cs, _ := handshake(t, srv.Config(), cl)
	if len(cs.PeerCertificates) == 0 || cs.PeerCertificates[0].SerialNumber.Cmp(p.server.Cert.SerialNumber) != 0 {
		t.Fatal("the server did not present the SDS certificate")
	}
	rotated := p.ca.Issue(t, tlsctxtest.LeafOptions{URIs: []string{"spiffe://cluster.local/ns/default/sa/server"}})
	setSecrets(rotated)
	_, _, cs, _ = handshake(t, srv.Config(), cl)
	if len(cs.PeerCertificates) == 0 || cs.PeerCertificates[0].SerialNumber.Cmp(rotated.Cert.SerialNumber) != 0 {
		t.Fatal("the next handshake did not use the rotated certificate")
	}
}

func TestCompileErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		ctx  *tlsv3.DownstreamTlsContext
		want string
	}{
		{"no certificate", &tlsv3.DownstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{}}, "a certificate is required"},
		{"bad file", &tlsv3.DownstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{TlsCertificates: []*tlsv3.TlsCertificate{{
			CertificateChain: &corev3.DataSource{Specifier: &corev3.DataSource_Filename{Filename: "/nonexistent/cert.pem"}},
			PrivateKey:       inline([]byte("x")),
		}}}}, "common_tls_context.tls_certificates[0].certificate_chain: filename"},
		{"sds without source", &tlsv3.DownstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{
			TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{{Name: "default"}}}}, "sds_config: required"},
		{"require client cert without CA", &tlsv3.DownstreamTlsContext{RequireClientCertificate: wrapperspb.Bool(true), CommonTlsContext: &tlsv3.CommonTlsContext{
			TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{{Name: "default", SdsConfig: sdsSource}}}}, "require_client_certificate"},
		{"bad cipher", &tlsv3.DownstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{
			TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{{Name: "default", SdsConfig: sdsSource}},
			TlsParams:                      &tlsv3.TlsParameters{CipherSuites: []string{"RC4-MD5"}}}}, "cipher_suites[0]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tlsctx.NewServer(tc.ctx, tlsctx.Options{Secrets: tlsctx.NewStore()})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
	if _, err := tlsctx.CompileSecret(&tlsv3.Secret{Name: "x"}); err == nil {
		t.Fatal("an empty secret compiled")
	}
	var fe interface{ Unwrap() error }
	_, err := tlsctx.NewServer(&tlsv3.DownstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{TlsCertificates: []*tlsv3.TlsCertificate{{}}}}, tlsctx.Options{})
	if !errors.As(err, &fe) {
		t.Fatalf("error %v does not wrap its cause", err)
	}
}

// TestClientSessionResumption: a second connection of the same client
// resumes the session.
func TestClientSessionResumption(t *testing.T) {
	p := newPKI(t)
	srv, err := tlsctx.NewServer(&tlsv3.DownstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{
		TlsCertificates: []*tlsv3.TlsCertificate{certOf(p.server)}}}, tlsctx.Options{})
	if err != nil {
		t.Fatal(err)
	}
	cl, err := tlsctx.NewClient(&tlsv3.UpstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{
		ValidationContextType: &tlsv3.CommonTlsContext_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
			TrustedCa: inline(p.ca.CertPEM), MatchTypedSubjectAltNames: []*tlsv3.SubjectAltNameMatcher{uriSAN(exact("spiffe://cluster.local/ns/default/sa/server"))}}},
	}, Sni: "outbound_.80_._.server.default.svc.cluster.local"}, tlsctx.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if cerr, serr, _, _ := handshake(t, srv.Config(), cl); cerr != nil || serr != nil {
		t.Fatal(cerr, serr)
	}
	cerr, _, cs, _ := handshake(t, srv.Config(), cl)
	if cerr != nil || !cs.DidResume {
		t.Fatalf("second handshake: err %v, resumed %v", cerr, cs.DidResume)
	}
}

// BenchmarkHandshakeResumed measures a client handshake that resumes
// its session (both sides, loopback TCP).
func BenchmarkHandshakeResumed(b *testing.B) {
	ca := tlsctxtest.NewCA(b, "root")
	leaf := ca.Issue(b, tlsctxtest.LeafOptions{URIs: []string{"spiffe://cluster.local/ns/default/sa/server"}})
	srv, _ := tlsctx.NewServer(&tlsv3.DownstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{
		TlsCertificates: []*tlsv3.TlsCertificate{certOf(leaf)}}}, tlsctx.Options{})
	cl, _ := tlsctx.NewClient(&tlsv3.UpstreamTlsContext{Sni: "bench", CommonTlsContext: &tlsv3.CommonTlsContext{
		ValidationContextType: &tlsv3.CommonTlsContext_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
			TrustedCa: inline(ca.CertPEM)}}}}, tlsctx.Options{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				s := tls.Server(c, srv.Config())
				var one [1]byte
				if _, err := s.Read(one[:]); err == nil {
					s.Write(one[:])
				}
				s.Close()
			}()
		}
	}()
	roundTrip := func() bool {
		conn, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			b.Fatal(err)
		}
		tc, err := cl.Handshake(context.Background(), conn)
		if err != nil {
			b.Fatal(err)
		}
		var one [1]byte
		tc.Write(one[:])
		tc.Read(one[:]) // takes the session tickets in
		resumed := tc.ConnectionState().DidResume
		tc.Close()
		return resumed
	}
	roundTrip()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if !roundTrip() {
			b.Fatal("the session was not resumed")
		}
	}
}

// TestClientLocalPrincipal: the client's principal is its certificate's
// first URI SAN, "" without a certificate.
func TestClientLocalPrincipal(t *testing.T) {
	p := newPKI(t)
	for _, tc := range []struct {
		name string
		cc   *tlsv3.CommonTlsContext
		want string
	}{
		{"certificate with a URI SAN", &tlsv3.CommonTlsContext{TlsCertificates: []*tlsv3.TlsCertificate{certOf(p.client)}}, "spiffe://cluster.local/ns/default/sa/client"},
		{"no certificate", &tlsv3.CommonTlsContext{}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cl, err := tlsctx.NewClient(&tlsv3.UpstreamTlsContext{CommonTlsContext: tc.cc}, tlsctx.Options{})
			if err != nil {
				t.Fatal(err)
			}
			if got := cl.LocalPrincipal(); got != tc.want {
				t.Errorf("LocalPrincipal() = %q, want %q", got, tc.want)
			}
		})
	}
}
