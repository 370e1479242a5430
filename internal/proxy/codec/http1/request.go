package http1

import (
	"io"

	"github.com/weftmesh/weft/internal/proxy/headers"
)

// slash is the origin-form path of an absolute-form target without a path.
var slash = []byte("/")

// readRequest implements Conn.ReadRequest.
func (c *connState) readRequest(req *headers.Request) (Head, error) {
	req.Reset()
	if c.broken != nil {
		return Head{}, c.broken
	}
	if !c.br.impl.done {
		return Head{}, ErrBodyUnread
	}
	c.reqHead, c.reqConnect = false, false
	c.beginMessage()
	head, err := c.parseRequest(req)
	if err != nil {
		if e, ok := err.(*Error); ok {
			c.broken = e
		}
		req.Reset()
		return Head{}, err
	}
	c.endHead()
	c.br.impl.reset(head.Framing, false)
	return head, nil
}

func (c *connState) parseRequest(req *headers.Request) (Head, error) {
	line, err := c.requestLine()
	if err != nil {
		return Head{}, err
	}
	method, target, proto, perr := parseRequestLine(line, c.allowCustom)
	if perr != nil {
		return Head{}, perr
	}
	req.Method, req.Protocol = method, proto
	var f fieldFacts
	if err := c.readFields(&req.Map, &f, true); err != nil {
		return Head{}, err
	}
	if f.hostCount > 1 {
		return Head{}, errMultipleHost
	}
	if f.hostCount == 1 {
		if !validAuthority(f.host) {
			return Head{}, errBadAuthority
		}
		req.Authority = f.host
	}
	if perr := applyTarget(req, target); perr != nil {
		return Head{}, perr
	}
	if req.Authority == nil && proto == headers.HTTP11 {
		return Head{}, errMissingHost
	}
	connect := string(method) == "CONNECT"
	c.reqHead, c.reqConnect = string(method) == "HEAD", connect
	return requestHead(req, &f, connect)
}

// requestLine returns the request-line, skipping empty lines before it
// (RFC 9112 §2.2). io.EOF means the peer closed before sending a byte of a
// new request (empty lines aside).
func (c *connState) requestLine() ([]byte, error) {
	for {
		line, err := c.headLine()
		if err != nil {
			if err == io.EOF && c.r != c.w {
				return nil, io.ErrUnexpectedEOF
			}
			return nil, err
		}
		if len(line) > 0 {
			return line, nil
		}
	}
}

// parseRequestLine splits "method SP request-target SP HTTP-version" with
// single spaces (RFC 9112 §3; the lenient whitespace variants are refused).
// Methods are Envoy's list of known methods unless allowCustom is set, as
// Envoy's allow_custom_methods. The target may only hold visible ASCII.
func parseRequestLine(line []byte, allowCustom bool) (method, target []byte, p headers.Protocol, err *Error) {
	i := 0
	for i < len(line) && tokenLower[line[i]] != 0 {
		i++
	}
	if i == 0 || i == len(line) {
		return nil, nil, 0, errBadRequestLine
	}
	if line[i] != ' ' {
		return nil, nil, 0, errBadMethod
	}
	method = line[:i]
	if !allowCustom && !knownMethod(method) {
		return nil, nil, 0, errBadMethod
	}
	rest := line[i+1:]
	if len(rest) < len(" HTTP/1.1")+1 || rest[len(rest)-9] != ' ' {
		return nil, nil, 0, errBadRequestLine
	}
	target = rest[:len(rest)-9]
	if !validTarget(target) {
		return nil, nil, 0, errBadTargetChars
	}
	p, err = parseVersion(rest[len(rest)-8:])
	return method, target, p, err
}

// knownMethod reports whether m is one of the methods Envoy's HTTP/1 parser
// accepts by default (balsa_parser.cc, isMethodValid).
func knownMethod(m []byte) bool {
	switch string(m) {
	case "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
		"ACL", "BIND", "CHECKOUT", "COPY", "LINK", "LOCK", "MERGE", "MKACTIVITY",
		"MKCALENDAR", "MKCOL", "MOVE", "MSEARCH", "NOTIFY", "PROPFIND", "PROPPATCH",
		"PURGE", "REBIND", "REPORT", "SEARCH", "SOURCE", "SUBSCRIBE", "UNBIND",
		"UNLINK", "UNLOCK", "UNSUBSCRIBE":
		return true
	}
	return false
}

