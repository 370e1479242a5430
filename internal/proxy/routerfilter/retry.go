package routerfilter

import (
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/weftmesh/weft/internal/proxy/headers"
	"github.com/weftmesh/weft/internal/proxy/router"
	"github.com/weftmesh/weft/internal/proxy/streaminfo"
	"github.com/weftmesh/weft/internal/proxy/upstream"
	"github.com/weftmesh/weft/internal/proxy/upstream/lb"
)

// Retries, following Envoy's router (router filter docs "x-envoy-retry-on",
// the RetryPolicy proto and the "Retry semantics" architecture overview;
// decisions as RetryStateImpl makes them):
//
//   - A request gets a retry state when its route (or virtual host) has a
//     retry_policy, or when one of the x-envoy-retry-on,
//     x-envoy-retry-grpc-on or x-envoy-upstream-rq-per-try-timeout-ms
//     headers is present. The connection manager strips these headers from
//     requests that are not internal (hcm.cleanInternalHeaders), so only
//     trusted callers can ask for retries; the router removes them before
//     the request goes upstream. Requests without a retry state take the
//     common path, which costs one scan of the header names.
//   - The headers add conditions to the route's retry_on;
//     x-envoy-max-retries replaces num_retries when conditions are set;
//     x-envoy-retriable-status-codes adds codes;
//     x-envoy-upstream-rq-per-try-timeout-ms replaces per_try_timeout.
//   - A try is retried only before anything of its response went
//     downstream: the decision is taken on the response head, before it is
//     written, or on a failure before the response started. A retried
//     response's body is discarded (its connection is closed).
//   - Each retry takes a slot of the cluster's max_retries circuit breaker
//     (or its retry_budget) from the decision until the next decision or
//     the end of the request; no slot means no retry
//     (upstream_rq_retry_overflow, flag UO) and the last answer goes
//     downstream. No retry left is upstream_rq_retry_limit_exceeded and
//     flag URX, together with the final failure's own flag.
//   - Between tries the router waits Envoy's fully jittered exponential
//     back-off: a random duration in [0, interval), interval starting at
//     base_interval and doubling up to max_interval. The route timeout
//     bounds all tries and the waits.
//   - The request body is buffered for replay, up to the route's
//     per_request_buffer_limit_bytes or the listener's
//     per_connection_buffer_limit_bytes (1 MiB by default), when its whole
//     length is known (content-length, or an HTTP/2 body already complete).
//     A body that cannot be buffered is counted in retry_or_shadow_abandoned,
//     and its request is then retried only for failures before any of the
//     body was read (connect failures).

// Request headers of the retry protocol.
const (
	hdrRetryOn         = "x-envoy-retry-on"
	hdrRetryGrpcOn     = "x-envoy-retry-grpc-on"
	hdrMaxRetries      = "x-envoy-max-retries"
	hdrRetriableCodes  = "x-envoy-retriable-status-codes"
	hdrPerTryTimeoutMs = "x-envoy-upstream-rq-per-try-timeout-ms"
	hdrAttemptCount    = "x-envoy-attempt-count"
	hdrEnvoyOverloaded = "x-envoy-overloaded"
	hdrEnvoyRateLimit  = "x-envoy-ratelimited"
	envoyPrefix        = "x-envoy-"
)

// maxHeaderCodes bounds the codes read from x-envoy-retriable-status-codes.
const maxHeaderCodes = 8

// retryState is a request's retry bookkeeping. It lives inside the pooled
// request; rq.retry points at it only when the request may be retried.
type retryState struct {
	policy     *router.RetryPolicy
	on         router.RetryOn
	remaining  uint32
	perTry     time.Duration
	perTryIdle time.Duration
	codes      [maxHeaderCodes]uint16 // from x-envoy-retriable-status-codes
	nCodes     int

	attempts int  // tries started
	retried  bool // a retry was sent
	holding  bool // a max_retries / retry budget slot is held
	interval time.Duration
	tried    []*upstream.Host // previous_hosts

	// pending is set by a failure path that decided to retry instead of
	// answering; forward then starts the next try.
	pending bool
}

func (rs *retryState) reset() {
	clear(rs.tried)
	*rs = retryState{tried: rs.tried[:0]}
}

