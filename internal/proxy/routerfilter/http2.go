package routerfilter

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"

	"golang.org/x/net/http2"

	"github.com/weftmesh/weft/internal/proxy/httpfilter"
	"github.com/weftmesh/weft/internal/proxy/streaminfo"
)

// forwardHTTP2 forwards the stream as one HTTP/2 stream on a pooled
// connection (golang.org/x/net/http2 client connection: HPACK, flow control,
// multiplexing).
func (rq *request) forwardHTTP2() {
	s := rq.s
	cc, err := rq.host.H2().Acquire(rq.deadline)
	if err != nil {
		rq.poolError(err)
		return
	}
	defer cc.Done()
	ctx := s.Ctx
	if ctx == nil {
		ctx = context.Background()
	}
	var cancel context.CancelFunc
	if !rq.deadline.IsZero() {
		ctx, cancel = context.WithDeadline(ctx, rq.deadline)
	} else {
		ctx, cancel = context.WithCancel(ctx)
	}
	defer cancel()
	it := rq.newIdleTimer(cancel)
	defer it.stop()
	req, body := rq.http2Request(ctx)
	resp, err := cc.RoundTrip(req)
	if err != nil {
		cancel()
		body.wait()
		if it.fired() {
			rq.sendIdleTimeout()
			return
		}
		rq.http2Failed(ctx, err)
		return
	}
	rq.relayHTTP2Response(ctx, resp, it)
	resp.Body.Close()
	cancel()
	body.wait()
}

// http2Request builds the upstream request from the stream.
func (rq *request) http2Request(ctx context.Context) (*http.Request, *trackedBody) {
	s := rq.s
	r := &s.Req
	path := string(r.Path)
	u := &url.URL{Scheme: "http", Host: string(r.Authority)}
	if i := strings.IndexByte(path, '?'); i >= 0 {
		u.Opaque, u.RawQuery = path[:i], path[i+1:]
	} else {
		u.Opaque = path
	}
	h := make(http.Header, r.Len())
	for _, f := range r.Fields {
		k := string(f.Name)
		h[k] = append(h[k], string(f.Value))
	}
	req := (&http.Request{
		Method:        string(r.Method),
		URL:           u,
		Proto:         "HTTP/2.0",
		ProtoMajor:    2,
		Header:        h,
		Host:          u.Host,
		ContentLength: s.ContentLength,
	}).WithContext(ctx)
	tb := &trackedBody{}
	if s.ContentLength == 0 {
		req.Body = http.NoBody
		return req, tb
	}
	if ct, ok := s.Body.(continuer); ok {
		ct.Continue()
	}
	tb.r, tb.s = s.Body, s
	tb.done = make(chan struct{})
	if tr, ok := s.Body.(trailerSource); ok && len(tr.Trailer()) > 0 {
		// Declared trailers: the transport announces them in a "trailer"
		// field and sends their values after the body.
		req.Trailer = make(http.Header, len(tr.Trailer()))
		for k := range tr.Trailer() {
			req.Trailer[k] = nil
		}
		tb.trailers, tb.trailerDst = tr, req.Trailer
	}
	req.Body = tb
	return req, tb
}

// trailerSource is implemented by HTTP/2 downstream request bodies that
// carry trailers (see hcm): Trailer holds their values once the body has
// reached EOF.
type trailerSource interface{ Trailer() http.Header }

// trackedBody is the request body handed to the HTTP/2 transport, which
// reads it on its own goroutine. wait returns once the transport has closed
// it, so the stream's body is not touched after the stream ends.
type trackedBody struct {
	r    io.Reader
	s    *httpfilter.Stream
	done chan struct{}
	once sync.Once

	// trailers, when set, provides the request trailers copied into
	// trailerDst (the upstream request's Trailer) at EOF, on the
	// transport's goroutine before it reads them.
	trailers   trailerSource
	trailerDst http.Header
}

func (b *trackedBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	b.s.Info.BytesReceived += int64(n)
	if err == io.EOF && b.trailers != nil {
		for k, v := range b.trailers.Trailer() {
			b.trailerDst[k] = v
		}
		b.trailers = nil
	}
	return n, err
}

func (b *trackedBody) Close() error {
	b.once.Do(func() { close(b.done) })
	return nil
}

func (b *trackedBody) wait() {
	if b.done != nil {
		<-b.done
	}
}

// relayHTTP2Response streams an HTTP/2 upstream response downstream,
// flushing every chunk (gRPC streams depend on it), then the trailers.
func (rq *request) relayHTTP2Response(ctx context.Context, resp *http.Response, it *idleTimer) {
	s := rq.s
	out := &s.Resp
	out.Reset()
	out.Status = resp.StatusCode
	for k, vs := range resp.Header {
		for _, v := range vs {
			out.Add(k, v)
		}
	}
	rq.finishResponseHeaders()
	rq.recordUpstream(resp.StatusCode)
	// The HTTP/2 transport reports a response that ended with its HEADERS
	// frame (a gRPC trailers-only response, a HEAD response) with length 0;
	// sending it downstream the same way keeps trailers-only intact.
	endStream := resp.ContentLength == 0
	if err := s.W.WriteHeaders(out, endStream); err != nil {
		s.Info.SetFlag(streaminfo.DownstreamConnectionTermination)
		return
	}
	if endStream {
		return
	}
	buf := rq.buf
	for {
		n, err := resp.Body.Read(buf)
		it.touch()
		if n > 0 {
			if _, werr := s.W.Write(buf[:n]); werr != nil || s.W.Flush() != nil {
				s.Info.SetFlag(streaminfo.DownstreamConnectionTermination)
				s.W.Abort()
				return
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			if it.fired() {
				s.Info.SetFlag(streaminfo.StreamIdleTimeout)
				s.W.Abort()
				return
			}
			if ctx.Err() == context.DeadlineExceeded {
				err = errTimeout
			}
			rq.resetAfterResponseStarted(err)
			return
		}
	}
	tr := &s.RespTrailers
	tr.Reset()
	for k, vs := range resp.Trailer {
		for _, v := range vs {
			tr.Add(k, v)
		}
	}
	if s.W.Finish(tr) != nil {
		s.Info.SetFlag(streaminfo.DownstreamConnectionTermination)
	}
}

type timeoutError struct{}

func (timeoutError) Error() string   { return "upstream request timeout" }
func (timeoutError) Timeout() bool   { return true }
func (timeoutError) Temporary() bool { return true }

var errTimeout error = timeoutError{}

// http2Failed answers a request whose HTTP/2 exchange failed before the
// response started.
func (rq *request) http2Failed(ctx context.Context, err error) {
	s := rq.s
	if errors.Is(ctx.Err(), context.DeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) {
		rq.upstreamFailed(errTimeout)
		return
	}
	if s.Ctx != nil && s.Ctx.Err() != nil {
		// The downstream went away: nothing to answer.
		s.Info.SetFlag(streaminfo.DownstreamConnectionTermination)
		return
	}
	var se http2.StreamError
	if errors.As(err, &se) {
		rq.cluster.Stats.RqRxReset.Inc()
		httpfilter.SendLocalReply(s, 503, "upstream connect error or disconnect/reset before headers. reset reason: remote reset", streaminfo.UpstreamRemoteReset, "upstream_reset_before_response_started{remote_reset}")
		return
	}
	rq.upstreamFailed(err)
}
