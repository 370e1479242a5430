package router

import (
	"bytes"
	"math/bits"
	"net/netip"
	"slices"
	"strconv"
	"time"

	"github.com/cespare/xxhash/v2"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"

	"github.com/weftmesh/weft/internal/proxy/headers"
	"github.com/weftmesh/weft/internal/proxy/upstream/lb"
)

type hashKind uint8

const (
	hashHeader hashKind = iota
	hashCookie
	hashSourceIP
	hashQuery
)

// hashPolicy is one compiled RouteAction.HashPolicy.
type hashPolicy struct {
	kind     hashKind
	name     string // header name (lower case), cookie name or query parameter
	nameB    []byte // name as bytes
	path     string // cookie path
	ttl      time.Duration
	hasTTL   bool
	terminal bool
}

func compileHashPolicies(hps []*routev3.RouteAction_HashPolicy, path string) ([]hashPolicy, error) {
	var out []hashPolicy
	for i, hp := range hps {
		p := index(path, i)
		if err := checkFields(hp, p, "header", "cookie", "connection_properties", "query_parameter", "terminal"); err != nil {
			return nil, err
		}
		h := hashPolicy{terminal: hp.GetTerminal()}
		switch s := hp.GetPolicySpecifier().(type) {
		case *routev3.RouteAction_HashPolicy_Header_:
			if err := checkFields(s.Header, field(p, "header"), "header_name"); err != nil {
				return nil, err
			}
			h.kind, h.name = hashHeader, string(lowerBytes(s.Header.GetHeaderName()))
			if h.name == "" {
				return nil, errAt(field(p, "header.header_name"), "header name is required")
			}
		case *routev3.RouteAction_HashPolicy_Cookie_:
			c := s.Cookie
			if err := checkFields(c, field(p, "cookie"), "name", "ttl", "path"); err != nil {
				return nil, err
			}
			if c.GetName() == "" {
				return nil, errAt(field(p, "cookie.name"), "cookie name is required")
			}
			h.kind, h.name, h.path = hashCookie, c.GetName(), c.GetPath()
			if c.GetTtl() != nil {
				if err := c.GetTtl().CheckValid(); err != nil {
					return nil, errAt(field(p, "cookie.ttl"), "invalid duration: %v", err)
				}
				// Envoy keeps whole seconds only.
				h.ttl, h.hasTTL = time.Duration(c.GetTtl().GetSeconds())*time.Second, true
			}
		case *routev3.RouteAction_HashPolicy_ConnectionProperties_:
			if err := checkFields(s.ConnectionProperties, field(p, "connection_properties"), "source_ip"); err != nil {
				return nil, err
			}
			if !s.ConnectionProperties.GetSourceIp() {
				continue // Envoy adds no hash method for source_ip: false
			}
			h.kind = hashSourceIP
		case *routev3.RouteAction_HashPolicy_QueryParameter_:
			if err := checkFields(s.QueryParameter, field(p, "query_parameter"), "name"); err != nil {
				return nil, err
			}
			h.kind, h.name, h.nameB = hashQuery, s.QueryParameter.GetName(), []byte(s.QueryParameter.GetName())
			if h.name == "" {
				return nil, errAt(field(p, "query_parameter.name"), "query parameter name is required")
			}
		default:
			return nil, errAt(p, "one of header, cookie, connection_properties or query_parameter is required")
		}
		out = append(out, h)
	}
	return out, nil
}

// Hash computes the request's hash from the route's hash_policy into ctx, as
// Envoy's HashPolicyImpl::generateHash does: policies are evaluated in
// order; each one that yields a value h combines as
// hash = rotl(hash, 1) XOR h (the first one sets hash = h); a terminal policy
// that has produced a hash (its own or an earlier one's) stops evaluation.
// Each policy hashes its value with xxHash64 (seed 0):
//
//   - header: the header's value; for a repeated header, the values are
//     sorted and hashed in a chain (seed = xxh64(value, seed));
//   - cookie: the cookie's value; when it is absent and ttl is set, a cookie
//     is generated as Envoy's router does (value = 16 hex digits of
//     xxh64(remote address + local address)) and its Set-Cookie header value
//     (name="value"; Max-Age=ttl; Path=path; HttpOnly) is appended to
//     setCookies for the caller to add to the downstream response;
//   - connection_properties.source_ip: the downstream remote IP address text;
//   - query_parameter: the parameter's first value, not decoded.
//
// ctx.HasHash is false when no policy produced a value. Hash does not
// allocate unless it generates a cookie or a header repeats more than eight
// times. vars may be nil (no source IP, no generated cookie).
func (r *Route) Hash(req *headers.Request, vars Vars, ctx *lb.Context, setCookies [][]byte) [][]byte {
	var h uint64
	has := false
	for i := range r.hash {
		p := &r.hash[i]
		v, ok := uint64(0), false
		switch p.kind {
		case hashHeader:
			v, ok = hashHeaderValues(req, p.name)
		case hashCookie:
			v, ok, setCookies = p.hashCookie(req, vars, setCookies)
		case hashSourceIP:
			v, ok = hashSource(vars)
		case hashQuery:
			var q []byte
			if q, ok = firstQueryValue(req.Query(), p.nameB); ok {
				v = xxhash.Sum64(q)
			}
		}
		if ok {
			if has {
				h = bits.RotateLeft64(h, 1) ^ v
			} else {
				h = v
			}
			has = true
		}
		if p.terminal && has {
			break
		}
	}
	ctx.Hash, ctx.HasHash = h, has
	return setCookies
}

