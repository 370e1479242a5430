// Package localratelimit is the local rate limit HTTP filter
// (envoy.filters.http.local_ratelimit,
// envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit): a token
// bucket in the proxy's memory admits requests; when it is empty a request
// is answered 429 (or the configured status) with body "local_rate_limited"
// and response flag RL. It follows Envoy's filter (docs:
// configuration/http/http_filters/local_rate_limit_filter):
//
//   - the filter may be configured on the connection manager (one bucket
//     for the listener) and, through typed_per_filter_config, on a virtual
//     host or a route, each with its own bucket; the most specific
//     configuration replaces the others for a request (token_bucket is then
//     required);
//   - filter_enabled samples the requests the filter looks at and
//     filter_enforced those it refuses (both default to 0 %); a request
//     refused but not enforced goes on with
//     request_headers_to_add_when_not_enforced;
//   - response_headers_to_add go on the 429; with enable_x_ratelimit_headers
//     DRAFT_VERSION_03 every response the filter saw carries x-ratelimit-limit
//     (max_tokens), x-ratelimit-remaining and x-ratelimit-reset (whole
//     seconds to the next fill, rounded down, as Envoy).
//
// Stats, under <stat_prefix>.http_local_rate_limit.: enabled, enforced,
// rate_limited, ok.
//
// There is no runtime: filter_enabled and filter_enforced use their
// default_value (runtime_key is accepted and ignored). Not supported
// (configuration errors): descriptors, stage, rate_limits,
// local_rate_limit_per_downstream_connection, local_cluster_rate_limit,
// vh_rate_limits, always_consume_default_token_bucket,
// rate_limited_as_resource_exhausted and the other newer fields.
package localratelimit

import (
	"fmt"
	"time"

	ratelimitv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	lrlv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/local_ratelimit/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"

	"github.com/weftmesh/weft/internal/proxy/router"
	"github.com/weftmesh/weft/internal/proxy/stats"
)

// MinFillInterval is Envoy's lower bound on token_bucket.fill_interval.
const MinFillInterval = 50 * time.Millisecond

// Config is one compiled LocalRateLimit with its token bucket: the
// listener's, or a virtual host's or route's. It is safe for concurrent
// use.
type Config struct {
	enabled, enforced router.Fraction
	bucket            *Bucket // nil: no token bucket, every request is admitted
	status            int
	responseHeaders   router.HeaderMutation
	notEnforced       router.HeaderMutation
	xRateLimit        bool
	c                 counters
}

// counters are the filter's stats (see the package doc).
type counters struct {
	enabled, enforced, rateLimited, ok *stats.Counter
}

// CompileOptions are what compiling needs besides the message.
type CompileOptions struct {
	// Scope receives <stat_prefix>.http_local_rate_limit.* (Envoy writes
	// them at the root of the stats tree). nil: a private store.
	Scope *stats.Scope
	// Now is the buckets' clock (nil: time.Now).
	Now func() time.Time
	// PerRoute marks a typed_per_filter_config value: token_bucket is then
	// required.
	PerRoute bool
}

// Compile validates cfg and builds its configuration and bucket. Errors
// name the field.
func Compile(cfg *lrlv3.LocalRateLimit, o CompileOptions) (*Config, error) {
	if err := router.CheckFields(cfg, "", "stat_prefix", "status", "token_bucket", "filter_enabled", "filter_enforced",
		"request_headers_to_add_when_not_enforced", "response_headers_to_add",
		"enable_x_ratelimit_headers"); err != nil {
		return nil, err
	}
	if cfg.GetStatPrefix() == "" {
		return nil, fmt.Errorf("stat_prefix: required")
	}
	c := &Config{status: 429, xRateLimit: cfg.GetEnableXRatelimitHeaders() == ratelimitv3.XRateLimitHeadersRFCVersion_DRAFT_VERSION_03}
	if code := int(cfg.GetStatus().GetCode()); code >= 400 {
		c.status = code // Envoy: a status below 400 means 429
	}
	var err error
	if c.bucket, err = compileBucket(cfg.GetTokenBucket(), o); err != nil {
		return nil, err
	}
	if c.bucket == nil && o.PerRoute {
		return nil, fmt.Errorf("token_bucket: required in a per-route (typed_per_filter_config) configuration")
	}
	if c.enabled, err = router.CompileRuntimeFraction(cfg.GetFilterEnabled(), "filter_enabled"); err != nil {
		return nil, err
	}
	if c.enforced, err = router.CompileRuntimeFraction(cfg.GetFilterEnforced(), "filter_enforced"); err != nil {
		return nil, err
	}
	if c.responseHeaders, err = router.CompileHeaderMutation(cfg.GetResponseHeadersToAdd(), "response_headers_to_add"); err != nil {
		return nil, err
	}
	if c.notEnforced, err = router.CompileHeaderMutation(cfg.GetRequestHeadersToAddWhenNotEnforced(),
		"request_headers_to_add_when_not_enforced"); err != nil {
		return nil, err
	}
	sc := o.Scope
	if sc == nil {
		sc = stats.NewStore().Root()
	}
	sc = sc.Scope(cfg.GetStatPrefix()).Scope("http_local_rate_limit")
	c.c = counters{
		enabled:     sc.Counter("enabled"),
		enforced:    sc.Counter("enforced"),
		rateLimited: sc.Counter("rate_limited"),
		ok:          sc.Counter("ok"),
	}
	return c, nil
}

func compileBucket(tb *typev3.TokenBucket, o CompileOptions) (*Bucket, error) {
	if tb == nil {
		return nil, nil
	}
	if err := router.CheckFields(tb, "token_bucket", "max_tokens", "tokens_per_fill", "fill_interval"); err != nil {
		return nil, err
	}
	perFill := uint32(1)
	if v := tb.GetTokensPerFill(); v != nil {
		if v.GetValue() == 0 {
			return nil, fmt.Errorf("token_bucket.tokens_per_fill: must be greater than 0")
		}
		perFill = v.GetValue()
	}
	fi := tb.GetFillInterval()
	if fi == nil {
		return nil, fmt.Errorf("token_bucket.fill_interval: required")
	}
	if err := fi.CheckValid(); err != nil {
		return nil, fmt.Errorf("token_bucket.fill_interval: %v", err)
	}
	if d := fi.AsDuration(); d < MinFillInterval {
		return nil, fmt.Errorf("token_bucket.fill_interval: must be at least %v (Envoy's limit), got %v", MinFillInterval, d)
	}
	return NewBucket(tb.GetMaxTokens(), perFill, fi.AsDuration(), o.Now), nil
}
