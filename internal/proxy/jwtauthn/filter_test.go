package jwtauthn

import (
	"crypto/elliptic"
	"fmt"
	"strings"
	"testing"

	"github.com/weftmesh/weft/internal/proxy/httpfilter"
)

// istioConfig is the shape weft-control emits for one RequestAuthentication
// rule (requires_any {provider, allow_missing}), with extra provider fields.
func istioConfig(jwksJSON, extra string) string {
	q, _ := jsonString(jwksJSON)
	return fmt.Sprintf(`{
  "providers": {"origins-0": {
    "issuer": "https://issuer.example.com",
    "audiences": ["svc.example.com", "https://other.example.com/"],
    "localJwks": {"inlineString": %s},
    "payloadInMetadata": "payload",
    "normalizePayloadInMetadata": {"spaceDelimitedClaims": ["scope"]}%s}},
  "rules": [{"match": {"prefix": "/"}, "requires": {"requiresAny": {"requirements": [
    {"providerName": "origins-0"}, {"allowMissing": {}}]}}}],
  "bypassCorsPreflight": true}`, q, extra)
}

func jsonString(s string) (string, error) {
	b := strings.Builder{}
	b.WriteByte('"')
	for _, c := range s {
		if c == '"' || c == '\\' {
			b.WriteByte('\\')
		}
		b.WriteRune(c)
	}
	b.WriteByte('"')
	return b.String(), nil
}

func TestVerifyAlgorithms(t *testing.T) {
	keys := []*testKey{
		newRSAKey(t, "rs256", "RS256"), newRSAKey(t, "rs384", "RS384"), newRSAKey(t, "rs512", "RS512"),
		newRSAKey(t, "ps256", "PS256"),
		newECKey(t, "es256", "ES256", elliptic.P256()), newECKey(t, "es384", "ES384", elliptic.P384()),
	}
	f, _ := newFilter(t, istioConfig(jwks(keys...), ""), nil)
	for _, k := range keys {
		t.Run(k.alg, func(t *testing.T) {
			s, w := newStream("/api", "authorization", "Bearer "+k.sign(t, claims(nil)))
			if st := f.DecodeHeaders(s); st != httpfilter.Continue {
				t.Fatalf("status %v, response %d %q", st, w.resp.Status, w.body.String())
			}
			iss := s.Metadata[FilterName].GetFields()["payload"].GetStructValue().GetFields()["iss"].GetStringValue()
			if iss != "https://issuer.example.com" {
				t.Errorf("metadata payload iss = %q", iss)
			}
			if s.Req.Has("authorization") {
				t.Error("authorization header kept without forward")
			}
		})
	}
}

func TestRejections(t *testing.T) {
	good := newRSAKey(t, "k1", "RS256")
	other := newRSAKey(t, "k1", "RS256") // same kid, different key
	ec := newECKey(t, "e1", "ES256", elliptic.P256())
	f, st := newFilter(t, istioConfig(jwks(good, ec), ""), nil)
	tampered := good.sign(t, claims(nil))
	tampered = tampered[:len(tampered)-4] + "AAAA"
	cases := []struct {
		name, token string
		code        int
		body        string
	}{
		{"expired", good.sign(t, claims(map[string]any{"exp": fixedNow.Unix() - 61})), 401, "Jwt is expired"},
		{"not yet valid", good.sign(t, claims(map[string]any{"nbf": fixedNow.Unix() + 61})), 401, "Jwt not yet valid"},
		{"wrong audience", good.sign(t, claims(map[string]any{"aud": []any{"x.example.com"}})), 403, "Audiences in Jwt are not allowed"},
		{"wrong issuer", good.sign(t, claims(map[string]any{"iss": "https://evil.example.com"})), 401, "Jwt issuer is not configured"},
		{"bad signature (other key)", other.sign(t, claims(nil)), 401, "Jwt verification fails"},
		{"tampered signature", tampered, 401, "Jwt verification fails"},
		{"unknown kid", (&testKey{kid: "nope", alg: "ES256", ec: ec.ec}).sign(t, claims(nil)), 401, "Jwks doesn't have key to match kid or alg from Jwt"},
		{"not a JWT", "abc.def", 401, "Jwt is not in the form of Header.Payload.Signature with two dots and 3 sections"},
		{"bad header JSON", b64([]byte("{x")) + "." + b64([]byte("{}")) + ".AA", 401, "Jwt header is an invalid JSON"},
		{"alg none", b64([]byte(`{"alg":"none"}`)) + "." + b64([]byte(`{"iss":"https://issuer.example.com","aud":"svc.example.com"}`)) + ".", 401, "Jwt header [alg] is not supported"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, w := newStream("/api?x=1", "authorization", "Bearer "+c.token)
			if got := f.DecodeHeaders(s); got != httpfilter.Stop {
				t.Fatalf("status %v, want Stop", got)
			}
			if w.resp.Status != c.code || w.body.String() != c.body {
				t.Errorf("response %d %q, want %d %q", w.resp.Status, w.body.String(), c.code, c.body)
			}
			want := `Bearer realm="http://svc.example.com/api", error="invalid_token"`
			if got := string(w.resp.Get("www-authenticate")); got != want {
				t.Errorf("www-authenticate %q, want %q", got, want)
			}
			if s.Metadata != nil {
				t.Errorf("metadata set on a rejected request: %v", s.Metadata)
			}
		})
	}
	denied := st.Root().Scope("http.inbound").Scope("jwt_authn").Counter("denied").Value()
	if denied != uint64(len(cases)) {
		t.Errorf("denied counter = %d, want %d", denied, len(cases))
	}
}

