package tlsctx

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"regexp"
	"strings"

	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
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
	Matcher StringMatcher
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
		sm, err := compileStringMatcher(m.GetMatcher())
		if err != nil {
			return nil, fmt.Errorf("match_typed_subject_alt_names[%d].matcher: %w", i, err)
		}
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
		v.SANs = append(v.SANs, SANMatcher{Type: t, Matcher: sm})
	}
	for i, m := range cvc.GetMatchSubjectAltNames() { //nolint:staticcheck // deprecated, Istio still emits it
		sm, err := compileStringMatcher(m)
		if err != nil {
			return nil, fmt.Errorf("match_subject_alt_names[%d]: %w", i, err)
		}
		v.SANs = append(v.SANs, SANMatcher{Type: SANAny, Matcher: sm})
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
			if m.Matcher.matchDNS(d) {
				return true
			}
		}
	}
	if m.Type == SANAny || m.Type == SANURI {
		for _, u := range leaf.URIs {
			if m.Matcher.Match(u.String()) {
				return true
			}
		}
	}
	if m.Type == SANAny || m.Type == SANEmail {
		for _, e := range leaf.EmailAddresses {
			if m.Matcher.Match(e) {
				return true
			}
		}
	}
	if m.Type == SANAny || m.Type == SANIP {
		for _, ip := range leaf.IPAddresses {
			if m.Matcher.Match(ipString(ip)) {
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

type strKind uint8

const (
	strExact strKind = iota
	strPrefix
	strSuffix
	strContains
	strRegex
)

// StringMatcher is a compiled envoy.type.matcher.v3.StringMatcher.
type StringMatcher struct {
	kind       strKind
	value      string
	ignoreCase bool
	re         *regexp.Regexp
}

func compileStringMatcher(m *matcherv3.StringMatcher) (StringMatcher, error) {
	sm := StringMatcher{ignoreCase: m.GetIgnoreCase()}
	switch p := m.GetMatchPattern().(type) {
	case *matcherv3.StringMatcher_Exact:
		sm.kind, sm.value = strExact, p.Exact
	case *matcherv3.StringMatcher_Prefix:
		sm.kind, sm.value = strPrefix, p.Prefix
	case *matcherv3.StringMatcher_Suffix:
		sm.kind, sm.value = strSuffix, p.Suffix
	case *matcherv3.StringMatcher_Contains:
		sm.kind, sm.value = strContains, p.Contains
	case *matcherv3.StringMatcher_SafeRegex:
		re, err := regexp.Compile("^(?:" + p.SafeRegex.GetRegex() + ")$")
		if err != nil {
			return sm, fmt.Errorf("safe_regex.regex: %w", err)
		}
		sm.kind, sm.re, sm.ignoreCase = strRegex, re, false
	default:
		return sm, errors.New("one of exact, prefix, suffix, contains or safe_regex is required")
	}
	if sm.ignoreCase {
		sm.value = strings.ToLower(sm.value)
	}
	return sm, nil
}

// Match applies the matcher to s (ignore_case folds ASCII case; it does
// not apply to safe_regex, as the Envoy API documents).
func (m *StringMatcher) Match(s string) bool {
	if m.ignoreCase {
		s = strings.ToLower(s)
	}
	switch m.kind {
	case strExact:
		return s == m.value
	case strPrefix:
		return strings.HasPrefix(s, m.value)
	case strSuffix:
		return strings.HasSuffix(s, m.value)
	case strContains:
		return strings.Contains(s, m.value)
	case strRegex:
		return m.re.MatchString(s)
	}
	return false
}

// matchDNS matches a DNS SAN. As Envoy's DNS SAN matching does, an exact
// matcher also matches a wildcard SAN ("*.example.com" matches
// "api.example.com", one label only).
func (m *StringMatcher) matchDNS(san string) bool {
	if m.Match(san) {
		return true
	}
	if m.kind != strExact || !strings.HasPrefix(san, "*.") {
		return false
	}
	v := m.value
	i := strings.IndexByte(v, '.')
	if i <= 0 {
		return false
	}
	return strings.EqualFold(v[i:], san[1:])
}
