package jwtauthn

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	jwtv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/weftmesh/weft/internal/proxy/headers"
	"github.com/weftmesh/weft/internal/proxy/httpfilter"
	"github.com/weftmesh/weft/internal/proxy/stats"
)

// FilterName is the filter's name, and the dynamic metadata namespace the
// verified payloads are written under (Envoy's).
const FilterName = "envoy.filters.http.jwt_authn"

// Options are what the filter uses from the proxy.
type Options struct {
	// Scope is the connection manager's stats scope ("http.<stat_prefix>");
	// the filter's counters go under its "jwt_authn." child, as Envoy's:
	// allowed, denied, cors_preflight_bypassed, jwks_fetch_success,
	// jwks_fetch_failed. Required.
	Scope *stats.Scope
	// Dial connects to remote JWKS servers; nil dials the URI's address.
	Dial DialFunc
	// Now is the clock (tests); nil is time.Now.
	Now func() time.Time

	stats counters
}

// counters are the filter's stats.
type counters struct {
	allowed, denied, corsBypassed, jwksSuccess, jwksFail *stats.Counter
}

// Filter is envoy.filters.http.jwt_authn. Immutable apart from its remote
// key caches; safe for concurrent use by every stream of its connection
// manager.
type Filter struct {
	providers  []*provider
	rules      []rule
	bypassCORS bool
	sanitize   []string // headers the filter itself sets: removed first
	now        func() time.Time
	c          counters
}

var _ httpfilter.Filter = (*Filter)(nil)

// Register adds the filter to r with the connection manager's options.
func Register(r *httpfilter.Registry, o Options) {
	r.Register(&jwtv3.JwtAuthentication{}, false, func(cfg proto.Message, _ httpfilter.Deps) (httpfilter.Filter, error) {
		return New(cfg.(*jwtv3.JwtAuthentication), o)
	})
}

// New compiles a JwtAuthentication. Errors name the field. Not supported:
// requirement_map / requirement_name, filter_state_rules,
// provider_and_audiences, from_cookies, jwt_cache_config, async_fetch
// options, and rule matches other than prefix and path (the bootstrap
// allowlist refuses them before this).
func New(cfg *jwtv3.JwtAuthentication, o Options) (*Filter, error) {
	if o.Now == nil {
		o.Now = time.Now
	}
	sc := o.Scope.Scope("jwt_authn")
	o.stats = counters{
		allowed: sc.Counter("allowed"), denied: sc.Counter("denied"),
		corsBypassed: sc.Counter("cors_preflight_bypassed"),
		jwksSuccess:  sc.Counter("jwks_fetch_success"), jwksFail: sc.Counter("jwks_fetch_failed"),
	}
	if cfg.GetFilterStateRules() != nil || len(cfg.GetRequirementMap()) > 0 {
		return nil, fmt.Errorf("filter_state_rules, requirement_map: not supported by weft-proxy")
	}
	ps, index, err := compileProviders(cfg.GetProviders(), o)
	if err != nil {
		return nil, err
	}
	all := make([]int, len(ps))
	for i := range all {
		all[i] = i
	}
	f := &Filter{providers: ps, bypassCORS: cfg.GetBypassCorsPreflight(), now: o.Now, c: o.stats}
	for i, r := range cfg.GetRules() {
		cr, err := compileRule(r, index, all)
		if err != nil {
			return nil, fmt.Errorf("rules[%d].%w", i, err)
		}
		f.rules = append(f.rules, cr)
	}
	for _, p := range ps {
		if p.forwardPayloadHeader != "" {
			f.sanitize = append(f.sanitize, p.forwardPayloadHeader)
		}
		for _, ch := range p.claimHeaders {
			f.sanitize = append(f.sanitize, ch.header)
		}
	}
	return f, nil
}

// evalPool recycles the per-request verification state.
var evalPool = sync.Pool{New: func() any { return new(evalCtx) }}

