package router

import (
	"bytes"
	"math"
	"regexp"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"

	"github.com/weftmesh/weft/internal/proxy/headers"
	"github.com/weftmesh/weft/internal/proxy/matcher"
)

type pathKind uint8

const (
	pathPrefix pathKind = iota
	pathExact
	pathRegex
	pathSeparatedPrefix
)

// routeMatch is a compiled RouteMatch.
type routeMatch struct {
	kind          pathKind
	value         []byte // prefix or path; lower-cased when !caseSensitive
	caseSensitive bool
	re            *regexp.Regexp // full-match path regex
	reLiteral     []byte         // literal prefix every regex match starts with
	grpc          bool
	headers       []headerMatcher
	query         []queryMatcher
}

func compileRouteMatch(m *routev3.RouteMatch, path string) (routeMatch, error) {
	if m == nil {
		return routeMatch{}, errAt(path, "match is required")
	}
	if err := checkFields(m, path, "prefix", "path", "safe_regex", "path_separated_prefix",
		"case_sensitive", "headers", "query_parameters", "grpc"); err != nil {
		return routeMatch{}, err
	}
	rm := routeMatch{caseSensitive: true, grpc: m.GetGrpc() != nil}
	if cs := m.GetCaseSensitive(); cs != nil {
		rm.caseSensitive = cs.GetValue()
	}
	switch p := m.GetPathSpecifier().(type) {
	case *routev3.RouteMatch_Prefix:
		rm.kind, rm.value = pathPrefix, []byte(p.Prefix)
	case *routev3.RouteMatch_Path:
		rm.kind, rm.value = pathExact, []byte(p.Path)
	case *routev3.RouteMatch_PathSeparatedPrefix:
		v := p.PathSeparatedPrefix
		// The API's own constraint: no query, no fragment, no trailing slash.
		if v == "" || bytes.ContainsAny([]byte(v), "?#") || v[len(v)-1] == '/' {
			return routeMatch{}, errAt(field(path, "path_separated_prefix"),
				"must be non-empty, without '?' or '#', and must not end with '/'")
		}
		rm.kind, rm.value = pathSeparatedPrefix, []byte(v)
	case *routev3.RouteMatch_SafeRegex:
		re, err := compileFullRegex(p.SafeRegex, field(path, "safe_regex"))
		if err != nil {
			return routeMatch{}, err
		}
		rm.kind, rm.re = pathRegex, re
		// Go's regexp is slow to reject; a literal prefix rejects most
		// non-matching paths first.
		if lit, _ := re.LiteralPrefix(); lit != "" {
			rm.reLiteral = []byte(lit)
		}
	default:
		return routeMatch{}, errAt(path, "one of prefix, path, safe_regex or path_separated_prefix is required")
	}
	if !rm.caseSensitive {
		// ASCII only, as Envoy (absl::AsciiStrToLower): bytes.ToLower
		// would fold non-ASCII runes and could change the length that
		// prefix_rewrite replaces.
		rm.value = bytes.Clone(rm.value)
		headers.LowerInPlace(rm.value)
	}
	if err := checkFields(m.GetGrpc(), field(path, "grpc")); err != nil {
		return routeMatch{}, err
	}
	for i, hm := range m.GetHeaders() {
		h, err := compileHeaderMatcher(hm, index(field(path, "headers"), i))
		if err != nil {
			return routeMatch{}, err
		}
		rm.headers = append(rm.headers, h)
	}
	for i, qm := range m.GetQueryParameters() {
		q, err := compileQueryMatcher(qm, index(field(path, "query_parameters"), i))
		if err != nil {
			return routeMatch{}, err
		}
		rm.query = append(rm.query, q)
	}
	return rm, nil
}

// matches reports whether req matches. Like Envoy's PathMatcher, path
// matchers look at the path without query and fragment; with
// ignore_path_parameters_in_path_matching everything from the first ';' is
// ignored first (Envoy's sanitizePathBeforePathMatching).
func (m *routeMatch) matches(req *headers.Request, t *Table) bool {
	p := req.Path
	if t.ignorePathParams {
		if i := bytes.IndexByte(p, ';'); i >= 0 {
			p = p[:i]
		}
	}
	p = pathOnly(p)
	if !m.matchPath(p) {
		return false
	}
	if m.grpc && !isGRPC(req) {
		return false
	}
	for i := range m.headers {
		if !m.headers[i].matches(req, t) {
			return false
		}
	}
	if len(m.query) > 0 {
		q := req.Query()
		for i := range m.query {
			if !m.query[i].matches(q) {
				return false
			}
		}
	}
	return true
}

