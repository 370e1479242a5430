package jwtauthn

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"math"
	"strings"
)

// Token is a parsed (not yet verified) JWT in JWS compact serialisation.
type Token struct {
	// Alg and Kid are the JOSE header's alg and kid.
	Alg, Kid string
	// Iss and Sub are the issuer and subject claims ("" when absent).
	Iss, Sub string
	// Aud is the audience claim, a string or a list of strings.
	Aud []string
	// Exp and Nbf are the expiry and not-before times in Unix seconds; 0
	// when absent.
	Exp, Nbf int64
	// Claims is the decoded payload (JSON numbers are float64).
	Claims map[string]any
	// RawPayload is the token's base64url payload segment, as Envoy
	// forwards it in forward_payload_header.
	RawPayload string

	signingInput string // header.payload
	signature    []byte
}

// Parse splits and decodes a compact JWS: three base64url segments, a
// JSON header with a string alg, and a JSON object payload whose
// registered claims have their RFC 7519 types. It does not verify
// anything; the Status says what is malformed (Envoy's messages).
func Parse(raw string) (*Token, Status) {
	h, rest, ok := strings.Cut(raw, ".")
	if !ok {
		return nil, JwtBadFormat
	}
	p, sig, ok := strings.Cut(rest, ".")
	if !ok || strings.IndexByte(sig, '.') >= 0 {
		return nil, JwtBadFormat
	}
	t := &Token{RawPayload: p, signingInput: raw[:len(h)+1+len(p)]}
	hb, err := decodeSegment(h)
	if err != nil {
		return nil, JwtHeaderParseErrorBadBase64
	}
	var hdr map[string]any
	if json.Unmarshal(hb, &hdr) != nil || hdr == nil {
		return nil, JwtHeaderBadJSON
	}
	alg, ok := hdr["alg"].(string)
	if !ok {
		return nil, JwtHeaderBadAlg
	}
	t.Alg = alg
	if kid, ok := hdr["kid"]; ok {
		if t.Kid, ok = kid.(string); !ok {
			return nil, JwtHeaderBadJSON
		}
	}
	pb, err := decodeSegment(p)
	if err != nil {
		return nil, JwtPayloadParseErrorBadBase64
	}
	if json.Unmarshal(pb, &t.Claims) != nil || t.Claims == nil {
		return nil, JwtPayloadBadJSON
	}
	if st := t.readClaims(); st != OK {
		return nil, st
	}
	if t.signature, err = decodeSegment(sig); err != nil {
		return nil, JwtSignatureParseErrorBadBase64
	}
	return t, OK
}

// readClaims reads the registered claims the verifier uses.
func (t *Token) readClaims() Status {
	var ok bool
	if v, has := t.Claims["iss"]; has {
		if t.Iss, ok = v.(string); !ok {
			return JwtPayloadBadClaim
		}
	}
	if v, has := t.Claims["sub"]; has {
		if t.Sub, ok = v.(string); !ok {
			return JwtPayloadBadClaim
		}
	}
	switch v := t.Claims["aud"].(type) {
	case nil:
	case string:
		t.Aud = []string{v}
	case []any:
		for _, a := range v {
			s, ok := a.(string)
			if !ok {
				return JwtPayloadBadClaim
			}
			t.Aud = append(t.Aud, s)
		}
	default:
		return JwtPayloadBadClaim
	}
	for _, c := range []struct {
		name string
		dst  *int64
	}{{"exp", &t.Exp}, {"nbf", &t.Nbf}} {
		v, has := t.Claims[c.name]
		if !has {
			continue
		}
		f, ok := v.(float64)
		if !ok || f < 0 || f > math.MaxInt64/2 {
			return JwtPayloadBadClaim
		}
		*c.dst = int64(f)
	}
	return OK
}

// decodeSegment decodes base64url with or without padding (Envoy's
// jwt_verify_lib accepts both).
func decodeSegment(s string) ([]byte, error) {
	s = strings.TrimRight(s, "=")
	return base64.RawURLEncoding.DecodeString(s)
}

// extractToken returns the JWT at the start of v: the longest run of
// base64url characters and dots (what follows, such as ", other", is not
// part of it), as Envoy's extractor does after the value prefix.
func extractToken(v []byte) []byte {
	v = bytes.TrimLeft(v, " ")
	for i, c := range v {
		if !isTokenChar(c) {
			return v[:i]
		}
	}
	return v
}

func isTokenChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '-' || c == '_' || c == '.' || c == '=' || c == '+' || c == '/'
}
