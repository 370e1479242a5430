package e2e

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	secretv3 "github.com/envoyproxy/go-control-plane/envoy/service/secret/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"google.golang.org/grpc"

	"github.com/weftmesh/weft/internal/proxy/bootstrap"
	"github.com/weftmesh/weft/internal/proxy/server"
	"github.com/weftmesh/weft/internal/proxy/tlsctx/tlsctxtest"
)

const sdsNode = "sidecar~127.0.0.2~server.default~default.svc.cluster.local"

// sdsServer is a go-control-plane SDS server on a Unix socket.
type sdsServer struct {
	sock    string
	cache   cachev3.SnapshotCache
	version atomic.Int64

	mu    sync.Mutex
	nacks []string
}

func startSDS(t *testing.T) *sdsServer {
	t.Helper()
	dir, err := os.MkdirTemp("", "sds") // short: Unix socket paths are limited
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	s := &sdsServer{sock: filepath.Join(dir, "sds.sock"), cache: cachev3.NewSnapshotCache(false, cachev3.IDHash{}, nil)}
	ln, err := net.Listen("unix", s.sock)
	if err != nil {
		t.Fatal(err)
	}
	cb := serverv3.CallbackFuncs{StreamRequestFunc: func(_ int64, r *discoveryv3.DiscoveryRequest) error {
		if r.GetErrorDetail() != nil {
			s.mu.Lock()
			s.nacks = append(s.nacks, r.GetErrorDetail().GetMessage())
			s.mu.Unlock()
		}
		return nil
	}}
	ctx, cancel := context.WithCancel(context.Background())
	g := grpc.NewServer()
	secretv3.RegisterSecretDiscoveryServiceServer(g, serverv3.NewServer(ctx, s.cache, cb))
	go g.Serve(ln)
	t.Cleanup(func() { cancel(); g.Stop() })
	return s
}

// set publishes the workload certificate "default" and the trust bundle
// "ROOTCA", as Istio's agent does.
func (s *sdsServer) set(t *testing.T, leaf *tlsctxtest.Leaf, ca *tlsctxtest.CA) {
	t.Helper()
	s.publish(t, &tlsv3.Secret{Name: "default", Type: &tlsv3.Secret_TlsCertificate{TlsCertificate: &tlsv3.TlsCertificate{
		CertificateChain: &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: leaf.CertPEM}},
		PrivateKey:       &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: leaf.KeyPEM}},
	}}}, ca)
}

func (s *sdsServer) publish(t *testing.T, def *tlsv3.Secret, ca *tlsctxtest.CA) {
	t.Helper()
	root := &tlsv3.Secret{Name: "ROOTCA", Type: &tlsv3.Secret_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
		TrustedCa: &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: ca.CertPEM}},
	}}}
	v := s.version.Add(1)
	snap, err := cachev3.NewSnapshot(big.NewInt(v).String(), map[resource.Type][]types.Resource{resource.SecretType: {def, root}})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.cache.SetSnapshot(context.Background(), sdsNode, snap); err != nil {
		t.Fatal(err)
	}
}

func (s *sdsServer) nackList() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.nacks...)
}

// sdsProxy: Istio's inbound shape. Listener "inbound" terminates mTLS
// with the SDS secrets "default" and "ROOTCA" from the sds-grpc cluster
// (a Unix socket); it requires the caller's SPIFFE identity.
const sdsProxy = `
node: {id: "` + sdsNode + `", cluster: server.default}
static_resources:
  listeners:
  - name: inbound
    address: {socket_address: {address: 127.0.0.1, port_value: 0}}
    filter_chains:
    - transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
          require_client_certificate: true
          common_tls_context:
            alpn_protocols: [h2, http/1.1]
            tls_certificate_sds_secret_configs:
            - name: default
              sds_config: &sds
                resource_api_version: V3
                api_config_source:
                  api_type: GRPC
                  transport_api_version: V3
                  grpc_services: [{envoy_grpc: {cluster_name: sds-grpc}}]
            combined_validation_context:
              default_validation_context:
                match_typed_subject_alt_names:
                - san_type: URI
                  matcher: {prefix: "spiffe://cluster.local/"}
              validation_context_sds_secret_config: {name: ROOTCA, sds_config: *sds}
      filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: inbound
          forward_client_cert_details: APPEND_FORWARD
          set_current_client_cert_details: {uri: true}` + allToBackend + `
  clusters:
  - name: sds-grpc
    type: STATIC
    connect_timeout: 1s
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: {http2_protocol_options: {}}
    load_assignment:
      cluster_name: sds-grpc
      endpoints:
      - lb_endpoints:
        - endpoint: {address: {pipe: {path: {{.sock}}}}}` + backendCluster + backendEndpoint

// servedSerial does one request on a new TLS connection and returns the
// serial number of the certificate the proxy presented.
func servedSerial(p *testPKI, addr string) (*big.Int, error) {
	cfg := &tls.Config{RootCAs: p.ca.Pool(), Certificates: []tls.Certificate{p.client.TLS}, ServerName: "server.example.com",
		// The SDS certificate has a URI SAN only: check the chain, not a name.
		InsecureSkipVerify: true}
	d := &net.Dialer{Timeout: 2 * time.Second}
	c, err := tls.DialWithDialer(d, "tcp", addr, cfg)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	raw, err := io.ReadAll(c)
	if err != nil {
		return nil, err
	}
	if !strings.HasPrefix(string(raw), "HTTP/1.1 200") {
		return nil, errors.New("status: " + strings.SplitN(string(raw), "\r\n", 2)[0])
	}
	return c.ConnectionState().PeerCertificates[0].SerialNumber, nil
}

