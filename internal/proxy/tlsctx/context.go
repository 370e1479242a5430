package tlsctx

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
)

// Options are what building a context needs besides its configuration.
type Options struct {
	// Secrets provides the SDS secrets the context names. Required when
	// the context references SDS secrets.
	Secrets Provider
}

// SecretRef is an SDS secret a context needs, with where to get it.
type SecretRef struct {
	Name   string
	Source *corev3.ConfigSource
}

// common is a compiled CommonTlsContext.
type common struct {
	secrets Provider
	// cert is the inline/file certificate; certName the SDS one.
	cert     *tls.Certificate
	certName string
	// validation is the static (or default) validation context;
	// validationName the SDS one, merged into it at handshake time.
	validation     *Validation
	validationName string
	alpn           []string
	minVersion     uint16
	maxVersion     uint16
	ciphers        []uint16
	refs           []SecretRef
}

func compileCommon(c *tlsv3.CommonTlsContext, o Options) (*common, error) {
	out := &common{secrets: o.Secrets, alpn: c.GetAlpnProtocols()}
	if err := out.compileCerts(c); err != nil {
		return nil, err
	}
	if err := out.compileValidationType(c); err != nil {
		return nil, err
	}
	if err := out.compileParams(c.GetTlsParams()); err != nil {
		return nil, fmt.Errorf("tls_params.%w", err)
	}
	if len(out.refs) > 0 && o.Secrets == nil {
		return nil, errors.New("SDS secrets are referenced but no secret provider is configured")
	}
	return out, nil
}

func (c *common) compileCerts(tc *tlsv3.CommonTlsContext) error {
	certs, sds := tc.GetTlsCertificates(), tc.GetTlsCertificateSdsSecretConfigs()
	if len(certs)+len(sds) > 1 {
		return errors.New("tls_certificates, tls_certificate_sds_secret_configs: at most one certificate is supported")
	}
	if len(certs) == 1 {
		cert, err := compileCert(certs[0])
		if err != nil {
			return fmt.Errorf("tls_certificates[0].%w", err)
		}
		c.cert = cert
	}
	if len(sds) == 1 {
		if err := checkSDS(sds[0]); err != nil {
			return fmt.Errorf("tls_certificate_sds_secret_configs[0].%w", err)
		}
		c.certName = sds[0].GetName()
		c.refs = append(c.refs, SecretRef{Name: sds[0].GetName(), Source: sds[0].GetSdsConfig()})
	}
	return nil
}

func (c *common) compileValidationType(tc *tlsv3.CommonTlsContext) error {
	var err error
	switch {
	case tc.GetValidationContext() != nil:
		if c.validation, err = compileValidation(tc.GetValidationContext()); err != nil {
			return fmt.Errorf("validation_context.%w", err)
		}
	case tc.GetValidationContextSdsSecretConfig() != nil:
		s := tc.GetValidationContextSdsSecretConfig()
		if err := checkSDS(s); err != nil {
			return fmt.Errorf("validation_context_sds_secret_config.%w", err)
		}
		c.validationName = s.GetName()
		c.refs = append(c.refs, SecretRef{Name: s.GetName(), Source: s.GetSdsConfig()})
	case tc.GetCombinedValidationContext() != nil:
		cv := tc.GetCombinedValidationContext()
		if c.validation, err = compileValidation(cv.GetDefaultValidationContext()); err != nil {
			return fmt.Errorf("combined_validation_context.default_validation_context.%w", err)
		}
		s := cv.GetValidationContextSdsSecretConfig()
		if err := checkSDS(s); err != nil {
			return fmt.Errorf("combined_validation_context.validation_context_sds_secret_config.%w", err)
		}
		c.validationName = s.GetName()
		c.refs = append(c.refs, SecretRef{Name: s.GetName(), Source: s.GetSdsConfig()})
	}
	return nil
}

// checkSDS checks an SdsSecretConfig: a name and an sds_config that is
// ADS or a gRPC api_config_source with one envoy_grpc cluster (Istio's
// sds-grpc form).
func checkSDS(s *tlsv3.SdsSecretConfig) error {
	if s.GetName() == "" {
		return errors.New("name: required")
	}
	cs := s.GetSdsConfig()
	switch {
	case cs == nil:
		return errors.New("sds_config: required (inline secrets go in tls_certificates / validation_context)")
	case cs.GetAds() != nil:
		return nil
	case cs.GetApiConfigSource() != nil:
		api := cs.GetApiConfigSource()
		if api.GetApiType() != corev3.ApiConfigSource_GRPC {
			return errors.New("sds_config.api_config_source.api_type: GRPC is required")
		}
		if gs := api.GetGrpcServices(); len(gs) != 1 || gs[0].GetEnvoyGrpc().GetClusterName() == "" {
			return errors.New("sds_config.api_config_source.grpc_services: exactly one envoy_grpc {cluster_name} is required")
		}
		return nil
	}
	return errors.New("sds_config: set ads {} or api_config_source (GRPC)")
}

