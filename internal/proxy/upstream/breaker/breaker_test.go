package breaker

import (
	"testing"

	"github.com/weftmesh/weft/internal/proxy/stats"
)

func TestMaxRetries(t *testing.T) {
	th := Defaults()
	th.MaxRetries = 2
	b := New(th, stats.NewStore().Root())
	if !b.TryRetry() || !b.TryRetry() || b.TryRetry() {
		t.Fatal("max_retries 2 must admit exactly two concurrent retries")
	}
	b.ReleaseRetry()
	if !b.TryRetry() {
		t.Error("a released retry slot must be reusable")
	}
}

// TestRetryBudget checks Envoy's budget: at most budget_percent of the
// active plus pending requests, never below min_retry_concurrency; it
// replaces max_retries.
func TestRetryBudget(t *testing.T) {
	th := Defaults()
	th.MaxRetries = 0
	th.RetryBudget = &RetryBudget{Percent: 50, MinConcurrency: 1}
	b := New(th, stats.NewStore().Root())
	if !b.TryRetry() || b.TryRetry() {
		t.Fatal("with no active request the budget is min_retry_concurrency (1)")
	}
	b.ReleaseRetry()
	for i := 0; i < 4; i++ {
		b.TryRequest()
	}
	b.TryPending()
	b.TryPending()
	// 50 % of (4 active + 2 pending) = 3 concurrent retries.
	for i := 0; i < 3; i++ {
		if !b.TryRetry() {
			t.Fatalf("retry %d refused, want 3 admitted", i+1)
		}
	}
	if b.TryRetry() {
		t.Error("a fourth concurrent retry was admitted, want the budget of 3")
	}
}
