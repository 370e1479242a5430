package routerfilter

import (
	"errors"
	"io"
	"net"
	"syscall"
	"time"

	"github.com/weftmesh/weft/internal/proxy/codec/http1"
	"github.com/weftmesh/weft/internal/proxy/headers"
	"github.com/weftmesh/weft/internal/proxy/httpfilter"
	"github.com/weftmesh/weft/internal/proxy/streaminfo"
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
		c, err := rq.host.H1().Acquire(rq.deadline)
		if err != nil {
			rq.poolError(err)
			return
		}
		c.NetConn().SetDeadline(rq.deadline)
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
	var bodyDone chan error
	switch {
	case framing.Kind == http1.BodyNone:
		if err := c.Flush(); err != nil {
			c.Release(false)
			return rq.sendFailed(err, c.Reused && mayRetry)
		}
	case framing.Kind == http1.BodyLength && framing.Length <= inlineBodyLimit:
		if err := rq.copyRequestBody(c, framing); err != nil {
			c.Release(false)
			rq.requestBodyFailed(err)
			return false
		}
	default:
		if ct, ok := s.Body.(continuer); ok {
			ct.Continue()
		}
		bodyDone = make(chan error, 1)
		go func() { bodyDone <- rq.copyRequestBody(c, framing) }()
	}
	head, err := c.ReadResponse(&s.Resp, string(s.Req.Method) == "HEAD")
	if err != nil {
		rq.stopBody(bodyDone)
		c.Release(false)
		if bodyDone == nil && framing.Kind == http1.BodyNone && mayRetry && c.Reused && isStale(err) {
			return true
		}
		rq.upstreamFailed(err)
		return false
	}
	if head.Upgrade && s.Resp.Status == 101 && s.Req.UpgradeProto != nil {
		rq.tunnel(c)
		return false
	}
	reuse := head.KeepAlive
	if !rq.relayHTTP1Response(c, head) {
		reuse = false
	}
	if bodyDone != nil {
		if err := <-bodyDone; err != nil {
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

// copyRequestBody sends the downstream body and ends it.
func (rq *request) copyRequestBody(c *pool.H1Conn, f http1.Framing) error {
	s := rq.s
	buf := rq.buf
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

// stopBody waits for a body-copying goroutine, unblocking it first: the
// downstream read is interrupted, so the downstream connection cannot be
// reused.
func (rq *request) stopBody(done chan error) {
	if done == nil {
		return
	}
	rq.s.CloseConnection = true
	if rq.s.Conn != nil {
		rq.s.Conn.SetReadDeadline(time.Now())
	}
	<-done
}

// relayHTTP1Response streams the upstream response downstream. It reports
// whether the exchange completed cleanly.
func (rq *request) relayHTTP1Response(c *pool.H1Conn, head http1.Head) bool {
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
			rq.resetAfterResponseStarted(err)
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

// sendFailed handles a failure to write the request head.
func (rq *request) sendFailed(err error, mayRetry bool) (retry bool) {
	if mayRetry && isStale(err) {
		return true
	}
	rq.upstreamFailed(err)
	return false
}

// requestBodyFailed handles a failure while sending an inline body.
func (rq *request) requestBodyFailed(err error) {
	var de *downstreamError
	if errors.As(err, &de) {
		rq.s.Info.SetFlag(streaminfo.DownstreamConnectionTermination)
		rq.s.CloseConnection = true
		rq.s.W.Abort()
		return
	}
	rq.upstreamFailed(err)
}

// upstreamFailed answers a request whose upstream exchange failed before
// the response started, with Envoy's status, flag and body.
func (rq *request) upstreamFailed(err error) {
	s := rq.s
	var perr *http1.Error
	switch {
	case isTimeout(err):
		rq.cluster.Stats.RqTimeout.Inc()
		rq.host.Stats.RqTimeout.Inc()
		rq.cluster.Stats.RecordResponse(504)
		httpfilter.SendLocalReply(s, 504, httpfilter.BodyUpstreamTimeout, streaminfo.UpstreamRequestTimeout, "upstream_response_timeout")
	case errors.As(err, &perr):
		rq.host.Stats.RqError.Inc()
		httpfilter.SendLocalReply(s, 503, httpfilter.BodyProtocolError, streaminfo.UpstreamProtocolError, "upstream_reset_before_response_started{protocol_error}")
	default:
		rq.cluster.Stats.RqRxReset.Inc()
		rq.host.Stats.RqError.Inc()
		httpfilter.SendLocalReply(s, 503, httpfilter.BodyConnTermination, streaminfo.UpstreamConnectionTermination, "upstream_reset_before_response_started{connection_termination}")
	}
}

// poolError answers a request that got no connection.
func (rq *request) poolError(err error) {
	s := rq.s
	var ce *pool.ConnectError
	switch {
	case errors.Is(err, pool.ErrOverflow):
		httpfilter.SendLocalReply(s, 503, httpfilter.BodyOverflow, streaminfo.UpstreamOverflow, "upstream_reset_before_response_started{overflow}")
	case errors.Is(err, pool.ErrTimeout) || errors.As(err, &ce) && isTimeout(ce.Err) && !rq.deadline.IsZero() && !time.Now().Before(rq.deadline):
		rq.cluster.Stats.RqTimeout.Inc()
		httpfilter.SendLocalReply(s, 504, httpfilter.BodyUpstreamTimeout, streaminfo.UpstreamRequestTimeout, "upstream_response_timeout")
	case errors.As(err, &ce):
		rq.host.Stats.RqError.Inc()
		httpfilter.SendLocalReply(s, 503, httpfilter.BodyConnectFailure+", transport failure reason: "+ce.Err.Error(), streaminfo.UpstreamConnectionFailure, "upstream_reset_before_response_started{connection_failure}")
	default:
		httpfilter.SendLocalReply(s, 503, httpfilter.BodyConnTermination, streaminfo.UpstreamConnectionTermination, "upstream_reset_before_response_started{connection_termination}")
	}
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
// either side closes. The upstream connection is not reused.
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
	dconn, dbuf, err := hj.Hijack()
	if err != nil {
		c.Release(false)
		return
	}
	unc := c.NetConn()
	unc.SetDeadline(time.Time{})
	ubuf, _ := c.Peek(0)
	ubuf = append([]byte(nil), ubuf...)
	done := make(chan struct{})
	go func() {
		defer close(done)
		pipe(unc, dconn, dbuf)
	}()
	pipe(dconn, unc, ubuf)
	<-done
	c.Release(false)
}

// pipe copies pending then src to dst, and half-closes dst when src ends.
func pipe(dst, src net.Conn, pending []byte) {
	if len(pending) > 0 {
		if _, err := dst.Write(pending); err != nil {
			src.Close()
			return
		}
	}
	io.Copy(dst, src)
	if cw, ok := dst.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	} else {
		dst.Close()
	}
}
