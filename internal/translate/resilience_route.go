package translate

import (
	"net/http"
	"strconv"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	commonfaultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/common/fault/v3"
	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	previoushostsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/retry/host/previous_hosts/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"
	networking "istio.io/api/networking/v1alpha3"
)

// The route-level resilience features of VirtualService http routes:
// retries, fault injection and mirroring, translated as Istio's
// pilot/pkg/networking/core/route (route.go, retry/retry.go).

// Envoy extension names of the route resilience features (Istio's
// pkg/wellknown and pilot/pkg/xds/filters).
const (
	faultFilterName   = "envoy.filters.http.fault"
	previousHostsName = "envoy.retry_host_predicates.previous_hosts"
)

// Istio's default retry policy (retry.DefaultPolicy; MeshConfig
// defaultHttpRetryPolicy unset): 2 retries on connection failures, refused
// streams, gRPC unavailable/cancelled and 503, each retry on another host
// if possible (previous_hosts, up to 5 host selections).
const (
	defaultRetryOn                = "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes"
	defaultNumRetries             = 2
	hostSelectionRetryMaxAttempts = 5
)

// Shared, never modified: packed once.
var (
	previousHostsAny = mustAny(&previoushostsv3.PreviousHostsPredicate{})
	faultFilterAny   = mustAny(&faultv3.HTTPFault{})
)

// faultFilter is the fault-injection HTTP filter with no fault of its own
// (Istio's xdsfilters.Fault): routes enable it through their
// typed_per_filter_config. Istio puts it into every outbound, gateway and
// proxyless client HCM, never into inbound ones.
func faultFilter() *hcmv3.HttpFilter {
	return &hcmv3.HttpFilter{
		Name:       faultFilterName,
		ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: faultFilterAny},
	}
}

// defaultRetryPolicy returns a new copy of Istio's default retry policy;
// consistentHash leaves out the previous_hosts predicate (with consistent
// hashing a retry must stay on the hashed host; Istio's
// DefaultConsistentHashPolicy).
func defaultRetryPolicy(consistentHash bool) *routev3.RetryPolicy {
	p := &routev3.RetryPolicy{
		RetryOn:                       defaultRetryOn,
		NumRetries:                    wrapperspb.UInt32(defaultNumRetries),
		RetriableStatusCodes:          []uint32{http.StatusServiceUnavailable},
		HostSelectionRetryMaxAttempts: hostSelectionRetryMaxAttempts,
	}
	if !consistentHash {
		p.RetryHostPredicate = previousHostsPredicate()
	}
	return p
}

// previousHostsPredicate is the retry host predicate that prefers hosts not
// tried yet.
func previousHostsPredicate() []*routev3.RetryPolicy_RetryHostPredicate {
	return []*routev3.RetryPolicy_RetryHostPredicate{{
		Name:       previousHostsName,
		ConfigType: &routev3.RetryPolicy_RetryHostPredicate_TypedConfig{TypedConfig: previousHostsAny},
	}}
}

// retryPolicy translates an http route's retries as Istio's
// retry.ConvertPolicy: nil retries gives the default policy; attempts 0
// (or less) gives no retry policy at all; otherwise the default policy
// with attempts → num_retries, retryOn (numeric parts → retriable status
// codes, "retriable-status-codes" added when needed), perTryTimeout,
// retryIgnorePreviousHosts (false drops previous_hosts),
// and backoff → base interval (retryRemoteLocalities: not yet, warned).
func retryPolicy(in *networking.HTTPRetry, consistentHash bool) *routev3.RetryPolicy {
	out := defaultRetryPolicy(consistentHash)
	if in == nil {
		return out
	}
	if in.Attempts <= 0 {
		return nil
	}
	out.NumRetries = wrapperspb.UInt32(uint32(in.Attempts))
	if in.RetryOn != "" {
		out.RetryOn, out.RetriableStatusCodes = parseRetryOn(in.RetryOn)
		if len(out.RetriableStatusCodes) > 0 && !strings.Contains(out.RetryOn, "retriable-status-codes") {
			if out.RetryOn != "" {
				out.RetryOn += ","
			}
			out.RetryOn += "retriable-status-codes"
		}
	}
	out.PerTryTimeout = in.PerTryTimeout
	if ip := in.RetryIgnorePreviousHosts; ip != nil {
		out.RetryHostPredicate = nil
		if ip.GetValue() {
			out.RetryHostPredicate = previousHostsPredicate()
		}
	}
	// retryRemoteLocalities (Istio's previous_priorities retry priority) is
	// not sent: weft-proxy has no retry priorities yet (a warning says so).
	if in.Backoff != nil {
		out.RetryBackOff = &routev3.RetryPolicy_RetryBackOff{BaseInterval: in.Backoff}
	}
	return out
}

// parseRetryOn splits an Istio retryOn list: parts that are HTTP status
// codes become retriable status codes, the others stay retry_on conditions
// (Istio's parseRetryOn; empty parts are dropped).
func parseRetryOn(s string) (string, []uint32) {
	var conds []string
	var codes []uint32
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		if n, err := strconv.Atoi(part); err == nil && http.StatusText(n) != "" {
			codes = append(codes, uint32(n))
			continue
		}
		conds = append(conds, part)
	}
	return strings.Join(conds, ","), codes
}

// percentFraction converts an Istio Percent (0..100, fractions allowed) to
// a FractionalPercent per million (Istio's
// translatePercentToFractionalPercent).
func percentFraction(p *networking.Percent) *typev3.FractionalPercent {
	return &typev3.FractionalPercent{
		Numerator:   uint32(p.GetValue() * 10000),
		Denominator: typev3.FractionalPercent_MILLION,
	}
}

