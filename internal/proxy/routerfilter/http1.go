package routerfilter

import (
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/weftmesh/weft/internal/proxy/codec/http1"
	"github.com/weftmesh/weft/internal/proxy/headers"
	"github.com/weftmesh/weft/internal/proxy/httpfilter"
	"github.com/weftmesh/weft/internal/proxy/relay"
	"github.com/weftmesh/weft/internal/proxy/streaminfo"
	"github.com/weftmesh/weft/internal/proxy/upstream"
	"github.com/weftmesh/weft/internal/proxy/upstream/pool"
)

// inlineBodyLimit is the largest request body written before the response
// is read, on the stream's goroutine. Larger or chunked bodies are streamed
// by a second goroutine while the response is read, so an upstream that
// answers early is seen at once.
const inlineBodyLimit = 64 << 10

// continuer is implemented by HTTP/1 request bodies that owe the client a
// "100 Continue".
type continuer interface{ Continue() error }

// forwardHTTP1 forwards the stream over an HTTP/1.1 connection.
func (rq *request) forwardHTTP1() {
	framing := rq.requestFraming()
	for attempt := 0; ; attempt++ {
		c, err := rq.host.H1().Acquire(rq.tryDeadline)
		if err != nil {
			rq.poolError(err)
			return
		}
		c.NetConn().SetDeadline(rq.tryDeadline)
		rq.s.Info.UpstreamPeerPrincipal, rq.s.Info.UpstreamLocalPrincipal = c.Identity.Peer, c.Identity.Local
		if a, ok := c.NetConn().LocalAddr().(*net.TCPAddr); ok {
			rq.s.Info.UpstreamLocal = a.AddrPort() // %UPSTREAM_LOCAL_ADDRESS%
		}
		if retry := rq.exchangeHTTP1(c, framing, attempt == 0); !retry {
			return
		}
	}
}

// exchangeHTTP1 runs one request/response exchange on c. retry is true when
// c turned out to be a stale keep-alive connection before anything of the
// request was consumed, so the request can go again on a new connection.
func (rq *request) exchangeHTTP1(c *pool.H1Conn, framing http1.Framing, mayRetry bool) (retry bool) {
	s := rq.s
	if err := c.WriteRequestHead(&s.Req, framing); err != nil {
		c.Release(false)
		return rq.sendFailed(err, c.Reused && mayRetry)
	}
	rq.headSent = true
	if framing.Kind != http1.BodyNone {
		rq.bodyStarted = true
	}
	var body *bodyCopy
	switch {
	case framing.Kind == http1.BodyNone:
		if err := c.Flush(); err != nil {
			c.Release(false)
			return rq.sendFailed(err, c.Reused && mayRetry)
		}
	case framing.Kind == http1.BodyLength && (framing.Length <= inlineBodyLimit || rq.replay != nil):
		// A buffered body (replay.go) is written whole from memory.
		if err := rq.copyRequestBody(c, framing, rq.buf); err != nil {
			c.Release(false)
			rq.requestBodyFailed(err)
			return false
		}
	default:
		if ct, ok := s.Body.(continuer); ok {
			ct.Continue()
		}
		body = rq.streamBody(c, framing)
	}
	rq.armRead(c)
	head, err := c.ReadResponse(&s.Resp, string(s.Req.Method) == "HEAD")
	if err != nil {
		berr := rq.stopBody(body)
		c.Release(false)
		if berr != nil {
			rq.requestBodyFailed(berr)
			return false
		}
		if body == nil && framing.Kind == http1.BodyNone && mayRetry && c.Reused && isStale(err) {
			return true
		}
		rq.upstreamFailed(err)
		return false
	}
	if rq.retryResponse() {
		// The try is retried: its response is discarded with its
		// connection (retry.go).
		rq.stopBody(body)
		c.Release(false)
		return false
	}
	if rq.tryDeadline != rq.deadline {
		rq.responseStarted()
		c.NetConn().SetDeadline(rq.deadline)
	}
	if head.Upgrade && s.Resp.Status == 101 && s.Req.UpgradeProto != nil {
		rq.tunnel(c)
		return false
	}
	reuse := head.KeepAlive
	if !rq.relayHTTP1Response(c, head, body) {
		reuse = false
	}
	if body != nil {
		if err := <-body.done; err != nil {
			reuse = false
		}
	}
	c.Release(reuse && c.Body().Done())
	return false
}

