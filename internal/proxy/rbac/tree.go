package rbac

import (
	"fmt"
	"net/netip"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"

	strmatch "github.com/weftmesh/weft/internal/proxy/matcher"
)

// matcher is one compiled permission or principal.
type matcher interface {
	match(a *Attributes) bool
}

type anyMatcher struct{}

func (anyMatcher) match(*Attributes) bool { return true }

type andMatcher []matcher

func (m andMatcher) match(a *Attributes) bool {
	for _, x := range m {
		if !x.match(a) {
			return false
		}
	}
	return true
}

type orMatcher []matcher

func (m orMatcher) match(a *Attributes) bool {
	for _, x := range m {
		if x.match(a) {
			return true
		}
	}
	return false
}

type notMatcher struct{ m matcher }

func (m notMatcher) match(a *Attributes) bool { return !m.m.match(a) }

// ipSource says which address an IP matcher reads.
type ipSource uint8

const (
	ipDestination ipSource = iota
	ipDirectRemote
	ipRemote
)

type ipMatcher struct {
	prefix netip.Prefix
	src    ipSource
}

func (m ipMatcher) match(a *Attributes) bool {
	var ip netip.Addr
	switch m.src {
	case ipDestination:
		ip = a.destination().Addr().Unmap()
	case ipDirectRemote:
		ip = a.directRemoteIP()
	default:
		ip = a.remoteIP()
	}
	return ip.IsValid() && m.prefix.Contains(ip)
}

// portRange matches the destination port in [lo, hi).
type portRange struct{ lo, hi uint32 }

func (m portRange) match(a *Attributes) bool {
	p := uint32(a.destination().Port())
	return p >= m.lo && p < m.hi
}

type sniMatcher struct{ s strmatch.String }

func (m *sniMatcher) match(a *Attributes) bool { return m.s.MatchString(a.serverName()) }

// pathMatcher matches the request path without query and fragment.
type pathMatcher struct{ s strmatch.String }

func (m *pathMatcher) match(a *Attributes) bool {
	if a.Req == nil || a.Req.Path == nil {
		return false
	}
	return m.s.Match(a.Req.PathOnly())
}

// authMatcher is Envoy's Authenticated: the connection is TLS with a peer
// certificate; with principal_name, one of its URI SANs, else one of its
// DNS SANs, else its subject matches.
type authMatcher struct {
	name *strmatch.String
}

func (m *authMatcher) match(a *Attributes) bool {
	if !a.authenticated() {
		return false
	}
	if m.name == nil {
		return true
	}
	n := a.peerNamesOf()
	for _, u := range n.uris {
		if m.name.MatchString(u) {
			return true
		}
	}
	for _, d := range n.dns {
		if m.name.MatchString(d) {
			return true
		}
	}
	return m.name.MatchString(n.subject)
}

// compilePermission compiles a Permission; errors start with the field.
func compilePermission(p *rbacv3.Permission) (matcher, error) {
	switch r := p.GetRule().(type) {
	case *rbacv3.Permission_Any:
		return anyMatcher{}, nil
	case *rbacv3.Permission_AndRules:
		ms, err := compilePermissions(r.AndRules.GetRules(), ".and_rules")
		return andMatcher(ms), err
	case *rbacv3.Permission_OrRules:
		ms, err := compilePermissions(r.OrRules.GetRules(), ".or_rules")
		return orMatcher(ms), err
	case *rbacv3.Permission_NotRule:
		m, err := compilePermission(r.NotRule)
		if err != nil {
			return nil, fmt.Errorf(".not_rule%w", err)
		}
		return notMatcher{m}, nil
	case *rbacv3.Permission_Header:
		return compileHeader(r.Header)
	case *rbacv3.Permission_UrlPath:
		return compilePath(r.UrlPath)
	case *rbacv3.Permission_DestinationIp:
		return compileCIDR(r.DestinationIp, ipDestination, ".destination_ip")
	case *rbacv3.Permission_DestinationPort:
		return portRange{r.DestinationPort, r.DestinationPort + 1}, nil
	case *rbacv3.Permission_DestinationPortRange:
		return portRange{uint32(max(r.DestinationPortRange.GetStart(), 0)), uint32(max(r.DestinationPortRange.GetEnd(), 0))}, nil
	case *rbacv3.Permission_RequestedServerName:
		s, err := compileString(r.RequestedServerName)
		if err != nil {
			return nil, fmt.Errorf(".requested_server_name%w", err)
		}
		return &sniMatcher{s}, nil
	case *rbacv3.Permission_Metadata:
		return compileMetadata(r.Metadata)
	}
	return nil, fmt.Errorf(": permission %T is not supported by weft-proxy", p.GetRule())
}