func TestMissingTokenPasses(t *testing.T) {
	k := newRSAKey(t, "k1", "RS256")
	f, _ := newFilter(t, istioConfig(jwks(k), ""), nil)
	s, w := newStream("/api", "x-other", "y")
	if got := f.DecodeHeaders(s); got != httpfilter.Continue || w.sent {
		t.Fatalf("status %v, sent %v: a request without a token must pass (allow_missing)", got, w.sent)
	}
	if s.Metadata != nil {
		t.Errorf("metadata without a token: %v", s.Metadata)
	}
}

func TestRequiredProviderMissing(t *testing.T) {
	k := newRSAKey(t, "k1", "RS256")
	q, _ := jsonString(jwks(k))
	f, _ := newFilter(t, `{"providers": {"p": {"issuer": "https://issuer.example.com", "localJwks": {"inlineString": `+q+`}}},
	  "rules": [{"match": {"path": "/open"}}, {"match": {"prefix": "/"}, "requires": {"providerName": "p"}}]}`, nil)
	s, w := newStream("/api")
	if f.DecodeHeaders(s) != httpfilter.Stop || w.resp.Status != 401 || w.body.String() != "Jwt is missing" {
		t.Fatalf("got %d %q, want 401 Jwt is missing", w.resp.Status, w.body.String())
	}
	if got := string(w.resp.Get("www-authenticate")); got != `Bearer realm="http://svc.example.com/api"` {
		t.Errorf("www-authenticate %q: no error for a missing token", got)
	}
	s, w = newStream("/open")
	if f.DecodeHeaders(s) != httpfilter.Continue || w.sent {
		t.Error("/open matches a rule without requirement: it must pass")
	}
	// The default locations: Authorization Bearer and access_token.
	s, _ = newStream("/api?a=b&access_token=" + k.sign(t, claims(nil)))
	if f.DecodeHeaders(s) != httpfilter.Continue {
		t.Error("a valid token in access_token must pass")
	}
}

func TestOutputs(t *testing.T) {
	k := newECKey(t, "e1", "ES256", elliptic.P256())
	extra := `, "fromHeaders": [{"name": "X-Jwt", "valuePrefix": "Token "}], "fromParams": ["tok"],
	  "forwardPayloadHeader": "x-jwt-payload", "forward": %s,
	  "claimToHeaders": [{"headerName": "x-group", "claimName": "group"}, {"headerName": "x-n", "claimName": "nested.n"},
	    {"headerName": "x-roles", "claimName": "roles"}]`
	tok := k.sign(t, claims(map[string]any{"group": "admins", "nested": map[string]any{"n": 7}, "roles": []any{"a", "b"}, "scope": "read write"}))
	for _, forward := range []bool{false, true} {
		t.Run(fmt.Sprint("forward=", forward), func(t *testing.T) {
			f, _ := newFilter(t, istioConfig(jwks(k), fmt.Sprintf(extra, fmt.Sprint(forward))), nil)
			s, w := newStream("/", "x-jwt", "Token "+tok, "x-group", "forged", "x-jwt-payload", "forged")
			if got := f.DecodeHeaders(s); got != httpfilter.Continue {
				t.Fatalf("status %v: %d %q", got, w.resp.Status, w.body.String())
			}
			want := map[string]string{"x-group": "admins", "x-n": "7", "x-roles": "a,b", "x-jwt-payload": strings.Split(tok, ".")[1]}
			for h, v := range want {
				if got := s.Req.Get(h); string(got) != v || s.Req.Count(h) != 1 {
					t.Errorf("%s = %q (×%d), want %q once", h, got, s.Req.Count(h), v)
				}
			}
			if s.Req.Has("x-jwt") != forward {
				t.Errorf("token header present = %v, want %v (forward)", s.Req.Has("x-jwt"), forward)
			}
			scope := s.Metadata[FilterName].GetFields()["payload"].GetStructValue().GetFields()["scope"].GetListValue()
			if len(scope.GetValues()) != 2 || scope.GetValues()[1].GetStringValue() != "write" {
				t.Errorf("scope not normalised to a list: %v", scope)
			}
		})
	}
	t.Run("from_params", func(t *testing.T) {
		f, _ := newFilter(t, istioConfig(jwks(k), fmt.Sprintf(extra, "false")), nil)
		s, _ := newStream("/?tok=" + tok)
		if f.DecodeHeaders(s) != httpfilter.Continue || string(s.Req.Get("x-group")) != "admins" {
			t.Error("token from the query parameter not verified")
		}
	})
	t.Run("forged headers removed without a token", func(t *testing.T) {
		f, _ := newFilter(t, istioConfig(jwks(k), fmt.Sprintf(extra, "false")), nil)
		s, _ := newStream("/", "x-group", "forged")
		if f.DecodeHeaders(s) != httpfilter.Continue || s.Req.Has("x-group") {
			t.Error("a client-supplied claim header must be removed")
		}
	})
}