// Cluster returns the static cluster of the SDS server the secret comes
// from, or "" when it comes over ADS.
func (r SecretRef) Cluster() string {
	if gs := r.Source.GetApiConfigSource().GetGrpcServices(); len(gs) > 0 {
		return gs[0].GetEnvoyGrpc().GetClusterName()
	}
	return ""
}

var tlsVersions = map[tlsv3.TlsParameters_TlsProtocol]uint16{
	tlsv3.TlsParameters_TLSv1_0: tls.VersionTLS10,
	tlsv3.TlsParameters_TLSv1_1: tls.VersionTLS11,
	tlsv3.TlsParameters_TLSv1_2: tls.VersionTLS12,
	tlsv3.TlsParameters_TLSv1_3: tls.VersionTLS13,
}

// compileParams reads tls_params. Envoy's defaults: TLS 1.2 minimum for
// both sides, TLS 1.3 maximum. cipher_suites names are the BoringSSL/
// IANA names Go knows (TLS 1.3 suites are not configurable, as in Envoy).
func (c *common) compileParams(p *tlsv3.TlsParameters) error {
	c.minVersion, c.maxVersion = tls.VersionTLS12, tls.VersionTLS13
	if v := p.GetTlsMinimumProtocolVersion(); v != tlsv3.TlsParameters_TLS_AUTO {
		c.minVersion = tlsVersions[v]
	}
	if v := p.GetTlsMaximumProtocolVersion(); v != tlsv3.TlsParameters_TLS_AUTO {
		c.maxVersion = tlsVersions[v]
	}
	if c.minVersion > c.maxVersion {
		return errors.New("tls_minimum_protocol_version: greater than tls_maximum_protocol_version")
	}
	for i, name := range p.GetCipherSuites() {
		id, ok := cipherByName(name)
		if !ok {
			return fmt.Errorf("cipher_suites[%d]: %q is not a supported cipher suite (use IANA or OpenSSL names of TLS 1.2 ECDHE suites)", i, name)
		}
		c.ciphers = append(c.ciphers, id)
	}
	return nil
}

// openSSLNames maps Envoy's (BoringSSL) cipher names to Go's.
var openSSLNames = map[string]uint16{
	"ECDHE-ECDSA-AES128-GCM-SHA256": tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	"ECDHE-RSA-AES128-GCM-SHA256":   tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	"ECDHE-ECDSA-AES256-GCM-SHA384": tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	"ECDHE-RSA-AES256-GCM-SHA384":   tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	"ECDHE-ECDSA-CHACHA20-POLY1305": tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	"ECDHE-RSA-CHACHA20-POLY1305":   tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

func cipherByName(name string) (uint16, bool) {
	if id, ok := openSSLNames[name]; ok {
		return id, true
	}
	for _, cs := range tls.CipherSuites() {
		if cs.Name == name {
			return cs.ID, true
		}
	}
	return 0, false
}

// certificate returns the current certificate: the inline one or the SDS
// secret's (nil when the secret has not arrived).
func (c *common) certificate() *tls.Certificate {
	if c.cert != nil {
		return c.cert
	}
	if c.certName == "" {
		return nil
	}
	if s := c.secrets.Secret(c.certName); s != nil {
		return s.Cert
	}
	return nil
}

// currentValidation returns the validation context in force, or nil when
// there is none; errMissing when the SDS part has not arrived.
func (c *common) currentValidation() (*Validation, error) {
	if c.validationName == "" {
		return c.validation, nil
	}
	s := c.secrets.Secret(c.validationName)
	if s == nil || s.Validation == nil {
		return nil, fmt.Errorf("validation context secret %q is not available", c.validationName)
	}
	return merge(c.validation, s.Validation), nil
}

func (c *common) hasValidation() bool { return c.validation != nil || c.validationName != "" }

// baseConfig is the part of a tls.Config shared by both sides.
func (c *common) baseConfig() *tls.Config {
	return &tls.Config{
		MinVersion:   c.minVersion,
		MaxVersion:   c.maxVersion,
		CipherSuites: slices.Clone(c.ciphers),
		NextProtos:   slices.Clone(c.alpn),
		// Envoy's default ecdh_curves (X25519, P-256): no post-quantum
		// hybrid, whose key shares cost more per handshake.
		CurvePreferences: []tls.CurveID{tls.X25519, tls.CurveP256},
	}
}

// verify runs the validation context in force on the peer's chain.
func (c *common) verify(chain []*x509.Certificate) error {
	v, err := c.currentValidation()
	if err != nil {
		return err
	}
	if v == nil {
		return nil
	}
	return v.Verify(chain)
}