func compilePermissions(ps []*rbacv3.Permission, field string) ([]matcher, error) {
	out := make([]matcher, 0, len(ps))
	for i, p := range ps {
		m, err := compilePermission(p)
		if err != nil {
			return nil, fmt.Errorf("%s.rules[%d]%w", field, i, err)
		}
		out = append(out, m)
	}
	return out, nil
}

// compilePrincipal compiles a Principal; errors start with the field.
func compilePrincipal(p *rbacv3.Principal) (matcher, error) {
	switch id := p.GetIdentifier().(type) {
	case *rbacv3.Principal_Any:
		return anyMatcher{}, nil
	case *rbacv3.Principal_AndIds:
		ms, err := compilePrincipals(id.AndIds.GetIds(), ".and_ids")
		return andMatcher(ms), err
	case *rbacv3.Principal_OrIds:
		ms, err := compilePrincipals(id.OrIds.GetIds(), ".or_ids")
		return orMatcher(ms), err
	case *rbacv3.Principal_NotId:
		m, err := compilePrincipal(id.NotId)
		if err != nil {
			return nil, fmt.Errorf(".not_id%w", err)
		}
		return notMatcher{m}, nil
	case *rbacv3.Principal_Authenticated_:
		if id.Authenticated.GetPrincipalName() == nil {
			return &authMatcher{}, nil
		}
		s, err := compileString(id.Authenticated.GetPrincipalName())
		if err != nil {
			return nil, fmt.Errorf(".authenticated.principal_name%w", err)
		}
		return &authMatcher{name: &s}, nil
	case *rbacv3.Principal_DirectRemoteIp:
		return compileCIDR(id.DirectRemoteIp, ipDirectRemote, ".direct_remote_ip")
	case *rbacv3.Principal_SourceIp: //nolint:staticcheck // deprecated, still accepted: the connection's peer
		return compileCIDR(id.SourceIp, ipDirectRemote, ".source_ip")
	case *rbacv3.Principal_RemoteIp:
		return compileCIDR(id.RemoteIp, ipRemote, ".remote_ip")
	case *rbacv3.Principal_Header:
		return compileHeader(id.Header)
	case *rbacv3.Principal_UrlPath:
		return compilePath(id.UrlPath)
	case *rbacv3.Principal_Metadata:
		return compileMetadata(id.Metadata)
	}
	return nil, fmt.Errorf(": principal %T is not supported by weft-proxy", p.GetIdentifier())
}

func compilePrincipals(ps []*rbacv3.Principal, field string) ([]matcher, error) {
	out := make([]matcher, 0, len(ps))
	for i, p := range ps {
		m, err := compilePrincipal(p)
		if err != nil {
			return nil, fmt.Errorf("%s.ids[%d]%w", field, i, err)
		}
		out = append(out, m)
	}
	return out, nil
}

func compileCIDR(c *corev3.CidrRange, src ipSource, field string) (matcher, error) {
	addr, err := netip.ParseAddr(c.GetAddressPrefix())
	if err != nil {
		return nil, fmt.Errorf("%s.address_prefix: %q is not an IP address", field, c.GetAddressPrefix())
	}
	addr = addr.Unmap()
	bits := addr.BitLen()
	if c.GetPrefixLen() != nil {
		bits = int(c.GetPrefixLen().GetValue())
	}
	pfx, err := addr.Prefix(bits)
	if err != nil {
		return nil, fmt.Errorf("%s.prefix_len: %d is too long for %s", field, bits, addr)
	}
	return ipMatcher{prefix: pfx, src: src}, nil
}

func compilePath(p *matcherv3.PathMatcher) (matcher, error) {
	s, err := compileString(p.GetPath())
	if err != nil {
		return nil, fmt.Errorf(".url_path.path%w", err)
	}
	return &pathMatcher{s}, nil
}
