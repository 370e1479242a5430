package rbac

import (
	"net/netip"

	"google.golang.org/protobuf/types/known/structpb"

	"github.com/weftmesh/weft/internal/proxy/headers"
	"github.com/weftmesh/weft/internal/proxy/network"
)

// Attributes are what policies are evaluated against: the downstream
// connection, and for HTTP the request. The filters fill them on the
// stream's (or connection's) goroutine; they are not shared.
type Attributes struct {
	// Conn is the downstream connection: destination address and port
	// (Local), direct peer address (Remote), SNI and TLS peer certificate.
	Conn *network.Conn
	// Req is the request headers; nil on a network filter (HTTP
	// permissions and principals then never match, as in Envoy).
	Req *headers.Request
	// RemoteIP is the downstream client's address as the connection
	// manager determined it (x-forwarded-for with trusted hops); when not
	// valid, the connection's peer address is used (Envoy's remote_ip).
	RemoteIP netip.Addr
	// Metadata is the stream's dynamic metadata by filter name (for
	// example envoy.filters.http.jwt_authn); nil when none.
	Metadata map[string]*structpb.Struct

	peer peerNames
}

// peerNames caches the peer certificate's names for one evaluation.
type peerNames struct {
	loaded  bool
	uris    []string
	dns     []string
	subject string
}

// remoteIP is Envoy's remote_ip.
func (a *Attributes) remoteIP() netip.Addr {
	if a.RemoteIP.IsValid() {
		return a.RemoteIP
	}
	return a.directRemoteIP()
}

// directRemoteIP is the connection's peer address.
func (a *Attributes) directRemoteIP() netip.Addr {
	if a.Conn == nil {
		return netip.Addr{}
	}
	return a.Conn.Remote.Addr().Unmap()
}

// destination is the connection's local address.
func (a *Attributes) destination() netip.AddrPort {
	if a.Conn == nil {
		return netip.AddrPort{}
	}
	return a.Conn.Local
}

// serverName is the SNI the client sent.
func (a *Attributes) serverName() string {
	if a.Conn == nil {
		return ""
	}
	if a.Conn.ServerName != "" {
		return a.Conn.ServerName
	}
	if a.Conn.TLS != nil {
		return a.Conn.TLS.ServerName
	}
	return ""
}

// authenticated reports whether the peer presented a certificate over TLS.
func (a *Attributes) authenticated() bool {
	return a.Conn != nil && a.Conn.TLS != nil && len(a.Conn.TLS.PeerCertificates) > 0
}

// peerNamesOf loads the peer certificate's URI SANs, DNS SANs and subject
// (once per evaluation).
func (a *Attributes) peerNamesOf() *peerNames {
	if !a.peer.loaded {
		a.peer.loaded = true
		if a.authenticated() {
			cert := a.Conn.TLS.PeerCertificates[0]
			a.peer.uris = a.Conn.PeerURIs()
			a.peer.dns = cert.DNSNames
			a.peer.subject = cert.Subject.String()
		}
	}
	return &a.peer
}

// header returns a request header's value (pseudo-headers included) and
// whether it is present. Several fields of the same name are joined with
// ",", as Envoy's getAllOfHeaderAsString does (the only case that
// allocates).
func (a *Attributes) header(name string) ([]byte, bool) {
	if a.Req == nil {
		return nil, false
	}
	if len(name) > 0 && name[0] == ':' || name == "host" {
		return a.Req.Lookup(name)
	}
	i := a.Req.Index(name, 0)
	if i < 0 {
		return nil, false
	}
	v := a.Req.Fields[i].Value
	j := a.Req.Index(name, i+1)
	if j < 0 {
		return v, true
	}
	joined := append([]byte(nil), v...)
	for ; j >= 0; j = a.Req.Index(name, j+1) {
		joined = append(append(joined, ','), a.Req.Fields[j].Value...)
	}
	return joined, true
}
