package router

import (
	"bytes"
	"regexp"
	"strconv"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"

	"github.com/weftmesh/weft/internal/proxy/headers"
)

// redirectConfig is a compiled RedirectAction (Envoy's RedirectConfig).
type redirectConfig struct {
	scheme        []byte // scheme_redirect, or "https" for https_redirect
	host          []byte
	port          []byte // ":N" or empty
	path          []byte // path_redirect
	pathHasQuery  bool
	prefixRewrite []byte
	hasPrefix     bool
	regex         *regexp.Regexp
	regexTemplate []byte
	stripQuery    bool
}

var redirectCodes = map[routev3.RedirectAction_RedirectResponseCode]int{
	routev3.RedirectAction_MOVED_PERMANENTLY:  301,
	routev3.RedirectAction_FOUND:              302,
	routev3.RedirectAction_SEE_OTHER:          303,
	routev3.RedirectAction_TEMPORARY_REDIRECT: 307,
	routev3.RedirectAction_PERMANENT_REDIRECT: 308,
}

func compileRedirect(rd *routev3.RedirectAction, path string) (*redirectConfig, int, error) {
	if err := checkFields(rd, path, "https_redirect", "scheme_redirect", "host_redirect", "port_redirect",
		"path_redirect", "prefix_rewrite", "regex_rewrite", "response_code", "strip_query"); err != nil {
		return nil, 0, err
	}
	code, ok := redirectCodes[rd.GetResponseCode()]
	if !ok {
		return nil, 0, errAt(field(path, "response_code"), "unknown redirect response code %v", rd.GetResponseCode())
	}
	rc := &redirectConfig{
		host:       []byte(rd.GetHostRedirect()),
		path:       []byte(rd.GetPathRedirect()),
		stripQuery: rd.GetStripQuery(),
	}
	rc.pathHasQuery = bytes.IndexByte(rc.path, '?') >= 0
	if s := rd.GetSchemeRedirect(); s != "" {
		rc.scheme = []byte(s)
	} else if rd.GetHttpsRedirect() {
		rc.scheme = []byte("https")
	}
	if p := rd.GetPortRedirect(); p != 0 {
		if p > 65535 {
			return nil, 0, errAt(field(path, "port_redirect"), "port %d is out of range", p)
		}
		rc.port = []byte(":" + strconv.Itoa(int(p)))
	}
	switch s := rd.GetPathRewriteSpecifier().(type) {
	case *routev3.RedirectAction_PrefixRewrite:
		rc.prefixRewrite, rc.hasPrefix = []byte(s.PrefixRewrite), s.PrefixRewrite != ""
	case *routev3.RedirectAction_RegexRewrite:
		re, tmpl, err := compileRegexRewrite(s.RegexRewrite, field(path, "regex_rewrite"))
		if err != nil {
			return nil, 0, err
		}
		rc.regex, rc.regexTemplate = re, tmpl
	}
	return rc, code, nil
}

func compileRegexRewrite(rw *matcherv3.RegexMatchAndSubstitute, path string) (*regexp.Regexp, []byte, error) {
	if err := checkFields(rw, path, "pattern", "substitution"); err != nil {
		return nil, nil, err
	}
	re, err := compileRegex(rw.GetPattern(), field(path, "pattern"))
	if err != nil {
		return nil, nil, err
	}
	tmpl, err := rewriteTemplate(re, rw.GetSubstitution(), field(path, "substitution"))
	if err != nil {
		return nil, nil, err
	}
	return re, tmpl, nil
}

