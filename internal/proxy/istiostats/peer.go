package istiostats

import (
	"crypto/x509"
	"encoding/base64"
	"net/url"
	"sync/atomic"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/weftmesh/weft/internal/proxy/network"
)

// Cache bounds: a peer can make the proxy decode as many distinct headers
// as it likes, so the caches start over beyond these sizes.
const (
	maxHeaderEntries    = 1024
	maxPrincipalEntries = 4096
)

// principalKey is a peer certificate's first URI SAN, kept in parts so
// that it is compared without building the string.
type principalKey struct{ scheme, host, path string }

func (k principalKey) String() string { return k.scheme + "://" + k.host + k.path }

// headerEntry is one decoded x-envoy-peer-metadata value.
type headerEntry struct {
	// ok is false when the value did not decode or carries no namespace
	// or service account: it is then never believed.
	ok     bool
	claims Workload
	// verified is the peer built for the last principal the claims
	// matched.
	verified atomic.Pointer[verifiedPeer]
}

type verifiedPeer struct {
	key  principalKey
	peer *Workload
}

// inboundPeers identifies the source of inbound requests.
type inboundPeers struct {
	byHeader    cowMap[string, *headerEntry]
	byPrincipal cowMap[principalKey, *Workload]
}

func newInboundPeers() *inboundPeers {
	p := &inboundPeers{}
	p.byHeader.max = maxHeaderEntries
	p.byPrincipal.max = maxPrincipalEntries
	return p
}

// peerURI returns the first URI SAN of the connection's peer certificate,
// or nil (plaintext, no client certificate, no URI).
func peerURI(c *network.Conn) *url.URL {
	if c == nil || c.TLS == nil || len(c.TLS.PeerCertificates) == 0 {
		return nil
	}
	return firstURI(c.TLS.PeerCertificates[0])
}

func firstURI(cert *x509.Certificate) *url.URL {
	if len(cert.URIs) == 0 {
		return nil
	}
	return cert.URIs[0]
}

// identify returns the source workload of a request on c carrying the
// metadata exchange header value mx (nil when absent). The principal and
// its namespace come from the peer certificate; the other labels from mx
// only when mx names the certificate's namespace and service account
// (otherwise "unknown"). Without a peer certificate nothing is believed.
// A known (header, principal) pair costs map lookups and no allocation.
func (p *inboundPeers) identify(c *network.Conn, mx []byte) *Workload {
	u := peerURI(c)
	if u == nil {
		return unknownPeer
	}
	key := principalKey{u.Scheme, u.Host, u.Path}
	if len(mx) > 0 {
		if w := p.verified(key, mx); w != nil {
			return w
		}
	}
	if w, ok := p.byPrincipal.load()[key]; ok {
		return w
	}
	return p.byPrincipal.getOrAdd(key, func() *Workload {
		principal := key.String()
		return Workload{Principal: principal}.asPeer(namespaceOf(principal))
	})
}

// verified returns the peer mx describes when its claims match key, else
// nil.
func (p *inboundPeers) verified(key principalKey, mx []byte) *Workload {
	e, ok := p.byHeader.load()[string(mx)]
	if !ok {
		e = p.byHeader.getOrAdd(string(mx), func() *headerEntry { return decodeHeader(mx) })
	}
	if !e.ok || e.claims.Namespace != namespaceOf(key.path) || e.claims.ServiceAccount != serviceAccountOf(key.path) {
		return nil
	}
	if v := e.verified.Load(); v != nil && v.key == key {
		return v.peer
	}
	w := e.claims
	w.Principal = key.String()
	peer := w.asPeer(w.Namespace)
	e.verified.Store(&verifiedPeer{key: key, peer: peer})
	return peer
}

// decodeHeader decodes an x-envoy-peer-metadata value: base64 (with or
// without padding) of a serialized google.protobuf.Struct, as Istio's
// metadata exchange writes it.
func decodeHeader(mx []byte) *headerEntry {
	e := &headerEntry{}
	raw, err := base64.StdEncoding.DecodeString(string(mx))
	if err != nil {
		raw, err = base64.RawStdEncoding.DecodeString(string(mx))
	}
	if err != nil {
		return e
	}
	var st structpb.Struct
	if err := proto.Unmarshal(raw, &st); err != nil {
		return e
	}
	e.claims = *peerFromStruct(&st)
	e.ok = e.claims.Namespace != "" && e.claims.ServiceAccount != ""
	return e
}

// EncodeHeader returns the x-envoy-peer-metadata value describing w: base64
// of the deterministic serialization of Istio's metadata exchange Struct
// (convertWorkloadMetadataToStruct), with SERVICE_ACCOUNT added, which the
// receiving weft-proxy checks against the client certificate.
func EncodeHeader(w *Workload) ([]byte, error) {
	labels := map[string]any{}
	set := func(m map[string]any, k, v string) {
		if v != "" {
			m[k] = v
		}
	}
	set(labels, canonicalNameLabel, w.CanonicalService)
	set(labels, canonicalRevisionLabel, w.CanonicalRevision)
	set(labels, "app", w.App)
	set(labels, "version", w.Version)
	fields := map[string]any{metaLabels: labels}
	set(fields, metaName, w.Instance)
	set(fields, metaNamespace, w.Namespace)
	set(fields, metaWorkloadName, w.Name)
	set(fields, metaClusterID, w.Cluster)
	set(fields, metaServiceAccount, w.ServiceAccount)
	st, err := structpb.NewStruct(fields)
	if err != nil {
		return nil, err
	}
	raw, err := proto.MarshalOptions{Deterministic: true}.Marshal(st)
	if err != nil {
		return nil, err
	}
	return []byte(base64.StdEncoding.EncodeToString(raw)), nil
}
