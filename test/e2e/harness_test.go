// Package e2e runs weft-proxy end to end on loopback: a real proxy built
// from an Envoy bootstrap, in front of real upstream servers (net/http,
// h2c, grpc-go), driven by real clients.
package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"text/template"
	"time"

	"github.com/weftmesh/weft/internal/proxy/bootstrap"
	"github.com/weftmesh/weft/internal/proxy/httpfilter"
	"github.com/weftmesh/weft/internal/proxy/server"
	"github.com/weftmesh/weft/internal/proxy/streaminfo"
)

// Proxy is a running weft-proxy under test.
type Proxy struct {
	t   *testing.T
	srv *server.Server

	mu      sync.Mutex
	streams []streaminfo.Info
	cond    *sync.Cond
}

// Render fills a bootstrap template: {{.name}} fields come from vars.
func Render(t testing.TB, tmpl string, vars map[string]any) string {
	t.Helper()
	tp, err := template.New("bootstrap").Option("missingkey=error").Parse(tmpl)
	if err != nil {
		t.Fatalf("bootstrap template: %v", err)
	}
	var b bytes.Buffer
	if err := tp.Execute(&b, vars); err != nil {
		t.Fatalf("bootstrap template: %v", err)
	}
	return b.String()
}

// StartProxy starts weft-proxy from a bootstrap YAML and stops it (with a
// drain) when the test ends.
func StartProxy(t *testing.T, yaml string) *Proxy {
	t.Helper()
	b, err := bootstrap.ParseAndValidate([]byte(yaml), t.Name()+".yaml")
	if err != nil {
		t.Fatalf("bootstrap: %v\n%s", err, yaml)
	}
	p := &Proxy{t: t}
	p.cond = sync.NewCond(&p.mu)
	srv, err := server.New(server.Options{
		Bootstrap:    b,
		DrainTime:    5 * time.Second,
		Logger:       slog.New(slog.NewTextHandler(io.Discard, nil)),
		OnStreamDone: p.record,
	})
	if err != nil {
		t.Fatalf("server.New: %v", err)
	}
	srv.Start()
	p.srv = srv
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	return p
}

func (p *Proxy) record(s *httpfilter.Stream) {
	p.mu.Lock()
	p.streams = append(p.streams, s.Info)
	p.cond.Broadcast()
	p.mu.Unlock()
}

// Addr returns "127.0.0.1:port" of the named listener.
func (p *Proxy) Addr(listener string) string {
	a := p.srv.ListenerAddr(listener)
	if a == nil {
		p.t.Fatalf("no listener %q", listener)
	}
	return a.String()
}

// URL returns "http://addr" of the named listener.
func (p *Proxy) URL(listener string) string { return "http://" + p.Addr(listener) }

// AdminURL returns the admin's base URL.
func (p *Proxy) AdminURL() string { return "http://" + p.srv.AdminAddr().String() }

// Server returns the running server.
func (p *Proxy) Server() *server.Server { return p.srv }

// Stat returns the value of a counter or gauge by its dotted name.
func (p *Proxy) Stat(name string) int64 { return p.srv.Stats().CounterValue(name) }

// WaitStat waits until the stat reaches want or the deadline passes.
func (p *Proxy) WaitStat(name string, want int64) {
	p.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for p.Stat(name) != want {
		if time.Now().After(deadline) {
			p.t.Fatalf("stat %s = %d, want %d", name, p.Stat(name), want)
		}
		time.Sleep(5 * time.Millisecond) // polling a condition with a deadline
	}
}

// NextStream waits for the n-th completed stream (0-based) and returns what
// it recorded.
func (p *Proxy) NextStream(n int) streaminfo.Info {
	p.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	timer := time.AfterFunc(5*time.Second, func() {
		p.mu.Lock()
		p.cond.Broadcast()
		p.mu.Unlock()
	})
	defer timer.Stop()
	p.mu.Lock()
	defer p.mu.Unlock()
	for len(p.streams) <= n {
		if time.Now().After(deadline) {
			p.t.Fatalf("stream %d did not complete (have %d)", n, len(p.streams))
		}
		p.cond.Wait()
	}
	return p.streams[n]
}

// Streams returns a copy of every recorded stream.
func (p *Proxy) Streams() []streaminfo.Info {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]streaminfo.Info(nil), p.streams...)
}

// StartHTTP serves h over HTTP/1.1 (and h2c prior knowledge) on a loopback
// port and returns "127.0.0.1:port".
func StartHTTP(t *testing.T, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, Protocols: new(http.Protocols)}
	srv.Protocols.SetHTTP1(true)
	srv.Protocols.SetUnencryptedHTTP2(true) // h2c with prior knowledge
	go srv.Serve(ln)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	return ln.Addr().String()
}

// HostPort splits "ip:port" for templates.
func HostPort(addr string) (string, string) {
	h, p, _ := net.SplitHostPort(addr)
	return h, p
}

// Client returns an HTTP/1.1 client with keep-alive, no proxy, and a
// timeout.
func Client() *http.Client {
	return &http.Client{
		Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 16, DisableCompression: true},
		Timeout:   10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// H2CClient returns an HTTP/2 prior-knowledge (h2c) client.
func H2CClient() *http.Client {
	tr := &http.Transport{Proxy: nil, DisableCompression: true, Protocols: new(http.Protocols)}
	tr.Protocols.SetUnencryptedHTTP2(true)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// Get does a GET and returns status, body and headers.
func Get(t *testing.T, c *http.Client, url string, hdr ...string) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		if strings.EqualFold(hdr[i], "host") {
			req.Host = hdr[i+1]
			continue
		}
		req.Header.Add(hdr[i], hdr[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: body: %v", url, err)
	}
	return resp.StatusCode, string(b), resp.Header
}

// Sprintf is fmt.Sprintf, for templates built inline.
var Sprintf = fmt.Sprintf
