package e2e

import (
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/proxy/streaminfo"
	"github.com/weftmesh/weft/internal/proxy/tlsctx/tlsctxtest"
)

// Identities of the test PKI (SPIFFE URI SANs, as Istio's).
const (
	serverID = "spiffe://cluster.local/ns/default/sa/server"
	clientID = "spiffe://cluster.local/ns/default/sa/client"
)

// testPKI is a CA with a server and a client certificate written to files.
type testPKI struct {
	ca             *tlsctxtest.CA
	caFile         string
	server, client *tlsctxtest.Leaf
}

func newTestPKI(t *testing.T) *testPKI {
	t.Helper()
	dir := t.TempDir()
	ca := tlsctxtest.NewCA(t, "weft test root")
	p := &testPKI{ca: ca, caFile: ca.WriteCA(t, dir, "root.pem")}
	p.server = ca.Issue(t, tlsctxtest.LeafOptions{URIs: []string{serverID}, DNS: []string{"server.example.com"}, IPs: []string{"127.0.0.1"}})
	p.server.WriteFiles(t, dir, "server")
	p.client = ca.Issue(t, tlsctxtest.LeafOptions{CommonName: "client", URIs: []string{clientID}, DNS: []string{"client.example.com"}})
	p.client.WriteFiles(t, dir, "client")
	return p
}

// tlsClient returns an HTTP client over TLS trusting the test CA,
// presenting cert (nil: none), speaking HTTP/2 when h2.
func (p *testPKI) tlsClient(cert *tlsctxtest.Leaf, h2 bool) *http.Client {
	cfg := &tls.Config{RootCAs: p.ca.Pool(), ServerName: "server.example.com"}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{cert.TLS}
	}
	tr := &http.Transport{Proxy: nil, TLSClientConfig: cfg, ForceAttemptHTTP2: h2, DisableCompression: true}
	if !h2 {
		tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	}
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// seenHandler answers with what the upstream saw: protocol, TLS, XFCC and
// x-forwarded-proto.
func seenHandler(name string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("x-upstream", name)
		w.Header().Set("x-seen-tls", fmt.Sprint(r.TLS != nil))
		w.Header().Set("x-seen-proto", r.Proto)
		w.Header().Set("x-seen-xfcc", r.Header.Get("x-forwarded-client-cert"))
		w.Header().Set("x-seen-xfp", r.Header.Get("x-forwarded-proto"))
		io.WriteString(w, "ok from "+name)
	})
}

// startTLSUpstream serves h over TLS (HTTP/1.1 and h2 by ALPN) with the
// server certificate; it asks for client certificates and records the
// URI SAN of the last one in peer.
func startTLSUpstream(t *testing.T, p *testPKI, h http.Handler) (addr string, peer *atomic.Value) {
	t.Helper()
	peer = &atomic.Value{}
	peer.Store("")
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 && len(r.TLS.PeerCertificates[0].URIs) > 0 {
			peer.Store(r.TLS.PeerCertificates[0].URIs[0].String())
		}
		h.ServeHTTP(w, r)
	}))
	srv.EnableHTTP2 = true
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{p.server.TLS}, ClientAuth: tls.VerifyClientCertIfGiven, ClientCAs: p.ca.Pool()}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String(), peer
}

// tlsFront: listener "front" with tls_inspector, a TLS chain (mTLS when
// required) with file certificates, and optionally a plaintext chain
// (PERMISSIVE); HCM with the XFCC settings given; cluster "backend"
// plaintext to {{.host}}:{{.port}}.
const tlsFront = adminHead + frontListener + `
    listener_filters:
    - name: envoy.filters.listener.tls_inspector
      typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector}
    filter_chains:
    - filter_chain_match: {transport_protocol: tls}
      transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
          require_client_certificate: {{.require}}
          common_tls_context:
            alpn_protocols: [h2, http/1.1]
            tls_certificates:
            - certificate_chain: {filename: {{.cert}}}
              private_key: {filename: {{.key}}}
            validation_context:
              trusted_ca: {filename: {{.ca}}}
      filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: front_tls
          forward_client_cert_details: {{.xfcc}}
{{.details}}` + allToBackend + `
{{- if .permissive}}
    - filter_chain_match: {transport_protocol: raw_buffer}
      filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: front_plain
          forward_client_cert_details: {{.xfcc}}` + allToBackend + `
{{- end}}
  clusters:` + backendCluster + backendEndpoint

