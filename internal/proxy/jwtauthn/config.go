package jwtauthn

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"sort"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	jwtv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/v3"
)

// DialFunc connects to the JWKS server of a remote_jwks: cluster is
// http_uri.cluster and addr the URI's host:port. Envoy fetches through the
// named cluster; weft-proxy's server dials a host of that cluster, and the
// URI's own address when the cluster does not exist (local mode, where the
// JWKS server need not be in the mesh).
type DialFunc func(ctx context.Context, cluster, addr string) (net.Conn, error)

// provider is one compiled JwtProvider.
type provider struct {
	name                 string
	issuer               string
	audiences            []string // normalised (see normalizeAudience)
	keys                 keySource
	forward              bool
	headers              []headerLocation
	params               []string
	forwardPayloadHeader string
	payloadKey           string
	claimHeaders         []claimHeader
	skew                 int64
	spaceDelimited       map[string]bool
}

// headerLocation is one from_headers entry.
type headerLocation struct {
	name   string // lower case
	prefix string
}

// claimHeader is one claim_to_headers entry.
type claimHeader struct {
	header string   // lower case
	claim  []string // path ("a.b" → ["a", "b"])
}

// Envoy's defaults: the token is read from "Authorization: Bearer" and the
// access_token query parameter when a provider names no location; the
// clock skew is 60 seconds.
const (
	defaultSkew    = 60
	defaultTimeout = 5 * time.Second
)

// compileProviders compiles the providers in name order; index is the
// name → position map requirements use.
func compileProviders(m map[string]*jwtv3.JwtProvider, o Options) ([]*provider, map[string]int, error) {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	out := make([]*provider, 0, len(names))
	index := make(map[string]int, len(names))
	for _, n := range names {
		p, err := compileProvider(n, m[n], o)
		if err != nil {
			return nil, nil, fmt.Errorf("providers[%q].%w", n, err)
		}
		index[n] = len(out)
		out = append(out, p)
	}
	return out, index, nil
}

func compileProvider(name string, c *jwtv3.JwtProvider, o Options) (*provider, error) {
	p := &provider{
		name: name, issuer: c.GetIssuer(), forward: c.GetForward(),
		params:               c.GetFromParams(),
		forwardPayloadHeader: strings.ToLower(c.GetForwardPayloadHeader()),
		payloadKey:           c.GetPayloadInMetadata(),
		skew:                 defaultSkew,
	}
	if c.GetClockSkewSeconds() != 0 {
		p.skew = int64(c.GetClockSkewSeconds())
	}
	for _, a := range c.GetAudiences() {
		p.audiences = append(p.audiences, normalizeAudience(a))
	}
	for _, h := range c.GetFromHeaders() {
		p.headers = append(p.headers, headerLocation{name: strings.ToLower(h.GetName()), prefix: h.GetValuePrefix()})
	}
	if len(p.headers) == 0 && len(p.params) == 0 && len(c.GetFromCookies()) == 0 {
		p.headers = []headerLocation{{name: "authorization", prefix: "Bearer "}}
		p.params = []string{"access_token"}
	}
	for i, ch := range c.GetClaimToHeaders() {
		if ch.GetHeaderName() == "" || ch.GetClaimName() == "" {
			return nil, fmt.Errorf("claim_to_headers[%d]: header_name and claim_name are required", i)
		}
		p.claimHeaders = append(p.claimHeaders, claimHeader{
			header: strings.ToLower(ch.GetHeaderName()), claim: strings.Split(ch.GetClaimName(), "."),
		})
	}
	if n := c.GetNormalizePayloadInMetadata(); n != nil {
		p.spaceDelimited = map[string]bool{}
		for _, cl := range n.GetSpaceDelimitedClaims() {
			p.spaceDelimited[cl] = true
		}
	}
	var err error
	switch {
	case c.GetLocalJwks() != nil:
		p.keys, err = localKeys(c.GetLocalJwks())
		if err != nil {
			return nil, fmt.Errorf("local_jwks: %w", err)
		}
	case c.GetRemoteJwks() != nil:
		p.keys, err = remoteKeySource(c.GetRemoteJwks(), o)
		if err != nil {
			return nil, fmt.Errorf("remote_jwks.%w", err)
		}
	default:
		return nil, fmt.Errorf("jwks_source_specifier: set local_jwks or remote_jwks")
	}
	return p, nil
}

