package translate

import (
	"sort"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"
	networking "istio.io/api/networking/v1alpha3"
)

// Pseudo-headers Istio matches method, authority and scheme on.
const (
	headerMethod    = ":method"
	headerAuthority = ":authority"
	headerScheme    = ":scheme"
)

// translateMatch turns one HTTPMatchRequest into a RouteMatch, as Istio's
// TranslateRouteMatch: uri exact/prefix/regex as the path specifier (prefix
// "/" without a match); headers, withoutHeaders (inverted, a missing header
// counting as empty), method, authority and scheme as header matchers
// sorted by name; queryParams as query matchers; case_sensitive from
// ignoreUriCase.
func translateMatch(m *networking.HTTPMatchRequest) *routev3.RouteMatch {
	out := &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}}
	if m == nil {
		return out
	}
	for _, name := range sortedKeys(m.Headers) {
		out.Headers = append(out.Headers, headerMatcher(name, m.Headers[name]))
	}
	for _, name := range sortedKeys(m.WithoutHeaders) {
		sm := m.WithoutHeaders[name]
		hm := headerMatcher(name, sm)
		hm.InvertMatch = true
		// treat_missing_header_as_empty conflicts with present_match.
		if !isPresentMatch(sm) {
			hm.TreatMissingHeaderAsEmpty = true
		}
		out.Headers = append(out.Headers, hm)
	}
	sort.SliceStable(out.Headers, func(i, j int) bool { return out.Headers[i].Name < out.Headers[j].Name })
	switch u := m.GetUri().GetMatchType().(type) {
	case *networking.StringMatch_Exact:
		out.PathSpecifier = &routev3.RouteMatch_Path{Path: u.Exact}
	case *networking.StringMatch_Prefix:
		out.PathSpecifier = &routev3.RouteMatch_Prefix{Prefix: u.Prefix}
	case *networking.StringMatch_Regex:
		if u.Regex != "" {
			out.PathSpecifier = &routev3.RouteMatch_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: u.Regex}}
		}
	}
	out.CaseSensitive = wrapperspb.Bool(!m.IgnoreUriCase)
	if m.Method != nil {
		out.Headers = append(out.Headers, headerMatcher(headerMethod, m.Method))
	}
	if m.Authority != nil {
		out.Headers = append(out.Headers, headerMatcher(headerAuthority, m.Authority))
	}
	if m.Scheme != nil {
		out.Headers = append(out.Headers, headerMatcher(headerScheme, m.Scheme))
	}
	for _, name := range sortedKeys(m.QueryParams) {
		out.QueryParameters = append(out.QueryParameters, queryMatcher(name, m.QueryParams[name]))
	}
	return out
}

// headerMatcher matches header name against sm; a match without a value
// (or Istio's regex "*") only requires the header to be present.
func headerMatcher(name string, sm *networking.StringMatch) *routev3.HeaderMatcher {
	out := &routev3.HeaderMatcher{Name: name}
	if em := stringMatcher(sm); em != nil {
		out.HeaderMatchSpecifier = &routev3.HeaderMatcher_StringMatch{StringMatch: em}
	} else {
		out.HeaderMatchSpecifier = &routev3.HeaderMatcher_PresentMatch{PresentMatch: true}
	}
	return out
}

// queryMatcher matches query parameter name against sm, like headerMatcher.
func queryMatcher(name string, sm *networking.StringMatch) *routev3.QueryParameterMatcher {
	out := &routev3.QueryParameterMatcher{Name: name}
	if em := stringMatcher(sm); em != nil {
		out.QueryParameterMatchSpecifier = &routev3.QueryParameterMatcher_StringMatch{StringMatch: em}
	} else {
		out.QueryParameterMatchSpecifier = &routev3.QueryParameterMatcher_PresentMatch{PresentMatch: true}
	}
	return out
}

// stringMatcher converts an Istio StringMatch (Istio's ConvertToEnvoyMatch);
// nil means "present": no value, regex "*" (Istio's historical wildcard,
// istio/istio#20629), and empty prefixes and regexes (which match any value
// and which Envoy's validation rejects).
func stringMatcher(sm *networking.StringMatch) *matcherv3.StringMatcher {
	if isPresentMatch(sm) {
		return nil
	}
	switch m := sm.MatchType.(type) {
	case *networking.StringMatch_Exact:
		return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: m.Exact}}
	case *networking.StringMatch_Prefix:
		return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: m.Prefix}}
	case *networking.StringMatch_Regex:
		return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_SafeRegex{
			SafeRegex: &matcherv3.RegexMatcher{Regex: m.Regex},
		}}
	}
	return nil
}

// isPresentMatch reports whether sm only asks for presence.
func isPresentMatch(sm *networking.StringMatch) bool {
	switch m := sm.GetMatchType().(type) {
	case nil:
		return true
	case *networking.StringMatch_Prefix:
		return m.Prefix == ""
	case *networking.StringMatch_Regex:
		return m.Regex == "*" || m.Regex == ""
	}
	return false
}

// isCatchAll reports whether a route matches every request: path prefix "/"
// (or regex ".*") and no header or query condition (Istio's
// IsCatchAllRoute). Routes after it can never match.
func isCatchAll(r *routev3.Route) bool {
	m := r.GetMatch()
	if len(m.GetHeaders()) > 0 || len(m.GetQueryParameters()) > 0 {
		return false
	}
	switch p := m.GetPathSpecifier().(type) {
	case *routev3.RouteMatch_Prefix:
		return p.Prefix == "/"
	case *routev3.RouteMatch_SafeRegex:
		return p.SafeRegex.GetRegex() == ".*"
	}
	return false
}

// sortedKeys returns a map's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
