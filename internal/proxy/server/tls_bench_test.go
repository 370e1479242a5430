package server

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/proxy/bootstrap"
	"github.com/weftmesh/weft/internal/proxy/tlsctx/tlsctxtest"
)

// tlsBenchBootstrap: listener "front" terminating mTLS (inline PEM) →
// cluster "backend" originating mTLS with SAN verification: both legs of
// an Istio sidecar-to-sidecar hop.
const tlsBenchBootstrap = `
static_resources:
  listeners:
  - name: front
    address: {socket_address: {address: 127.0.0.1, port_value: 0}}
    filter_chains:
    - transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
          require_client_certificate: true
          common_tls_context:
            tls_certificates: [{certificate_chain: {inline_string: %[1]q}, private_key: {inline_string: %[2]q}}]
            validation_context: {trusted_ca: {inline_string: %[3]q}}
      filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: front
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: {prefix: /}
                route: {cluster: backend}
          http_filters:
          - name: envoy.filters.http.router
            typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}
  clusters:
  - name: backend
    type: STATIC
    transport_socket:
      name: envoy.transport_sockets.tls
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
        common_tls_context:
          tls_certificates: [{certificate_chain: {inline_string: %[1]q}, private_key: {inline_string: %[2]q}}]
          validation_context:
            trusted_ca: {inline_string: %[3]q}
            match_typed_subject_alt_names: [{san_type: URI, matcher: {exact: "spiffe://cluster.local/ns/default/sa/bench"}}]
    load_assignment:
      cluster_name: backend
      endpoints:
      - lb_endpoints:
        - endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: %[4]s}}}
`

// tlsBenchSetup starts a TLS upstream answering 1 KiB and the proxy; it
// returns the proxy's address and a client TLS config.
func tlsBenchSetup(b *testing.B) (string, *tls.Config) {
	ca := tlsctxtest.NewCA(b, "bench root")
	leaf := ca.Issue(b, tlsctxtest.LeafOptions{URIs: []string{"spiffe://cluster.local/ns/default/sa/bench"}})
	plain := rawUpstream(b)
	// TLS in front of the raw upstream.
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{leaf.TLS}})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				u, err := net.Dial("tcp", plain)
				if err != nil {
					c.Close()
					return
				}
				go func() { io.Copy(u, c); u.Close() }()
				io.Copy(c, u)
				c.Close()
			}()
		}
	}()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	cfg := fmt.Sprintf(tlsBenchBootstrap, string(leaf.CertPEM), string(leaf.KeyPEM), string(ca.CertPEM), port)
	bs, err := bootstrap.ParseAndValidate([]byte(cfg), "bench.yaml")
	if err != nil {
		b.Fatal(err)
	}
	srv, err := New(Options{Bootstrap: bs, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), DrainTime: time.Second})
	if err != nil {
		b.Fatal(err)
	}
	srv.Start()
	b.Cleanup(func() { srv.Shutdown(b.Context()) })
	return srv.ListenerAddr("front").String(), &tls.Config{
		Certificates: []tls.Certificate{leaf.TLS}, RootCAs: ca.Pool(), InsecureSkipVerify: true,
		ClientSessionCache: tls.NewLRUClientSessionCache(8),
	}
}

func readResponse(b *testing.B, br *bufio.Reader, buf []byte) {
	n := -1
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			b.Fatal(err)
		}
		if len(line) <= 2 {
			break
		}
		if bytes.HasPrefix(line, []byte("content-length: ")) {
			n, _ = strconv.Atoi(string(bytes.TrimSpace(line[16:])))
		}
	}
	if n < 0 {
		b.Fatal("no content-length")
	}
	if _, err := io.ReadFull(br, buf[:n]); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkHTTP1ProxyMTLS is BenchmarkHTTP1Proxy with mTLS on both legs:
// one keep-alive request over a downstream mTLS connection, forwarded on
// a kept-alive upstream mTLS connection.
func BenchmarkHTTP1ProxyMTLS(b *testing.B) {
	addr, cfg := tlsBenchSetup(b)
	c, err := tls.Dial("tcp", addr, cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	req := []byte("GET /1k.bin HTTP/1.1\r\nHost: bench\r\nUser-Agent: weft-bench\r\nAccept: */*\r\n\r\n")
	br := bufio.NewReaderSize(c, 16<<10)
	var buf [2048]byte
	for i := 0; i < 100; i++ {
		c.Write(req)
		readResponse(b, br, buf[:])
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := c.Write(req); err != nil {
			b.Fatal(err)
		}
		readResponse(b, br, buf[:])
	}
}

// BenchmarkMTLSNewConnection measures a request on a new downstream mTLS
// connection (a resumed session), the upstream connection kept alive.
func BenchmarkMTLSNewConnection(b *testing.B) {
	addr, cfg := tlsBenchSetup(b)
	req := []byte("GET /1k.bin HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
	var buf [2048]byte
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c, err := tls.Dial("tcp", addr, cfg)
		if err != nil {
			b.Fatal(err)
		}
		c.Write(req)
		readResponse(b, bufio.NewReader(c), buf[:])
		c.Close()
	}
}
