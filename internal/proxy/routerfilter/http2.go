package routerfilter

import (
	"errors"
	"io"
	"time"

	h2codec "github.com/weftmesh/weft/internal/proxy/codec/http2"
	"github.com/weftmesh/weft/internal/proxy/headers"
	"github.com/weftmesh/weft/internal/proxy/httpfilter"
	"github.com/weftmesh/weft/internal/proxy/streaminfo"
)

// maxUnprocessedRetries bounds the new attempts of a request the upstream
// did not process (GOAWAY, REFUSED_STREAM): HTTP/2 says such a request may
// be retried (RFC 9113 §8.7), and Envoy's pool retries it transparently.
const maxUnprocessedRetries = 2

// Interfaces of HTTP/2 downstream request bodies (hcm's h2Body).
type (
	// completeBody reports whether the whole request body has arrived.
	completeBody interface{ Complete() bool }
	// bufferedBody reports body bytes received and not yet read.
	bufferedBody interface{ Buffered() int }
	// trailerSource holds the request trailers once the body reached EOF.
	trailerSource interface{ Trailers() *headers.Map }
	// resetSignaler signals a reset of the downstream stream.
	resetSignaler interface{ ResetSignal() <-chan struct{} }
)

// forwardHTTP2 forwards the stream as one HTTP/2 stream on a pooled
// connection (weft's own codec, codec/http2). A request whose body is
// already complete (an HTTP/2 downstream whose END_STREAM arrived, or a
// known length that fits the router's buffer) leaves with its HEADERS in
// one write, and may be retried when the upstream did not process it; a
// longer or unfinished body is streamed by a second goroutine while the
// response is relayed (gRPC streaming in both directions).
func (rq *request) forwardHTTP2() {
	if rq.s.ContentLength != 0 {
		rq.bodyStarted = true
	}
	body, complete, err := rq.h2InlineBody()
	if err != nil {
		rq.requestBodyFailed(&downstreamError{err})
		return
	}
	var trailers *headers.Map
	if ts, ok := rq.s.Body.(trailerSource); ok && complete {
		trailers = ts.Trailers()
	}
	for attempt := 0; ; attempt++ {
		mayRetry := complete && attempt < maxUnprocessedRetries
		if !rq.exchangeHTTP2(body, trailers, complete, mayRetry) {
			return
		}
	}
}

// h2InlineBody reads the request body into rq.buf when it can be sent with
// the request's HEADERS: complete reports that it is all there (nothing is
// left to stream).
func (rq *request) h2InlineBody() (body []byte, complete bool, err error) {
	s := rq.s
	if s.ContentLength == 0 {
		return nil, true, nil
	}
	cb, ok := s.Body.(completeBody)
	h2Complete := ok && cb.Complete()
	if !h2Complete && (s.ContentLength < 0 || s.ContentLength > int64(len(rq.buf))) {
		return nil, false, nil
	}
	if ct, ok := s.Body.(continuer); ok {
		ct.Continue()
	}
	n := 0
	for n < len(rq.buf) {
		k, err := s.Body.Read(rq.buf[n:])
		n += k
		if err == io.EOF {
			complete = true
			break
		}
		if err != nil {
			s.Info.BytesReceived += int64(n)
			return nil, false, err
		}
	}
	s.Info.BytesReceived += int64(n)
	if !complete {
		// The buffer is full: the body ended exactly there if its length
		// says so, or if an HTTP/2 body has nothing more buffered.
		bb, ok := s.Body.(bufferedBody)
		complete = int64(n) == s.ContentLength || h2Complete && ok && bb.Buffered() == 0
	}
	return rq.buf[:n], complete, nil
}

