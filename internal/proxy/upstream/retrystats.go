package upstream

import "github.com/weftmesh/weft/internal/proxy/stats"

// RetryStats are a cluster's retry, per-try timeout and shadowing
// statistics (Envoy's cluster.<name>.upstream_rq_retry* and friends).
type RetryStats struct {
	// Retry counts retries sent (upstream_rq_retry).
	Retry *stats.Counter
	// Success counts requests that succeeded after at least one retry
	// (upstream_rq_retry_success).
	Success *stats.Counter
	// Overflow counts retries refused by max_retries or the retry budget
	// (upstream_rq_retry_overflow).
	Overflow *stats.Counter
	// LimitExceeded counts retriable failures with no retry left
	// (upstream_rq_retry_limit_exceeded).
	LimitExceeded *stats.Counter
	// BackoffExponential counts retries that waited the exponential
	// back-off (upstream_rq_retry_backoff_exponential).
	BackoffExponential *stats.Counter
	// PerTryTimeout and PerTryIdleTimeout count tries ended by
	// per_try_timeout and per_try_idle_timeout.
	PerTryTimeout     *stats.Counter
	PerTryIdleTimeout *stats.Counter
	// Abandoned counts requests whose body did not fit the buffer limit,
	// so they could not be retried or shadowed (retry_or_shadow_abandoned).
	Abandoned *stats.Counter
	// ShadowOverflow counts shadow requests to this cluster dropped
	// because the proxy's bound on concurrent shadow requests was reached
	// (weft-specific: upstream_rq_shadow_overflow).
	ShadowOverflow *stats.Counter
}

func newRetryStats(sc *stats.Scope) RetryStats {
	return RetryStats{
		Retry:              sc.Counter("upstream_rq_retry"),
		Success:            sc.Counter("upstream_rq_retry_success"),
		Overflow:           sc.Counter("upstream_rq_retry_overflow"),
		LimitExceeded:      sc.Counter("upstream_rq_retry_limit_exceeded"),
		BackoffExponential: sc.Counter("upstream_rq_retry_backoff_exponential"),
		PerTryTimeout:      sc.Counter("upstream_rq_per_try_timeout"),
		PerTryIdleTimeout:  sc.Counter("upstream_rq_per_try_idle_timeout"),
		Abandoned:          sc.Counter("retry_or_shadow_abandoned"),
		ShadowOverflow:     sc.Counter("upstream_rq_shadow_overflow"),
	}
}
