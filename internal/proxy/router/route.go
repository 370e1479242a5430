package router

import (
	"math"
	"regexp"
	"strings"
	"time"

	"github.com/weftmesh/weft/internal/proxy/headers"
)

// ActionKind says what a matched route does.
type ActionKind uint8

// Route actions.
const (
	// ActionRoute forwards the request to an upstream cluster.
	ActionRoute ActionKind = iota + 1
	// ActionRedirect answers with a redirect (RedirectLocation).
	ActionRedirect
	// ActionDirectResponse answers with a fixed status and body.
	ActionDirectResponse
)

func (k ActionKind) String() string {
	switch k {
	case ActionRoute:
		return "route"
	case ActionRedirect:
		return "redirect"
	case ActionDirectResponse:
		return "direct_response"
	}
	return "unknown"
}

// DefaultTimeout is RouteAction.timeout when it is not set (Envoy's
// DEFAULT_ROUTE_TIMEOUT_MS).
const DefaultTimeout = 15 * time.Second

// ClusterTarget is the upstream cluster a request goes to: the route's
// cluster, or one of its weighted_clusters with that entry's own header
// mutations and host rewrite. It is immutable.
type ClusterTarget struct {
	// Name is the cluster name.
	Name string
	// Weight is the configured weight (0 for a plain cluster route).
	Weight uint32

	hostRewrite []byte
	request     mutation
	response    mutation
}

// MaxStreamDuration is RouteAction.max_stream_duration. A Has* flag is false
// when the field is not set; a set zero duration means "disabled" as in Envoy.
type MaxStreamDuration struct {
	MaxStreamDuration          time.Duration
	HasMaxStreamDuration       bool
	GrpcTimeoutHeaderMax       time.Duration
	HasGrpcTimeoutHeaderMax    bool
	GrpcTimeoutHeaderOffset    time.Duration
	HasGrpcTimeoutHeaderOffset bool
}

// upgradeConfig is one RouteAction.upgrade_configs entry.
type upgradeConfig struct {
	proto   []byte // lower case
	enabled bool
}

// Route is one compiled route. It is immutable and safe for concurrent use.
type Route struct {
	name  string
	vhost *VirtualHost
	kind  ActionKind
	match routeMatch

	request  mutation
	response mutation
	// filters is typed_per_filter_config merged with the virtual host's and
	// the route configuration's (perfilter.go).
	filters perFilter

	// ActionRoute
	targets               []ClusterTarget
	totalWeight           uint64
	clusterNotFoundStatus int
	timeout               time.Duration
	idleTimeout           time.Duration
	hasIdleTimeout        bool
	maxStream             MaxStreamDuration
	prefixRewrite         []byte
	hasPrefixRewrite      bool
	regexRewrite          *regexp.Regexp
	regexTemplate         []byte
	hostRewrite           []byte
	autoHostRewrite       bool
	hash                  []hashPolicy
	upgrades              []upgradeConfig

	// ActionRedirect
	redirect *redirectConfig

	// ActionRedirect and ActionDirectResponse
	status int
	body   []byte

	resilience // retry, mirroring, buffer limit (mirror.go)
}

// Name is the route's name (may be empty).
func (r *Route) Name() string { return r.name }

// VirtualHost is the virtual host the route belongs to.
func (r *Route) VirtualHost() *VirtualHost { return r.vhost }

// Kind is the route's action.
func (r *Route) Kind() ActionKind { return r.kind }

// PickCluster returns the cluster for one request. For weighted_clusters it
// picks as Envoy's WeightedClusterSpecifierPlugin does: random modulo the sum
// of weights selects the entry whose interval [begin, begin+weight) contains
// it, so entries are chosen in proportion to their weights and a weight of 0
// is never chosen. random should be uniformly distributed (Envoy uses the
// stream's random value). It returns nil for redirect and direct-response
// routes.
func (r *Route) PickCluster(random uint64) *ClusterTarget {
	switch len(r.targets) {
	case 0:
		return nil
	case 1:
		return &r.targets[0]
	}
	v := random % r.totalWeight
	var end uint64
	for i := range r.targets {
		end += uint64(r.targets[i].Weight)
		if v < end {
			return &r.targets[i]
		}
	}
	return &r.targets[len(r.targets)-1]
}

