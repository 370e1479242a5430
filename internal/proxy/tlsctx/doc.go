// Package tlsctx builds crypto/tls configurations from Envoy's
// envoy.extensions.transport_sockets.tls.v3 DownstreamTlsContext and
// UpstreamTlsContext, with certificates and trust bundles given inline, in
// files, or by name as SDS secrets.
//
// Secrets named by a context are read through a Provider on every
// handshake (GetCertificate, GetClientCertificate, VerifyConnection), with
// one atomic load each, so that a rotated secret applies to the next
// handshake and never disturbs an established connection, as Envoy's SDS
// secret updates do.
//
// Validation follows Envoy's CertificateValidationContext: with a
// trusted_ca the peer's chain is verified against it; the SAN matchers
// (match_typed_subject_alt_names, and the deprecated match_subject_alt_names
// matching any DNS, URI, email or IP SAN) must match at least one SAN of the
// leaf; without a validation context the peer is not verified (Envoy's
// default for upstreams) and a downstream client certificate is not
// requested.
package tlsctx
