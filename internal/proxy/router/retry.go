package router

import (
	"strings"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	previoushostsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/retry/host/previous_hosts/v3"

	"github.com/weftmesh/weft/internal/proxy/headers"
)

// RetryOn is a set of retry conditions: Envoy's RetryPolicy::RETRY_ON_*
// bits, named as in x-envoy-retry-on and x-envoy-retry-grpc-on.
type RetryOn uint32

// Retry conditions (router filter docs, "x-envoy-retry-on" and
// "x-envoy-retry-grpc-on").
const (
	// Retry5xx retries any 5xx response and any reset, connect failure or
	// per-try timeout.
	Retry5xx RetryOn = 1 << iota
	// RetryGatewayError retries 502, 503 and 504 responses and, like 5xx,
	// resets, connect failures and per-try timeouts.
	RetryGatewayError
	// RetryReset retries when the upstream did not answer (reset,
	// disconnect, per-try timeout).
	RetryReset
	// RetryResetBeforeRequest retries a reset only before the request
	// headers went upstream.
	RetryResetBeforeRequest
	// RetryConnectFailure retries a failed connect (or connect timeout).
	RetryConnectFailure
	// RetryRetriable4xx retries 409.
	RetryRetriable4xx
	// RetryRefusedStream retries an HTTP/2 REFUSED_STREAM reset.
	RetryRefusedStream
	// RetryRetriableStatusCodes retries the policy's retriable_status_codes
	// and those of x-envoy-retriable-status-codes.
	RetryRetriableStatusCodes
	// RetryRetriableHeaders retries responses matching retriable_headers.
	RetryRetriableHeaders
	// RetryEnvoyRateLimited retries responses carrying x-envoy-ratelimited.
	RetryEnvoyRateLimited
	// gRPC conditions: the grpc-status of a headers-only (trailers-only)
	// response.
	RetryGrpcCancelled
	RetryGrpcDeadlineExceeded
	RetryGrpcInternal
	RetryGrpcResourceExhausted
	RetryGrpcUnavailable
)

// RetryGrpcAny is every gRPC condition.
const RetryGrpcAny = RetryGrpcCancelled | RetryGrpcDeadlineExceeded | RetryGrpcInternal |
	RetryGrpcResourceExhausted | RetryGrpcUnavailable

var httpRetryOn = map[string]RetryOn{
	"5xx":                    Retry5xx,
	"gateway-error":          RetryGatewayError,
	"reset":                  RetryReset,
	"reset-before-request":   RetryResetBeforeRequest,
	"connect-failure":        RetryConnectFailure,
	"retriable-4xx":          RetryRetriable4xx,
	"refused-stream":         RetryRefusedStream,
	"retriable-status-codes": RetryRetriableStatusCodes,
	"retriable-headers":      RetryRetriableHeaders,
	"envoy-ratelimited":      RetryEnvoyRateLimited,
}

var grpcRetryOn = map[string]RetryOn{
	"cancelled":          RetryGrpcCancelled,
	"deadline-exceeded":  RetryGrpcDeadlineExceeded,
	"internal":           RetryGrpcInternal,
	"resource-exhausted": RetryGrpcResourceExhausted,
	"unavailable":        RetryGrpcUnavailable,
}

// ParseRetryOn parses an x-envoy-retry-on value (comma-separated HTTP
// conditions). Unknown tokens are ignored, as Envoy ignores them in the
// header. It does not allocate.
func ParseRetryOn(v []byte) RetryOn { return parseTokens(v, httpRetryOn) }

// ParseRetryGrpcOn parses an x-envoy-retry-grpc-on value (comma-separated
// gRPC conditions), ignoring unknown tokens.
func ParseRetryGrpcOn(v []byte) RetryOn { return parseTokens(v, grpcRetryOn) }

func parseTokens(v []byte, names map[string]RetryOn) RetryOn {
	var on RetryOn
	for len(v) > 0 {
		var tok []byte
		if i := indexByte(v, ','); i >= 0 {
			tok, v = v[:i], v[i+1:]
		} else {
			tok, v = v, nil
		}
		on |= names[string(headers.TrimOWS(tok))] // no allocation: map lookup by string(bytes)
	}
	return on
}

func indexByte(b []byte, c byte) int {
	for i := range b {
		if b[i] == c {
			return i
		}
	}
	return -1
}

