package pool

import (
	"crypto/tls"
	"net"
)

// Identity is what an upstream connection's TLS handshake proved about
// both ends: the first URI SAN (a SPIFFE ID) of the upstream's certificate
// and of the certificate this proxy presented. Both are "" on a plaintext
// connection, and Local is "" when the upstream did not present a
// certificate either. It is computed once per connection, so that
// requests read it without allocating (the istio.stats filter's
// destination_principal and source_principal, Envoy's
// upstream.uri_san_peer_certificate and upstream.uri_san_local_certificate).
type Identity struct {
	Peer, Local string
}

// identityOf reads c's identity after the handshake (zero for a connection
// that is not TLS).
func (o *Options) identityOf(c net.Conn) Identity {
	tc, ok := c.(interface{ ConnectionState() tls.ConnectionState })
	if !ok {
		return Identity{}
	}
	st := tc.ConnectionState()
	if len(st.PeerCertificates) == 0 || len(st.PeerCertificates[0].URIs) == 0 {
		return Identity{}
	}
	id := Identity{Peer: st.PeerCertificates[0].URIs[0].String()}
	if o.LocalPrincipal != nil {
		id.Local = o.LocalPrincipal()
	}
	return id
}

// IdentityOf returns the identity of a connection DialTCP returned.
func (o *Options) IdentityOf(c net.Conn) Identity { return o.identityOf(c) }
