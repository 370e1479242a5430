// Package jwtauthn is Envoy's JWT authentication HTTP filter,
// envoy.filters.http.jwt_authn (envoy.extensions.filters.http.jwt_authn.v3.
// JwtAuthentication), as Istio configures it for RequestAuthentication.
//
// A filter holds providers (issuer, audiences, where the token is read,
// where its keys come from) and rules that map request paths to
// requirements (a provider, requires_any, requires_all, allow_missing,
// allow_missing_or_failed). For each request the filter extracts the
// tokens of the providers the requirement names, verifies them (signature
// RS256/384/512, PS256/384/512, ES256/384/512; exp and nbf with the clock
// skew; issuer; audiences), and either continues — after writing the
// verified payload into the stream's dynamic metadata under
// "envoy.filters.http.jwt_authn" / payload_in_metadata, and the
// configured headers — or answers 401 (403 for a disallowed audience) with
// Envoy's message as the body and its www-authenticate header.
//
// Keys are inline (local_jwks) or fetched (remote_jwks): fetched key sets
// are cached for cache_duration, then refreshed in the background while the
// old keys keep serving; a failed refresh keeps the old keys.
package jwtauthn

// Status is the outcome of extracting and verifying a token, with the
// messages of Envoy's jwt_verify_lib (they are the body of the 401).
type Status uint8

// Statuses (jwt_verify_lib's names).
const (
	OK Status = iota
	JwtMissed
	JwtBadFormat
	JwtHeaderParseErrorBadBase64
	JwtHeaderBadJSON
	JwtHeaderBadAlg
	JwtHeaderNotImplementedAlg
	JwtPayloadParseErrorBadBase64
	JwtPayloadBadJSON
	JwtPayloadBadClaim
	JwtSignatureParseErrorBadBase64
	JwtExpired
	JwtNotYetValid
	JwtAudienceNotAllowed
	JwtUnknownIssuer
	JwtVerificationFail
	JwksKidAlgMismatch
	JwksFetchFail
	JwksNoValidKeys
)

var statusText = [...]string{
	OK:                              "OK",
	JwtMissed:                       "Jwt is missing",
	JwtBadFormat:                    "Jwt is not in the form of Header.Payload.Signature with two dots and 3 sections",
	JwtHeaderParseErrorBadBase64:    "Jwt header is an invalid Base64url encoded",
	JwtHeaderBadJSON:                "Jwt header is an invalid JSON",
	JwtHeaderBadAlg:                 "Jwt header [alg] field is required and must be a string",
	JwtHeaderNotImplementedAlg:      "Jwt header [alg] is not supported",
	JwtPayloadParseErrorBadBase64:   "Jwt payload is an invalid Base64url encoded",
	JwtPayloadBadJSON:               "Jwt payload is an invalid JSON",
	JwtPayloadBadClaim:              "Jwt payload has a claim of the wrong type",
	JwtSignatureParseErrorBadBase64: "Jwt signature is an invalid Base64url encoded",
	JwtExpired:                      "Jwt is expired",
	JwtNotYetValid:                  "Jwt not yet valid",
	JwtAudienceNotAllowed:           "Audiences in Jwt are not allowed",
	JwtUnknownIssuer:                "Jwt issuer is not configured",
	JwtVerificationFail:             "Jwt verification fails",
	JwksKidAlgMismatch:              "Jwks doesn't have key to match kid or alg from Jwt",
	JwksFetchFail:                   "Jwks remote fetch is failed",
	JwksNoValidKeys:                 "Jwks doesn't have valid keys",
}

// String returns Envoy's message for s.
func (s Status) String() string {
	if int(s) < len(statusText) {
		return statusText[s]
	}
	return "unknown status"
}

// Error makes a Status an error.
func (s Status) Error() string { return s.String() }

// details is the response code details of a rejection, as Envoy's
// jwt_authn_access_denied{MESSAGE_WITH_UNDERSCORES}.
func (s Status) details() string {
	b := []byte("jwt_authn_access_denied{" + s.String() + "}")
	for i, c := range b {
		if c == ' ' {
			b[i] = '_'
		}
	}
	return string(b)
}