// retryHeaders reports whether the request carries any of the retry
// protocol headers (one scan of the header names).
func retryHeaders(req *headers.Request) bool {
	for i := range req.Fields {
		n := req.Fields[i].Name
		if len(n) > len(envoyPrefix) && string(n[:len(envoyPrefix)]) == envoyPrefix {
			switch string(n) {
			case hdrRetryOn, hdrRetryGrpcOn, hdrMaxRetries, hdrRetriableCodes, hdrPerTryTimeoutMs:
				return true
			}
		}
	}
	return false
}

// setupRetry builds the retry state of the request, or leaves rq.retry nil
// when it cannot be retried.
func (rq *request) setupRetry() {
	req := &rq.s.Req
	p := rq.route.RetryPolicy()
	hasHeaders := retryHeaders(req)
	if p == nil && !hasHeaders {
		return
	}
	rs := &rq.rs
	if p == nil {
		p = router.DefaultRetryPolicy()
	}
	rs.policy, rs.on, rs.remaining = p, p.On, p.NumRetries
	rs.perTry, rs.perTryIdle, rs.interval = p.PerTryTimeout, p.PerTryIdleTimeout, p.BaseInterval
	if hasHeaders {
		rs.applyHeaders(req)
	}
	if rs.on == 0 && rs.perTry == 0 && rs.perTryIdle == 0 {
		return
	}
	rq.retry = rs
}

// applyHeaders merges the request's retry headers into the state and
// removes them, as Envoy's router does.
func (rs *retryState) applyHeaders(req *headers.Request) {
	if v, ok := req.Lookup(hdrRetryOn); ok {
		rs.on |= router.ParseRetryOn(v)
	}
	if v, ok := req.Lookup(hdrRetryGrpcOn); ok {
		rs.on |= router.ParseRetryGrpcOn(v)
	}
	if v, ok := req.Lookup(hdrMaxRetries); ok && rs.on != 0 {
		if n, err := strconv.ParseUint(string(v), 10, 32); err == nil {
			rs.remaining = uint32(n)
		}
	}
	if v, ok := req.Lookup(hdrRetriableCodes); ok {
		rs.parseCodes(v)
	}
	if v, ok := req.Lookup(hdrPerTryTimeoutMs); ok {
		if n, err := strconv.ParseUint(string(v), 10, 32); err == nil {
			rs.perTry = time.Duration(n) * time.Millisecond
		}
	}
	for _, h := range [...]string{hdrRetryOn, hdrRetryGrpcOn, hdrMaxRetries, hdrRetriableCodes, hdrPerTryTimeoutMs} {
		req.Del(h)
	}
}

func (rs *retryState) parseCodes(v []byte) {
	for len(v) > 0 && rs.nCodes < maxHeaderCodes {
		var tok []byte
		tok, v = headers.NextToken(v)
		if n, err := strconv.Atoi(string(headers.TrimOWS(tok))); err == nil && n >= 100 && n <= 599 {
			rs.codes[rs.nCodes] = uint16(n)
			rs.nCodes++
		}
	}
}

// retriableCode reports a code of retriable_status_codes or of the
// x-envoy-retriable-status-codes header.
func (rs *retryState) retriableCode(code int) bool {
	for _, c := range rs.policy.RetriableStatusCodes {
		if int(c) == code {
			return true
		}
	}
	for _, c := range rs.codes[:rs.nCodes] {
		if int(c) == code {
			return true
		}
	}
	return false
}

// wouldRetryResponse is Envoy's wouldRetryFromHeaders: a response from an
// overloaded Envoy is never retried; a rate-limited one only with
// envoy-ratelimited; then 5xx, gateway-error, retriable-4xx (409),
// retriable-status-codes, retriable-headers and the gRPC conditions on the
// grpc-status of the response head.
func (rs *retryState) wouldRetryResponse(resp *headers.Response) bool {
	on, code := rs.on, resp.Status
	if resp.Has(hdrEnvoyOverloaded) {
		return false
	}
	if resp.Has(hdrEnvoyRateLimit) {
		return on&router.RetryEnvoyRateLimited != 0
	}
	switch {
	case on&router.Retry5xx != 0 && code >= 500 && code <= 599,
		on&router.RetryGatewayError != 0 && code >= 502 && code <= 504,
		on&router.RetryRetriable4xx != 0 && code == 409,
		on&router.RetryRetriableStatusCodes != 0 && rs.retriableCode(code),
		on&router.RetryRetriableHeaders != 0 && rs.policy.RetriableHeaders(&resp.Map):
		return true
	}
	if on&router.RetryGrpcAny != 0 {
		if v := resp.Get(headers.GRPCStatus); v != nil {
			if n, err := strconv.Atoi(string(v)); err == nil {
				return on.GRPCRetriable(n)
			}
		}
	}
	return false
}