func tlsFrontVars(p *testPKI, upstream string, require bool, xfcc, details string, permissive bool) map[string]any {
	host, port := HostPort(upstream)
	return map[string]any{
		"cert": p.server.CertFile, "key": p.server.KeyFile, "ca": p.caFile,
		"require": require, "xfcc": xfcc, "details": details, "permissive": permissive,
		"host": host, "port": port,
	}
}

func hashOf(l *tlsctxtest.Leaf) string {
	sum := sha256.Sum256(l.Cert.Raw)
	return hex.EncodeToString(sum[:])
}

// TestTLSTerminationAndMTLS: a TLS filter chain with file certificates
// terminates TLS (HTTP/1.1 and, by ALPN, HTTP/2); with
// require_client_certificate a client without a certificate is refused.
func TestTLSTerminationAndMTLS(t *testing.T) {
	p := newTestPKI(t)
	up := StartHTTP(t, seenHandler("plain"))
	px := StartProxy(t, Render(t, tlsFront, tlsFrontVars(p, up, true, "SANITIZE_SET", "          set_current_client_cert_details: {uri: true}", false)))
	url := "https://" + px.Addr("front") + "/"

	for _, h2 := range []bool{false, true} {
		resp, err := p.tlsClient(p.client, h2).Get(url)
		if err != nil {
			t.Fatalf("h2=%v: %v", h2, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		wantProto := map[bool]int{false: 1, true: 2}[h2]
		if resp.StatusCode != 200 || resp.ProtoMajor != wantProto {
			t.Fatalf("h2=%v: status %d proto %s", h2, resp.StatusCode, resp.Proto)
		}
		if got := resp.Header.Get("x-seen-xfp"); got != "https" {
			t.Errorf("h2=%v: x-forwarded-proto = %q, want https", h2, got)
		}
		if got, want := resp.Header.Get("x-seen-xfcc"), "By="+serverID+";Hash="+hashOf(p.client)+";URI="+clientID; got != want {
			t.Errorf("h2=%v: XFCC = %q, want %q", h2, got, want)
		}
	}
	if _, err := p.tlsClient(nil, false).Get(url); err == nil {
		t.Fatal("a client without a certificate was served (require_client_certificate)")
	}
	rogue := tlsctxtest.NewCA(t, "rogue").Issue(t, tlsctxtest.LeafOptions{URIs: []string{clientID}})
	if _, err := p.tlsClient(rogue, false).Get(url); err == nil {
		t.Fatal("a client certificate of another CA was accepted")
	}
}

// TestXFCCModes follows Envoy's forward_client_cert_details table for an
// mTLS connection that brings an XFCC header of its own.
func TestXFCCModes(t *testing.T) {
	p := newTestPKI(t)
	up := StartHTTP(t, seenHandler("plain"))
	const incoming = "By=spiffe://cluster.local/ns/x/sa/edge;URI=spiffe://cluster.local/ns/x/sa/user"
	details := "          set_current_client_cert_details: {subject: true, uri: true, dns: true}"
	element := "By=" + serverID + ";Hash=" + hashOf(p.client) + `;Subject="CN=client";URI=` + clientID + ";DNS=client.example.com"
	for _, tc := range []struct {
		mode, details, want, wantPlain string
	}{
		{mode: "SANITIZE", want: "", wantPlain: ""},
		{mode: "FORWARD_ONLY", want: incoming, wantPlain: ""},
		{mode: "APPEND_FORWARD", details: details, want: incoming + "," + element, wantPlain: ""},
		{mode: "SANITIZE_SET", details: details, want: element, wantPlain: ""},
		{mode: "ALWAYS_FORWARD_ONLY", want: incoming, wantPlain: incoming},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			px := StartProxy(t, Render(t, tlsFront, tlsFrontVars(p, up, false, tc.mode, tc.details, true)))
			req, _ := http.NewRequest("GET", "https://"+px.Addr("front")+"/", nil)
			req.Header.Set("x-forwarded-client-cert", incoming)
			resp, err := p.tlsClient(p.client, false).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if got := resp.Header.Get("x-seen-xfcc"); got != tc.want {
				t.Errorf("mTLS: XFCC = %q, want %q", got, tc.want)
			}
			// The plaintext chain of the same listener: not mutual TLS.
			_, _, hdr := Get(t, Client(), "http://"+px.Addr("front")+"/", "x-forwarded-client-cert", incoming)
			if got := hdr.Get("x-seen-xfcc"); got != tc.wantPlain {
				t.Errorf("plaintext: XFCC = %q, want %q", got, tc.wantPlain)
			}
		})
	}
}

