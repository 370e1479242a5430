// Package breaker implements Envoy's cluster circuit breakers: limits on a
// cluster's connections, pending requests, active requests and active
// retries, shared by every host's connection pool. A request over a limit is
// refused at once (503 with response flag UO), never queued.
package breaker

import (
	"sync/atomic"

	"github.com/weftmesh/weft/internal/proxy/stats"
)

// Envoy's default thresholds.
const (
	DefaultMaxConnections     = 1024
	DefaultMaxPendingRequests = 1024
	DefaultMaxRequests        = 1024
	DefaultMaxRetries         = 3
)

// Thresholds are the limits of one priority.
type Thresholds struct {
	MaxConnections     int64
	MaxPendingRequests int64
	MaxRequests        int64
	MaxRetries         int64
	// RetryBudget, when set, replaces MaxRetries (Envoy's retry_budget:
	// "If this field is set, the retry budget will override any configured
	// retry circuit breaker").
	RetryBudget *RetryBudget
}

// RetryBudget is a Thresholds.retry_budget: the active retries may be at
// most Percent % of the active plus pending requests, and never less than
// MinConcurrency.
type RetryBudget struct {
	Percent        float64 // budget_percent, default 20
	MinConcurrency int64   // min_retry_concurrency, default 3
}

// Envoy's retry budget defaults.
const (
	DefaultBudgetPercent       = 20.0
	DefaultMinRetryConcurrency = 3
)

// Defaults returns Envoy's default thresholds.
func Defaults() Thresholds {
	return Thresholds{MaxConnections: DefaultMaxConnections, MaxPendingRequests: DefaultMaxPendingRequests,
		MaxRequests: DefaultMaxRequests, MaxRetries: DefaultMaxRetries}
}

// limit is one resource: a count and its maximum, with Envoy's
// circuit_breakers.<priority>.<x>_open gauge and remaining gauge.
type limit struct {
	max       int64
	n         atomic.Int64
	open      *stats.Gauge
	remaining *stats.Gauge
}

func (l *limit) tryAcquire() bool { return l.tryAcquireMax(l.max) }

// tryAcquireMax reserves one unit if fewer than max are reserved.
func (l *limit) tryAcquireMax(max int64) bool {
	for {
		n := l.n.Load()
		if n >= max {
			l.open.Set(1)
			return false
		}
		if l.n.CompareAndSwap(n, n+1) {
			if n+1 >= max {
				l.open.Set(1)
			}
			l.remaining.Set(max - n - 1)
			return true
		}
	}
}

func (l *limit) release() {
	n := l.n.Add(-1)
	if n < l.max {
		l.open.Set(0)
	}
	l.remaining.Set(l.max - n)
}

// Breakers are one cluster's circuit breakers (priority DEFAULT). The zero
// value is not usable; use New. Safe for concurrent use.
type Breakers struct {
	T   Thresholds
	cx  limit
	rq  limit
	pen limit
	rt  limit
}

// New returns breakers with thresholds t whose gauges live under scope
// (Envoy: cluster.<name>.circuit_breakers.default.*).
func New(t Thresholds, scope *stats.Scope) *Breakers {
	sc := scope.Scope("circuit_breakers.default")
	b := &Breakers{T: t}
	init := func(l *limit, max int64, open, rem string) {
		l.max = max
		l.open = sc.Gauge(open)
		l.remaining = sc.Gauge(rem)
		l.remaining.Set(max)
	}
	init(&b.cx, t.MaxConnections, "cx_open", "remaining_cx")
	init(&b.rq, t.MaxRequests, "rq_open", "remaining_rq")
	init(&b.pen, t.MaxPendingRequests, "rq_pending_open", "remaining_pending")
	init(&b.rt, t.MaxRetries, "rq_retry_open", "remaining_retries")
	return b
}

// TryConnection reserves a connection; false means the cluster is at
// max_connections.
func (b *Breakers) TryConnection() bool { return b.cx.tryAcquire() }

// ReleaseConnection returns a connection reserved by TryConnection.
func (b *Breakers) ReleaseConnection() { b.cx.release() }

// Connections returns the number of reserved connections.
func (b *Breakers) Connections() int64 { return b.cx.n.Load() }

// TryRequest reserves an active request; false means max_requests.
func (b *Breakers) TryRequest() bool { return b.rq.tryAcquire() }

// ReleaseRequest returns a request reserved by TryRequest.
func (b *Breakers) ReleaseRequest() { b.rq.release() }

// TryPending reserves a pending-request slot; false means
// max_pending_requests.
func (b *Breakers) TryPending() bool { return b.pen.tryAcquire() }

// ReleasePending returns a slot reserved by TryPending.
func (b *Breakers) ReleasePending() { b.pen.release() }

// TryRetry reserves an active retry; false means max_retries.
// With a retry budget the maximum is computed at each call from the
// active and pending requests (see retryLimit).
func (b *Breakers) TryRetry() bool {
	if b.T.RetryBudget == nil {
		return b.rt.tryAcquire()
	}
	return b.rt.tryAcquireMax(b.retryLimit())
}

// retryLimit is the budget's current limit on active retries:
// max(Percent % of (active + pending requests), MinConcurrency), as
// Envoy's RetryBudgetImpl computes it.
func (b *Breakers) retryLimit() int64 {
	rb := b.T.RetryBudget
	n := int64(rb.Percent / 100 * float64(b.rq.n.Load()+b.pen.n.Load()))
	return max(n, rb.MinConcurrency)
}

// ReleaseRetry returns a retry reserved by TryRetry.
func (b *Breakers) ReleaseRetry() { b.rt.release() }
