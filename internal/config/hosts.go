package config

import "strings"

// DomainSuffix is the cluster domain short names are completed with
// (Istio's default, "cluster.local").
const DomainSuffix = "cluster.local"

// ResolveShortName completes a host written in an object of namespace ns
// the way Istio does (ResolveShortnameToFQDN): a name without a dot
// ("reviews") becomes "reviews.NS.svc.cluster.local"; any other name,
// including "*" and wildcards, is returned unchanged.
func ResolveShortName(host, ns string) string {
	if host == "" || host == "*" || strings.Contains(host, ".") {
		return host
	}
	return host + "." + ns + ".svc." + DomainSuffix
}

// hostSubsetOf reports whether every name h matches is also matched by
// pattern (Istio's host.Name.SubsetOf): "*" matches everything, "*.a.com"
// matches "b.a.com" and "*.b.a.com" but not "a.com".
func hostSubsetOf(h, pattern string) bool {
	if pattern == "*" {
		return true
	}
	if suffix, wild := strings.CutPrefix(pattern, "*"); wild {
		if rest, hWild := strings.CutPrefix(h, "*"); hWild {
			return strings.HasSuffix(rest, suffix)
		}
		return len(h) > len(suffix) && strings.HasSuffix(h, suffix)
	}
	return h == pattern
}

// hostMatches reports whether two hosts overlap: one is a subset of the
// other (Istio's host.Name.Matches).
func hostMatches(a, b string) bool { return hostSubsetOf(a, b) || hostSubsetOf(b, a) }