// TestPermissiveListener: one port, a TLS chain and a plaintext chain
// (Istio's PERMISSIVE): both are served.
func TestPermissiveListener(t *testing.T) {
	p := newTestPKI(t)
	up := StartHTTP(t, seenHandler("plain"))
	px := StartProxy(t, Render(t, tlsFront, tlsFrontVars(p, up, false, "SANITIZE", "", true)))
	for i := 0; i < 3; i++ {
		resp, err := p.tlsClient(p.client, false).Get("https://" + px.Addr("front") + "/")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Header.Get("x-seen-xfp") != "https" {
			t.Fatalf("TLS: status %d, x-forwarded-proto %q", resp.StatusCode, resp.Header.Get("x-seen-xfp"))
		}
		code, body, hdr := Get(t, Client(), "http://"+px.Addr("front")+"/")
		if code != 200 || body != "ok from plain" || hdr.Get("x-seen-xfp") != "http" {
			t.Fatalf("plaintext: %d %q xfp %q", code, body, hdr.Get("x-seen-xfp"))
		}
	}
}

// upstreamTLSStatic is a cluster transport socket: a client certificate
// from files and a static validation context (trusted CA, URI SAN).
const upstreamTLSStatic = `
    transport_socket:
      name: envoy.transport_sockets.tls
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
        sni: outbound_.443_._.server.default.svc.cluster.local
        common_tls_context:
          alpn_protocols: {{.alpn}}
          tls_certificates:
          - certificate_chain: {filename: {{.clientCert}}}
            private_key: {filename: {{.clientKey}}}
          validation_context:
            trusted_ca: {filename: {{.ca}}}
            match_typed_subject_alt_names:
            - san_type: URI
              matcher: {exact: "{{.san}}"}`

// tlsUpstreamProxy: plaintext listener "front" → cluster "backend" over
// TLS; {{.h2}} selects HTTP/2 upstream.
const tlsUpstreamProxy = adminHead + frontListener + frontHCM + allToBackend + `
  - name: tcp
    address: {socket_address: {address: 127.0.0.1, port_value: 0}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.tcp_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
          stat_prefix: tcp
          cluster: backend
  clusters:
  - name: backend
    type: STATIC
    connect_timeout: 2s
{{- if .h2}}
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: {http2_protocol_options: {}}
{{- end}}` + upstreamTLSStatic + backendEndpoint

