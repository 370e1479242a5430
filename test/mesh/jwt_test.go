package mesh

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// jwtMesh is the service jwt.default.svc.cluster.local served by the
// workload at 127.0.0.8 behind its sidecar, a RequestAuthentication whose
// keys are fetched from a JWKS server on loopback (jwksUri), and an
// AuthorizationPolicy that requires alice's request principal and the
// "admins" group claim.
const jwtMesh = `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: jwt, namespace: default}
spec:
  hosts: [jwt.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
  - {number: {{.http}}, name: http, protocol: HTTP}
  workloadSelector:
    labels: {app: jwt}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: jwt-1, namespace: default}
spec:
  address: 127.0.0.8
  labels: {app: jwt}
---
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: jwt, namespace: default}
spec:
  selector:
    matchLabels: {app: jwt}
  jwtRules:
  - issuer: https://issuer.weft.test
    audiences: [jwt.default.svc.cluster.local]
    jwksUri: {{.jwks}}
    outputClaimToHeaders:
    - {header: x-jwt-sub, claim: sub}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: require-alice, namespace: default}
spec:
  selector:
    matchLabels: {app: jwt}
  action: ALLOW
  rules:
  - from:
    - source:
        requestPrincipals: ["https://issuer.weft.test/alice"]
    when:
    - key: request.auth.claims[groups]
      values: ["admins"]
`

// TestRequestAuthentication: weft-control translates RequestAuthentication
// into envoy.filters.http.jwt_authn before the RBAC filters of the
// workload's inbound listener; the sidecar fetches the JWKS, verifies
// tokens and hands the payload to RBAC: a valid token of the required
// principal and claim gets 200 (the app sees the claim header and not the
// token), an invalid token 401 with Envoy's message and www-authenticate,
// no token 403 (RBAC), a valid token of another principal or group 403.
func TestRequestAuthentication(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	var fetches atomic.Int32
	jwksSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fetches.Add(1)
		w.Header().Set("content-type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"keys": []any{map[string]any{
			"kty": "RSA", "kid": "k1", "alg": "RS256", "use": "sig",
			"n": b64url(key.N.Bytes()), "e": b64url(big.NewInt(int64(key.E)).Bytes()),
		}}})
	}))
	t.Cleanup(jwksSrv.Close)
	appPort := startHeaderApp(t)
	cp := startControlPlane(t, map[string]string{
		"jwt.yaml": render(t, jwtMesh, map[string]any{"http": appPort, "jwks": jwksSrv.URL + "/jwks.json"}),
	})
	server := startSidecar(t, cp, sidecarOptions{Name: "jwt-1", IP: "127.0.0.8", Labels: map[string]string{"app": "jwt"},
		ProxyPort: freePort(t, "127.0.0.1")})
	addr := net.JoinHostPort("127.0.0.8", strconv.Itoa(appPort))
	if server.srv.ListenerAddr(strings.Replace(addr, ":", "_", 1)) == nil {
		t.Fatalf("no inbound listener %s: %v", addr, server.srv.ListenerAddrs())
	}

	now := time.Now().Unix()
	tok := func(sub string, groups []string, exp int64, k *rsa.PrivateKey) string {
		return signRS256(t, k, map[string]any{
			"iss": "https://issuer.weft.test", "sub": sub, "aud": "jwt.default.svc.cluster.local",
			"groups": groups, "exp": exp, "iat": now,
		})
	}
	other, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	c := &http.Client{Timeout: 10 * time.Second}
	url := "http://" + addr + "/data"
	for _, tc := range []struct {
		name, token string
		want        int
		body        string
	}{
		{"valid token of alice, admins", tok("alice", []string{"dev", "admins"}, now+3600, key), 200, "sub=alice auth="},
		{"expired token", tok("alice", []string{"admins"}, now-3600, key), 401, "Jwt is expired"},
		{"token signed by another key", tok("alice", []string{"admins"}, now+3600, other), 401, "Jwt verification fails"},
		{"no token", "", 403, "RBAC: access denied"},
		{"valid token of bob", tok("bob", []string{"admins"}, now+3600, key), 403, "RBAC: access denied"},
		{"valid token without the group", tok("alice", []string{"dev"}, now+3600, key), 403, "RBAC: access denied"},
	} {
		var hdr []string
		if tc.token != "" {
			hdr = []string{"authorization", "Bearer " + tc.token}
		}
		code, body, wwwAuth, err := doAuth(c, url, hdr...)
		if err != nil || code != tc.want || body != tc.body {
			t.Errorf("%s: %d %q %v, want %d %q", tc.name, code, body, err, tc.want, tc.body)
		}
		if code == 401 && !strings.HasPrefix(wwwAuth, `Bearer realm="http://`+addr+`/data", error="invalid_token"`) {
			t.Errorf("%s: www-authenticate %q", tc.name, wwwAuth)
		}
	}
	if n := fetches.Load(); n != 1 {
		t.Errorf("JWKS fetched %d times, want once (cached)", n)
	}
	prefix := "http.inbound_127.0.0.8_" + strconv.Itoa(appPort) + ".jwt_authn."
	st := server.srv.Stats()
	if a, d := st.CounterValue(prefix+"allowed"), st.CounterValue(prefix+"denied"); a != 4 || d != 2 {
		t.Errorf("%sallowed = %d, denied = %d; want 4, 2", prefix, a, d)
	}
}

// startHeaderApp serves "sub=<x-jwt-sub> auth=<authorization>" on
// 127.0.0.1 and returns its port.
func startHeaderApp(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "sub=%s auth=%s", r.Header.Get("x-jwt-sub"), r.Header.Get("authorization"))
	}), ReadHeaderTimeout: 10 * time.Second}
	go hs.Serve(l)
	t.Cleanup(func() { hs.Close() })
	return l.Addr().(*net.TCPAddr).Port
}

// doAuth is GET with headers, returning status, body and www-authenticate.
func doAuth(c *http.Client, url string, hdr ...string) (int, string, string, error) {
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		return 0, "", "", err
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header.Get("www-authenticate"), err
}

func b64url(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// signRS256 makes a compact JWS with kid k1.
func signRS256(t *testing.T, k *rsa.PrivateKey, claims map[string]any) string {
	t.Helper()
	h, _ := json.Marshal(map[string]any{"alg": "RS256", "kid": "k1", "typ": "JWT"})
	p, _ := json.Marshal(claims)
	input := b64url(h) + "." + b64url(p)
	sum := sha256.Sum256([]byte(input))
	sig, err := rsa.SignPKCS1v15(rand.Reader, k, crypto.SHA256, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	return input + "." + b64url(sig)
}