// TestSDSOverPipeWarmingAndRotation: the listener warms until its SDS
// secrets arrive from a go-control-plane SDS server reached through a pipe
// cluster; rotation under continuous load fails no request; an invalid
// secret is NACKed and the previous one keeps serving.
func TestSDSOverPipeWarmingAndRotation(t *testing.T) {
	p := newTestPKI(t)
	sds := startSDS(t)
	host, port := HostPort(StartHTTP(t, seenHandler("app")))
	px := StartProxy(t, Render(t, sdsProxy, map[string]any{"sock": sds.sock, "host": host, "port": port}))
	addr := px.Addr("inbound")

	// Warming: no secret yet, the listener does not serve and the server
	// is not LIVE.
	select {
	case <-px.Server().Initialized():
		t.Fatal("the server went LIVE before its listener's secrets arrived")
	default:
	}
	if _, err := servedSerial(p, addr); err == nil {
		t.Fatal("the listener served before its secrets arrived")
	}
	first := p.ca.Issue(t, tlsctxtest.LeafOptions{URIs: []string{serverID}})
	sds.set(t, first, p.ca)
	select {
	case <-px.Server().Initialized():
	case <-time.After(10 * time.Second):
		t.Fatal("the server did not go LIVE once the secrets arrived")
	}
	if got, err := servedSerial(p, addr); err != nil || got.Cmp(first.Cert.SerialNumber) != 0 {
		t.Fatalf("first certificate: serial %v, err %v", got, err)
	}

	// Continuous load: new connections and kept-alive ones, while the
	// certificate rotates five times. Tolerance: zero failed requests.
	ctx, stop := context.WithCancel(context.Background())
	var ok, failed atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	keepAlive := p.tlsClient(p.client, true)
	keepAlive.Transport.(*http.Transport).TLSClientConfig.InsecureSkipVerify = true
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				var err error
				if w%2 == 0 {
					_, err = servedSerial(p, addr)
				} else {
					var resp *http.Response
					if resp, err = keepAlive.Get("https://" + addr + "/"); err == nil {
						io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
						if resp.StatusCode != 200 {
							err = errors.New(resp.Status)
						}
					}
				}
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err)
				} else {
					ok.Add(1)
				}
			}
		}()
	}
	for i := 0; i < 5; i++ {
		next := p.ca.Issue(t, tlsctxtest.LeafOptions{URIs: []string{serverID}})
		sds.set(t, next, p.ca)
		deadline := time.Now().Add(10 * time.Second)
		for {
			got, err := servedSerial(p, addr)
			if err == nil && got.Cmp(next.Cert.SerialNumber) == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("rotation %d: the new certificate is not served (serial %v, err %v)", i, got, err)
			}
		}
	}
	stop()
	wg.Wait()
	if failed.Load() != 0 || ok.Load() == 0 {
		t.Fatalf("under rotation: %d ok, %d failed (first: %v)", ok.Load(), failed.Load(), firstErr.Load())
	}

	// An invalid secret is NACKed with the reason; the last good one
	// keeps serving.
	good, _ := servedSerial(p, addr)
	sds.publish(t, &tlsv3.Secret{Name: "default", Type: &tlsv3.Secret_TlsCertificate{TlsCertificate: &tlsv3.TlsCertificate{
		CertificateChain: &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: "not a certificate"}},
		PrivateKey:       &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: "not a key"}},
	}}}, p.ca)
	deadline := time.Now().Add(10 * time.Second)
	for len(sds.nackList()) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the invalid secret was not NACKed")
		}
		time.Sleep(10 * time.Millisecond) // polling a condition with a deadline
	}
	if n := sds.nackList()[0]; !strings.Contains(n, `secret "default": tls_certificate.certificate_chain, private_key`) {
		t.Errorf("NACK reason = %q", n)
	}
	if got, err := servedSerial(p, addr); err != nil || got.Cmp(good) != 0 {
		t.Fatalf("after the NACK: serial %v (want %v), err %v", got, good, err)
	}
}

// TestTLSBootstrapChecks: validate mode accepts Istio's SDS shape and
// refuses what weft-proxy does not implement, naming the field.
func TestTLSBootstrapChecks(t *testing.T) {
	good := Render(t, sdsProxy, map[string]any{"sock": "/tmp/weft-sds.sock", "host": "127.0.0.1", "port": 1})
	b, err := bootstrap.ParseAndValidate([]byte(good), "good.yaml")
	if err != nil {
		t.Fatalf("Istio's SDS shape refused: %v", err)
	}
	if err := server.Check(server.Options{Bootstrap: b}); err != nil {
		t.Fatalf("validate mode: %v", err)
	}
	for _, tc := range []struct{ name, from, to, want string }{
		{"session ticket keys", "require_client_certificate: true", "require_client_certificate: true\n          session_ticket_keys: {keys: [{inline_string: x}]}", "session_ticket_keys: not supported by weft-proxy"},
		{"OTHER_NAME SAN", "san_type: URI", "san_type: OTHER_NAME", "san_type: OTHER_NAME is not supported"},
		{"REST config source", "api_type: GRPC", "api_type: REST", "api_type: REST is not supported"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad := strings.Replace(good, tc.from, tc.to, 1)
			_, err := bootstrap.ParseAndValidate([]byte(bad), "bad.yaml")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
	// An SDS server that is not a static cluster is refused at build time.
	bad := strings.Replace(good, "cluster_name: sds-grpc}", "cluster_name: nowhere}", 1)
	b, err = bootstrap.ParseAndValidate([]byte(bad), "bad.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := server.Check(server.Options{Bootstrap: b}); err == nil || !strings.Contains(err.Error(), `sds_config cluster "nowhere" is not a static cluster`) {
		t.Fatalf("Check: %v", err)
	}
}