// integerFraction converts an integer percentage to a FractionalPercent
// per hundred (Istio's translateIntegerToFractionalPercent).
func integerFraction(p int32) *typev3.FractionalPercent {
	return &typev3.FractionalPercent{Numerator: uint32(max(p, 0)), Denominator: typev3.FractionalPercent_HUNDRED}
}

// grpcCodes are the gRPC status code names, indexed by code.
var grpcCodes = []string{
	"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
	"ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
	"ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
	"UNAUTHENTICATED",
}

// grpcCode returns the code of a gRPC status name; validation rejects
// unknown names (UNKNOWN, 2, should one get here).
func grpcCode(name string) uint32 {
	for i, n := range grpcCodes {
		if n == name {
			return uint32(i)
		}
	}
	return 2
}

// translateFault translates fault injection as Istio's TranslateFault:
// a fixed delay and/or an abort (HTTP status or gRPC status), each with
// its percentage (per million; an unset percentage is the deprecated
// integer percent for delays and 0 % for aborts, so that Istio's "not
// specified: no request is affected" holds). nil when nothing remains
// (exponential delays and HTTP/2 errors are rejected by validation).
func translateFault(in *networking.HTTPFaultInjection) *faultv3.HTTPFault {
	if in == nil {
		return nil
	}
	out := &faultv3.HTTPFault{}
	if d := in.Delay; d != nil && d.GetFixedDelay() != nil {
		out.Delay = &commonfaultv3.FaultDelay{
			FaultDelaySecifier: &commonfaultv3.FaultDelay_FixedDelay{FixedDelay: d.GetFixedDelay()},
		}
		if d.Percentage != nil {
			out.Delay.Percentage = percentFraction(d.Percentage)
		} else {
			out.Delay.Percentage = integerFraction(d.Percent) //nolint:staticcheck // deprecated, honoured as Istio
		}
	}
	if a := in.Abort; a != nil {
		abort := &faultv3.FaultAbort{}
		if a.Percentage != nil {
			abort.Percentage = percentFraction(a.Percentage)
		}
		switch t := a.ErrorType.(type) {
		case *networking.HTTPFaultInjection_Abort_HttpStatus:
			abort.ErrorType = &faultv3.FaultAbort_HttpStatus{HttpStatus: uint32(t.HttpStatus)}
			out.Abort = abort
		case *networking.HTTPFaultInjection_Abort_GrpcStatus:
			abort.ErrorType = &faultv3.FaultAbort_GrpcStatus{GrpcStatus: grpcCode(t.GrpcStatus)}
			out.Abort = abort
		}
	}
	if out.Delay == nil && out.Abort == nil {
		return nil
	}
	return out
}

// faultPerFilterConfig returns the route's typed_per_filter_config for its
// fault, nil without one.
func faultPerFilterConfig(in *networking.HTTPFaultInjection) map[string]*anypb.Any {
	f := translateFault(in)
	if f == nil {
		return nil
	}
	return map[string]*anypb.Any{faultFilterName: mustAny(f)}
}

// mirrorFraction is the runtime fraction of a mirror: percentage (per
// million), else the deprecated integer percent (per hundred), else 100 %;
// nil for an explicit 0 (no mirroring). Istio's MirrorPercent.
func mirrorFraction(h *networking.HTTPRoute) *corev3.RuntimeFractionalPercent {
	switch {
	case h.MirrorPercentage != nil:
		if h.MirrorPercentage.GetValue() <= 0 {
			return nil
		}
		return &corev3.RuntimeFractionalPercent{DefaultValue: percentFraction(h.MirrorPercentage)}
	case h.MirrorPercent != nil: //nolint:staticcheck // deprecated, honoured as Istio
		if h.MirrorPercent.GetValue() == 0 { //nolint:staticcheck // deprecated
			return nil
		}
		return &corev3.RuntimeFractionalPercent{DefaultValue: integerFraction(int32(h.MirrorPercent.GetValue()))} //nolint:staticcheck,gosec // deprecated; validated ≤ 100
	}
	return &corev3.RuntimeFractionalPercent{DefaultValue: integerFraction(100)}
}

// policyFraction is mirrorFraction for one entry of mirrors (Istio's
// MirrorPercentByPolicy).
func policyFraction(m *networking.HTTPMirrorPolicy) *corev3.RuntimeFractionalPercent {
	if m.Percentage != nil {
		if m.Percentage.GetValue() <= 0 {
			return nil
		}
		return &corev3.RuntimeFractionalPercent{DefaultValue: percentFraction(m.Percentage)}
	}
	return &corev3.RuntimeFractionalPercent{DefaultValue: integerFraction(100)}
}

// mirrorPolicies translates mirror (with mirrorPercentage/mirrorPercent)
// and mirrors into request mirror policies: the mirror destination's
// cluster outbound|PORT|SUBSET|HOST (resolved like a route destination,
// in the VirtualService's namespace), its runtime fraction, and
// trace_sampled false, as Istio's TranslateRequestMirrorPolicy.
func (s *scope) mirrorPolicies(h *networking.HTTPRoute, ns string, port uint32) []*routev3.RouteAction_RequestMirrorPolicy {
	var out []*routev3.RouteAction_RequestMirrorPolicy
	add := func(d *networking.Destination, f *corev3.RuntimeFractionalPercent) {
		if d == nil || f == nil {
			return
		}
		cluster, _, _ := s.destination(d, ns, port)
		out = append(out, &routev3.RouteAction_RequestMirrorPolicy{
			Cluster:         cluster,
			RuntimeFraction: f,
			TraceSampled:    wrapperspb.Bool(false),
		})
	}
	if h.Mirror != nil {
		add(h.Mirror, mirrorFraction(h))
	}
	for _, m := range h.Mirrors {
		add(m.GetDestination(), policyFraction(m))
	}
	return out
}