// failure classifies a try that ended without a response, as Envoy's
// stream reset reasons do for retry decisions.
type failure uint8

const (
	failOverflow     failure = iota + 1 // circuit breaker: never retried
	failConnect                         // connect failure or connect timeout
	failReset                           // reset or disconnect, malformed response
	failRefused                         // HTTP/2 REFUSED_STREAM
	failPerTry                          // per_try_timeout or per_try_idle_timeout
	failFinal                           // route timeout, stream idle: never retried
	failNotRetriable                    // the downstream's own failure
)

// wouldRetryFailure is Envoy's wouldRetryFromReset (a per-try timeout is a
// local reset). started reports whether the request head was written.
func (rs *retryState) wouldRetryFailure(f failure, started bool) bool {
	on := rs.on
	switch f {
	case failOverflow, failFinal, failNotRetriable:
		return false
	case failConnect:
		if on&router.RetryConnectFailure != 0 {
			return true
		}
	}
	switch {
	case on&(router.Retry5xx|router.RetryGatewayError|router.RetryReset) != 0:
		return true
	case on&router.RetryResetBeforeRequest != 0 && !started:
		return true
	case on&router.RetryRefusedStream != 0 && f == failRefused:
		return true
	}
	return false
}

// retryStatus is the outcome of a retry decision.
type retryStatus uint8

const (
	retryNo retryStatus = iota
	retryYes
	retryLimitExceeded
	retryOverflow
)

// decide is Envoy's RetryStateImpl::shouldRetry: it releases the slot of
// the previous retry, counts a success when a retried request ends well,
// and takes a slot for a new retry.
func (rs *retryState) decide(would bool, cl *upstream.Cluster) retryStatus {
	st := &cl.Stats.Retry
	if rs.retried && !would {
		st.Success.Inc()
	}
	rs.release(cl)
	if !would {
		return retryNo
	}
	if rs.remaining == 0 {
		st.LimitExceeded.Inc()
		return retryLimitExceeded
	}
	rs.remaining--
	if !cl.Breakers.TryRetry() {
		st.Overflow.Inc()
		return retryOverflow
	}
	rs.holding = true
	rs.retried = true
	st.Retry.Inc()
	st.BackoffExponential.Inc()
	return retryYes
}

// release returns the retry slot, if one is held.
func (rs *retryState) release(cl *upstream.Cluster) {
	if rs.holding {
		cl.Breakers.ReleaseRetry()
		rs.holding = false
	}
}

// nextBackoff returns the wait before the next retry and advances the
// interval: Envoy's JitteredExponentialBackOffStrategy, random % interval
// (capped by max), the interval doubling until it reaches max.
func (rs *retryState) nextBackoff(random uint64) time.Duration {
	d, next := jitteredBackoff(random, rs.interval, rs.policy.MaxInterval)
	rs.interval = next
	return d
}

// jitteredBackoff is one step of the fully jittered exponential back-off:
// a duration in [0, interval) (whole milliseconds, as Envoy) and the next
// interval.
func jitteredBackoff(random uint64, interval, maxInterval time.Duration) (d, next time.Duration) {
	ms := uint64(interval / time.Millisecond)
	if ms == 0 {
		ms = 1
	}
	d = min(time.Duration(random%ms)*time.Millisecond, maxInterval)
	next = maxInterval
	if interval < maxInterval/2 {
		next = interval * 2
	}
	return d, next
}

// mayRetry reports whether a try may be replayed: the body is buffered,
// there is none, or none of it has been read yet.
func (rq *request) mayRetry() bool {
	return rq.replay != nil || rq.s.ContentLength == 0 || !rq.bodyStarted
}

// retryResponse decides on a response head before it goes downstream. It
// returns true when the try must be retried (the caller discards the
// response); the response is then counted by recordUpstream.
func (rq *request) retryResponse() bool {
	rs := rq.retry
	if rs == nil {
		return false
	}
	would := rq.mayRetry() && rs.wouldRetryResponse(&rq.s.Resp)
	switch rs.decide(would, rq.cluster) {
	case retryYes:
		rq.recordUpstream(rq.s.Resp.Status)
		rs.pending = true
		return true
	case retryLimitExceeded:
		rq.s.Info.SetFlag(streaminfo.UpstreamRetryLimitExceeded)
	case retryOverflow:
		rq.s.Info.SetFlag(streaminfo.UpstreamOverflow)
	}
	return false
}