// RedirectLocation returns the response status and the Location header value
// of a redirect or direct-response route, appended to dst (nil location means
// "no Location header"). It follows Envoy's router: a direct response gets a
// Location only when its status is 201 or 3xx, and then it is the request's
// own URL; a redirect builds its URL with Envoy's newUri rules:
//
//   - scheme: scheme_redirect, else "https" for https_redirect, else the
//     request's :scheme;
//   - host: host_redirect, else the request's host with its port removed when
//     port_redirect is set, or when the scheme changes and the port is the
//     default port of x-forwarded-proto (":80" for http, ":443" for https);
//   - port: ":" + port_redirect when set;
//   - path: path_redirect (keeping the request's query unless path_redirect
//     has its own), else the request path after prefix_rewrite or
//     regex_rewrite; a path not starting with "/" gets one; strip_query drops
//     the query unless path_redirect carries one.
//
// Only a regex_rewrite allocates.
func (r *Route) RedirectLocation(req *headers.Request, dst []byte) (status int, location []byte) {
	switch r.kind {
	case ActionRedirect:
		return r.status, r.redirect.appendLocation(dst, req, r)
	case ActionDirectResponse:
		if r.status == 201 || r.status >= 300 && r.status < 400 {
			if req.Path == nil {
				return r.status, nil
			}
			return r.status, appendLocation(dst, req, nil, nil)
		}
		return r.status, nil
	}
	return 0, nil
}

func (rc *redirectConfig) appendLocation(dst []byte, req *headers.Request, r *Route) []byte {
	if req.Path == nil {
		return nil
	}
	return appendLocation(dst, req, rc, r)
}

func appendLocation(dst []byte, req *headers.Request, rc *redirectConfig, r *Route) []byte {
	scheme := req.Scheme
	if rc != nil && rc.scheme != nil {
		scheme = rc.scheme
	}
	if len(scheme) == 0 {
		scheme = []byte("http")
	}
	var port []byte
	if rc != nil {
		port = rc.port
	}
	dst = append(dst, scheme...)
	dst = append(dst, "://"...)
	if rc != nil && len(rc.host) > 0 {
		dst = append(dst, rc.host...)
	} else {
		dst = append(dst, requestHost(req, scheme, port)...)
	}
	dst = append(dst, port...)
	return appendRedirectPath(dst, req, rc, r)
}

// requestHost is Envoy's processRequestHost.
func requestHost(req *headers.Request, newScheme, newPort []byte) []byte {
	host := req.Authority
	if len(host) == 0 {
		return host
	}
	end := -1
	if host[0] == '[' {
		if i := bytes.LastIndex(host, []byte("]:")); i >= 0 {
			end = i + 1
		}
	} else {
		end = bytes.LastIndexByte(host, ':')
	}
	if end < 0 {
		return host
	}
	reqPort := host[end:]
	proto := req.Map.Get(headers.XForwardedProto)
	if proto == nil {
		proto = req.Scheme
	}
	remove := len(newPort) > 0
	if !bytes.Equal(newScheme, proto) {
		remove = remove || headers.EqualFold(proto, "https") && string(reqPort) == ":443"
		remove = remove || headers.EqualFold(proto, "http") && string(reqPort) == ":80"
	}
	if remove {
		return host[:end]
	}
	return host
}

func appendRedirectPath(dst []byte, req *headers.Request, rc *redirectConfig, r *Route) []byte {
	start := len(dst)
	full := req.Path
	p := pathOnly(full)
	rest := full[len(p):] // query and fragment
	switch {
	case rc != nil && len(rc.path) > 0:
		dst = append(dst, rc.path...)
		if !rc.pathHasQuery {
			if q := bytes.IndexByte(full, '?'); q >= 0 {
				dst = append(dst, full[q:]...)
			}
		}
	case rc != nil && rc.hasPrefix:
		n := r.match.matchedLen(p)
		if n > len(p) {
			n = len(p)
		}
		dst = append(dst, rc.prefixRewrite...)
		dst = append(dst, full[n:]...)
	case rc != nil && rc.regex != nil:
		dst = append(dst, replaceAll(rc.regex, rc.regexTemplate, p)...)
		dst = append(dst, rest...)
	default:
		dst = append(dst, full...)
	}
	if len(dst) == start || dst[start] != '/' {
		dst = append(dst, 0)
		copy(dst[start+1:], dst[start:len(dst)-1])
		dst[start] = '/'
	}
	if rc != nil && !rc.pathHasQuery && rc.stripQuery {
		if q := bytes.IndexByte(dst[start:], '?'); q >= 0 {
			dst = dst[:start+q]
		}
	}
	return dst
}