// localKeys parses an inline or file JWKS once, at configuration time.
func localKeys(ds *corev3.DataSource) (keySource, error) {
	var data []byte
	switch s := ds.GetSpecifier().(type) {
	case *corev3.DataSource_InlineString:
		data = []byte(s.InlineString)
	case *corev3.DataSource_InlineBytes:
		data = s.InlineBytes
	case *corev3.DataSource_Filename:
		b, err := os.ReadFile(s.Filename)
		if err != nil {
			return nil, fmt.Errorf("filename: %w", err)
		}
		data = b
	default:
		return nil, fmt.Errorf("set inline_string, inline_bytes or filename")
	}
	ks, err := parseJWKS(data)
	if err != nil {
		return nil, err
	}
	return staticKeys{ks}, nil
}

func remoteKeySource(r *jwtv3.RemoteJwks, o Options) (keySource, error) {
	hu := r.GetHttpUri()
	u, err := url.Parse(hu.GetUri())
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("http_uri.uri: %q is not an http(s) URL with a host", hu.GetUri())
	}
	timeout := hu.GetTimeout().AsDuration()
	if hu.GetTimeout() == nil || timeout <= 0 {
		timeout = defaultTimeout
	}
	return newRemoteKeys(remoteOptions{
		uri: hu.GetUri(), cluster: hu.GetCluster(), timeout: timeout,
		cacheDuration: r.GetCacheDuration().AsDuration(),
		dial:          o.Dial, now: o.Now,
		success: o.stats.jwksSuccess, fail: o.stats.jwksFail,
	}), nil
}

// normalizeAudience strips a scheme and a trailing slash, as Envoy compares
// audiences ("https://a.com/" and "a.com" are the same audience).
func normalizeAudience(a string) string {
	a = strings.TrimPrefix(strings.TrimPrefix(a, "http://"), "https://")
	return strings.TrimSuffix(a, "/")
}

// compileRequirement compiles a JwtRequirement; path names it in errors.
func compileRequirement(r *jwtv3.JwtRequirement, index map[string]int, all []int) (requirement, error) {
	switch t := r.GetRequiresType().(type) {
	case *jwtv3.JwtRequirement_ProviderName:
		i, ok := index[t.ProviderName]
		if !ok {
			return nil, fmt.Errorf("provider_name: %q is not a provider of this filter", t.ProviderName)
		}
		return reqProvider(i), nil
	case *jwtv3.JwtRequirement_RequiresAny:
		rs, err := compileList(t.RequiresAny.GetRequirements(), "requires_any", index, all)
		return reqAny(rs), err
	case *jwtv3.JwtRequirement_RequiresAll:
		rs, err := compileList(t.RequiresAll.GetRequirements(), "requires_all", index, all)
		return reqAll(rs), err
	case *jwtv3.JwtRequirement_AllowMissing:
		return reqAllowMissing(all), nil
	case *jwtv3.JwtRequirement_AllowMissingOrFailed:
		return reqAllowMissingOrFailed{}, nil
	case nil:
		return nil, fmt.Errorf("requires_type: required")
	}
	return nil, fmt.Errorf("requires_type: %T is not supported by weft-proxy", r.GetRequiresType())
}

func compileList(rs []*jwtv3.JwtRequirement, field string, index map[string]int, all []int) ([]requirement, error) {
	out := make([]requirement, 0, len(rs))
	for i, r := range rs {
		c, err := compileRequirement(r, index, all)
		if err != nil {
			return nil, fmt.Errorf("%s.requirements[%d].%w", field, i, err)
		}
		out = append(out, c)
	}
	return out, nil
}

// rule is one RequirementRule: a path match and its requirement (nil: no
// verification).
type rule struct {
	prefix, path string
	req          requirement
}

func (r *rule) matches(path []byte) bool {
	if r.path != "" {
		return string(path) == r.path
	}
	return len(path) >= len(r.prefix) && string(path[:len(r.prefix)]) == r.prefix
}

func compileRule(r *jwtv3.RequirementRule, index map[string]int, all []int) (rule, error) {
	m := r.GetMatch()
	var out rule
	switch ps := m.GetPathSpecifier().(type) {
	case *routev3.RouteMatch_Prefix:
		out.prefix = ps.Prefix
	case *routev3.RouteMatch_Path:
		out.path = ps.Path
	default:
		return out, fmt.Errorf("match: only prefix and path matches are supported by weft-proxy")
	}
	if len(m.GetHeaders()) > 0 || len(m.GetQueryParameters()) > 0 || m.GetCaseSensitive() != nil || m.GetGrpc() != nil {
		return out, fmt.Errorf("match: only prefix and path matches are supported by weft-proxy")
	}
	switch t := r.GetRequirementType().(type) {
	case *jwtv3.RequirementRule_Requires:
		req, err := compileRequirement(t.Requires, index, all)
		if err != nil {
			return out, fmt.Errorf("requires.%w", err)
		}
		out.req = req
	case nil:
	default:
		return out, fmt.Errorf("requirement_name: not supported by weft-proxy: use requires")
	}
	return out, nil
}
