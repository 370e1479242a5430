package jwtauthn

import (
	"crypto/elliptic"
	"testing"

	"github.com/weftmesh/weft/internal/proxy/httpfilter"
)

// BenchmarkVerifiedRequest measures the filter on a request with a valid
// token (extraction, parsing, claim checks, signature, metadata).
func BenchmarkVerifiedRequest(b *testing.B) {
	for _, k := range []*testKey{newRSAKey(b, "r", "RS256"), newECKey(b, "e", "ES256", elliptic.P256())} {
		b.Run(k.alg, func(b *testing.B) {
			f, _ := newFilter(b, istioConfig(jwks(k), ""), nil)
			auth := "Bearer " + k.sign(b, claims(nil))
			s, _ := newStream("/api", "authorization", auth)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				s.Req.Set("authorization", auth)
				s.Metadata = nil
				if f.DecodeHeaders(s) != httpfilter.Continue {
					b.Fatal("rejected")
				}
			}
		})
	}
}

// BenchmarkNoToken is the cost on a request without a token.
func BenchmarkNoToken(b *testing.B) {
	f, _ := newFilter(b, istioConfig(jwks(newRSAKey(b, "r", "RS256")), ""), nil)
	s, _ := newStream("/api", "x-a", "b")
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if f.DecodeHeaders(s) != httpfilter.Continue {
			b.Fatal("rejected")
		}
	}
}
