// Package network holds what the listener hands to a network filter chain:
// an accepted downstream connection with what the listener learned about it
// (addresses, TLS inspection results), and the interface terminal network
// filters (http_connection_manager, tcp_proxy) implement.
package network

import (
	"crypto/tls"
	"net"
	"net/netip"
	"time"
)

// Conn is an accepted downstream connection.
//
// Reads go through Conn so that bytes a listener filter peeked at (a TLS
// ClientHello, an HTTP/2 preface) are delivered again, first.
type Conn struct {
	net.Conn
	// Peeked holds bytes already read from the socket that must be read
	// again before anything else. Read consumes it.
	Peeked []byte

	Local  netip.AddrPort
	Remote netip.AddrPort
	// LocalRestored is set when Local is the original destination the
	// original_dst listener filter recovered (SO_ORIGINAL_DST) rather than
	// the listener's own address: Envoy's localAddressRestored(), which
	// ORIGINAL_DST clusters and listener hand-off require.
	LocalRestored bool
	// ServerName, TransportProtocol and ALPN come from tls_inspector:
	// TransportProtocol is "tls" or "raw_buffer".
	ServerName        string
	TransportProtocol string
	ALPN              []string

	// TLS is the connection's TLS state once a tls transport socket
	// terminated it; nil for plaintext. Its PeerCertificates are the
	// client's when the filter chain asked for one.
	TLS *tls.ConnectionState
	// LocalURIs are the URI SANs of the certificate this proxy presented
	// on a TLS connection it terminated (the XFCC "By" element).
	LocalURIs []string

	ListenerName string
	Accepted     time.Time
	// BufferLimit is the listener's per_connection_buffer_limit_bytes.
	BufferLimit int
}

// Read reads peeked bytes first, then from the socket.
func (c *Conn) Read(p []byte) (int, error) {
	if len(c.Peeked) > 0 {
		n := copy(p, c.Peeked)
		c.Peeked = c.Peeked[n:]
		if len(c.Peeked) == 0 {
			c.Peeked = nil
		}
		return n, nil
	}
	return c.Conn.Read(p)
}

// PeerURIs returns the URI SANs of the peer's certificate (its SPIFFE
// identity, "spiffe://TRUST-DOMAIN/ns/NS/sa/SA"), or nil when the
// connection is plaintext or the peer sent no certificate.
func (c *Conn) PeerURIs() []string {
	if c.TLS == nil || len(c.TLS.PeerCertificates) == 0 {
		return nil
	}
	uris := c.TLS.PeerCertificates[0].URIs
	out := make([]string, len(uris))
	for i, u := range uris {
		out[i] = u.String()
	}
	return out
}

// Raw returns the socket when no peeked bytes remain, so that callers can
// use its fast paths (splice via *net.TCPConn.ReadFrom). It returns c itself
// while peeked bytes are pending.
func (c *Conn) Raw() net.Conn {
	if len(c.Peeked) > 0 {
		return c
	}
	return c.Conn
}

// Handler serves a whole downstream connection: it is the terminal network
// filter of a filter chain.
type Handler interface {
	// ServeConn owns c: it serves it until the peer or the handler is done
	// and closes it before returning. It is called on the connection's own
	// goroutine.
	ServeConn(c *Conn)
}

// Draining tells whether the proxy is draining: connection handlers stop
// keeping connections alive (HTTP/1 "Connection: close", HTTP/2 GOAWAY).
type Draining interface {
	Draining() bool
	// DrainStarted returns a channel that is closed when draining begins.
	DrainStarted() <-chan struct{}
}