// applyTarget sets Path (and for CONNECT and absolute-form, Authority and
// Scheme) from the request-target, following Envoy's
// ServerConnectionImpl::handlePath with allow_absolute_url on:
//   - origin-form "/..." is the path as is;
//   - asterisk-form "*" only with OPTIONS;
//   - authority-form "host:port" only with CONNECT (Path stays nil);
//   - absolute-form "scheme://authority/path?query": the authority replaces
//     any Host header (RFC 9112 §3.2.2), the scheme (http or https, lowered)
//     goes to Scheme and the path in origin form to Path ("/" when empty).
func applyTarget(req *headers.Request, t []byte) *Error {
	if string(req.Method) == "CONNECT" {
		if !validConnectTarget(t) {
			return errBadURL
		}
		req.Authority = t
		return nil
	}
	switch {
	case t[0] == '/':
		req.Path = t
		return nil
	case t[0] == '*':
		if len(t) != 1 || string(req.Method) != "OPTIONS" {
			return errBadURL
		}
		req.Path = t
		return nil
	}
	return applyAbsolute(req, t)
}

// applyAbsolute handles an absolute-form target.
func applyAbsolute(req *headers.Request, t []byte) *Error {
	i := 0
	for i < len(t) && (isAlpha(t[i]) || i > 0 && (isDigit(t[i]) || t[i] == '+' || t[i] == '-' || t[i] == '.')) {
		i++
	}
	if i == 0 || len(t) < i+3 || string(t[i:i+3]) != "://" {
		return errBadURL
	}
	scheme := t[:i]
	rest := t[i+3:]
	j := 0
	for j < len(rest) && rest[j] != '/' && rest[j] != '?' {
		j++
	}
	auth := rest[:j]
	if len(auth) == 0 || !validAuthority(auth) || hasByte(auth, '@') {
		return errBadURL // userinfo is refused (RFC 9110 §4.2.4)
	}
	headers.LowerInPlace(scheme)
	if string(scheme) != "http" && string(scheme) != "https" {
		return errBadScheme
	}
	req.Scheme, req.Authority = scheme, auth
	switch p := rest[j:]; {
	case len(p) == 0:
		req.Path = slash
	case p[0] == '?':
		b := req.Map.Alloc(len(p) + 1)
		b[0] = '/'
		copy(b[1:], p)
		req.Path = b
	default:
		req.Path = p
	}
	return nil
}

// validConnectTarget checks the authority-form "host:port" of CONNECT
// (RFC 9110 §9.3.6): a host, a colon and a decimal port, no userinfo.
func validConnectTarget(t []byte) bool {
	if !validAuthority(t) || hasByte(t, '@') {
		return false
	}
	k := len(t) - 1
	for k >= 0 && isDigit(t[k]) {
		k--
	}
	if k <= 0 || k == len(t)-1 || t[k] != ':' {
		return false
	}
	host := t[:k]
	if host[0] == '[' {
		return host[len(host)-1] == ']'
	}
	return !hasByte(host, ':') && !hasByte(host, '[') && !hasByte(host, ']')
}

// requestHead derives framing, keep-alive, 100-continue and upgrade.
func requestHead(req *headers.Request, f *fieldFacts, connect bool) (Head, error) {
	h := Head{KeepAlive: f.keepAlive(req.Protocol)}
	switch {
	case f.teCount > 0:
		if err := f.transferFraming(req.Protocol); err != nil {
			return Head{}, err
		}
		if connect { // Envoy: Transfer-Encoding on CONNECT is a 501
			return Head{}, errBadTE
		}
		h.Framing.Kind = BodyChunked
	case f.clSeen && connect:
		// Envoy drops "Content-Length: 0" on CONNECT and refuses any other
		// length (http1.body_disallowed).
		if f.cl != 0 {
			return Head{}, errConnectBody
		}
		req.Map.Del(headers.ContentLength)
	case f.clSeen && f.cl > 0:
		h.Framing = Framing{Kind: BodyLength, Length: f.cl}
	}
	// RFC 9110 §10.1.1: a server ignores 100-continue from HTTP/1.0.
	h.ExpectContinue = f.expectContinue && req.Protocol == headers.HTTP11
	if f.connUpgrade && f.upgradeSeen && len(f.upgrade) > 0 && !equalFold(f.upgrade, "h2c") {
		// Envoy ignores h2c upgrade requests (the request goes on as a
		// normal one); the connection manager strips the hop-by-hop fields.
		h.Upgrade = true
		req.UpgradeProto = lowered(&req.Map, f.upgrade)
	}
	return h, nil
}

// lowered returns v in lower case: v itself, or a lowered copy in m's arena
// (the original stays as received in the Upgrade field).
func lowered(m *headers.Map, v []byte) []byte {
	if !hasUpper(v) {
		return v
	}
	b := m.Alloc(len(v))
	copy(b, v)
	headers.LowerInPlace(b)
	return b
}

func isAlpha(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }
func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func hasByte(b []byte, c byte) bool {
	for _, x := range b {
		if x == c {
			return true
		}
	}
	return false
}