// requestFraming is how the request body goes upstream: the downstream
// content-length if there was one (also 0, which upstreams expect on POST),
// chunked when the length is unknown, nothing otherwise.
func (rq *request) requestFraming() http1.Framing {
	s := rq.s
	switch {
	case s.ContentLength > 0:
		return http1.Framing{Kind: http1.BodyLength, Length: s.ContentLength}
	case s.ContentLength < 0:
		return http1.Framing{Kind: http1.BodyChunked}
	}
	if s.Req.Has(headers.ContentLength) || methodWantsLength(s.Req.Method) {
		return http1.Framing{Kind: http1.BodyLength, Length: 0}
	}
	return http1.Framing{Kind: http1.BodyNone}
}

func methodWantsLength(m []byte) bool {
	switch string(m) {
	case "POST", "PUT", "PATCH":
		return true
	}
	return false
}

// copyRequestBody sends the downstream body and ends it, copying through
// buf.
func (rq *request) copyRequestBody(c *pool.H1Conn, f http1.Framing, buf []byte) error {
	s := rq.s
	if f.Kind != http1.BodyLength || f.Length > 0 {
		for {
			n, err := s.Body.Read(buf)
			if n > 0 {
				s.Info.BytesReceived += int64(n)
				if _, werr := c.Write(buf[:n]); werr != nil {
					return werr
				}
				if f.Kind == http1.BodyChunked {
					if werr := c.Flush(); werr != nil {
						return werr
					}
				}
			}
			if err == io.EOF {
				break
			}
			if err != nil {
				return &downstreamError{err}
			}
		}
	}
	if err := c.EndBody(nil); err != nil {
		return err
	}
	return c.Flush()
}

// downstreamError marks a failure to read the request body from downstream.
type downstreamError struct{ err error }

func (e *downstreamError) Error() string { return "downstream: " + e.err.Error() }
func (e *downstreamError) Unwrap() error { return e.err }

// bodyBufPool holds the buffers of request bodies streamed upstream by
// their own goroutine.
var bodyBufPool = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// bodyCopy is a request body being copied upstream by its own goroutine.
type bodyCopy struct {
	done chan error // the copy's result
	// failed is set when the downstream side of the copy failed and the
	// upstream exchange was abandoned.
	failed atomic.Bool
}

// streamBody copies the request body upstream on its own goroutine, so
// that an upstream answering early is seen at once. When the downstream
// side of the copy fails (a malformed chunked body, a request timer of the
// connection manager, the client gone), the exchange is abandoned as
// Envoy resets the upstream request: the error is delivered first, then
// the upstream read is interrupted, so whoever is reading the response
// finds the cause waiting.
func (rq *request) streamBody(c *pool.H1Conn, framing http1.Framing) *bodyCopy {
	b := &bodyCopy{done: make(chan error, 1)}
	go func() {
		// Its own buffer: rq.buf carries the response at the same time.
		bp := bodyBufPool.Get().(*[]byte)
		err := rq.copyRequestBody(c, framing, *bp)
		bodyBufPool.Put(bp)
		var de *downstreamError
		failed := errors.As(err, &de)
		if failed {
			b.failed.Store(true)
		}
		b.done <- err
		if failed {
			c.NetConn().SetReadDeadline(time.Now())
		}
	}()
	return b
}

// stopBody ends a body-copying goroutine after the upstream exchange
// failed, and returns the goroutine's error when the body's own downstream
// failure caused it (nil otherwise). A goroutine still copying is
// unblocked by interrupting its downstream read, so the downstream
// connection cannot be reused.
func (rq *request) stopBody(b *bodyCopy) error {
	if b == nil {
		return nil
	}
	select {
	case err := <-b.done:
		if b.failed.Load() {
			return err
		}
		return nil
	default:
	}
	rq.s.CloseConnection = true
	if rq.s.Conn != nil {
		rq.s.Conn.SetReadDeadline(time.Now())
	}
	<-b.done
	return nil
}

