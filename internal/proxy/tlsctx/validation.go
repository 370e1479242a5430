package tlsctx

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strings"

	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"

	"github.com/weftmesh/weft/internal/proxy/matcher"
)

// Validation is a compiled CertificateValidationContext.
type Validation struct {
	// Roots is trusted_ca; nil when the context sets none.
	Roots *x509.CertPool
	// SANs are the SAN matchers; the peer's leaf must match one of them
	// when there are any.
	SANs []SANMatcher
}

// SANType selects the SANs a matcher looks at.
type SANType uint8

// SAN types (SubjectAltNameMatcher.SanType). SANAny is the deprecated
// match_subject_alt_names: DNS, URI, email and IP SANs alike.
const (
	SANAny SANType = iota
	SANDNS
	SANURI
	SANEmail
	SANIP
)

// SANMatcher is one compiled SubjectAltNameMatcher.
type SANMatcher struct {
	Type    SANType
	Matcher matcher.String
	// dnsExact is Matcher ignoring ASCII case, for DNS SANs; nil unless
	// Matcher is exact.
	dnsExact *matcher.String
	// wildcard matches what follows "*" in a wildcard DNS SAN; nil unless
	// Matcher is exact and its value has a first label.
	wildcard *matcher.String
}

// compileValidation compiles the supported fields of a validation context.
func compileValidation(cvc *tlsv3.CertificateValidationContext) (*Validation, error) {
	v := &Validation{}
	if cvc.GetTrustedCa() != nil {
		pem, err := readSource(cvc.GetTrustedCa())
		if err != nil {
			return nil, fmt.Errorf("trusted_ca.%w", err)
		}
		v.Roots = x509.NewCertPool()
		if !v.Roots.AppendCertsFromPEM(pem) {
			return nil, errors.New("trusted_ca: no PEM certificate found")
		}
	}
	for i, m := range cvc.GetMatchTypedSubjectAltNames() {
		var t SANType
		switch m.GetSanType() {
		case tlsv3.SubjectAltNameMatcher_DNS:
			t = SANDNS
		case tlsv3.SubjectAltNameMatcher_URI:
			t = SANURI
		case tlsv3.SubjectAltNameMatcher_EMAIL:
			t = SANEmail
		case tlsv3.SubjectAltNameMatcher_IP_ADDRESS:
			t = SANIP
		default:
			return nil, fmt.Errorf("match_typed_subject_alt_names[%d].san_type: %s is not supported (DNS, URI, EMAIL, IP_ADDRESS)", i, m.GetSanType())
		}
		sm, err := compileSANMatcher(t, m.GetMatcher())
		if err != nil {
			return nil, fmt.Errorf("match_typed_subject_alt_names[%d].matcher: %w", i, err)
		}
		v.SANs = append(v.SANs, sm)
	}
	for i, m := range cvc.GetMatchSubjectAltNames() { //nolint:staticcheck // deprecated, Istio still emits it
		sm, err := compileSANMatcher(SANAny, m)
		if err != nil {
			return nil, fmt.Errorf("match_subject_alt_names[%d]: %w", i, err)
		}
		v.SANs = append(v.SANs, sm)
	}
	return v, nil
}

// merge combines a default validation context with an SDS one, as
// Envoy's combined_validation_context does (the dynamic context merged
// into the default one: a trusted_ca of the dynamic one wins, SAN matchers
// add up).
func merge(def, dyn *Validation) *Validation {
	if def == nil {
		return dyn
	}
	if dyn == nil {
		return def
	}
	out := &Validation{Roots: def.Roots, SANs: append(append([]SANMatcher{}, def.SANs...), dyn.SANs...)}
	if dyn.Roots != nil {
		out.Roots = dyn.Roots
	}
	return out
}

