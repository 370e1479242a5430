package routerfilter

import (
	"errors"

	h2codec "github.com/weftmesh/weft/internal/proxy/codec/http2"
	"github.com/weftmesh/weft/internal/proxy/httpfilter"
	"github.com/weftmesh/weft/internal/proxy/streaminfo"
	"github.com/weftmesh/weft/internal/proxy/upstream/pool"
)

// failureOf classifies a try's failure before its response started, for
// the retry decision, and counts a per-try timeout
// (upstream_rq_per_try_timeout, upstream_rq_per_try_idle_timeout).
func (rq *request) failureOf(err error) failure {
	var se *h2codec.StreamError
	switch {
	case isTimeout(err):
		return rq.timeoutFailure()
	case errors.As(err, &se) && se.Remote && se.Code == h2codec.ErrCodeRefusedStream:
		return failRefused
	}
	return failReset
}

// timeoutFailure classifies a timeout: a per-try timeout may be retried,
// the route timeout and the stream idle timeout end the request.
func (rq *request) timeoutFailure() failure {
	switch rq.timeoutKind() {
	case toPerTry:
		rq.cluster.Stats.Retry.PerTryTimeout.Inc()
		return failPerTry
	case toPerTryIdle:
		rq.cluster.Stats.Retry.PerTryIdleTimeout.Inc()
		return failPerTry
	}
	return failFinal
}

// poolFailure classifies a failure to get a connection: overflow is never
// retried (Envoy's Overflow reset reason); a timeout is the try's or the
// route's; a failed connect, or one that timed out before the try's
// deadline, is a connect failure.
func (rq *request) poolFailure(err error, tryTimedOut bool) failure {
	var ce *pool.ConnectError
	switch {
	case errors.Is(err, pool.ErrOverflow):
		return failOverflow
	case errors.Is(err, pool.ErrTimeout), errors.As(err, &ce) && isTimeout(ce.Err) && tryTimedOut:
		return rq.timeoutFailure()
	case errors.As(err, &ce):
		return failConnect
	}
	return failReset
}

// sendPerTryTimeout answers a request whose last try ran out of its
// per-try timeout: 504 UT "upstream request timeout", counted as Envoy's
// onPerTryTimeoutCommon does (the host's rq_timeout and upstream_rq_504,
// not the cluster's upstream_rq_timeout, which is the route timeout's).
func (rq *request) sendPerTryTimeout() {
	rq.host.Stats.RqTimeout.Inc()
	rq.chargeAbort(504)
	httpfilter.SendLocalReply(rq.s, 504, httpfilter.BodyUpstreamTimeout, streaminfo.UpstreamRequestTimeout, "upstream_per_try_timeout")
}