// GRPCRetriable reports whether grpc-status code is one of the gRPC
// conditions in on (1 CANCELLED, 4 DEADLINE_EXCEEDED, 8 RESOURCE_EXHAUSTED,
// 13 INTERNAL, 14 UNAVAILABLE).
func (on RetryOn) GRPCRetriable(code int) bool {
	switch code {
	case 1:
		return on&RetryGrpcCancelled != 0
	case 4:
		return on&RetryGrpcDeadlineExceeded != 0
	case 8:
		return on&RetryGrpcResourceExhausted != 0
	case 13:
		return on&RetryGrpcInternal != 0
	case 14:
		return on&RetryGrpcUnavailable != 0
	}
	return false
}

// Envoy's defaults (RetryPolicy proto and RetryStateImpl).
const (
	// DefaultNumRetries is num_retries when it is not set.
	DefaultNumRetries = 1
	// DefaultRetryBaseInterval is retry_back_off.base_interval when not set.
	DefaultRetryBaseInterval = 25 * time.Millisecond
)

// RetryPolicy is a compiled route or virtual host retry_policy. It is
// immutable and safe for concurrent use.
type RetryPolicy struct {
	// On is the set of conditions of retry_on.
	On RetryOn
	// NumRetries is the number of retries (not counting the first try).
	NumRetries uint32
	// PerTryTimeout bounds each try until its response starts (0: none).
	PerTryTimeout time.Duration
	// PerTryIdleTimeout bounds each try's silence (0: none).
	PerTryIdleTimeout time.Duration
	// RetriableStatusCodes are the codes of retriable-status-codes.
	RetriableStatusCodes []uint32
	// PreviousHosts is set when retry_host_predicate has
	// envoy.retry_host_predicates.previous_hosts: a retry avoids the hosts
	// already tried.
	PreviousHosts bool
	// HostSelectionMaxAttempts is host_selection_retry_max_attempts: how
	// many extra picks a retry may make to find a host the predicate
	// accepts (Envoy's load balancer picks at most this + 1 times, then
	// uses the last pick).
	HostSelectionMaxAttempts int64
	// BaseInterval and MaxInterval are retry_back_off (defaults 25 ms and
	// 10 × BaseInterval).
	BaseInterval time.Duration
	MaxInterval  time.Duration

	retriableHeaders []headerMatcher
	table            *Table // pooled buffers for joining repeated headers
}

// RetriableHeaders reports whether a response header block matches one of
// retriable_headers (matched as request header matchers are: repeated
// values joined with ",").
func (p *RetryPolicy) RetriableHeaders(resp *headers.Map) bool {
	if len(p.retriableHeaders) == 0 {
		return false
	}
	req := headers.Request{Map: *resp}
	for i := range p.retriableHeaders {
		if p.retriableHeaders[i].matches(&req, p.table) {
			return true
		}
	}
	return false
}

// HasRetriableHeaders reports whether the policy has retriable_headers.
func (p *RetryPolicy) HasRetriableHeaders() bool { return len(p.retriableHeaders) > 0 }

// defaultRetryPolicy is what a request gets when only its x-envoy-retry-on
// or x-envoy-retry-grpc-on header asks for retries (Envoy's empty
// RetryPolicyImpl: one retry, default back-off).
var defaultRetryPolicy = RetryPolicy{
	NumRetries:   DefaultNumRetries,
	BaseInterval: DefaultRetryBaseInterval,
	MaxInterval:  10 * DefaultRetryBaseInterval,
}

// DefaultRetryPolicy returns the policy of a route without retry_policy,
// used when the request's x-envoy-retry-on or x-envoy-retry-grpc-on asks
// for retries. It must not be modified.
func DefaultRetryPolicy() *RetryPolicy { return &defaultRetryPolicy }

const previousHostsName = "envoy.retry_host_predicates.previous_hosts"

