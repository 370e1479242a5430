package translate

import (
	"regexp"
	"strings"

	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
)

// The Envoy matchers of AuthorizationPolicy values, as Istio's
// pilot/pkg/security/authz/matcher builds them. A value is Istio's string
// match: "*" alone (presence: one character or more), "*suffix",
// "prefix*", or exact.

// jwtFilter and jwtPayload locate a request's JWT claims in the dynamic
// metadata: envoy.filters.http.jwt_authn writes the verified payload under
// "payload" (Istio's jwt_authn configuration); RequestAuthentication will
// provide them.
const (
	jwtFilter  = "envoy.filters.http.jwt_authn"
	jwtPayload = "payload"
)

// spiffePrefix starts every workload identity (a URI SAN).
const spiffePrefix = "spiffe://"

// authzStringMatcher is Istio's StringMatcherWithPrefix: prefix is prepended to
// exact and prefix matches; a suffix match with a prefix becomes the regex
// "PREFIX.*SUFFIX", so that both ends are checked.
func authzStringMatcher(v, prefix string, ignoreCase bool) *matcherv3.StringMatcher {
	switch {
	case v == "*":
		return regexMatcher(".+")
	case strings.HasPrefix(v, "*"):
		if prefix == "" {
			return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Suffix{Suffix: v[1:]}, IgnoreCase: ignoreCase}
		}
		return regexMatcher(regexp.QuoteMeta(prefix) + ".*" + regexp.QuoteMeta(v[1:]))
	case strings.HasSuffix(v, "*"):
		return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: prefix + v[:len(v)-1]}, IgnoreCase: ignoreCase}
	}
	return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: prefix + v}, IgnoreCase: ignoreCase}
}

// regexMatcher is a RE2 matcher on the whole value (Envoy's safe_regex).
func regexMatcher(re string) *matcherv3.StringMatcher {
	return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_SafeRegex{
		SafeRegex: &matcherv3.RegexMatcher{Regex: re},
	}}
}

// authzHeaderMatcher is Istio's HeaderMatcher: "*" is a presence match.
func authzHeaderMatcher(name, v string, ignoreCase bool) *routev3.HeaderMatcher {
	if v == "*" {
		return &routev3.HeaderMatcher{Name: name, HeaderMatchSpecifier: &routev3.HeaderMatcher_PresentMatch{PresentMatch: true}}
	}
	return &routev3.HeaderMatcher{Name: name, HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{
		StringMatch: authzStringMatcher(v, "", ignoreCase),
	}}
}

// jwtClaimMatcher matches a claim (a path below the payload) against
// values: a claim may be a string or a list of strings, so the value
// matches either the string itself or one element of the list (Istio's
// MetadataListValueMatcher with Envoy's or_match).
func jwtClaimMatcher(claims []string, values []string) *matcherv3.MetadataMatcher {
	return &matcherv3.MetadataMatcher{
		Filter: jwtFilter,
		Path:   metadataPath(append([]string{jwtPayload}, claims...)),
		Value: &matcherv3.ValueMatcher{MatchPattern: &matcherv3.ValueMatcher_OrMatch{OrMatch: &matcherv3.OrMatcher{
			ValueMatchers: []*matcherv3.ValueMatcher{
				{MatchPattern: &matcherv3.ValueMatcher_ListMatch{ListMatch: &matcherv3.ListMatcher{
					MatchPattern: &matcherv3.ListMatcher_OneOf{OneOf: stringsValueMatcher(values)},
				}}},
				stringsValueMatcher(values),
			},
		}}},
	}
}

// jwtStringMatcher matches a string claim.
func jwtStringMatcher(claim string, m *matcherv3.StringMatcher) *matcherv3.MetadataMatcher {
	return &matcherv3.MetadataMatcher{
		Filter: jwtFilter,
		Path:   metadataPath([]string{jwtPayload, claim}),
		Value:  &matcherv3.ValueMatcher{MatchPattern: &matcherv3.ValueMatcher_StringMatch{StringMatch: m}},
	}
}

// stringsValueMatcher matches any of values (Istio's StringOrMatcher).
func stringsValueMatcher(values []string) *matcherv3.ValueMatcher {
	one := func(v string) *matcherv3.ValueMatcher {
		return &matcherv3.ValueMatcher{MatchPattern: &matcherv3.ValueMatcher_StringMatch{StringMatch: authzStringMatcher(v, "", false)}}
	}
	if len(values) == 1 {
		return one(values[0])
	}
	or := &matcherv3.OrMatcher{}
	for _, v := range values {
		or.ValueMatchers = append(or.ValueMatchers, one(v))
	}
	return &matcherv3.ValueMatcher{MatchPattern: &matcherv3.ValueMatcher_OrMatch{OrMatch: or}}
}

func metadataPath(keys []string) []*matcherv3.MetadataMatcher_PathSegment {
	out := make([]*matcherv3.MetadataMatcher_PathSegment, len(keys))
	for i, k := range keys {
		out[i] = &matcherv3.MetadataMatcher_PathSegment{Segment: &matcherv3.MetadataMatcher_PathSegment_Key{Key: k}}
	}
	return out
}

// Permission and principal constructors.

func permAny() *rbacv3.Permission { return &rbacv3.Permission{Rule: &rbacv3.Permission_Any{Any: true}} }

func permAnd(ps []*rbacv3.Permission) *rbacv3.Permission {
	return &rbacv3.Permission{Rule: &rbacv3.Permission_AndRules{AndRules: &rbacv3.Permission_Set{Rules: ps}}}
}

func permOr(ps []*rbacv3.Permission) *rbacv3.Permission {
	return &rbacv3.Permission{Rule: &rbacv3.Permission_OrRules{OrRules: &rbacv3.Permission_Set{Rules: ps}}}
}

func permNot(p *rbacv3.Permission) *rbacv3.Permission {
	return &rbacv3.Permission{Rule: &rbacv3.Permission_NotRule{NotRule: p}}
}

func permHeader(h *routev3.HeaderMatcher) *rbacv3.Permission {
	return &rbacv3.Permission{Rule: &rbacv3.Permission_Header{Header: h}}
}

func idAny() *rbacv3.Principal {
	return &rbacv3.Principal{Identifier: &rbacv3.Principal_Any{Any: true}}
}

func idAnd(ps []*rbacv3.Principal) *rbacv3.Principal {
	return &rbacv3.Principal{Identifier: &rbacv3.Principal_AndIds{AndIds: &rbacv3.Principal_Set{Ids: ps}}}
}

func idOr(ps []*rbacv3.Principal) *rbacv3.Principal {
	return &rbacv3.Principal{Identifier: &rbacv3.Principal_OrIds{OrIds: &rbacv3.Principal_Set{Ids: ps}}}
}

func idNot(p *rbacv3.Principal) *rbacv3.Principal {
	return &rbacv3.Principal{Identifier: &rbacv3.Principal_NotId{NotId: p}}
}

func idAuthenticated(m *matcherv3.StringMatcher) *rbacv3.Principal {
	return &rbacv3.Principal{Identifier: &rbacv3.Principal_Authenticated_{
		Authenticated: &rbacv3.Principal_Authenticated{PrincipalName: m},
	}}
}

func idMetadata(m *matcherv3.MetadataMatcher) *rbacv3.Principal {
	return &rbacv3.Principal{Identifier: &rbacv3.Principal_Metadata{Metadata: m}}
}