func (m *routeMatch) matchPath(p []byte) bool {
	switch m.kind {
	case pathPrefix:
		return m.hasPrefix(p)
	case pathExact:
		return len(p) == len(m.value) && m.hasPrefix(p)
	case pathSeparatedPrefix:
		return m.hasPrefix(p) && (len(p) == len(m.value) || p[len(m.value)] == '/')
	case pathRegex:
		return bytes.HasPrefix(p, m.reLiteral) && m.re.Match(p)
	}
	return false
}

func (m *routeMatch) hasPrefix(p []byte) bool {
	if m.caseSensitive {
		return bytes.HasPrefix(p, m.value)
	}
	return hasPrefixFold(p, m.value)
}

// matchedLen is how many leading bytes of the path a prefix_rewrite replaces:
// the configured prefix or path, or the whole path for a regex (Envoy's
// finalizePathHeader with the route's matcher()).
func (m *routeMatch) matchedLen(pathNoQuery []byte) int {
	if m.kind == pathRegex {
		return len(pathNoQuery)
	}
	return len(m.value)
}

// pathOnly strips the query and fragment (Envoy's removeQueryAndFragment).
func pathOnly(p []byte) []byte {
	if i := bytes.IndexAny(p, "?#"); i >= 0 {
		return p[:i]
	}
	return p
}

// isGRPC follows Envoy's Grpc::Common::hasGrpcContentType: content-type is
// exactly "application/grpc" or starts with "application/grpc+"
// (application/grpc-web is not gRPC).
func isGRPC(req *headers.Request) bool {
	const grpc = "application/grpc"
	ct := req.Map.Get(headers.ContentType)
	return bytes.HasPrefix(ct, []byte(grpc)) && (len(ct) == len(grpc) || ct[len(grpc)] == '+')
}

type headerKind uint8

const (
	hdrPresent headerKind = iota
	hdrString
	hdrRange
	hdrAny // deprecated exact_match "": any value matches
)

// headerMatcher is a compiled HeaderMatcher.
type headerMatcher struct {
	name              string
	kind              headerKind
	present           bool
	sm                matcher.String
	rangeStart        int64
	rangeEnd          int64
	invert            bool
	treatMissingEmpty bool
}

func compileHeaderMatcher(hm *routev3.HeaderMatcher, path string) (headerMatcher, error) {
	if err := checkFields(hm, path, "name", "exact_match", "safe_regex_match", "range_match",
		"present_match", "prefix_match", "suffix_match", "contains_match", "string_match",
		"invert_match", "treat_missing_header_as_empty"); err != nil {
		return headerMatcher{}, err
	}
	name := string(bytes.ToLower([]byte(hm.GetName())))
	if name == "" {
		return headerMatcher{}, errAt(field(path, "name"), "header name is required")
	}
	h := headerMatcher{name: name, invert: hm.GetInvertMatch(), treatMissingEmpty: hm.GetTreatMissingHeaderAsEmpty()}
	var err error
	switch s := hm.GetHeaderMatchSpecifier().(type) {
	case nil:
		// The API: no specifier means present_match.
		h.kind, h.present = hdrPresent, true
	case *routev3.HeaderMatcher_PresentMatch:
		h.kind, h.present = hdrPresent, s.PresentMatch
	case *routev3.HeaderMatcher_ExactMatch:
		// Envoy's HeaderDataExactMatch: an empty expected value matches any value.
		h.kind = hdrString
		h.sm, err = compileStringMatcher(&matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: s.ExactMatch}}, path)
		if s.ExactMatch == "" {
			h.kind = hdrAny
		}
	case *routev3.HeaderMatcher_PrefixMatch:
		h.kind = hdrString
		h.sm, err = compileStringMatcher(&matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: s.PrefixMatch}}, path)
	case *routev3.HeaderMatcher_SuffixMatch:
		h.kind = hdrString
		h.sm, err = compileStringMatcher(&matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Suffix{Suffix: s.SuffixMatch}}, path)
	case *routev3.HeaderMatcher_ContainsMatch:
		h.kind = hdrString
		h.sm, err = compileStringMatcher(&matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Contains{Contains: s.ContainsMatch}}, path)
	case *routev3.HeaderMatcher_SafeRegexMatch:
		h.kind = hdrString
		h.sm, err = compileRegexMatcher(s.SafeRegexMatch, field(path, "safe_regex_match"))
	case *routev3.HeaderMatcher_StringMatch:
		h.kind = hdrString
		h.sm, err = compileStringMatcher(s.StringMatch, field(path, "string_match"))
	case *routev3.HeaderMatcher_RangeMatch:
		h.kind, h.rangeStart, h.rangeEnd = hdrRange, s.RangeMatch.GetStart(), s.RangeMatch.GetEnd()
	}
	return h, err
}