// TestUpstreamTLS: clusters originate TLS with a client certificate and
// verify the server's SPIFFE identity: HTTP/1.1, HTTP/2 (ALPN h2) and
// tcp_proxy; a SAN mismatch is a 503 UF with the TLS error in the details.
func TestUpstreamTLS(t *testing.T) {
	p := newTestPKI(t)
	up, peer := startTLSUpstream(t, p, seenHandler("tls"))
	host, port := HostPort(up)
	vars := func(h2 bool, san string) map[string]any {
		alpn := "[http/1.1]"
		if h2 {
			alpn = "[h2]"
		}
		return map[string]any{"h2": h2, "alpn": alpn, "san": san, "host": host, "port": port,
			"clientCert": p.client.CertFile, "clientKey": p.client.KeyFile, "ca": p.caFile}
	}
	for _, h2 := range []bool{false, true} {
		px := StartProxy(t, Render(t, tlsUpstreamProxy, vars(h2, serverID)))
		for i := 0; i < 3; i++ {
			code, body, hdr := Get(t, Client(), px.URL("front")+"/")
			wantProto := map[bool]string{false: "HTTP/1.1", true: "HTTP/2.0"}[h2]
			if code != 200 || body != "ok from tls" || hdr.Get("x-seen-tls") != "true" || hdr.Get("x-seen-proto") != wantProto {
				t.Fatalf("h2=%v: %d %q tls=%s proto=%s", h2, code, body, hdr.Get("x-seen-tls"), hdr.Get("x-seen-proto"))
			}
		}
		if got := peer.Load(); got != clientID {
			t.Errorf("the upstream saw client identity %q, want %q", got, clientID)
		}
		if !h2 {
			// tcp_proxy: the bytes go through the cluster's TLS.
			c, err := net.Dial("tcp", px.Addr("tcp"))
			if err != nil {
				t.Fatal(err)
			}
			io.WriteString(c, "GET /raw HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			raw, _ := io.ReadAll(c)
			c.Close()
			if !strings.HasPrefix(string(raw), "HTTP/1.1 200") || !strings.Contains(string(raw), "ok from tls") {
				t.Fatalf("tcp_proxy over TLS: %q", raw)
			}
		}
	}
	px := StartProxy(t, Render(t, tlsUpstreamProxy, vars(false, "spiffe://cluster.local/ns/default/sa/impostor")))
	code, body, _ := Get(t, Client(), px.URL("front")+"/")
	if code != 503 || !strings.Contains(body, "remote connection failure, transport failure reason: TLS error") {
		t.Fatalf("SAN mismatch: %d %q", code, body)
	}
	info := px.NextStream(0)
	if info.Flags&streaminfo.UpstreamConnectionFailure == 0 || !strings.Contains(info.Details, "TLS_error") {
		t.Fatalf("SAN mismatch: flags %v details %q", info.Flags, info.Details)
	}
}

// autoMTLSProxy: cluster "backend" with two endpoints; the one labelled
// tlsMode: istio gets TLS (transport_socket_matches), the other plaintext.
const autoMTLSProxy = `
static_resources:
  listeners:` + frontListener + frontHCM + allToBackend + `
  clusters:
  - name: backend
    type: STATIC
    connect_timeout: 2s
    transport_socket_matches:
    - name: tlsMode-istio
      match: {tlsMode: istio}
      transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
          common_tls_context:
            tls_certificates:
            - certificate_chain: {filename: {{.clientCert}}}
              private_key: {filename: {{.clientKey}}}
            validation_context:
              trusted_ca: {filename: {{.ca}}}
              match_subject_alt_names: [{exact: "` + serverID + `"}]
    - name: tlsMode-disabled
      match: {}
      transport_socket:
        name: envoy.transport_sockets.raw_buffer
        typed_config: {"@type": type.googleapis.com/envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer}
    load_assignment:
      cluster_name: backend
      endpoints:
      - lb_endpoints:
        - endpoint: {address: {socket_address: {address: {{.tlsHost}}, port_value: {{.tlsPort}}}}}
          metadata:
            filter_metadata:
              envoy.transport_socket_match: {tlsMode: istio}
        - endpoint: {address: {socket_address: {address: {{.plainHost}}, port_value: {{.plainPort}}}}}
`

// TestTransportSocketMatches: Istio's auto-mTLS shape picks TLS per
// endpoint from its metadata.
func TestTransportSocketMatches(t *testing.T) {
	p := newTestPKI(t)
	tlsUp, _ := startTLSUpstream(t, p, seenHandler("tls"))
	plainUp := StartHTTP(t, seenHandler("plain"))
	th, tp := HostPort(tlsUp)
	ph, pp := HostPort(plainUp)
	px := StartProxy(t, Render(t, autoMTLSProxy, map[string]any{
		"tlsHost": th, "tlsPort": tp, "plainHost": ph, "plainPort": pp,
		"clientCert": p.client.CertFile, "clientKey": p.client.KeyFile, "ca": p.caFile,
	}))
	seen := map[string]int{}
	for i := 0; i < 10; i++ {
		code, body, hdr := Get(t, Client(), px.URL("front")+"/")
		if code != 200 {
			t.Fatalf("request %d: %d %q", i, code, body)
		}
		seen[hdr.Get("x-upstream")+"/tls="+hdr.Get("x-seen-tls")]++
	}
	// Round robin over two hosts: exactly 5 each, the TLS one over TLS.
	if seen["tls/tls=true"] != 5 || seen["plain/tls=false"] != 5 {
		t.Fatalf("requests by upstream: %v", seen)
	}
}