// exchangeHTTP2 runs one attempt. It reports whether the request must go
// again on another connection (the upstream did not process it).
func (rq *request) exchangeHTTP2(body []byte, trailers *headers.Map, complete, mayRetry bool) (retry bool) {
	s := rq.s
	cc, err := rq.host.H2().Acquire(rq.tryDeadline)
	if err != nil {
		rq.poolError(err)
		return false
	}
	defer cc.Done()
	s.Info.UpstreamPeerPrincipal, s.Info.UpstreamLocalPrincipal = cc.Identity.Peer, cc.Identity.Local
	cs, err := cc.Open(&s.Req, h2codec.OpenOptions{Body: body, Trailers: trailers, EndStream: complete})
	if err != nil {
		if mayRetry && errors.Is(err, h2codec.ErrUnprocessed) {
			return true
		}
		rq.http2Failed(err, nil)
		return false
	}
	defer cs.Close()
	rq.headSent = true
	if rs, ok := s.Body.(resetSignaler); ok {
		cs.CancelOn(rs.ResetSignal())
	}
	var p *bodyPump
	if !complete {
		p = rq.startPump(cs)
		defer rq.stopPump(p, cs)
	}
	cs.SetReadDeadline(rq.h2ReadDeadline())
	end, err := cs.ReadHeaders(&s.Resp)
	if err != nil {
		if mayRetry && errors.Is(err, h2codec.ErrUnprocessed) {
			return true
		}
		rq.http2Failed(err, p)
		return false
	}
	if rq.retryResponse() {
		return false // retried: the deferred Close resets the stream
	}
	rq.responseStarted()
	rq.relayHTTP2Response(cs, end)
	return false
}

// h2ReadDeadline is the deadline of the next upstream read: the route
// deadline, or the stream idle timeout from now when it comes first.
func (rq *request) h2ReadDeadline() time.Time { return rq.readDeadline() }

// relayHTTP2Response streams the response downstream. Body bytes are
// flushed when the upstream has nothing more buffered (gRPC messages go
// at once; a response that arrived whole leaves in one write with its
// trailers).
func (rq *request) relayHTTP2Response(cs *h2codec.ClientStream, endStream bool) {
	s := rq.s
	rq.finishResponseHeaders()
	rq.recordUpstream(s.Resp.Status)
	// A response that ended with its HEADERS frame (a gRPC trailers-only
	// response, a HEAD response) goes downstream the same way.
	if err := s.W.WriteHeaders(&s.Resp, endStream); err != nil {
		s.Info.SetFlag(streaminfo.DownstreamConnectionTermination)
		return
	}
	if endStream {
		return
	}
	buf := rq.buf
	for {
		cs.SetReadDeadline(rq.h2ReadDeadline())
		n, err := cs.Read(buf)
		if n > 0 && !rq.relayChunk(cs, buf[:n]) {
			return
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			rq.h2ResetAfterResponseStarted(err)
			return
		}
	}
	tr := &s.RespTrailers
	tr.Reset()
	cs.TakeTrailers(tr)
	if s.W.Finish(tr) != nil {
		s.Info.SetFlag(streaminfo.DownstreamConnectionTermination)
	}
}

// relayChunk writes body bytes downstream, flushing when no more is
// buffered upstream. It reports false (the stream was reset) on failure.
func (rq *request) relayChunk(cs *h2codec.ClientStream, p []byte) bool {
	s := rq.s
	_, err := s.W.Write(p)
	if n, ended := cs.Buffered(); err == nil && n == 0 && !ended {
		err = s.W.Flush()
	}
	if err != nil {
		s.Info.SetFlag(streaminfo.DownstreamConnectionTermination)
		s.W.Abort()
		return false
	}
	return true
}

// h2ResetAfterResponseStarted ends a stream whose upstream failed after
// the response head went downstream: the downstream stream is reset.
func (rq *request) h2ResetAfterResponseStarted(err error) {
	s := rq.s
	switch {
	case errors.Is(err, h2codec.ErrCanceled):
		s.Info.SetFlag(streaminfo.DownstreamConnectionTermination) // the client reset its stream
	case isTimeout(err) && rq.idleExpired():
		s.Info.SetFlag(streaminfo.StreamIdleTimeout)
		s.W.Abort()
	default:
		rq.resetAfterResponseStarted(err)
	}
}

type timeoutError struct{}

func (timeoutError) Error() string   { return "upstream request timeout" }
func (timeoutError) Timeout() bool   { return true }
func (timeoutError) Temporary() bool { return true }

var errTimeout error = timeoutError{}

