package model

import "strings"

// This file holds the host-name and label-selector rules that several
// packages apply to the snapshot (translation, validation, the registry),
// written once with Istio's semantics (istio.io/istio pkg/config/host and
// pkg/config/labels).

// IsWildcardHost reports whether h is a wildcard host name: "*" or
// "*.example.com".
func IsWildcardHost(h string) bool { return len(h) > 0 && h[0] == '*' }

// HostMatches reports whether host names a and b overlap: equal names, or a
// wildcard that covers the other (either way round), as Istio's
// host.Name.Matches. "*" overlaps everything; "*.foo.com" does not overlap
// "foo.com".
func HostMatches(a, b string) bool {
	aw, bw := IsWildcardHost(a), IsWildcardHost(b)
	switch {
	case aw && bw:
		if len(a) < len(b) {
			return strings.HasSuffix(b[1:], a[1:])
		}
		return strings.HasSuffix(a[1:], b[1:])
	case aw:
		return strings.HasSuffix(b, a[1:])
	case bw:
		return strings.HasSuffix(a, b[1:])
	}
	return a == b
}

// HostSubsetOf reports whether every name a matches is also matched by b, as
// Istio's host.Name.SubsetOf: "a.foo.com" ⊆ "*.foo.com" ⊆ "*", but
// "*.foo.com" ⊄ "a.foo.com".
func HostSubsetOf(a, b string) bool {
	if IsWildcardHost(a) {
		return IsWildcardHost(b) && strings.HasSuffix(a[1:], b[1:])
	}
	if IsWildcardHost(b) {
		return strings.HasSuffix(a, b[1:])
	}
	return a == b
}

// SelectorMatches reports whether labels carry every key/value of sel (an
// empty selector matches everything), as Istio's labels.Instance.SubsetOf.
func SelectorMatches(sel, labels map[string]string) bool {
	for k, v := range sel {
		if got, ok := labels[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// ExportedTo reports whether an object of namespace owner with the given
// exportTo list is visible to namespace ns: "*" (the default when the list
// is empty) exports to every namespace, "." to the owner's own, "~" to none,
// other entries name namespaces. The same rule applies to services,
// VirtualServices and DestinationRules.
func ExportedTo(exportTo []string, owner, ns string) bool {
	if len(exportTo) == 0 {
		return true
	}
	for _, e := range exportTo {
		switch e {
		case "*":
			return true
		case ".":
			if ns == owner {
				return true
			}
		case "~":
		default:
			if e == ns {
				return true
			}
		}
	}
	return false
}