func TestCORSPreflightBypass(t *testing.T) {
	k := newRSAKey(t, "k1", "RS256")
	f, _ := newFilter(t, istioConfig(jwks(k), ""), nil)
	s, w := newStream("/", "origin", "https://a", "access-control-request-method", "POST", "authorization", "Bearer bad.token.x")
	s.Req.Method = []byte("OPTIONS")
	if f.DecodeHeaders(s) != httpfilter.Continue || w.sent {
		t.Error("a CORS preflight must bypass verification")
	}
}

func TestMultipleProviders(t *testing.T) {
	a, b := newRSAKey(t, "a", "RS256"), newECKey(t, "b", "ES256", elliptic.P256())
	qa, _ := jsonString(jwks(a))
	qb, _ := jsonString(jwks(b))
	// Istio's shape for two rules sharing the default location.
	cfg := `{"providers": {
	  "origins-0": {"issuer": "https://a", "localJwks": {"inlineString": ` + qa + `}, "payloadInMetadata": "payload"},
	  "origins-1": {"issuer": "https://b", "localJwks": {"inlineString": ` + qb + `}, "payloadInMetadata": "payload"}},
	  "rules": [{"match": {"prefix": "/"}, "requires": {"requiresAny": {"requirements": [
	    {"providerName": "origins-0"}, {"providerName": "origins-1"},
	    {"requiresAll": {"requirements": [
	      {"requiresAny": {"requirements": [{"providerName": "origins-0"}, {"allowMissing": {}}]}},
	      {"requiresAny": {"requirements": [{"providerName": "origins-1"}, {"allowMissing": {}}]}}]}}]}}}]}`
	f, _ := newFilter(t, cfg, nil)
	for _, c := range []struct {
		name, token string
		pass        bool
	}{
		{"issuer a", a.sign(t, map[string]any{"iss": "https://a", "sub": "x"}), true},
		{"issuer b", b.sign(t, map[string]any{"iss": "https://b", "sub": "y"}), true},
		{"a's issuer with b's key", b.sign(t, map[string]any{"iss": "https://a", "sub": "x"}), false},
		{"none", "", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			var kv []string
			if c.token != "" {
				kv = []string{"authorization", "Bearer " + c.token}
			}
			s, w := newStream("/", kv...)
			if got := f.DecodeHeaders(s) == httpfilter.Continue; got != c.pass {
				t.Errorf("pass = %v, want %v (%d %q)", got, c.pass, w.resp.Status, w.body.String())
			}
		})
	}
}

func TestConfigErrors(t *testing.T) {
	for _, c := range []struct{ name, cfg, want string }{
		{"unknown provider", `{"providers": {"p": {"localJwks": {"inlineString": "{\"keys\":[{\"kty\":\"RSA\",\"n\":\"xA\",\"e\":\"AQAB\"}]}"}}}, "rules": [{"match": {"prefix": "/"}, "requires": {"providerName": "q"}}]}`, `rules[0].requires.provider_name: "q" is not a provider`},
		{"bad jwks", `{"providers": {"p": {"localJwks": {"inlineString": "{}"}}}}`, `providers["p"].local_jwks: JWKS has no usable key`},
		{"no keys", `{"providers": {"p": {"issuer": "x"}}}`, `providers["p"].jwks_source_specifier`},
		{"bad uri", `{"providers": {"p": {"remoteJwks": {"httpUri": {"uri": "ftp://x", "cluster": "c"}}}}}`, `providers["p"].remote_jwks.http_uri.uri`},
		{"regex match", `{"providers": {}, "rules": [{"match": {"safeRegex": {"regex": ".*"}}}]}`, `rules[0].match: only prefix and path`},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := New(mustConfig(t, c.cfg), Options{Scope: newScope()})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %v, want it to contain %q", err, c.want)
			}
		})
	}
}
