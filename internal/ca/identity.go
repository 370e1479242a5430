package ca

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// DefaultTrustDomain is the SPIFFE trust domain when none is configured
// (Istio's default).
const DefaultTrustDomain = "cluster.local"

// Identity is a workload identity: a Kubernetes-style namespace and
// service account. Within a trust domain it is the SPIFFE ID
// spiffe://<trust-domain>/ns/<Namespace>/sa/<ServiceAccount>.
type Identity struct {
	Namespace      string
	ServiceAccount string
}

// String returns "ns/sa" (for logs and messages).
func (id Identity) String() string { return id.Namespace + "/" + id.ServiceAccount }

// Validate checks the namespace (a DNS-1123 label, as Kubernetes
// namespaces) and the service account (a DNS-1123 subdomain, as
// Kubernetes object names), so that neither can add path segments to a
// SPIFFE ID.
func (id Identity) Validate() error {
	if !isDNS1123Label(id.Namespace) {
		return fmt.Errorf("namespace %q: use lower-case letters, digits and '-' (at most 63, starting and ending with a letter or digit)", id.Namespace)
	}
	if !isDNS1123Subdomain(id.ServiceAccount) {
		return fmt.Errorf("service account %q: use lower-case letters, digits, '-' and '.' (at most 253, each part starting and ending with a letter or digit)", id.ServiceAccount)
	}
	return nil
}

// SPIFFEID returns the identity's SPIFFE ID in trustDomain.
func (id Identity) SPIFFEID(trustDomain string) *url.URL {
	return &url.URL{Scheme: "spiffe", Host: trustDomain, Path: "/ns/" + id.Namespace + "/sa/" + id.ServiceAccount}
}

// ParseSPIFFEID parses spiffe://<trust-domain>/ns/<ns>/sa/<sa> into its
// trust domain and identity. Anything else (another scheme, a port, a
// query, other path segments) is an error.
func ParseSPIFFEID(u *url.URL) (trustDomain string, id Identity, err error) {
	if u == nil {
		return "", Identity{}, errors.New("no SPIFFE ID")
	}
	if u.Scheme != "spiffe" || u.User != nil || u.Port() != "" || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
		return "", Identity{}, fmt.Errorf("%q is not a SPIFFE ID of the form spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>", u.String())
	}
	parts := strings.Split(u.Path, "/")
	if len(parts) != 5 || parts[0] != "" || parts[1] != "ns" || parts[3] != "sa" {
		return "", Identity{}, fmt.Errorf("%q is not a SPIFFE ID of the form spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>", u.String())
	}
	id = Identity{Namespace: parts[2], ServiceAccount: parts[4]}
	if err := ValidateTrustDomain(u.Host); err != nil {
		return "", Identity{}, err
	}
	if err := id.Validate(); err != nil {
		return "", Identity{}, fmt.Errorf("SPIFFE ID %q: %w", u.String(), err)
	}
	return u.Host, id, nil
}

// ValidateTrustDomain checks a trust domain name against the SPIFFE
// specification: lower-case letters, digits, '.', '-' and '_', at most
// 255 characters.
func ValidateTrustDomain(td string) error {
	ok := td != "" && len(td) <= 255
	for i := 0; ok && i < len(td); i++ {
		c := td[i]
		ok = c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_'
	}
	if !ok {
		return fmt.Errorf("trust domain %q: use lower-case letters, digits, '.', '-' and '_' (at most 255)", td)
	}
	return nil
}

// isDNS1123Label reports whether s is a DNS-1123 label.
func isDNS1123Label(s string) bool {
	if s == "" || len(s) > 63 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := c >= 'a' && c <= 'z' || c >= '0' && c <= '9'
		if !alnum && (c != '-' || i == 0 || i == len(s)-1) {
			return false
		}
	}
	return true
}

// isDNS1123Subdomain reports whether s is a DNS-1123 subdomain.
func isDNS1123Subdomain(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if !isDNS1123Label(label) {
			return false
		}
	}
	return true
}
