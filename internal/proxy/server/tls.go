package server

import (
	"context"
	"crypto/tls"
	"fmt"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	rawv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/raw_buffer/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"

	"github.com/weftmesh/weft/internal/proxy/network"
	"github.com/weftmesh/weft/internal/proxy/tlsctx"
)

// defaultHandshakeTimeout bounds a downstream TLS handshake. Envoy bounds
// it with the listener's transport_socket_connect_timeout (unset: no
// bound, the idle timeouts apply); weft bounds it so a silent client does
// not hold a goroutine for ever.
const defaultHandshakeTimeout = 15 * time.Second

// chainTLS compiles a filter chain's transport_socket: nil for plaintext
// (absent or raw_buffer), a tlsctx.Server for envoy.transport_sockets.tls.
func (s *Server) chainTLS(ts *corev3.TransportSocket) (*tlsctx.Server, error) {
	if ts == nil {
		return nil, nil
	}
	tc := ts.GetTypedConfig()
	switch {
	case tc == nil || tc.MessageIs(&rawv3.RawBuffer{}):
		return nil, nil
	case tc.MessageIs(&tlsv3.DownstreamTlsContext{}):
		var dc tlsv3.DownstreamTlsContext
		if err := tc.UnmarshalTo(&dc); err != nil {
			return nil, fmt.Errorf("transport_socket.typed_config: %w", err)
		}
		srv, err := tlsctx.NewServer(&dc, tlsctx.Options{Secrets: s.secrets})
		if err != nil {
			return nil, fmt.Errorf("transport_socket.typed_config (DownstreamTlsContext).%w", err)
		}
		return srv, nil
	}
	return nil, fmt.Errorf("transport_socket.typed_config: type %s is not supported (DownstreamTlsContext, RawBuffer)", tc.MessageName())
}

// terminateTLS runs the server handshake on nc (after the listener
// filters: the ClientHello tls_inspector peeked is replayed) and makes nc
// the decrypted stream with its TLS state. It reports whether the
// handshake succeeded; on failure the caller closes the connection.
func terminateTLS(nc *network.Conn, srv *tlsctx.Server) bool {
	// The TLS connection reads the peeked bytes first, through a copy
	// of the accepted connection.
	under := &network.Conn{Conn: nc.Conn, Peeked: nc.Peeked}
	tc := tls.Server(under, srv.Config())
	ctx, cancel := context.WithTimeout(context.Background(), defaultHandshakeTimeout)
	defer cancel()
	if err := tc.HandshakeContext(ctx); err != nil {
		return false
	}
	st := tc.ConnectionState()
	nc.Conn, nc.Peeked, nc.TLS = tc, nil, &st
	if cert := srv.Certificate(); cert != nil && cert.Leaf != nil {
		for _, u := range cert.Leaf.URIs {
			nc.LocalURIs = append(nc.LocalURIs, u.String())
		}
	}
	if st.NegotiatedProtocol != "" {
		nc.ALPN = []string{st.NegotiatedProtocol}
	}
	return true
}
