package tlsctx

import (
	"crypto/tls"
	"errors"
	"slices"

	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
)

// Server is a compiled DownstreamTlsContext. It is immutable and safe for
// concurrent use.
type Server struct {
	c        *common
	require  bool
	config   *tls.Config
	noALPN   *tls.Config // for clients that offer none of our protocols
	refNames []SecretRef
}

// NewServer compiles a DownstreamTlsContext. A certificate (inline, file or
// SDS) is required. Errors name the field under the context.
func NewServer(dc *tlsv3.DownstreamTlsContext, o Options) (*Server, error) {
	c, err := compileCommon(dc.GetCommonTlsContext(), o)
	if err != nil {
		return nil, errorAt("common_tls_context.", err)
	}
	if c.cert == nil && c.certName == "" {
		return nil, errors.New("common_tls_context: a certificate is required (tls_certificates or tls_certificate_sds_secret_configs)")
	}
	s := &Server{c: c, require: dc.GetRequireClientCertificate().GetValue(), refNames: c.refs}
	if s.require && !c.hasValidation() {
		return nil, errors.New("require_client_certificate: needs a validation context with a trusted_ca")
	}
	cfg := c.baseConfig()
	cfg.GetCertificate = s.getCertificate
	switch {
	case s.require:
		cfg.ClientAuth = tls.RequireAnyClientCert
	case c.hasValidation():
		// Envoy requests a client certificate when a validation context
		// is configured, and verifies it when one is sent.
		cfg.ClientAuth = tls.RequestClientCert
	}
	cfg.VerifyConnection = s.verifyConnection
	// Session tickets: Go's automatically rotated ticket keys (Envoy's
	// stateless resumption is on by default too).
	s.noALPN = cfg.Clone()
	s.noALPN.NextProtos = nil
	cfg.GetConfigForClient = s.configForClient
	s.config = cfg
	return s, nil
}

// Config returns the tls.Config to terminate connections with. Its
// callbacks read the current secrets at every handshake.
func (s *Server) Config() *tls.Config { return s.config }

// SecretRefs returns the SDS secrets the context needs.
func (s *Server) SecretRefs() []SecretRef { return s.refNames }

// configForClient drops ALPN when the client offers none of the
// configured protocols: as Envoy (BoringSSL's select callback answers
// NOACK), the handshake goes on without ALPN instead of failing with
// no_application_protocol as Go would.
func (s *Server) configForClient(hello *tls.ClientHelloInfo) (*tls.Config, error) {
	if len(hello.SupportedProtos) == 0 || len(s.c.alpn) == 0 {
		return nil, nil
	}
	for _, p := range hello.SupportedProtos {
		if slices.Contains(s.c.alpn, p) {
			return nil, nil
		}
	}
	return s.noALPN, nil
}

func (s *Server) getCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	if c := s.c.certificate(); c != nil {
		return c, nil
	}
	return nil, errors.New("the server certificate secret is not available")
}

func (s *Server) verifyConnection(cs tls.ConnectionState) error {
	if len(cs.PeerCertificates) == 0 {
		if s.require {
			return errors.New("the client presented no certificate (require_client_certificate)")
		}
		return nil
	}
	return s.c.verify(cs.PeerCertificates)
}

func errorAt(prefix string, err error) error { return &fieldError{prefix: prefix, err: err} }

type fieldError struct {
	prefix string
	err    error
}

func (e *fieldError) Error() string { return e.prefix + e.err.Error() }
func (e *fieldError) Unwrap() error { return e.err }

// Certificate returns the certificate the context presents now (nil when
// its SDS secret has not arrived).
func (s *Server) Certificate() *tls.Certificate { return s.c.certificate() }