// matches follows Envoy's HeaderUtility header data classes:
//   - all values of a repeated header are joined with "," and matched as one
//     value (getAllOfHeaderAsString);
//   - a missing header never matches, whatever invert_match says, unless
//     treat_missing_header_as_empty makes it the empty string;
//   - present_match compares presence with the wanted presence, then inverts.
func (h *headerMatcher) matches(req *headers.Request, t *Table) bool {
	if h.kind == hdrPresent {
		_, ok := lookupRequest(req, h.name)
		if !ok && !h.treatMissingEmpty {
			return h.invert == h.present
		}
		return h.present != h.invert
	}
	v, ok, pooled := joinedValue(req, h.name, t)
	if pooled != nil {
		defer t.putBuf(pooled)
	}
	if !ok {
		if !h.treatMissingEmpty {
			return false
		}
		v = nil
	}
	var r bool
	switch h.kind {
	case hdrAny:
		r = true
	case hdrString:
		r = h.sm.Match(v)
	case hdrRange:
		n, ok := parseInt64(v)
		r = ok && n >= h.rangeStart && n < h.rangeEnd
	}
	return r != h.invert
}

// lookupRequest reads a header the way Envoy's request header map does:
// pseudo-headers come from the dedicated fields; "host" is not an alias of
// :authority (Envoy stores the HTTP/1 Host as :authority and documents that
// matchers must use ":authority").
func lookupRequest(req *headers.Request, name string) ([]byte, bool) {
	if len(name) > 0 && name[0] == ':' {
		return req.Lookup(name)
	}
	return req.Map.Lookup(name)
}

// joinedValue returns the header's value, all values joined by "," when it is
// repeated. A joined value lives in a pooled buffer the caller returns with
// t.putBuf.
func joinedValue(req *headers.Request, name string, t *Table) (v []byte, ok bool, pooled *[]byte) {
	if len(name) > 0 && name[0] == ':' {
		v, ok = req.Lookup(name)
		return v, ok, nil
	}
	first := req.Map.Index(name, 0)
	if first < 0 {
		return nil, false, nil
	}
	next := req.Map.Index(name, first+1)
	if next < 0 {
		return req.Map.Fields[first].Value, true, nil
	}
	pooled = t.getBuf()
	b := append((*pooled)[:0], req.Map.Fields[first].Value...)
	for i := next; i >= 0; i = req.Map.Index(name, i+1) {
		b = append(b, ',')
		b = append(b, req.Map.Fields[i].Value...)
	}
	*pooled = b
	return b, true, pooled
}

// parseInt64 parses an optionally signed base-10 integer, the form the range
// matcher accepts.
func parseInt64(b []byte) (int64, bool) {
	neg := false
	if len(b) > 0 && (b[0] == '+' || b[0] == '-') {
		neg = b[0] == '-'
		b = b[1:]
	}
	if len(b) == 0 {
		return 0, false
	}
	var n uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
		if n > math.MaxInt64+1 {
			return 0, false
		}
	}
	if neg {
		return -int64(n-1) - 1, true
	}
	if n > math.MaxInt64 {
		return 0, false
	}
	return int64(n), true
}

// queryMatcher is a compiled QueryParameterMatcher.
type queryMatcher struct {
	name    []byte
	present bool // present_match or no specifier: presence is enough
	sm      matcher.String
}

func compileQueryMatcher(qm *routev3.QueryParameterMatcher, path string) (queryMatcher, error) {
	if err := checkFields(qm, path, "name", "string_match", "present_match"); err != nil {
		return queryMatcher{}, err
	}
	if qm.GetName() == "" {
		return queryMatcher{}, errAt(field(path, "name"), "query parameter name is required")
	}
	q := queryMatcher{name: []byte(qm.GetName()), present: true}
	if sm := qm.GetStringMatch(); sm != nil {
		var err error
		q.present = false
		q.sm, err = compileStringMatcher(sm, field(path, "string_match"))
		if err != nil {
			return queryMatcher{}, err
		}
	}
	return q, nil
}

// matches follows Envoy's QueryParamsMulti::parseQueryString without
// decoding: the query is split on '&', each element on its first '=', a key
// without '=' has the empty value, and only the first value of a repeated key
// is considered. Names and values are compared in their URL-encoded form.
func (q *queryMatcher) matches(query []byte) bool {
	v, ok := firstQueryValue(query, q.name)
	if !ok {
		return false
	}
	return q.present || q.sm.Match(v)
}

func firstQueryValue(query, name []byte) ([]byte, bool) {
	for len(query) > 0 {
		var elem []byte
		if i := bytes.IndexByte(query, '&'); i >= 0 {
			elem, query = query[:i], query[i+1:]
		} else {
			elem, query = query, nil
		}
		k, v := elem, []byte(nil)
		if i := bytes.IndexByte(elem, '='); i >= 0 {
			k, v = elem[:i], elem[i+1:]
		}
		if bytes.Equal(k, name) {
			return v, true
		}
	}
	return nil, false
}