// Verify checks a peer's chain (leaf first) against v: the chain must lead
// to Roots (when set) and the leaf must match a SAN matcher (when any).
func (v *Validation) Verify(chain []*x509.Certificate) error {
	if len(chain) == 0 {
		return errors.New("the peer presented no certificate")
	}
	leaf := chain[0]
	if v.Roots != nil {
		inter := x509.NewCertPool()
		for _, c := range chain[1:] {
			inter.AddCert(c)
		}
		// Envoy checks no extended key usage by default.
		_, err := leaf.Verify(x509.VerifyOptions{Roots: v.Roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
		if err != nil {
			return fmt.Errorf("certificate verify failed: %w", err)
		}
	}
	if len(v.SANs) > 0 && !v.matchSAN(leaf) {
		return errors.New("certificate SAN does not match the configured subject alt names (Envoy: verify_san failed)")
	}
	return nil
}

func (v *Validation) matchSAN(leaf *x509.Certificate) bool {
	for i := range v.SANs {
		if v.SANs[i].Match(leaf) {
			return true
		}
	}
	return false
}

// Match reports whether one of leaf's SANs of m's type matches.
func (m *SANMatcher) Match(leaf *x509.Certificate) bool {
	if m.Type == SANAny || m.Type == SANDNS {
		for _, d := range leaf.DNSNames {
			if m.matchDNS(d) {
				return true
			}
		}
	}
	if m.Type == SANAny || m.Type == SANURI {
		for _, u := range leaf.URIs {
			if m.Matcher.MatchString(u.String()) {
				return true
			}
		}
	}
	if m.Type == SANAny || m.Type == SANEmail {
		for _, e := range leaf.EmailAddresses {
			if m.Matcher.MatchString(e) {
				return true
			}
		}
	}
	if m.Type == SANAny || m.Type == SANIP {
		for _, ip := range leaf.IPAddresses {
			if m.Matcher.MatchString(ipString(ip)) {
				return true
			}
		}
	}
	return false
}

func ipString(ip net.IP) string {
	if v4 := ip.To4(); v4 != nil {
		return v4.String()
	}
	return ip.String()
}

// compileSANMatcher compiles one SAN matcher. As Envoy's StringSanMatcher
// does for DNS SANs, an exact matcher follows DNS name rules
// (Utility::dnsNameMatch): ASCII case is ignored, and it also matches a
// wildcard SAN ("*.example.com" matches "api.example.com", one label only);
// those two matchers are compiled here.
func compileSANMatcher(t SANType, m *matcherv3.StringMatcher) (SANMatcher, error) {
	sm, err := matcher.Compile(m)
	if err != nil {
		return SANMatcher{}, err
	}
	out := SANMatcher{Type: t, Matcher: sm}
	if _, ok := m.GetMatchPattern().(*matcherv3.StringMatcher_Exact); ok && (t == SANAny || t == SANDNS) {
		v := m.GetExact()
		exact, err := matcher.Compile(&matcherv3.StringMatcher{
			MatchPattern: &matcherv3.StringMatcher_Exact{Exact: v}, IgnoreCase: true,
		})
		if err != nil {
			return SANMatcher{}, err
		}
		out.dnsExact = &exact
		if i := strings.IndexByte(v, '.'); i > 0 {
			w, err := matcher.Compile(&matcherv3.StringMatcher{
				MatchPattern: &matcherv3.StringMatcher_Exact{Exact: v[i:]}, IgnoreCase: true,
			})
			if err != nil {
				return SANMatcher{}, err
			}
			out.wildcard = &w
		}
	}
	return out, nil
}

// matchDNS matches a DNS SAN: the matcher, or a wildcard SAN against an
// exact matcher's value (see compileSANMatcher).
func (m *SANMatcher) matchDNS(san string) bool {
	if m.dnsExact != nil {
		if m.dnsExact.MatchString(san) {
			return true
		}
	} else if m.Matcher.MatchString(san) {
		return true
	}
	return m.wildcard != nil && strings.HasPrefix(san, "*.") && m.wildcard.MatchString(san[1:])
}