func hashHeaderValues(req *headers.Request, name string) (uint64, bool) {
	if len(name) > 0 && name[0] == ':' {
		v, ok := req.Lookup(name)
		if !ok {
			return 0, false
		}
		return xxhash.Sum64(v), true
	}
	first := req.Map.Index(name, 0)
	if first < 0 {
		return 0, false
	}
	if req.Map.Index(name, first+1) < 0 {
		return xxhash.Sum64(req.Map.Fields[first].Value), true
	}
	// Envoy sorts the values so that their order does not change the hash,
	// then chains them through the seed.
	var stack [8][]byte
	vals := stack[:0]
	for i := first; i >= 0; i = req.Map.Index(name, i+1) {
		vals = append(vals, req.Map.Fields[i].Value)
	}
	slices.SortFunc(vals, bytes.Compare)
	var seed uint64
	var d xxhash.Digest
	for _, v := range vals {
		d.ResetWithSeed(seed)
		_, _ = d.Write(v)
		seed = d.Sum64()
	}
	return seed, true
}

func hashSource(vars Vars) (uint64, bool) {
	if vars == nil {
		return 0, false
	}
	ap := vars.DownstreamRemoteAddr()
	if !ap.IsValid() {
		return 0, false
	}
	var buf [64]byte
	return xxhash.Sum64(ap.Addr().Unmap().AppendTo(buf[:0])), true
}

func (p *hashPolicy) hashCookie(req *headers.Request, vars Vars, setCookies [][]byte) (uint64, bool, [][]byte) {
	if v := cookieValue(req, p.name); len(v) > 0 {
		return xxhash.Sum64(v), true, setCookies
	}
	if !p.hasTTL || vars == nil {
		return 0, false, setCookies
	}
	value := generatedCookieValue(vars.DownstreamRemoteAddr(), vars.DownstreamLocalAddr())
	setCookies = append(setCookies, makeSetCookie(p.name, value, p.path, p.ttl))
	return xxhash.Sum64(value), true, setCookies
}

// generatedCookieValue is Envoy's addDownstreamSetCookie value: the hex of
// xxh64(remote.asString() + local.asString()), so that streams of one
// connection racing on the same path get the same cookie.
func generatedCookieValue(remote, local netip.AddrPort) []byte {
	var buf [128]byte
	b := appendAddrPort(buf[:0], remote, true)
	b = appendAddrPort(b, local, true)
	sum := xxhash.Sum64(b)
	out := make([]byte, 16)
	const hexDigits = "0123456789abcdef"
	for i := 15; i >= 0; i-- {
		out[i] = hexDigits[sum&0xf]
		sum >>= 4
	}
	return out
}

// makeSetCookie is Envoy's Utility::makeSetCookieValue with httponly set.
func makeSetCookie(name string, value []byte, path string, ttl time.Duration) []byte {
	b := make([]byte, 0, len(name)+len(value)+len(path)+40)
	b = append(b, name...)
	b = append(b, '=', '"')
	b = append(b, value...)
	b = append(b, '"')
	if secs := int64(ttl / time.Second); secs != 0 {
		b = append(b, "; Max-Age="...)
		b = strconv.AppendInt(b, secs, 10)
	}
	if path != "" {
		b = append(b, "; Path="...)
		b = append(b, path...)
	}
	return append(b, "; HttpOnly"...)
}

// cookieValue finds a cookie in every Cookie header as Envoy's parseCookie
// does: entries split on ';', leading spaces dropped from the name, the value
// after the first '=', surrounding double quotes removed; the first entry
// with the name wins.
func cookieValue(req *headers.Request, name string) []byte {
	for i := req.Map.Index(headers.Cookie, 0); i >= 0; i = req.Map.Index(headers.Cookie, i+1) {
		v := req.Map.Fields[i].Value
		for len(v) > 0 {
			var entry []byte
			if j := bytes.IndexByte(v, ';'); j >= 0 {
				entry, v = v[:j], v[j+1:]
			} else {
				entry, v = v, nil
			}
			eq := bytes.IndexByte(entry, '=')
			if eq < 0 {
				continue
			}
			k := bytes.TrimLeft(entry[:eq], " ")
			if string(k) != name {
				continue
			}
			val := entry[eq+1:]
			if len(val) >= 2 && val[0] == '"' && val[len(val)-1] == '"' {
				val = val[1 : len(val)-1]
			}
			return val
		}
	}
	return nil
}