func compileRetryPolicy(rp *routev3.RetryPolicy, t *Table, path string) (*RetryPolicy, error) {
	if rp == nil {
		return nil, nil
	}
	if err := checkFields(rp, path, "retry_on", "num_retries", "per_try_timeout", "per_try_idle_timeout",
		"retry_host_predicate", "host_selection_retry_max_attempts", "retriable_status_codes",
		"retry_back_off", "retriable_headers"); err != nil {
		return nil, err
	}
	p := &RetryPolicy{NumRetries: DefaultNumRetries, HostSelectionMaxAttempts: rp.GetHostSelectionRetryMaxAttempts(), table: t}
	var err error
	if p.On, err = compileRetryOn(rp.GetRetryOn(), field(path, "retry_on")); err != nil {
		return nil, err
	}
	if n := rp.GetNumRetries(); n != nil {
		p.NumRetries = n.GetValue()
	}
	if d := rp.GetPerTryTimeout(); d != nil {
		if p.PerTryTimeout, err = duration(d, field(path, "per_try_timeout")); err != nil {
			return nil, err
		}
	}
	if d := rp.GetPerTryIdleTimeout(); d != nil {
		if p.PerTryIdleTimeout, err = duration(d, field(path, "per_try_idle_timeout")); err != nil {
			return nil, err
		}
	}
	if p.HostSelectionMaxAttempts < 0 {
		return nil, errAt(field(path, "host_selection_retry_max_attempts"), "must not be negative")
	}
	for i, c := range rp.GetRetriableStatusCodes() {
		if c < 100 || c > 599 {
			return nil, errAt(index(field(path, "retriable_status_codes"), i), "status code must be in [100, 599], got %d", c)
		}
	}
	p.RetriableStatusCodes = append([]uint32(nil), rp.GetRetriableStatusCodes()...)
	for i, hm := range rp.GetRetriableHeaders() {
		m, err := compileHeaderMatcher(hm, index(field(path, "retriable_headers"), i))
		if err != nil {
			return nil, err
		}
		p.retriableHeaders = append(p.retriableHeaders, m)
	}
	if err := compileHostPredicates(p, rp.GetRetryHostPredicate(), field(path, "retry_host_predicate")); err != nil {
		return nil, err
	}
	return p, compileBackOff(p, rp.GetRetryBackOff(), field(path, "retry_back_off"))
}

// compileRetryOn parses the configured retry_on: HTTP and gRPC conditions
// in one list (Envoy parses the field with both parsers). Unlike the
// header, an unknown condition is a configuration error.
func compileRetryOn(s, path string) (RetryOn, error) {
	var on RetryOn
	for _, tok := range strings.Split(s, ",") {
		tok = strings.TrimSpace(tok)
		if tok == "" {
			continue
		}
		bit, ok := httpRetryOn[tok]
		if !ok {
			bit, ok = grpcRetryOn[tok]
		}
		if !ok {
			return 0, errAt(path, "unknown retry condition %q (supported: 5xx, gateway-error, reset, reset-before-request, "+
				"connect-failure, retriable-4xx, refused-stream, retriable-status-codes, retriable-headers, envoy-ratelimited, "+
				"cancelled, deadline-exceeded, internal, resource-exhausted, unavailable)", tok)
		}
		on |= bit
	}
	return on, nil
}

func compileHostPredicates(p *RetryPolicy, preds []*routev3.RetryPolicy_RetryHostPredicate, path string) error {
	for i, hp := range preds {
		pp := index(path, i)
		if err := checkFields(hp, pp, "name", "typed_config"); err != nil {
			return err
		}
		tc := hp.GetTypedConfig()
		if tc == nil && hp.GetName() == previousHostsName {
			p.PreviousHosts = true
			continue
		}
		var ph previoushostsv3.PreviousHostsPredicate
		if tc == nil || tc.UnmarshalTo(&ph) != nil {
			return errAt(pp, "unsupported retry host predicate %q: only %s (envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate) is supported",
				hp.GetName(), previousHostsName)
		}
		p.PreviousHosts = true
	}
	return nil
}

func compileBackOff(p *RetryPolicy, bo *routev3.RetryPolicy_RetryBackOff, path string) error {
	p.BaseInterval = DefaultRetryBaseInterval
	if err := checkFields(bo, path, "base_interval", "max_interval"); err != nil {
		return err
	}
	var err error
	if d := bo.GetBaseInterval(); d != nil {
		if p.BaseInterval, err = duration(d, field(path, "base_interval")); err != nil {
			return err
		}
		if p.BaseInterval < time.Millisecond {
			return errAt(field(path, "base_interval"), "must be at least 1ms, got %v", p.BaseInterval)
		}
	}
	p.MaxInterval = 10 * p.BaseInterval
	if d := bo.GetMaxInterval(); d != nil {
		if p.MaxInterval, err = duration(d, field(path, "max_interval")); err != nil {
			return err
		}
		if p.MaxInterval < p.BaseInterval {
			return errAt(field(path, "max_interval"), "must be at least base_interval (%v), got %v", p.BaseInterval, p.MaxInterval)
		}
	}
	return nil
}
