package jwtauthn

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"strings"
	"testing"
	"time"

	jwtv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/v3"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/weftmesh/weft/internal/proxy/headers"
	"github.com/weftmesh/weft/internal/proxy/httpfilter"
	"github.com/weftmesh/weft/internal/proxy/stats"
)

// testKey is a signing key with its kid and JWS algorithm.
type testKey struct {
	kid, alg string
	rsa      *rsa.PrivateKey
	ec       *ecdsa.PrivateKey
}

func newRSAKey(t testing.TB, kid, alg string) *testKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return &testKey{kid: kid, alg: alg, rsa: k}
}

func newECKey(t testing.TB, kid, alg string, c elliptic.Curve) *testKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(c, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &testKey{kid: kid, alg: alg, ec: k}
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// jwk renders the public key as a JWK object.
func (k *testKey) jwk() map[string]any {
	m := map[string]any{"kid": k.kid, "alg": k.alg}
	if k.rsa != nil {
		m["kty"] = "RSA"
		m["n"] = b64(k.rsa.N.Bytes())
		m["e"] = b64(big.NewInt(int64(k.rsa.E)).Bytes())
		return m
	}
	size := (k.ec.Curve.Params().BitSize + 7) / 8
	m["kty"] = "EC"
	m["crv"] = k.ec.Curve.Params().Name
	m["x"] = b64(k.ec.X.FillBytes(make([]byte, size)))
	m["y"] = b64(k.ec.Y.FillBytes(make([]byte, size)))
	return m
}

// jwks renders a JSON Web Key Set of the keys.
func jwks(keys ...*testKey) string {
	var l []any
	for _, k := range keys {
		l = append(l, k.jwk())
	}
	b, _ := json.Marshal(map[string]any{"keys": l})
	return string(b)
}

// sign makes a compact JWS of claims with k.
func (k *testKey) sign(t testing.TB, claims map[string]any) string {
	t.Helper()
	h, _ := json.Marshal(map[string]any{"alg": k.alg, "kid": k.kid, "typ": "JWT"})
	p, _ := json.Marshal(claims)
	input := b64(h) + "." + b64(p)
	alg := algorithms[k.alg]
	d := hashInput(alg.hash, input, nil)
	var sig []byte
	var err error
	switch alg.kind {
	case 'R':
		sig, err = rsa.SignPKCS1v15(rand.Reader, k.rsa, alg.hash, d)
	case 'P':
		sig, err = rsa.SignPSS(rand.Reader, k.rsa, alg.hash, d, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: alg.hash})
	case 'E':
		var r, s *big.Int
		r, s, err = ecdsa.Sign(rand.Reader, k.ec, d)
		size := (k.ec.Curve.Params().BitSize + 7) / 8
		if err == nil {
			sig = append(r.FillBytes(make([]byte, size)), s.FillBytes(make([]byte, size))...)
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	return input + "." + b64(sig)
}

// fixedNow is the tests' clock.
var fixedNow = time.Unix(1_800_000_000, 0)

// claims returns standard claims valid at fixedNow, with extra merged in.
func claims(extra map[string]any) map[string]any {
	c := map[string]any{
		"iss": "https://issuer.example.com", "sub": "user-1", "aud": "svc.example.com",
		"exp": fixedNow.Unix() + 3600, "nbf": fixedNow.Unix() - 60, "iat": fixedNow.Unix() - 60,
	}
	for k, v := range extra {
		if v == nil {
			delete(c, k)
			continue
		}
		c[k] = v
	}
	return c
}

// mustConfig parses a JwtAuthentication from JSON.
func mustConfig(t testing.TB, js string) *jwtv3.JwtAuthentication {
	t.Helper()
	var c jwtv3.JwtAuthentication
	if err := protojson.Unmarshal([]byte(js), &c); err != nil {
		t.Fatalf("config: %v\n%s", err, js)
	}
	return &c
}

// newFilter builds a filter with the fixed clock and a fresh stats store.
func newFilter(t testing.TB, js string, now func() time.Time) (*Filter, *stats.Store) {
	t.Helper()
	st := stats.NewStore()
	if now == nil {
		now = func() time.Time { return fixedNow }
	}
	f, err := New(mustConfig(t, js), Options{Scope: st.Root().Scope("http.inbound"), Now: now})
	if err != nil {
		t.Fatal(err)
	}
	return f, st
}

// fakeWriter records a response.
type fakeWriter struct {
	resp headers.Response
	body bytes.Buffer
	sent bool
}

func (w *fakeWriter) WriteHeaders(h *headers.Response, _ bool) error {
	w.sent = true
	w.resp.Status = h.Status
	w.resp.CopyFrom(&h.Map)
	return nil
}
func (w *fakeWriter) Write(p []byte) (int, error) { return w.body.Write(p) }
func (w *fakeWriter) Flush() error                { return nil }
func (w *fakeWriter) Finish(*headers.Map) error   { return nil }
func (w *fakeWriter) HeadersSent() bool           { return w.sent }
func (w *fakeWriter) Abort()                      {}

// newStream is a GET request to authority+path with header pairs.
func newStream(path string, kv ...string) (*httpfilter.Stream, *fakeWriter) {
	w := &fakeWriter{}
	s := &httpfilter.Stream{W: w}
	s.Req.Method = []byte("GET")
	s.Req.Scheme = []byte("http")
	s.Req.Authority = []byte("svc.example.com")
	s.Req.Path = []byte(path)
	for i := 0; i+1 < len(kv); i += 2 {
		s.Req.Add(strings.ToLower(kv[i]), kv[i+1])
	}
	return s, w
}

func newScope() *stats.Scope { return stats.NewStore().Root() }
