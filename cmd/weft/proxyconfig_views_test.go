package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// testCert returns a PEM certificate with serial 0xabc valid from
// notBefore for a day, and its PEM private key.
func testCert(t *testing.T, notBefore time.Time) (certPEM, keyPEM []byte) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(0xabc), Subject: pkix.Name{CommonName: "test"},
		NotBefore: notBefore, NotAfter: notBefore.Add(24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kd, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kd})
}

// TestProxyConfigSecrets: an Envoy-style SecretsConfigDump (a certificate
// chain with its key, a root) becomes istioctl's secrets table; neither
// the table nor the raw output carries the key, even when the admin
// interface did not redact it.
func TestProxyConfigSecrets(t *testing.T) {
	notBefore := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	cert, key := testCert(t, time.Now().Add(-time.Hour).Truncate(time.Second))
	oldCert, _ := testCert(t, notBefore)
	b64 := base64.StdEncoding.EncodeToString
	dump := fmt.Sprintf(`{"configs": [{"@type": "type.googleapis.com/envoy.admin.v3.SecretsConfigDump",
	  "dynamic_active_secrets": [
	    {"name": "default", "secret": {"@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret", "name": "default",
	      "tls_certificate": {"certificate_chain": {"inline_bytes": %q}, "private_key": {"inline_bytes": %q}}}},
	    {"name": "ROOTCA", "secret": {"@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret", "name": "ROOTCA",
	      "validation_context": {"trusted_ca": {"inline_bytes": %q}}}}]}]}`, b64(cert), b64(key), b64(oldCert))
	admin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/config_dump" {
			http.NotFound(w, r)
			return
		}
		fmt.Fprint(w, dump)
	}))
	defer admin.Close()
	addr := strings.TrimPrefix(admin.URL, "http://")

	code, out, errOut := weft("proxy-config", "secrets", "--admin-address", addr)
	if code != 0 {
		t.Fatalf("status %d: %s", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 {
		t.Fatalf("want a header and two rows:\n%s", out)
	}
	for i, want := range [][]string{
		{"default", "Cert Chain", "ACTIVE", "true", "abc"},
		{"ROOTCA", "CA", "ACTIVE", "false", "abc", "2026-01-03T03:04:05Z", "2026-01-02T03:04:05Z"},
	} {
		// Columns split on runs of spaces; "Cert Chain" is one column.
		cols := strings.Fields(strings.ReplaceAll(lines[i+1], "Cert Chain", "Cert_Chain"))
		wantCols := strings.Fields(strings.ReplaceAll(strings.Join(want, " "), "Cert Chain", "Cert_Chain"))
		if len(cols) < len(wantCols) || strings.Join(cols[:len(wantCols)], " ") != strings.Join(wantCols, " ") {
			t.Errorf("row %d: %q, want it to start with %q", i+1, lines[i+1], want)
		}
	}
	keyB64 := b64(key)
	for _, format := range []string{"json", "yaml"} {
		code, out, _ := weft("proxy-config", "secrets", "--admin-address", addr, "-o", format)
		if code != 0 || strings.Contains(out, keyB64) || strings.Contains(out, "PRIVATE KEY") || !strings.Contains(out, "[redacted]") {
			t.Errorf("-o %s: status %d; key material or no redaction:\n%s", format, code, out)
		}
	}
	code, out, _ = weft("proxy-config", "all", "--admin-address", addr, "-o", "json")
	if code != 0 || strings.Contains(out, keyB64) {
		t.Errorf("all -o json: status %d; key material:\n%s", code, out)
	}
}

func TestParseClusterName(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want clusterName
	}{
		{"outbound|8080|v1|hello.default.svc.cluster.local", clusterName{"outbound", "v1", "hello.default.svc.cluster.local", 8080}},
		{"inbound|9080||", clusterName{"inbound", "", "", 9080}},
		{"xds-grpc", clusterName{fqdn: "xds-grpc"}},
		{"outbound|http|v1|x", clusterName{fqdn: "outbound|http|v1|x"}},
	} {
		if got := parseClusterName(tc.in); got != tc.want {
			t.Errorf("parseClusterName(%q) = %+v, want %+v", tc.in, got, tc.want)
		}
	}
}

func TestChainMatch(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`{}`, "ALL"},
		{`{"filter_chain_match": {}}`, "ALL"},
		{`{"filter_chain_match": {"destination_port": 8080, "transport_protocol": "tls", "application_protocols": ["istio-peer-exchange", "istio"],
		   "server_names": ["outbound_.8080_._.hello.default.svc.cluster.local"], "prefix_ranges": [{"address_prefix": "10.0.0.0", "prefix_len": 8}]}}`,
			"Port: 8080; Addr: 10.0.0.0/8; SNI: outbound_.8080_._.hello.default.svc.cluster.local; Trans: tls; App: istio-peer-exchange,istio"},
	} {
		var fc filterChain
		if err := json.Unmarshal([]byte(tc.in), &fc); err != nil {
			t.Fatal(err)
		}
		if got := chainMatch(&fc); got != tc.want {
			t.Errorf("chainMatch(%s) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestRedactJSON(t *testing.T) {
	in := `{"a":{"private_key":{"inline_bytes":"S0VZ"},"certificate_chain":{"inline_bytes":"Q0VSVA=="}},"generic_secret":{"secret":{"inline_string":"hush"}},"list":[{"password":"p"}]}`
	got := string(redactJSON([]byte(in)))
	for _, leaked := range []string{"S0VZ", "hush", `"p"`} {
		if strings.Contains(got, leaked) {
			t.Errorf("redactJSON kept %s: %s", leaked, got)
		}
	}
	if !strings.Contains(got, "Q0VSVA==") {
		t.Errorf("redactJSON dropped the certificate: %s", got)
	}
}
