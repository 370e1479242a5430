package hcm

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"net/url"
	"strings"

	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"

	"github.com/weftmesh/weft/internal/proxy/httpfilter"
	"github.com/weftmesh/weft/internal/proxy/network"
)

// xForwardedClientCert is Envoy's XFCC header.
const xForwardedClientCert = "x-forwarded-client-cert"

// xfccConfig is forward_client_cert_details and
// set_current_client_cert_details.
type xfccConfig struct {
	mode                           hcmv3.HttpConnectionManager_ForwardClientCertDetails
	subject, uri, dns, cert, chain bool
}

func compileXFCC(cfg *hcmv3.HttpConnectionManager) (xfccConfig, error) {
	x := xfccConfig{mode: cfg.GetForwardClientCertDetails()}
	d := cfg.GetSetCurrentClientCertDetails()
	x.subject = d.GetSubject().GetValue()
	x.uri, x.dns, x.cert, x.chain = d.GetUri(), d.GetDns(), d.GetCert(), d.GetChain()
	if d != nil && x.mode != hcmv3.HttpConnectionManager_APPEND_FORWARD && x.mode != hcmv3.HttpConnectionManager_SANITIZE_SET {
		return x, fmt.Errorf("set_current_client_cert_details: only applies with forward_client_cert_details APPEND_FORWARD or SANITIZE_SET")
	}
	return x, nil
}

// mutateXFCC applies Envoy's ConnectionManagerUtility::mutateXfccRequestHeader:
// ALWAYS_FORWARD_ONLY leaves the header alone; SANITIZE (the default), or a
// connection that is not mutual TLS, removes it; FORWARD_ONLY forwards it;
// APPEND_FORWARD appends this hop's element (",") and SANITIZE_SET
// replaces the header with it. The element is
// By=<local URI SAN>;Hash=<sha256 of the peer certificate, hex>;
// Cert="<url-encoded PEM>";Chain="...";Subject="<RFC 2253>";URI=<peer URI SAN>;DNS=<peer DNS SAN>,
// in Envoy's order.
func (m *Manager) mutateXFCC(s *httpfilter.Stream) {
	mode := m.xfcc.mode
	if mode == hcmv3.HttpConnectionManager_ALWAYS_FORWARD_ONLY {
		return
	}
	r := &s.Req
	c := s.Conn
	mtls := c != nil && c.TLS != nil && len(c.TLS.PeerCertificates) > 0
	if mode == hcmv3.HttpConnectionManager_SANITIZE || !mtls {
		r.Del(xForwardedClientCert)
		return
	}
	if mode == hcmv3.HttpConnectionManager_FORWARD_ONLY {
		return
	}
	v := m.xfcc.element(c)
	if mode == hcmv3.HttpConnectionManager_APPEND_FORWARD {
		r.AppendValue(xForwardedClientCert, ",", []byte(v))
		return
	}
	r.Set(xForwardedClientCert, v)
}

// element builds this hop's XFCC element from the connection's TLS state.
func (x *xfccConfig) element(c *network.Conn) string {
	var parts []string
	for _, u := range c.LocalURIs {
		parts = append(parts, "By="+u)
	}
	chain := c.TLS.PeerCertificates
	leaf := chain[0]
	sum := sha256.Sum256(leaf.Raw)
	parts = append(parts, "Hash="+hex.EncodeToString(sum[:]))
	if x.cert {
		parts = append(parts, `Cert="`+urlPEM(chain[:1])+`"`)
	}
	if x.chain {
		parts = append(parts, `Chain="`+urlPEM(chain)+`"`)
	}
	if x.subject {
		parts = append(parts, `Subject="`+leaf.Subject.String()+`"`)
	}
	if x.uri {
		if len(leaf.URIs) == 0 {
			parts = append(parts, "URI=") // the key stays, as in Envoy
		}
		for _, u := range leaf.URIs {
			parts = append(parts, "URI="+u.String())
		}
	}
	if x.dns {
		for _, d := range leaf.DNSNames {
			parts = append(parts, "DNS="+d)
		}
	}
	return strings.Join(parts, ";")
}

// urlPEM is Envoy's urlEncodedPemEncodedPeerCertificate(Chain).
func urlPEM(certs []*x509.Certificate) string {
	var b strings.Builder
	for _, c := range certs {
		b.Write(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}))
	}
	return url.QueryEscape(b.String())
}

var schemeHTTPS = []byte("https")

// schemeOf is the request scheme of a downstream connection: https when a
// TLS transport socket terminated it (Envoy sets :scheme and
// x-forwarded-proto from the connection's security), http otherwise.
func schemeOf(c *network.Conn) []byte {
	if c != nil && c.TLS != nil {
		return schemeHTTPS
	}
	return schemeHTTP
}