// retryFailure decides on a try that failed before its response started.
// It returns true when the try will be retried: the caller must then not
// answer. Otherwise the caller answers as without retries.
func (rq *request) retryFailure(f failure, started bool) bool {
	rq.recordFailure(f)
	rs := rq.retry
	if rs == nil {
		return false
	}
	would := rq.mayRetry() && rs.wouldRetryFailure(f, started)
	switch rs.decide(would, rq.cluster) {
	case retryYes:
		rs.pending = true
		return true
	case retryLimitExceeded:
		rq.s.Info.SetFlag(streaminfo.UpstreamRetryLimitExceeded)
	case retryOverflow:
		rq.s.Info.SetFlag(streaminfo.UpstreamOverflow)
	}
	return false
}

// waitBackoff waits before the next try. It returns false when the request
// ended meanwhile: the route timeout passed (answered 504 UT, as Envoy's
// global timer fires during the back-off) or the downstream went away.
func (rq *request) waitBackoff() bool {
	d := rq.retry.nextBackoff(rand.Uint64())
	timedOut := false
	if !rq.deadline.IsZero() {
		if left := time.Until(rq.deadline); left <= d {
			d, timedOut = max(left, 0), true
		}
	}
	t := time.NewTimer(d)
	defer t.Stop()
	var done <-chan struct{}
	if rq.s.Ctx != nil {
		done = rq.s.Ctx.Done()
	}
	select {
	case <-t.C:
	case <-done:
		rq.s.Info.SetFlag(streaminfo.DownstreamConnectionTermination)
		return false
	}
	if timedOut {
		rq.sendTimeout()
		return false
	}
	return true
}

// chooseHost picks the try's host; with previous_hosts a retry picks again
// (at most host_selection_retry_max_attempts more times) while the pick is
// a host already tried, then keeps the last pick (Envoy's load balancer
// with a retry host predicate).
func (rq *request) chooseHost(ctx *lb.Context) *upstream.Host {
	h := rq.cluster.Choose(ctx)
	rs := rq.retry
	if rs == nil || !rs.policy.PreviousHosts {
		return h
	}
	for i := int64(0); i < rs.policy.HostSelectionMaxAttempts && h != nil && rs.triedHost(h); i++ {
		h = rq.cluster.Choose(ctx)
	}
	if h != nil {
		rs.tried = append(rs.tried, h)
	}
	return h
}

func (rs *retryState) triedHost(h *upstream.Host) bool {
	for _, t := range rs.tried {
		if t == h {
			return true
		}
	}
	return false
}

// setAttemptDeadline starts a try's deadline: the route deadline, or the
// per-try timeout from now when it comes first (Envoy ignores a per-try
// timeout not shorter than the route timeout).
func (rq *request) setAttemptDeadline() {
	rq.tryDeadline = rq.deadline
	rq.perTryIdle = 0
	rs := rq.retry
	if rs == nil {
		return
	}
	rq.perTryIdle = rs.perTryIdle
	if rs.perTry > 0 {
		d := time.Now().Add(rs.perTry)
		if rq.deadline.IsZero() || d.Before(rq.deadline) {
			rq.tryDeadline = d
		}
	}
}

// responseStarted ends the per-try timeout once a response is accepted:
// from then on only the route timeout (and the idle timeouts) apply, as
// Envoy ignores a per-try timeout after the response started downstream.
func (rq *request) responseStarted() {
	rq.tryDeadline = rq.deadline
}

// setAttemptHeaders records the try's number and writes
// x-envoy-attempt-count when the virtual host asks for it
// (include_request_attempt_count; include_attempt_count_in_response puts it
// on the response, see finishResponseHeaders).
func (rq *request) setAttemptHeaders(attempt int) {
	rq.attemptN = attempt
	if !rq.route.VirtualHost().IncludeRequestAttemptCount() {
		return
	}
	var num [20]byte
	rq.s.Req.SetBytes(hdrAttemptCount, strconv.AppendInt(num[:0], int64(attempt), 10))
}