// Clusters lists the route's cluster targets (one for a plain cluster, all
// entries for weighted_clusters, none for other actions). The slice must not
// be modified.
func (r *Route) Clusters() []ClusterTarget { return r.targets }

// ClusterNotFoundStatus is the status to answer with when the picked cluster
// does not exist (cluster_not_found_response_code: 503 by default, 404 or
// 500).
func (r *Route) ClusterNotFoundStatus() int { return r.clusterNotFoundStatus }

// Timeout is the upstream response timeout (RouteAction.timeout, default
// 15 s). Zero disables it.
func (r *Route) Timeout() time.Duration { return r.timeout }

// IdleTimeout is RouteAction.idle_timeout. ok is false when it is not set, in
// which case the connection manager's stream_idle_timeout applies; a set zero
// disables the idle timeout.
func (r *Route) IdleTimeout() (d time.Duration, ok bool) { return r.idleTimeout, r.hasIdleTimeout }

// MaxStreamDuration is RouteAction.max_stream_duration.
func (r *Route) MaxStreamDuration() MaxStreamDuration { return r.maxStream }

// AutoHostRewrite reports whether the Host/:authority must be rewritten to
// the chosen upstream host's name once it is chosen (auto_host_rewrite). The
// caller does this rewrite; Envoy skips it when the host has no hostname.
func (r *Route) AutoHostRewrite() bool { return r.autoHostRewrite }

// Status is the response status of a redirect (response_code, 301 by
// default) or of a direct response; 0 for ActionRoute.
func (r *Route) Status() int { return r.status }

// Body is the direct response body (nil when none). It must not be modified.
func (r *Route) Body() []byte { return r.body }

// HasHashPolicy reports whether the route has a hash_policy.
func (r *Route) HasHashPolicy() bool { return len(r.hash) > 0 }

// UpgradeOverride returns the route's upgrade_configs decision for an
// upgrade protocol (compared case-insensitively). set is false when the route
// does not mention proto.
func (r *Route) UpgradeOverride(proto []byte) (enabled, set bool) {
	for i := range r.upgrades {
		if len(r.upgrades[i].proto) == len(proto) && hasPrefixFold(proto, r.upgrades[i].proto) {
			return r.upgrades[i].enabled, true
		}
	}
	return false, false
}

// UpgradeAllowed decides whether an upgrade to proto may proceed, as Envoy's
// connection manager does: a route entry for proto wins (disabled refuses
// even if the connection manager allows it; enabled allows even if the
// connection manager has no upgrade_configs entry for it); otherwise
// hcmAllows, the connection manager's own decision, applies.
func (r *Route) UpgradeAllowed(proto []byte, hcmAllows bool) bool {
	if enabled, set := r.UpgradeOverride(proto); set {
		return enabled
	}
	return hcmAllows
}

// ApplyRequestHeaders applies the request header mutations in Envoy's order:
// the weighted cluster's (target may be nil), then route, virtual host and
// route configuration levels (reversed when most_specific_header_mutations_wins),
// each later level winning over the earlier ones. It does not rewrite the host
// or the path; FinalizeRequest does everything in order.
func (r *Route) ApplyRequestHeaders(req *headers.Request, target *ClusterTarget, vars Vars) {
	if target != nil {
		target.request.apply(&req.Map, req, vars)
	}
	r.applyLevels(&req.Map, req, vars, r.request, r.vhost.request, r.vhost.table.request)
}

// ApplyResponseHeaders applies the response header mutations in Envoy's
// order (weighted cluster first, then the levels as in ApplyRequestHeaders).
// req is the downstream request, read by %REQ()% (may be nil). The
// connection manager calls it for upstream responses and for the route's own
// local replies (redirects and direct responses); target is nil for those.
func (r *Route) ApplyResponseHeaders(resp *headers.Response, req *headers.Request, target *ClusterTarget, vars Vars) {
	if target != nil {
		target.response.apply(&resp.Map, req, vars)
	}
	r.applyLevels(&resp.Map, req, vars, r.response, r.vhost.response, r.vhost.table.response)
}