// DecodeHeaders verifies the request against the first rule whose match
// its path satisfies (none: the request continues unverified). Headers
// the filter sets (forward_payload_header, claim_to_headers) are removed
// from every request first, so that a client cannot forge them (Envoy's
// extractor sanitises them the same way). CORS preflights pass when
// bypass_cors_preflight is set.
func (f *Filter) DecodeHeaders(s *httpfilter.Stream) httpfilter.Status {
	for _, h := range f.sanitize {
		s.Req.Del(h)
	}
	if f.bypassCORS && isPreflight(&s.Req) {
		f.c.corsBypassed.Inc()
		return httpfilter.Continue
	}
	path := s.Req.PathOnly()
	var req requirement
	for i := range f.rules {
		if f.rules[i].matches(path) {
			req = f.rules[i].req
			break
		}
	}
	if req == nil {
		return httpfilter.Continue
	}
	e := evalPool.Get().(*evalCtx)
	e.reset(f, s)
	st := req.eval(e)
	if st == OK {
		f.c.allowed.Inc()
		e.applyOutputs()
		e.release()
		return httpfilter.Continue
	}
	e.release()
	f.c.denied.Inc()
	f.reject(s, st)
	return httpfilter.Stop
}

// isPreflight is Envoy's CORS preflight test: OPTIONS with origin and
// access-control-request-method.
func isPreflight(r *headers.Request) bool {
	return string(r.Method) == "OPTIONS" && len(r.Get("origin")) > 0 && len(r.Get("access-control-request-method")) > 0
}

// reject sends Envoy's rejection: 401 (403 when the audience is not
// allowed), the message as body, and www-authenticate
// `Bearer realm="SCHEME://HOST/PATH"` with `, error="invalid_token"` unless
// the token was missing (RFC 6750, Envoy's jwt_authn filter).
func (f *Filter) reject(s *httpfilter.Stream, st Status) {
	code := 401
	if st == JwtAudienceNotAllowed {
		code = 403
	}
	scheme := s.Req.Scheme
	if len(scheme) == 0 {
		scheme = []byte("http")
	}
	v := `Bearer realm="` + string(scheme) + "://" + string(s.Req.Authority) + string(s.Req.PathOnly()) + `"`
	if st != JwtMissed {
		v += `, error="invalid_token"`
	}
	w := s.W
	s.W = &authenticateWriter{ResponseWriter: w, value: v}
	httpfilter.SendLocalReply(s, code, st.String(), 0, st.details())
	s.W = w
}

// authenticateWriter adds www-authenticate to a local reply.
type authenticateWriter struct {
	httpfilter.ResponseWriter
	value string
}

func (w *authenticateWriter) WriteHeaders(h *headers.Response, endStream bool) error {
	h.Set("www-authenticate", w.value)
	return w.ResponseWriter.WriteHeaders(h, endStream)
}

// result is one provider's outcome within a request.
type result struct {
	done   bool
	status Status
	tok    *Token
	header string // the header the token came from ("" for a parameter)
}

// evalCtx is the state of one request's verification.
type evalCtx struct {
	f       *Filter
	s       *httpfilter.Stream
	results []result
}

func (e *evalCtx) reset(f *Filter, s *httpfilter.Stream) {
	e.f, e.s = f, s
	if cap(e.results) < len(f.providers) {
		e.results = make([]result, len(f.providers))
	}
	e.results = e.results[:len(f.providers)]
	clear(e.results)
}

func (e *evalCtx) release() {
	e.f, e.s = nil, nil
	clear(e.results)
	evalPool.Put(e)
}

// provider extracts and verifies provider i's token once per request.
func (e *evalCtx) provider(i int) Status {
	r := &e.results[i]
	if r.done {
		return r.status
	}
	r.done = true
	p := e.f.providers[i]
	raw, header := p.extract(&e.s.Req)
	if raw == nil {
		r.status = JwtMissed
		return r.status
	}
	tok, st := Parse(string(raw))
	if st == OK {
		st = p.check(tok, e.f.now().Unix())
	}
	if st == OK {
		var ks *keySet
		if ks, st = p.keys.keys(e.s.Ctx); st == OK {
			st = ks.verify(tok)
		}
	}
	r.status, r.header = st, header
	if st == OK {
		r.tok = tok
	}
	return st
}

// extract returns the provider's token and the header it came from.
func (p *provider) extract(r *headers.Request) ([]byte, string) {
	for _, h := range p.headers {
		v, ok := r.Lookup(h.name)
		if !ok {
			continue
		}
		if h.prefix != "" {
			i := bytes.Index(v, []byte(h.prefix))
			if i < 0 && len(v) >= len(h.prefix) && strings.EqualFold(string(v[:len(h.prefix)]), h.prefix) {
				i = 0 // "bearer" in any case, as Envoy accepts for Authorization
			}
			if i < 0 {
				continue
			}
			v = v[i+len(h.prefix):]
		}
		if t := extractToken(v); len(t) > 0 {
			return t, h.name
		}
	}
	if len(p.params) > 0 {
		q := r.Query()
		for _, name := range p.params {
			if t := queryParam(q, name); len(t) > 0 {
				return extractToken(t), ""
			}
		}
	}
	return nil, ""
}