// relayHTTP1Response streams the upstream response downstream. It reports
// whether the exchange completed cleanly.
func (rq *request) relayHTTP1Response(c *pool.H1Conn, head http1.Head, bc *bodyCopy) bool {
	s := rq.s
	rq.finishResponseHeaders()
	code := s.Resp.Status
	rq.recordUpstream(code)
	body := c.Body()
	body.SetTrailers(&s.RespTrailers)
	endStream := head.Framing.Kind == http1.BodyNone
	if err := s.W.WriteHeaders(&s.Resp, endStream); err != nil {
		s.Info.SetFlag(streaminfo.DownstreamConnectionTermination)
		return false
	}
	if endStream {
		return true
	}
	buf := rq.buf
	for {
		rq.armRead(c)
		n, err := body.Read(buf)
		if n > 0 {
			if _, werr := s.W.Write(buf[:n]); werr != nil {
				s.Info.SetFlag(streaminfo.DownstreamConnectionTermination)
				return false
			}
			if c.Buffered() == 0 && !body.Done() {
				// Nothing more is ready upstream: let the client have what
				// arrived (streaming responses).
				if s.W.Flush() != nil {
					s.Info.SetFlag(streaminfo.DownstreamConnectionTermination)
					return false
				}
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			rq.resetHTTP1AfterResponseStarted(err, bc)
			return false
		}
	}
	if s.W.Finish(&s.RespTrailers) != nil {
		s.Info.SetFlag(streaminfo.DownstreamConnectionTermination)
		return false
	}
	return true
}

// resetAfterResponseStarted ends a stream whose upstream failed after the
// response head was sent: the downstream stream is reset.
func (rq *request) resetAfterResponseStarted(err error) {
	s := rq.s
	if isTimeout(err) {
		s.Info.SetFlag(streaminfo.UpstreamRequestTimeout)
		rq.cluster.Stats.RqTimeout.Inc()
	} else {
		s.Info.SetFlag(streaminfo.UpstreamRemoteReset)
		rq.cluster.Stats.RqRxReset.Inc()
	}
	s.W.Abort()
}

// resetHTTP1AfterResponseStarted ends a stream whose HTTP/1 upstream failed
// after the response head went downstream: the downstream stream is reset.
// A read timeout is the route timeout (UT); otherwise the upstream
// connection ended under the response, which Envoy's codec client reports
// as the ConnectionTermination reset reason (flag UC), or, when the bytes
// were malformed, as a protocol error (UPE).
func (rq *request) resetHTTP1AfterResponseStarted(err error, bc *bodyCopy) {
	s := rq.s
	var perr *http1.Error
	switch {
	case bc != nil && bc.failed.Load():
		// The request body failed downstream and abandoned the exchange
		// (streamBody): not an upstream failure.
		s.Info.SetFlag(streaminfo.DownstreamConnectionTermination)
		rq.cluster.Stats.RqTxReset.Inc()
	case isTimeout(err) && rq.idleExpired():
		s.Info.SetFlag(streaminfo.StreamIdleTimeout)
		rq.cluster.Stats.RqTimeout.Inc()
	case isTimeout(err):
		s.Info.SetFlag(streaminfo.UpstreamRequestTimeout)
		rq.cluster.Stats.RqTimeout.Inc()
		rq.host.Stats.RqTimeout.Inc()
	case errors.As(err, &perr):
		s.Info.SetFlag(streaminfo.UpstreamProtocolError)
	default:
		s.Info.SetFlag(streaminfo.UpstreamConnectionTermination)
		rq.cluster.Stats.RqRxReset.Inc()
	}
	s.CloseConnection = true
	s.W.Abort()
}

// sendFailed handles a failure to write the request head.
func (rq *request) sendFailed(err error, mayRetry bool) (retry bool) {
	if mayRetry && isStale(err) {
		return true
	}
	rq.upstreamFailed(err)
	return false
}

// requestBodyFailed handles a failure while sending the request body. A
// malformed body or a request timer that fired while it was read is the
// connection manager's to answer (the codec's 400, or 408; see
// hcm.unanswered): the router leaves the response unsent, as Envoy's codec
// error or stream timeout resets the upstream request and answers from the
// connection manager. A client gone mid-body ends the stream (DC). Other
// errors are upstream failures.
func (rq *request) requestBodyFailed(err error) {
	var de *downstreamError
	if !errors.As(err, &de) {
		rq.upstreamFailed(err)
		return
	}
	rq.cluster.Stats.RqTxReset.Inc()
	rq.s.CloseConnection = true
	var perr *http1.Error
	if errors.As(de.err, &perr) || isTimeout(de.err) {
		return
	}
	rq.s.Info.SetFlag(streaminfo.DownstreamConnectionTermination)
	rq.s.W.Abort()
}

// resetPrefix starts Envoy's local reply body for an upstream reset before
// the response started (router.cc, onUpstreamReset).
const resetPrefix = "upstream connect error or disconnect/reset before headers. reset reason: "

// upstreamFailed answers a request whose upstream exchange failed before
// the response started, with Envoy's status, flag and body: a timeout is
// 504 UT; a malformed response is a protocol error, 502 UPE (Envoy answers
// 502 for the ProtocolError reset reason); anything else means the
// connection ended under the request, 503 UC "connection termination".
func (rq *request) upstreamFailed(err error) {
	f := rq.failureOf(err)
	if rq.retryFailure(f, rq.headSent) {
		return
	}
	var perr *http1.Error
	switch {
	case isTimeout(err) && rq.idleExpired():
		rq.sendIdleTimeout()
	case f == failPerTry:
		rq.sendPerTryTimeout()
	case isTimeout(err):
		rq.sendTimeout()
	case errors.As(err, &perr):
		rq.sendReset(502, "protocol error", "", streaminfo.UpstreamProtocolError)
	default:
		rq.cluster.Stats.RqRxReset.Inc()
		rq.sendReset(503, "connection termination", "", streaminfo.UpstreamConnectionTermination)
	}
}

// poolError answers a request that got no connection: the circuit breaker
// overflowed (503 UO "overflow"), the route timeout passed while waiting or
// connecting (504 UT), the connect timeout passed (503 UF "connection
// timeout", Envoy's ConnectionTimeout reset reason) or the connect failed
// (503 UF "remote connection failure" with the transport failure reason,
// e.g. "delayed connect error: Connection refused", as Envoy prints it).
func (rq *request) poolError(err error) {
	var ce *pool.ConnectError
	routeTimedOut := !rq.tryDeadline.IsZero() && !time.Now().Before(rq.tryDeadline)
	f := rq.poolFailure(err, routeTimedOut)
	if rq.retryFailure(f, false) {
		return
	}
	switch {
	case errors.Is(err, pool.ErrOverflow):
		rq.overloaded = true
		rq.sendReset(503, "overflow", "", streaminfo.UpstreamOverflow)
	case f == failPerTry:
		rq.sendPerTryTimeout()
	case errors.Is(err, pool.ErrTimeout) || errors.As(err, &ce) && isTimeout(ce.Err) && routeTimedOut:
		rq.sendTimeout()
	case errors.As(err, &ce) && isTimeout(ce.Err):
		rq.sendReset(503, "connection timeout", "", streaminfo.UpstreamConnectionFailure)
	case errors.As(err, &ce):
		rq.sendReset(503, "remote connection failure", transportFailure(ce.Err), streaminfo.UpstreamConnectionFailure)
	default:
		rq.sendReset(503, "connection termination", "", streaminfo.UpstreamConnectionTermination)
	}
}

// sendTimeout answers 504 UT "upstream request timeout" and counts it as
// Envoy's onResponseTimeout does (upstream_rq_timeout, the host's
// rq_timeout, upstream_rq_504).
//
// A deadline that came from the grpc-timeout header is, as in Envoy, the
// stream's maximum duration: 408 "downstream duration timeout" with gRPC
// status DEADLINE_EXCEEDED and flag DT.
func (rq *request) sendTimeout() {
	rq.cluster.Stats.RqTimeout.Inc()
	rq.host.Stats.RqTimeout.Inc()
	if rq.grpcDuration {
		httpfilter.Send(rq.s, httpfilter.LocalReply{Status: 408, Body: "downstream duration timeout",
			Flag: streaminfo.DurationTimeout, Details: "max_duration_timeout", GRPCStatus: 4})
		return
	}
	rq.chargeAbort(504)
	httpfilter.SendLocalReply(rq.s, 504, httpfilter.BodyUpstreamTimeout, streaminfo.UpstreamRequestTimeout, "upstream_response_timeout")
}

// sendReset answers with Envoy's reset reply: the body "upstream connect
// error or disconnect/reset before headers. reset reason: <reason>[,
// transport failure reason: <tfr>]" and the details
// "upstream_reset_before_response_started{<reason>[|<tfr>]}" with spaces
// as underscores.
func (rq *request) sendReset(status int, reason, tfr string, flag streaminfo.ResponseFlags) {
	body := resetPrefix + reason
	details := "upstream_reset_before_response_started{" + reason
	if tfr != "" {
		body += ", transport failure reason: " + tfr
		details += "|" + tfr
	}
	details = strings.ReplaceAll(details+"}", " ", "_")
	rq.s.Info.UpstreamTransportFailureReason = tfr
	rq.chargeAbort(status)
	httpfilter.Send(rq.s, httpfilter.LocalReply{Status: status, Body: body, Flag: flag, Details: details, Overloaded: rq.overloaded})
}

// recordFailure reports a try that failed before its response to the
// host's outlier detection, once per try (retryFailure calls it for every
// such try, retried or not), as Envoy's router reports onPoolFailure,
// onUpstreamReset and its timeouts: a connect failure as
// OutcomeConnectFailed, a reset, refused stream or malformed response as
// OutcomeReset, a per-try or route timeout as OutcomeTimeout. Overflow
// reaches no host and a downstream failure is not the host's: neither is
// reported.
func (rq *request) recordFailure(f failure) {
	if rq.host == nil {
		return
	}
	switch f {
	case failConnect:
		rq.host.RecordOutcome(upstream.OutcomeConnectFailed, 0)
	case failReset, failRefused:
		rq.host.RecordOutcome(upstream.OutcomeReset, 0)
	case failPerTry, failFinal:
		rq.host.RecordOutcome(upstream.OutcomeTimeout, 504)
	}
}

// chargeAbort counts a request that ended before an upstream response as
// Envoy's chargeUpstreamAbort does: upstream_rq_<code> and its class, and
// the host's rq_error for a 5xx.
func (rq *request) chargeAbort(status int) {
	rq.cluster.Stats.RecordResponse(status)
	if rq.host != nil && status >= 500 {
		rq.host.Stats.RqError.Inc()
	}
}

// transportFailure renders a connect error as Envoy's transport failure
// reason: "delayed connect error: " and the errno's text as strerror
// prints it ("Connection refused"); other errors as they are.
func transportFailure(err error) string {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		msg := errno.Error()
		if msg != "" && msg[0] >= 'a' && msg[0] <= 'z' {
			msg = string(msg[0]-'a'+'A') + msg[1:]
		}
		return "delayed connect error: " + msg
	}
	return err.Error()
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// isStale reports errors that mean a kept-alive connection had been closed
// by the upstream before our request reached it.
func isStale(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// tunnel relays an upgraded connection (WebSocket) in both directions until
// either side closes, or until no byte has moved for the stream's idle
// timeout (Envoy applies the route's idle_timeout, else the connection
// manager's stream_idle_timeout, to upgraded streams). The upstream
// connection is not reused.
func (rq *request) tunnel(c *pool.H1Conn) {
	s := rq.s
	rq.finishResponseHeaders()
	rq.recordUpstream(101)
	hj, ok := s.W.(httpfilter.Hijacker)
	if !ok || s.W.WriteHeaders(&s.Resp, false) != nil {
		c.Release(false)
		s.W.Abort()
		return
	}
	idleTimeout := rq.streamIdleTimeout()
	dconn, dbuf, err := hj.Hijack()
	if err != nil {
		c.Release(false)
		return
	}
	unc := c.NetConn()
	unc.SetDeadline(time.Time{})
	ubuf, _ := c.Peek(0)
	ubuf = append([]byte(nil), ubuf...)
	r := relay.Run(dconn, unc, relay.Options{IdleTimeout: idleTimeout, PendingA: dbuf, PendingB: ubuf})
	if r.IdleTimedOut {
		s.Info.SetFlag(streaminfo.StreamIdleTimeout)
	}
	s.Info.BytesReceived += r.AToB
	s.Info.BytesSent += r.BToA
	c.Release(false)
}
