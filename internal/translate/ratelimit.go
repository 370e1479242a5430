package translate

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	ratelimitv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	localratelimitv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/local_ratelimit/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/weftmesh/weft/internal/config"
	"github.com/weftmesh/weft/internal/model"
)

// Local rate limiting from weft's LocalRateLimit resource
// (networking.weft.dev/v1alpha1, internal/config/ratelimit.go): a token
// bucket per inbound HTTP listener of the selected workloads — server-side
// limiting, the pattern Istio's documentation configures with an
// EnvoyFilter on SIDECAR_INBOUND — as envoy.filters.http.local_ratelimit
// after jwt_authn and RBAC (so that rejected requests use no tokens),
// before the router.

const (
	localRateLimitFilterName = "envoy.filters.http.local_ratelimit"
	// localRateLimitStatPrefix is the stat prefix of Istio's documented
	// example (http_local_rate_limiter.http_local_rate_limit.rate_limited).
	localRateLimitStatPrefix = "http_local_rate_limiter"
)

// rateLimitCandidate is one LocalRateLimit that selects a proxy.
type rateLimitCandidate struct {
	obj  *config.Object
	spec *config.LocalRateLimitSpec
	// rank orders the candidates, lower first: 0 the proxy's namespace with
	// a selector, 1 its namespace without, 2 the root namespace with a
	// selector, 3 the root namespace without.
	rank int
}

// rateLimitsFor returns the LocalRateLimits that select proxy p, most
// specific first: the proxy's namespace before the root namespace, a
// selector before none (as Istio ranks workload-selected policies over
// namespace-wide ones), then by name.
func (st *snapState) rateLimitsFor(p *model.Proxy) []rateLimitCandidate {
	root := st.snap.RootNamespace
	var out []rateLimitCandidate
	for _, obj := range st.snap.List(config.LocalRateLimit) {
		spec, ok := config.LocalRateLimitOf(obj)
		if !ok || (obj.Namespace != p.Namespace && obj.Namespace != root) {
			continue
		}
		if !model.SelectorMatches(spec.Selector, p.Labels) {
			continue
		}
		rank := 0
		if obj.Namespace != p.Namespace {
			rank = 2
		}
		if len(spec.Selector) == 0 {
			rank++
		}
		out = append(out, rateLimitCandidate{obj: obj, spec: spec, rank: rank})
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].rank != out[j].rank {
			return out[i].rank < out[j].rank
		}
		return out[i].obj.Name < out[j].obj.Name
	})
	return out
}

// localRateLimitFilter returns the local_ratelimit filter of one inbound
// port, nil when no candidate applies to it. cands are in rank order;
// within a rank, a resource that names the port wins over one for every
// port, then the first by name. Another candidate of the same rank and
// kind (naming the port, or not) gets a warning: it is not applied.
func (st *snapState) localRateLimitFilter(cands []rateLimitCandidate, port uint32) *hcmv3.HttpFilter {
	var win *rateLimitCandidate
	winExplicit := false
	for i := range cands {
		c := &cands[i]
		explicit := len(c.spec.Ports) > 0
		if explicit && !slices.Contains(c.spec.Ports, port) {
			continue
		}
		switch {
		case win == nil || c.rank == win.rank && explicit && !winExplicit:
			win, winExplicit = c, explicit
		case c.rank == win.rank && explicit == winExplicit:
			st.warns.warnObject(c.obj, "spec", fmt.Sprintf(
				"not applied on port %d: LocalRateLimit %s/%s also applies and wins (first by name); make the selectors or ports disjoint",
				port, win.obj.Namespace, win.obj.Name))
		}
	}
	if win == nil {
		return nil
	}
	return &hcmv3.HttpFilter{
		Name:       localRateLimitFilterName,
		ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(localRateLimit(win.spec))},
	}
}

// localRateLimit builds the filter configuration: the token bucket, the
// filter enabled and enforced for every request (Envoy enables it for 0 %
// of requests when these are unset), the status, the response headers
// (sorted by name; set, not appended) and the x-ratelimit headers (draft
// RFC version 03, Envoy's only version).
func localRateLimit(s *config.LocalRateLimitSpec) *localratelimitv3.LocalRateLimit {
	all := func() *corev3.RuntimeFractionalPercent {
		return &corev3.RuntimeFractionalPercent{DefaultValue: integerFraction(100)}
	}
	out := &localratelimitv3.LocalRateLimit{
		StatPrefix: localRateLimitStatPrefix,
		TokenBucket: &typev3.TokenBucket{
			MaxTokens:     s.MaxTokens,
			TokensPerFill: wrapperspb.UInt32(s.TokensPerFill),
			FillInterval:  durationpb.New(s.FillInterval),
		},
		FilterEnabled:  all(),
		FilterEnforced: all(),
	}
	if s.StatusCode != config.DefaultRateLimitStatus {
		out.Status = &typev3.HttpStatus{Code: typev3.StatusCode(s.StatusCode)}
	}
	for _, k := range sortedKeys(s.ResponseHeaders) {
		out.ResponseHeadersToAdd = append(out.ResponseHeadersToAdd, &corev3.HeaderValueOption{
			Header:       &corev3.HeaderValue{Key: strings.ToLower(k), Value: s.ResponseHeaders[k]},
			AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
		})
	}
	if s.XRateLimitHeaders {
		out.EnableXRatelimitHeaders = ratelimitv3.XRateLimitHeadersRFCVersion_DRAFT_VERSION_03
	}
	return out
}
