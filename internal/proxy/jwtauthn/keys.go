package jwtauthn

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
)

// keySet is a parsed JWKS: the public keys usable for verification.
// Immutable once built.
type keySet struct {
	keys []jwk
}

// jwk is one public key of a JWKS.
type jwk struct {
	kid, alg string // "" when the JWK does not say
	rsa      *rsa.PublicKey
	ec       *ecdsa.PublicKey
}

// rawJWK is a JWK as JSON (RFC 7517/7518): RSA (n, e) and EC (crv, x, y).
type rawJWK struct {
	Kty string `json:"kty"`
	Kid string `json:"kid"`
	Alg string `json:"alg"`
	Use string `json:"use"`
	N   string `json:"n"`
	E   string `json:"e"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Y   string `json:"y"`
}

// parseJWKS parses a JSON Web Key Set. Keys of other types (oct, OKP),
// curves or uses ("enc") are skipped, as jwt_verify_lib skips keys it
// cannot use; a set with no usable key is an error.
func parseJWKS(data []byte) (*keySet, error) {
	var doc struct {
		Keys []rawJWK `json:"keys"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("JWKS is not valid JSON: %w", err)
	}
	ks := &keySet{}
	var firstErr error
	for i, r := range doc.Keys {
		k, err := r.parse()
		if err != nil {
			if firstErr == nil {
				firstErr = fmt.Errorf("keys[%d]: %w", i, err)
			}
			continue
		}
		ks.keys = append(ks.keys, k)
	}
	if len(ks.keys) == 0 {
		if firstErr == nil {
			firstErr = errors.New("no keys")
		}
		return nil, fmt.Errorf("JWKS has no usable key (RSA or EC P-256/P-384/P-521): %w", firstErr)
	}
	return ks, nil
}

func (r rawJWK) parse() (jwk, error) {
	k := jwk{kid: r.Kid, alg: r.Alg}
	if r.Use != "" && r.Use != "sig" {
		return k, fmt.Errorf("use %q is not \"sig\"", r.Use)
	}
	switch r.Kty {
	case "RSA":
		n, err1 := decodeSegment(r.N)
		e, err2 := decodeSegment(r.E)
		if err1 != nil || err2 != nil || len(n) == 0 || len(e) == 0 || len(e) > 4 {
			return k, errors.New("RSA key: n and e must be base64url big-endian integers")
		}
		ev := int(new(big.Int).SetBytes(e).Int64())
		if ev < 3 {
			return k, errors.New("RSA key: bad exponent")
		}
		k.rsa = &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: ev}
	case "EC":
		c := curveOf(r.Crv)
		if c == nil {
			return k, fmt.Errorf("EC key: curve %q is not supported", r.Crv)
		}
		x, err1 := decodeSegment(r.X)
		y, err2 := decodeSegment(r.Y)
		if err1 != nil || err2 != nil {
			return k, errors.New("EC key: x and y must be base64url")
		}
		size := (c.Params().BitSize + 7) / 8
		if len(x) != size || len(y) != size {
			return k, errors.New("EC key: x and y have the wrong length")
		}
		// Build the uncompressed point and let crypto/ecdh-backed parsing
		// check that it is on the curve.
		pt := append(append([]byte{4}, x...), y...)
		pub, err := ecdsaPublicKey(c, pt)
		if err != nil {
			return k, err
		}
		k.ec = pub
	default:
		return k, fmt.Errorf("kty %q is not supported", r.Kty)
	}
	return k, nil
}

// ecdsaPublicKey parses an uncompressed point, checking it is on c.
func ecdsaPublicKey(c elliptic.Curve, pt []byte) (*ecdsa.PublicKey, error) {
	pub, err := ecdsa.ParseUncompressedPublicKey(c, pt)
	if err != nil {
		return nil, fmt.Errorf("EC key: %w", err)
	}
	return pub, nil
}

func curveOf(crv string) elliptic.Curve {
	switch crv {
	case "P-256":
		return elliptic.P256()
	case "P-384":
		return elliptic.P384()
	case "P-521":
		return elliptic.P521()
	}
	return nil
}

// algorithm is one JWS algorithm weft verifies.
type algorithm struct {
	hash  crypto.Hash
	kind  byte // 'R' PKCS#1 v1.5, 'P' PSS, 'E' ECDSA
	curve elliptic.Curve
}

// algorithms are the supported JWS algorithms (RFC 7518 §3).
var algorithms = map[string]algorithm{
	"RS256": {crypto.SHA256, 'R', nil},
	"RS384": {crypto.SHA384, 'R', nil},
	"RS512": {crypto.SHA512, 'R', nil},
	"PS256": {crypto.SHA256, 'P', nil},
	"PS384": {crypto.SHA384, 'P', nil},
	"PS512": {crypto.SHA512, 'P', nil},
	"ES256": {crypto.SHA256, 'E', elliptic.P256()},
	"ES384": {crypto.SHA384, 'E', elliptic.P384()},
	"ES512": {crypto.SHA512, 'E', elliptic.P521()},
}

// verify checks t's signature against the set, as jwt_verify_lib does:
// keys whose kid (when both have one) or alg (when the key has one)
// differ from the token's are skipped; the token verifies if any other key
// of a matching type verifies it.
func (ks *keySet) verify(t *Token) Status {
	alg, ok := algorithms[t.Alg]
	if !ok {
		return JwtHeaderNotImplementedAlg
	}
	var digest [64]byte
	d := hashInput(alg.hash, t.signingInput, digest[:0])
	candidates := 0
	for i := range ks.keys {
		k := &ks.keys[i]
		if t.Kid != "" && k.kid != "" && k.kid != t.Kid || k.alg != "" && k.alg != t.Alg {
			continue
		}
		switch {
		case alg.kind == 'R' && k.rsa != nil:
			candidates++
			if rsa.VerifyPKCS1v15(k.rsa, alg.hash, d, t.signature) == nil {
				return OK
			}
		case alg.kind == 'P' && k.rsa != nil:
			candidates++
			if rsa.VerifyPSS(k.rsa, alg.hash, d, t.signature, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash}) == nil {
				return OK
			}
		case alg.kind == 'E' && k.ec != nil && k.ec.Curve == alg.curve:
			candidates++
			if verifyES(k.ec, d, t.signature) {
				return OK
			}
		}
	}
	if candidates == 0 {
		return JwksKidAlgMismatch
	}
	return JwtVerificationFail
}

// verifyES checks a JWS ECDSA signature: R || S, each the curve's size.
func verifyES(pub *ecdsa.PublicKey, digest, sig []byte) bool {
	size := (pub.Curve.Params().BitSize + 7) / 8
	if len(sig) != 2*size {
		return false
	}
	r := new(big.Int).SetBytes(sig[:size])
	s := new(big.Int).SetBytes(sig[size:])
	return ecdsa.Verify(pub, digest, r, s)
}

// hashInput hashes s with h into dst (no allocation for the digest).
func hashInput(h crypto.Hash, s string, dst []byte) []byte {
	switch h {
	case crypto.SHA256:
		sum := sha256.Sum256([]byte(s))
		return append(dst, sum[:]...)
	case crypto.SHA384:
		sum := sha512.Sum384([]byte(s))
		return append(dst, sum[:]...)
	default:
		sum := sha512.Sum512([]byte(s))
		return append(dst, sum[:]...)
	}
}
