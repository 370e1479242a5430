package tlsctx

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"

	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
)

// Client is a compiled UpstreamTlsContext: one per cluster (or per
// transport socket match), with its own session cache so that new
// connections to the cluster resume TLS sessions. Safe for concurrent use.
type Client struct {
	c      *common
	config *tls.Config
}

// sessionCacheSize bounds the client session cache (Envoy's
// max_session_keys default is 1 per host; a few per cluster here).
const sessionCacheSize = 64

// NewClient compiles an UpstreamTlsContext.
func NewClient(uc *tlsv3.UpstreamTlsContext, o Options) (*Client, error) {
	c, err := compileCommon(uc.GetCommonTlsContext(), o)
	if err != nil {
		return nil, errorAt("common_tls_context.", err)
	}
	cl := &Client{c: c}
	cfg := c.baseConfig()
	cfg.ServerName = uc.GetSni()
	// Verification is Envoy's, done in VerifyConnection (trusted_ca and
	// SAN matchers; no hostname check, no verification without a
	// validation context).
	cfg.InsecureSkipVerify = true
	cfg.VerifyConnection = cl.verifyConnection
	cfg.GetClientCertificate = cl.getClientCertificate
	max := uc.GetMaxSessionKeys()
	if max == nil || max.GetValue() > 0 {
		cfg.ClientSessionCache = tls.NewLRUClientSessionCache(sessionCacheSize)
	}
	cl.config = cfg
	return cl, nil
}

// SecretRefs returns the SDS secrets the context needs.
func (cl *Client) SecretRefs() []SecretRef { return cl.c.refs }

// Config returns the client tls.Config (shared; do not modify).
func (cl *Client) Config() *tls.Config { return cl.config }

// Handshake runs the client handshake on conn under ctx's deadline and
// returns the TLS connection. On error conn is closed and the error says
// what failed, e.g. "TLS error: ... SAN does not match".
func (cl *Client) Handshake(ctx context.Context, conn net.Conn) (*tls.Conn, error) {
	tc := tls.Client(conn, cl.config)
	if err := tc.HandshakeContext(ctx); err != nil {
		conn.Close()
		return nil, fmt.Errorf("TLS error: %w", err)
	}
	return tc, nil
}

// LocalPrincipal returns the first URI SAN of the certificate the client
// presents now (its SPIFFE ID), or "" when it has none. It allocates: call
// it once per connection.
func (cl *Client) LocalPrincipal() string {
	c := cl.c.certificate()
	if c == nil || c.Leaf == nil || len(c.Leaf.URIs) == 0 {
		return ""
	}
	return c.Leaf.URIs[0].String()
}

func (cl *Client) getClientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	if c := cl.c.certificate(); c != nil {
		return c, nil
	}
	return &tls.Certificate{}, nil // no certificate: the server decides
}

func (cl *Client) verifyConnection(cs tls.ConnectionState) error {
	if !cl.c.hasValidation() {
		return nil
	}
	return cl.c.verify(cs.PeerCertificates)
}
