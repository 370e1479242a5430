package tlsctx

import (
	"crypto/x509"
	"net/url"
	"testing"

	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
)

// TestSANMatcher covers the SAN matching rules on top of the shared string
// matcher: DNS wildcard SANs against exact matchers, and ignore_case folding
// ASCII only (Envoy's StringMatcherImpl; weft used strings.ToLower before).
func TestSANMatcher(t *testing.T) {
	exact := func(v string, ic bool) *matcherv3.StringMatcher {
		return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: v}, IgnoreCase: ic}
	}
	tests := []struct {
		name string
		typ  SANType
		m    *matcherv3.StringMatcher
		leaf *x509.Certificate
		want bool
	}{
		{"dns exact", SANDNS, exact("api.example.com", false), &x509.Certificate{DNSNames: []string{"api.example.com"}}, true},
		{"dns exact ignores ASCII case (DNS names)", SANDNS, exact("API.example.com", false), &x509.Certificate{DNSNames: []string{"api.EXAMPLE.com"}}, true},
		{"any-type exact: DNS case-insensitive", SANAny, exact("API.example.com", false), &x509.Certificate{DNSNames: []string{"api.example.com"}}, true},
		{"any-type exact: URI stays case-sensitive", SANAny, exact("spiffe://td/ns/A/sa/B", false), &x509.Certificate{URIs: []*url.URL{{Scheme: "spiffe", Host: "td", Path: "/ns/a/sa/b"}}}, false},
		{"uri exact case-sensitive", SANURI, exact("spiffe://td/ns/A/sa/B", false), &x509.Certificate{URIs: []*url.URL{{Scheme: "spiffe", Host: "td", Path: "/ns/a/sa/b"}}}, false},
		{"dns wildcard SAN", SANDNS, exact("api.example.com", false), &x509.Certificate{DNSNames: []string{"*.EXAMPLE.com"}}, true},
		{"dns wildcard covers one label", SANDNS, exact("a.api.example.com", false), &x509.Certificate{DNSNames: []string{"*.example.com"}}, false},
		{"dns wildcard not for prefix matcher", SANDNS, &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: "api."}}, &x509.Certificate{DNSNames: []string{"*.example.com"}}, false},
		{"wildcard not for URI matchers", SANURI, exact("api.example.com", false), &x509.Certificate{DNSNames: []string{"*.example.com"}}, false},
		{"uri ignore_case ASCII", SANURI, exact("spiffe://td/ns/A/sa/B", true), &x509.Certificate{URIs: []*url.URL{{Scheme: "spiffe", Host: "td", Path: "/ns/a/sa/b"}}}, true},
		{"email ignore_case non-ASCII not folded", SANEmail, exact("Émile@example.com", true), &x509.Certificate{EmailAddresses: []string{"émile@example.com"}}, false},
		{"email ignore_case non-ASCII equal bytes", SANEmail, exact("Émile@EXAMPLE.com", true), &x509.Certificate{EmailAddresses: []string{"Émile@example.COM"}}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sm, err := compileSANMatcher(tc.typ, tc.m)
			if err != nil {
				t.Fatal(err)
			}
			if got := sm.Match(tc.leaf); got != tc.want {
				t.Errorf("Match = %v, want %v", got, tc.want)
			}
		})
	}
}
