package upstream

import (
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"

	"github.com/weftmesh/weft/internal/proxy/upstream/breaker"
)

// retryBudget converts a Thresholds.retry_budget (nil when not set) with
// Envoy's defaults: budget_percent 20 %, min_retry_concurrency 3.
func retryBudget(rb *clusterv3.CircuitBreakers_Thresholds_RetryBudget) *breaker.RetryBudget {
	if rb == nil {
		return nil
	}
	b := &breaker.RetryBudget{Percent: breaker.DefaultBudgetPercent, MinConcurrency: breaker.DefaultMinRetryConcurrency}
	if p := rb.GetBudgetPercent(); p != nil {
		b.Percent = p.GetValue()
	}
	if m := rb.GetMinRetryConcurrency(); m != nil {
		b.MinConcurrency = int64(m.GetValue())
	}
	return b
}