func (r *Route) applyLevels(m *headers.Map, req *headers.Request, vars Vars, route, vhost, global mutation) {
	// Envoy's getHeaderParsers: by default route, virtual host, then route
	// configuration level ("later evaluated header parser wins"), so the
	// least specific level wins; most_specific_header_mutations_wins reverses
	// the order.
	if r.vhost.table.mostSpecificWins {
		global.apply(m, req, vars)
		vhost.apply(m, req, vars)
		route.apply(m, req, vars)
		return
	}
	route.apply(m, req, vars)
	vhost.apply(m, req, vars)
	global.apply(m, req, vars)
}

// FinalizeRequest prepares the request for the upstream in the order of
// Envoy's route entry (finalizeRequestHeaders): the weighted cluster's header
// mutations and host_rewrite_literal, then the route, virtual host and
// configuration header mutations, then the route's host_rewrite_literal,
// then the path rewrite (ApplyPathRewrite). auto_host_rewrite is left to the
// caller (AutoHostRewrite).
func (r *Route) FinalizeRequest(req *headers.Request, target *ClusterTarget, vars Vars) {
	if target != nil {
		target.request.apply(&req.Map, req, vars)
		if target.hostRewrite != nil {
			req.Authority = target.hostRewrite
		}
	}
	r.applyLevels(&req.Map, req, vars, r.request, r.vhost.request, r.vhost.table.request)
	if r.hostRewrite != nil {
		req.Authority = r.hostRewrite
	}
	r.ApplyPathRewrite(req)
}

// ApplyRequestRewrites applies the host rewrites (the weighted cluster's,
// then the route's host_rewrite_literal, which wins) and the path rewrite.
func (r *Route) ApplyRequestRewrites(req *headers.Request, target *ClusterTarget) {
	if target != nil && target.hostRewrite != nil {
		req.Authority = target.hostRewrite
	}
	if r.hostRewrite != nil {
		req.Authority = r.hostRewrite
	}
	r.ApplyPathRewrite(req)
}

// ApplyPathRewrite applies prefix_rewrite or regex_rewrite to req.Path,
// keeping the query string, and, unless the table was compiled with
// SuppressEnvoyHeaders, sets x-envoy-original-path to the path as it was
// (Envoy's finalizePathHeader). A prefix rewrite writes into the request's
// header arena and does not allocate once it has grown; a regex rewrite
// allocates.
func (r *Route) ApplyPathRewrite(req *headers.Request) {
	if r.kind != ActionRoute || (!r.hasPrefixRewrite && r.regexRewrite == nil) || req.Path == nil {
		return
	}
	orig := req.Path
	p := pathOnly(orig)
	rest := orig[len(p):]
	var newPath []byte
	if r.hasPrefixRewrite {
		n := r.match.matchedLen(p)
		if n > len(p) {
			return // the path changed since matching; Envoy asserts here
		}
		newPath = req.Alloc(len(r.prefixRewrite) + len(orig) - n)
		k := copy(newPath, r.prefixRewrite)
		copy(newPath[k:], orig[n:])
	} else {
		rewritten := replaceAll(r.regexRewrite, r.regexTemplate, p)
		newPath = req.Alloc(len(rewritten) + len(rest))
		k := copy(newPath, rewritten)
		copy(newPath[k:], rest)
	}
	if !r.vhost.table.suppressEnvoyHeaders {
		req.Map.SetRef(headers.XEnvoyOrigPath, orig)
	}
	req.Path = newPath
}

// VirtualHost is one compiled virtual host.
type VirtualHost struct {
	name     string
	routes   []*Route
	request  mutation
	response mutation
	filters  perFilter // typed_per_filter_config
	table    *Table

	resilience // retry policy, attempt counts, buffer limit (mirror.go)
}

// Name is the virtual host's name.
func (v *VirtualHost) Name() string { return v.name }

// Routes lists the virtual host's routes in match order. The slice must not
// be modified.
func (v *VirtualHost) Routes() []*Route { return v.routes }

// sumWeights adds the weights, reporting overflow past uint32 (Envoy's limit).
func sumWeights(ts []ClusterTarget) (uint64, bool) {
	var s uint64
	for _, t := range ts {
		s += uint64(t.Weight)
	}
	return s, s <= math.MaxUint32
}

func lowerBytes(s string) []byte { return []byte(strings.ToLower(s)) }
