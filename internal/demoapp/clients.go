package demoapp

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// httpCaller calls HTTP services, through the sidecar's outbound HTTP
// proxy when Options.Proxy is set (the request line then carries the
// absolute URL, whose host the sidecar routes on, as with `curl -x`).
type httpCaller struct {
	client *http.Client
}

func newHTTPCaller(o *Options) *httpCaller {
	t := &http.Transport{MaxIdleConnsPerHost: 64, IdleConnTimeout: 90 * time.Second}
	if o.Proxy != "" {
		t.Proxy = http.ProxyURL(&url.URL{Scheme: "http", Host: o.Proxy})
	}
	return &httpCaller{client: &http.Client{Transport: t}}
}

// upstreamError is a failed call: the status (0 for no response) and
// what was said.
type upstreamError struct {
	status int
	msg    string
}

func (e *upstreamError) Error() string {
	if e.status == 0 {
		return e.msg
	}
	return fmt.Sprintf("status %d: %s", e.status, e.msg)
}

// getJSON GETs http://hostport+path with the propagated headers, within
// timeout, and decodes a 200 answer into out.
func (c *httpCaller) getJSON(ctx context.Context, hostport, path string, h *Headers, timeout time.Duration, out any) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+hostport+path, nil)
	if err != nil {
		return &upstreamError{msg: err.Error()}
	}
	h.SetHTTP(req.Header)
	resp, err := c.client.Do(req)
	if err != nil {
		return &upstreamError{msg: err.Error()}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return &upstreamError{status: resp.StatusCode, msg: "reading the body: " + err.Error()}
	}
	if resp.StatusCode != http.StatusOK {
		return &upstreamError{status: resp.StatusCode, msg: string(body)}
	}
	if err := json.Unmarshal(body, out); err != nil {
		return &upstreamError{status: resp.StatusCode, msg: "decoding the body: " + err.Error()}
	}
	return nil
}

func (c *httpCaller) close() { c.client.CloseIdleConnections() }

// dialReviews returns a client connection for reviews: to the sidecar's
// outbound proxy listener when o.Proxy is set (plain-text HTTP/2 with
// prior knowledge, which weft-proxy's HTTP listener accepts), else
// straight to o.ReviewsAddr; either way :authority is o.ReviewsAddr, the
// host the sidecar routes on. No connection is made until the first call.
func dialReviews(o *Options) (*grpc.ClientConn, error) {
	target := o.ReviewsAddr
	if o.Proxy != "" {
		target = o.Proxy
	}
	cc, err := grpc.NewClient("passthrough:///"+target,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithAuthority(o.ReviewsAddr))
	if err != nil {
		return nil, fmt.Errorf("demoapp: gRPC client for reviews at %s: %w", target, err)
	}
	return cc, nil
}
