package rbac

import (
	"fmt"
	"strings"
	"sync"

	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	rbachttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	rbactcpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/rbac/v3"
	"google.golang.org/protobuf/proto"

	"github.com/weftmesh/weft/internal/proxy/httpfilter"
	"github.com/weftmesh/weft/internal/proxy/network"
	"github.com/weftmesh/weft/internal/proxy/stats"
)

// DeniedBody is the body of Envoy's 403 for a denied request.
const DeniedBody = "RBAC: access denied"

// attrPool recycles Attributes: matchers are called through interfaces,
// so a stack value would escape; pooling keeps evaluation allocation-free.
var attrPool = sync.Pool{New: func() any { return new(Attributes) }}

// HTTPFilter is envoy.filters.http.rbac. It is immutable and serves every
// stream of its connection manager concurrently.
type HTTPFilter struct {
	e engines
}

var _ httpfilter.Filter = (*HTTPFilter)(nil)

// RegisterHTTP adds the HTTP RBAC filter to r. scope is the connection
// manager's stats scope ("http.<stat_prefix>"): the filter's counters go
// under its "rbac." child, as Envoy's.
func RegisterHTTP(r *httpfilter.Registry, scope *stats.Scope) {
	r.Register(&rbachttpv3.RBAC{}, false, func(cfg proto.Message, _ httpfilter.Deps) (httpfilter.Filter, error) {
		return NewHTTP(cfg.(*rbachttpv3.RBAC), scope)
	})
}

// NewHTTP compiles an HTTP RBAC filter. Not supported (errors): the
// matcher-tree forms and per-rule stats.
func NewHTTP(cfg *rbachttpv3.RBAC, scope *stats.Scope) (*HTTPFilter, error) {
	if cfg.GetMatcher() != nil || cfg.GetShadowMatcher() != nil {
		return nil, fmt.Errorf("matcher, shadow_matcher: not supported by weft-proxy: use rules and shadow_rules")
	}
	if cfg.GetTrackPerRuleStats() {
		return nil, fmt.Errorf("track_per_rule_stats: not supported by weft-proxy")
	}
	e, err := compileEngines(cfg.GetRules(), cfg.GetShadowRules())
	if err != nil {
		return nil, err
	}
	e.c = newCounters(scope.Scope("rbac"), cfg.GetRulesStatPrefix(), cfg.GetShadowRulesStatPrefix())
	return &HTTPFilter{e: e}, nil
}

// DecodeHeaders evaluates the request: a denied request gets Envoy's 403
// "RBAC: access denied" with response code details
// rbac_access_denied_matched_policy[NAME] (Envoy sets no response flag for
// RBAC denials).
func (f *HTTPFilter) DecodeHeaders(s *httpfilter.Stream) httpfilter.Status {
	a := attrPool.Get().(*Attributes)
	*a = Attributes{Conn: s.Conn, Req: &s.Req, RemoteIP: s.Info.DownstreamRemote.Addr().Unmap(), Metadata: s.Metadata}
	ok, details := f.e.decide(a)
	*a = Attributes{}
	attrPool.Put(a)
	if ok {
		return httpfilter.Continue
	}
	httpfilter.SendLocalReply(s, 403, DeniedBody, 0, details)
	return httpfilter.Stop
}

// NetworkFilter is envoy.filters.network.rbac: it decides once per
// connection. Envoy decides on the connection's first bytes
// (enforcement_type ONE_TIME_ON_FIRST_BYTE); weft-proxy decides when the
// connection reaches the filter chain, before any byte is proxied, so a
// denied client never reaches the upstream (server-first protocols
// included). Immutable; safe for concurrent use.
type NetworkFilter struct {
	e engines
}

// NewNetwork compiles a network RBAC filter; its counters go under
// "<stat_prefix>rbac." in root.
func NewNetwork(cfg *rbactcpv3.RBAC, root *stats.Scope) (*NetworkFilter, error) {
	if cfg.GetMatcher() != nil || cfg.GetShadowMatcher() != nil {
		return nil, fmt.Errorf("matcher, shadow_matcher: not supported by weft-proxy: use rules and shadow_rules")
	}
	if cfg.GetEnforcementType() != rbactcpv3.RBAC_ONE_TIME_ON_FIRST_BYTE {
		return nil, fmt.Errorf("enforcement_type: %s is not supported by weft-proxy", cfg.GetEnforcementType())
	}
	if cfg.GetStatPrefix() == "" {
		return nil, fmt.Errorf("stat_prefix: required")
	}
	e, err := compileEngines(cfg.GetRules(), cfg.GetShadowRules())
	if err != nil {
		return nil, err
	}
	name := "rbac"
	if p := strings.TrimSuffix(cfg.GetStatPrefix(), "."); p != "" {
		name = p + ".rbac"
	}
	e.c = newCounters(root.Scope(name), "", cfg.GetShadowRulesStatPrefix())
	return &NetworkFilter{e: e}, nil
}

// Allow evaluates a connection: whether it may continue and, when not,
// Envoy's connection termination details.
func (f *NetworkFilter) Allow(c *network.Conn) (bool, string) {
	a := attrPool.Get().(*Attributes)
	*a = Attributes{Conn: c}
	ok, details := f.e.decide(a)
	*a = Attributes{}
	attrPool.Put(a)
	return ok, details
}

// Handler runs network RBAC filters in front of a filter chain's
// terminal filter: a connection any of them denies is closed at once.
type Handler struct {
	Filters []*NetworkFilter
	Next    network.Handler
	// OnDenied, when set, is told about every denied connection and the
	// details (for logs); it must not keep c.
	OnDenied func(c *network.Conn, details string)
}

// ServeConn implements network.Handler.
func (h *Handler) ServeConn(c *network.Conn) {
	for _, f := range h.Filters {
		if ok, details := f.Allow(c); !ok {
			if h.OnDenied != nil {
				h.OnDenied(c, details)
			}
			c.Conn.Close()
			return
		}
	}
	h.Next.ServeConn(c)
}

// compileEngines compiles rules and shadow rules (either may be nil),
// naming the field on error.
func compileEngines(rules, shadow *rbacv3.RBAC) (engines, error) {
	var e engines
	var err error
	if e.rules, err = Compile(rules); err != nil {
		return e, fmt.Errorf("rules.%w", err)
	}
	if e.shadow, err = Compile(shadow); err != nil {
		return e, fmt.Errorf("shadow_rules.%w", err)
	}
	return e, nil
}
