package jwtauthn

import (
	"strings"
	"testing"
)

// FuzzParse feeds arbitrary strings to the token parser: it must never
// panic, and a token it accepts has the three segments it was parsed from.
func FuzzParse(f *testing.F) {
	k := newRSAKey(f, "k1", "RS256")
	f.Add(k.sign(f, claims(nil)))
	f.Add(k.sign(f, claims(map[string]any{"aud": []any{"a", "b"}, "exp": 1.5})))
	f.Add("eyJhbGciOiJub25lIn0.e30.")
	f.Add("a.b.c")
	f.Add("..")
	f.Add("eyJhbGciOjF9.e30.AA")
	f.Add(b64([]byte(`{"alg":"RS256","kid":7}`)) + "." + b64([]byte(`{"aud":[1]}`)) + ".")
	ks := &keySet{keys: []jwk{{kid: "k1", rsa: &k.rsa.PublicKey}}}
	f.Fuzz(func(t *testing.T, raw string) {
		tok, st := Parse(raw)
		if st != OK {
			if tok != nil {
				t.Fatalf("token returned with status %v", st)
			}
			return
		}
		if strings.Count(raw, ".") != 2 || !strings.HasPrefix(raw, tok.signingInput) {
			t.Fatalf("accepted %q with signing input %q", raw, tok.signingInput)
		}
		_ = ks.verify(tok) // must not panic
	})
}