// queryParam returns the raw value of the first parameter called name.
func queryParam(q []byte, name string) []byte {
	for len(q) > 0 {
		var kv []byte
		if i := bytes.IndexByte(q, '&'); i >= 0 {
			kv, q = q[:i], q[i+1:]
		} else {
			kv, q = q, nil
		}
		if len(kv) > len(name) && kv[len(name)] == '=' && string(kv[:len(name)]) == name {
			return kv[len(name)+1:]
		}
	}
	return nil
}

// check applies the issuer, time and audience rules (jwt_verify_lib's
// order: time, then audiences; Envoy checks the issuer first).
func (p *provider) check(t *Token, now int64) Status {
	if p.issuer != "" && t.Iss != p.issuer {
		return JwtUnknownIssuer
	}
	if t.Exp != 0 && now > t.Exp+p.skew {
		return JwtExpired
	}
	if t.Nbf != 0 && now < t.Nbf-p.skew {
		return JwtNotYetValid
	}
	if len(p.audiences) > 0 && !p.audienceAllowed(t.Aud) {
		return JwtAudienceNotAllowed
	}
	return OK
}

func (p *provider) audienceAllowed(aud []string) bool {
	for _, a := range aud {
		a = normalizeAudience(a)
		for _, want := range p.audiences {
			if a == want {
				return true
			}
		}
	}
	return false
}

// applyOutputs writes, for every verified token, its metadata and headers,
// and removes the token's header unless forward is set.
func (e *evalCtx) applyOutputs() {
	for i := range e.results {
		r := &e.results[i]
		if r.tok == nil {
			continue
		}
		p := e.f.providers[i]
		if p.payloadKey != "" {
			e.setMetadata(p, r.tok)
		}
		if p.forwardPayloadHeader != "" {
			e.s.Req.Set(p.forwardPayloadHeader, r.tok.RawPayload)
		}
		for _, ch := range p.claimHeaders {
			if v, ok := claimString(r.tok.Claims, ch.claim); ok {
				e.s.Req.Set(ch.header, v)
			}
		}
		if !p.forward && r.header != "" {
			e.s.Req.Del(r.header)
		}
	}
}

// setMetadata adds the payload under FilterName / payload_in_metadata
// (space-delimited claims normalised to lists, as Envoy's
// normalize_payload_in_metadata).
func (e *evalCtx) setMetadata(p *provider, t *Token) {
	claims := t.Claims
	if len(p.spaceDelimited) > 0 {
		claims = make(map[string]any, len(t.Claims))
		for k, v := range t.Claims {
			if s, ok := v.(string); ok && p.spaceDelimited[k] {
				parts := strings.Fields(s)
				l := make([]any, len(parts))
				for j, x := range parts {
					l[j] = x
				}
				v = l
			}
			claims[k] = v
		}
	}
	payload, err := structpb.NewStruct(claims)
	if err != nil {
		return // JSON-decoded claims always convert
	}
	if e.s.Metadata == nil {
		e.s.Metadata = map[string]*structpb.Struct{}
	}
	md := e.s.Metadata[FilterName]
	if md == nil {
		md = &structpb.Struct{Fields: map[string]*structpb.Value{}}
		e.s.Metadata[FilterName] = md
	}
	md.Fields[p.payloadKey] = structpb.NewStructValue(payload)
}

// claimString renders a claim for a header: strings as they are, numbers
// and booleans formatted, lists of those joined with ",". Objects and
// absent claims give no header.
func claimString(claims map[string]any, path []string) (string, bool) {
	var v any = claims
	for _, k := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return "", false
		}
		if v, ok = m[k]; !ok {
			return "", false
		}
	}
	if l, ok := v.([]any); ok {
		parts := make([]string, 0, len(l))
		for _, x := range l {
			s, ok := scalarString(x)
			if !ok {
				return "", false
			}
			parts = append(parts, s)
		}
		return strings.Join(parts, ","), true
	}
	return scalarString(v)
}

func scalarString(v any) (string, bool) {
	switch x := v.(type) {
	case string:
		return x, true
	case bool:
		return strconv.FormatBool(x), true
	case float64:
		if x == float64(int64(x)) {
			return strconv.FormatInt(int64(x), 10), true
		}
		return strconv.FormatFloat(x, 'g', -1, 64), true
	}
	return "", false
}
