package healthcheck

import (
	"errors"
	"io"
	"syscall"
	"time"

	"github.com/weftmesh/weft/internal/proxy/codec/http1"
	h2codec "github.com/weftmesh/weft/internal/proxy/codec/http2"
	"github.com/weftmesh/weft/internal/proxy/headers"
	"github.com/weftmesh/weft/internal/proxy/upstream/pool"
)

// maxBody bounds how much of a health-check response body is read.
const maxBody = 64 << 10

// httpProber sends "GET <path>" with Host <host> and "user-agent:
// Envoy/HC" (Envoy's HTTP health checker) over HTTP/1.1 or HTTP/2. Its
// connection is kept between checks unless reuse_connection is false.
type httpProber struct {
	cfg  *Config
	po   pool.Options
	h1   *pool.H1
	h2   *pool.H2
	req  headers.Request
	resp headers.Response
	buf  []byte
}

func newHTTPProber(cfg *Config, po pool.Options) *httpProber {
	p := &httpProber{cfg: cfg, po: po, buf: make([]byte, 4096)}
	if cfg.HTTP2 {
		p.h2 = pool.NewH2(po, pool.H2Options{})
	} else {
		p.h1 = pool.NewH1(po, http1.Options{})
	}
	p.req.Method = []byte("GET")
	p.req.Scheme = []byte(scheme(po))
	p.req.Authority = []byte(cfg.Host)
	p.req.Path = []byte(cfg.Path)
	p.req.Add("user-agent", "Envoy/HC")
	for _, h := range cfg.Headers {
		p.req.Add(h[0], h[1])
	}
	return p
}

func scheme(po pool.Options) string {
	if po.Handshake != nil {
		return "https"
	}
	return "http"
}

func (p *httpProber) probe(deadline time.Time) result {
	var status int
	var err error
	if p.h2 != nil {
		status, err = p.exchangeH2(deadline)
	} else {
		status, err = p.exchangeH1(deadline, true)
	}
	if err != nil {
		return failedNetwork
	}
	return p.classify(status)
}

// classify maps a status to a result: expected_statuses pass,
// retriable_statuses count toward the threshold, anything else fails the
// host at once (Envoy's HTTP health checker).
func (p *httpProber) classify(status int) result {
	switch {
	case inRanges(p.cfg.Expected, status):
		return passed
	case inRanges(p.cfg.Retriable, status):
		return failedRetriable
	}
	return failedActive
}

// exchangeH1 runs one HTTP/1.1 check. A kept-alive connection the host
// closed while idle is replaced once, without failing the check (Envoy
// reconnects its health-check client after a remote close).
func (p *httpProber) exchangeH1(deadline time.Time, mayRetry bool) (int, error) {
	c, err := p.h1.Acquire(deadline)
	if err != nil {
		return 0, err
	}
	c.NetConn().SetDeadline(deadline)
	err = c.WriteRequestHead(&p.req, http1.Framing{Kind: http1.BodyNone})
	if err == nil {
		err = c.Flush()
	}
	var head http1.Head
	if err == nil {
		head, err = c.ReadResponse(&p.resp, false)
	}
	if err != nil {
		c.Release(false)
		if mayRetry && c.Reused && stale(err) {
			return p.exchangeH1(deadline, false)
		}
		return 0, err
	}
	body := c.Body()
	_, err = io.CopyBuffer(io.Discard, io.LimitReader(body, maxBody), p.buf)
	c.Release(err == nil && head.KeepAlive && body.Done())
	return p.resp.Status, nil
}

func stale(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// exchangeH2 runs one HTTP/2 check. Without reuse_connection the pool is
// closed afterwards so that the next check dials again.
func (p *httpProber) exchangeH2(deadline time.Time) (int, error) {
	defer p.recycleH2()
	cs, done, err := openH2(p.h2, &p.req, nil, deadline)
	if err != nil {
		return 0, err
	}
	defer done()
	end, err := cs.ReadHeaders(&p.resp)
	if err != nil {
		return 0, err
	}
	if !end {
		if _, err := io.CopyBuffer(io.Discard, io.LimitReader(cs, maxBody), p.buf); err != nil {
			return 0, err
		}
	}
	return p.resp.Status, nil
}

func (p *httpProber) recycleH2() {
	if !p.cfg.ReuseConnection {
		p.h2.Close()
		p.h2 = pool.NewH2(p.po, pool.H2Options{})
	}
}

// openH2 starts a request stream with its whole body; done releases it.
func openH2(h2 *pool.H2, req *headers.Request, body []byte, deadline time.Time) (*h2codec.ClientStream, func(), error) {
	cc, err := h2.Acquire(deadline)
	if err != nil {
		return nil, nil, err
	}
	cs, err := cc.Open(req, h2codec.OpenOptions{Body: body, EndStream: true})
	if err != nil {
		cc.Done()
		return nil, nil, err
	}
	cs.SetReadDeadline(deadline)
	return cs, func() { cs.Close(); cc.Done() }, nil
}

func (p *httpProber) close() {
	if p.h1 != nil {
		p.h1.Close()
	}
	if p.h2 != nil {
		p.h2.Close()
	}
}