// http2Failed answers a request whose HTTP/2 exchange failed before the
// response started.
func (rq *request) http2Failed(err error, p *bodyPump) {
	s := rq.s
	if p != nil && errors.Is(err, h2codec.ErrCanceled) {
		// The pump canceled the stream: the request body failed
		// downstream (see requestBodyFailed).
		if derr := p.wait(); derr != nil {
			rq.requestBodyFailed(&downstreamError{derr})
			return
		}
	}
	var se *h2codec.StreamError
	switch {
	case isTimeout(err):
		rq.upstreamFailed(err)
	case errors.Is(err, h2codec.ErrCanceled) || s.Ctx != nil && s.Ctx.Err() != nil:
		// The downstream went away: nothing to answer.
		s.Info.SetFlag(streaminfo.DownstreamConnectionTermination)
	case errors.As(err, &se) && se.Remote && rq.grpcDeadlinePassed():
		// A gRPC server resets a call whose deadline passed (grpc-go
		// sends RST_STREAM CANCEL): the client's own deadline has
		// passed too, and it reports DEADLINE_EXCEEDED; the reply says
		// the same rather than Envoy's UNAVAILABLE for a reset, which
		// could reach the client before its own timer fires.
		rq.cluster.Stats.RqRxReset.Inc()
		rq.chargeAbort(504)
		httpfilter.Send(s, httpfilter.LocalReply{Status: 504, Body: "upstream reset after the grpc-timeout passed",
			Flag: streaminfo.UpstreamRemoteReset, Details: "upstream_reset_before_response_started{remote_reset}", GRPCStatus: 4})
	case errors.As(err, &se) && se.Remote:
		rq.cluster.Stats.RqRxReset.Inc()
		if rq.retryFailure(rq.failureOf(err), true) {
			return
		}
		rq.sendReset(503, "remote reset", "", streaminfo.UpstreamRemoteReset)
	case errors.As(err, &se):
		// This endpoint reset the stream: the response was malformed.
		if rq.retryFailure(failReset, true) {
			return
		}
		rq.sendReset(502, "protocol error", "", streaminfo.UpstreamProtocolError)
	default:
		rq.upstreamFailed(err)
	}
}

// grpcDeadlinePassed reports a gRPC request whose grpc-timeout has
// elapsed since it arrived.
func (rq *request) grpcDeadlinePassed() bool {
	s := rq.s
	if !s.GRPC {
		return false
	}
	gt, ok := parseGRPCTimeout(s.Req.Get(headers.GRPCTimeout))
	return ok && gt > 0 && time.Since(s.Info.StartTime) >= gt
}

// bodyPump copies a request body upstream on its own goroutine.
type bodyPump struct {
	done chan struct{}
	err  error // the downstream read's error (not io.EOF), set before done closes
}

func (p *bodyPump) wait() error {
	<-p.done
	return p.err
}

// startPump streams the rest of the request body upstream, then its
// trailers. Messages go as soon as they arrive (flushed when nothing more
// is buffered downstream). A downstream failure resets the upstream
// stream.
func (rq *request) startPump(cs *h2codec.ClientStream) *bodyPump {
	p := &bodyPump{done: make(chan struct{})}
	s := rq.s
	if ct, ok := s.Body.(continuer); ok {
		ct.Continue()
	}
	go func() {
		defer close(p.done)
		bp := bodyBufPool.Get().(*[]byte)
		defer bodyBufPool.Put(bp)
		bb, _ := s.Body.(bufferedBody)
		for {
			n, err := s.Body.Read(*bp)
			if n > 0 {
				s.Info.BytesReceived += int64(n)
				if _, werr := cs.Write((*bp)[:n]); werr != nil {
					return // the response side reports the upstream failure
				}
				if (bb == nil || bb.Buffered() == 0) && cs.Flush() != nil {
					return
				}
			}
			if err == io.EOF {
				var t *headers.Map
				if ts, ok := s.Body.(trailerSource); ok {
					t = ts.Trailers()
				}
				cs.CloseSend(t)
				return
			}
			if err != nil {
				p.err = err
				cs.Cancel()
				return
			}
		}
	}()
	return p
}

// stopPump ends the body pump once the exchange is over: the upstream
// stream is canceled (a pump waiting for its window wakes), and a pump
// still reading the downstream body is interrupted. An HTTP/2 downstream
// stream has ended by now (its response finished or was reset, which ends
// its reads); an HTTP/1 body read is interrupted by the read deadline, and
// that connection cannot be reused.
func (rq *request) stopPump(p *bodyPump, cs *h2codec.ClientStream) {
	select {
	case <-p.done:
		return
	default:
	}
	cs.Cancel()
	s := rq.s
	if rq.replay != nil {
		<-p.done // reading from memory: the cancel ends it
		return
	}
	if _, h2 := s.Body.(resetSignaler); !h2 {
		s.CloseConnection = true
		if s.Conn != nil {
			s.Conn.SetReadDeadline(time.Now())
		}
	}
	<-p.done
}
