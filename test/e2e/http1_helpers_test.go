package e2e

// Helpers of the HTTP/1.1 and request/response tests: a one-listener
// bootstrap built from YAML fragments, an echo upstream that reports what it
// received, a raw upstream for byte-exact checks, and a raw downstream client.

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// front describes a bootstrap with one HTTP listener named "front" (stat
// prefix "front") and STATIC clusters.
type front struct {
	// HCM holds extra http_connection_manager fields (YAML at column 0).
	HCM string
	// Routes is the route_config (YAML at column 0). Empty: every host,
	// prefix "/" to cluster "backend".
	Routes string
	// Router holds extra fields of the router filter's typed_config.
	Router string
	// Clusters maps a cluster name to its one upstream "ip:port".
	Clusters map[string]string
}

const defaultRoutes = `
virtual_hosts:
- name: all
  domains: ["*"]
  routes:
  - match: {prefix: /}
    route: {cluster: backend}
`

// indent prefixes every non-empty line of s with n spaces.
func yamlIndent(s string, n int) string {
	pad := strings.Repeat(" ", n)
	var b strings.Builder
	for _, line := range strings.Split(strings.Trim(s, "\n"), "\n") {
		if strings.TrimSpace(line) != "" {
			b.WriteString(pad)
			b.WriteString(line)
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// yaml renders the bootstrap.
func (f front) yaml() string {
	routes := f.Routes
	if routes == "" {
		routes = defaultRoutes
	}
	var b strings.Builder
	b.WriteString(adminHead + frontListener + frontHCM + "\n")
	if f.HCM != "" {
		b.WriteString(yamlIndent(f.HCM, 10))
	}
	b.WriteString("          route_config:\n")
	b.WriteString(yamlIndent(routes, 12))
	b.WriteString(`          http_filters:
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
`)
	if f.Router != "" {
		b.WriteString(yamlIndent(f.Router, 14))
	}
	names := make([]string, 0, len(f.Clusters))
	for n := range f.Clusters {
		names = append(names, n)
	}
	slices.Sort(names)
	if len(names) > 0 {
		b.WriteString("  clusters:\n")
	}
	for _, n := range names {
		host, port := HostPort(f.Clusters[n])
		b.WriteString(Sprintf(`  - name: %s
    type: STATIC
    connect_timeout: 1s
    load_assignment:
      cluster_name: %s
      endpoints:
      - lb_endpoints:
        - endpoint: {address: {socket_address: {address: %s, port_value: %s}}}
`, n, n, host, port))
	}
	return b.String()
}

// startFront starts a proxy from f.
func startFront(t *testing.T, f front) *Proxy {
	t.Helper()
	return StartProxy(t, f.yaml())
}

// echoed is what the echo upstream reports about a request.
type echoed struct {
	Upstream         string
	Method           string
	URI              string
	Host             string
	Proto            string
	Header           http.Header
	ContentLength    int64
	TransferEncoding []string
	BodyLen          int
	BodySHA          string
	Body             string // the body when it is at most 4 KiB
	Trailer          http.Header
}

// echoHandler answers every request with a JSON echoed, and sets
// x-upstream: name on the response.
func echoHandler(name string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, "read body: "+err.Error(), 500)
			return
		}
		sum := sha256.Sum256(body)
		e := echoed{
			Upstream: name, Method: r.Method, URI: r.RequestURI, Host: r.Host, Proto: r.Proto,
			Header: r.Header, ContentLength: r.ContentLength, TransferEncoding: r.TransferEncoding,
			BodyLen: len(body), BodySHA: hex.EncodeToString(sum[:]), Trailer: r.Trailer,
		}
		if len(body) <= 4<<10 {
			e.Body = string(body)
		}
		w.Header().Set("x-upstream", name)
		w.Header().Set("content-type", "application/json")
		json.NewEncoder(w).Encode(e)
	})
}

// startEcho starts an echo upstream named name.
func startEcho(t *testing.T, name string) string { return StartHTTP(t, echoHandler(name)) }

// decodeEcho parses an echo response body.
func decodeEcho(t *testing.T, body string) echoed {
	t.Helper()
	var e echoed
	if err := json.Unmarshal([]byte(body), &e); err != nil {
		t.Fatalf("upstream echo: %v in %q", err, body)
	}
	return e
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// doEcho sends req through c and decodes the echo.
func doEcho(t *testing.T, c *http.Client, req *http.Request) (*http.Response, echoed) {
	t.Helper()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: body: %v", req.Method, req.URL, err)
	}
	if resp.StatusCode != 200 {
		t.Fatalf("%s %s: status %d body %q", req.Method, req.URL, resp.StatusCode, b)
	}
	return resp, decodeEcho(t, string(b))
}

// rawConn is a downstream client speaking bytes.
type rawConn struct {
	t  *testing.T
	c  net.Conn
	br *bufio.Reader
}

// dialRaw connects to addr with a 10 s deadline on every operation.
func dialRaw(t *testing.T, addr string) *rawConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return &rawConn{t: t, c: c, br: bufio.NewReader(c)}
}

func (r *rawConn) send(s string) {
	r.t.Helper()
	if _, err := io.WriteString(r.c, s); err != nil {
		r.t.Fatalf("write: %v", err)
	}
}

// response reads one response (for a request of the given method) and its
// whole body.
func (r *rawConn) response(method string) (*http.Response, string) {
	r.t.Helper()
	resp, body, err := r.tryResponse(method)
	if err != nil {
		r.t.Fatalf("read response: %v", err)
	}
	return resp, body
}

func (r *rawConn) tryResponse(method string) (*http.Response, string, error) {
	resp, err := http.ReadResponse(r.br, &http.Request{Method: method})
	if err != nil {
		return nil, "", err
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b), err
}

// expectClosed asserts the proxy closes the connection (after any bytes it
// still sends) within d.
func (r *rawConn) expectClosed(d time.Duration) {
	r.t.Helper()
	r.c.SetReadDeadline(time.Now().Add(d))
	_, err := io.Copy(io.Discard, r.br)
	if err != nil && !errors.Is(err, syscall.ECONNRESET) {
		r.t.Fatalf("connection not closed by the proxy: %v", err)
	}
}

// isTimeoutErr reports a deadline error.
func isTimeoutErr(err error) bool { return errors.Is(err, os.ErrDeadlineExceeded) }

// startRawUpstream serves every accepted connection with h on its own
// goroutine and returns the address.
func startRawUpstream(t *testing.T, h func(c net.Conn, br *bufio.Reader)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(20 * time.Second))
				h(c, bufio.NewReader(c))
			}()
		}
	}()
	return ln.Addr().String()
}

// readHead reads a message head (up to and including the empty line) and
// returns its lines without CRLF, the empty line excluded.
func readRawHead(br *bufio.Reader) ([]string, error) {
	var lines []string
	for {
		l, err := br.ReadString('\n')
		if err != nil {
			return lines, err
		}
		l = strings.TrimRight(l, "\r\n")
		if l == "" {
			return lines, nil
		}
		lines = append(lines, l)
	}
}

// headField returns the values of the field name (case-insensitive) among
// head lines (the first line, the start line, is skipped).
func headField(lines []string, name string) []string {
	var vs []string
	for _, l := range lines[min(1, len(lines)):] {
		n, v, ok := strings.Cut(l, ":")
		if ok && strings.EqualFold(strings.TrimSpace(n), name) {
			vs = append(vs, strings.TrimSpace(v))
		}
	}
	return vs
}
