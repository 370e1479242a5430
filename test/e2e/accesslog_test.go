package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/proxy/server"
)

// istioAccessLogFormat is Istio's default text format (pilot/pkg/model
// telemetry_logging.go EnvoyTextLogFormat), as weft-control sends it.
const istioAccessLogFormat = `[%START_TIME%] \"%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%\" ` +
	`%RESPONSE_CODE% %RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS% %CONNECTION_TERMINATION_DETAILS% ` +
	`\"%UPSTREAM_TRANSPORT_FAILURE_REASON%\" %BYTES_RECEIVED% %BYTES_SENT% %DURATION% ` +
	`%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% \"%REQ(X-FORWARDED-FOR)%\" \"%REQ(USER-AGENT)%\" ` +
	`\"%REQ(X-REQUEST-ID)%\" \"%REQ(:AUTHORITY)%\" \"%UPSTREAM_HOST%\" %UPSTREAM_CLUSTER_RAW% ` +
	`%UPSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_REMOTE_ADDRESS% ` +
	`%REQUESTED_SERVER_NAME% %ROUTE_NAME%\n`

// accessLogProxy: an HTTP listener whose connection manager writes
// Istio's text format to {{.file}}, typed JSON to stdout, and 4xx/5xx
// only (status_code_filter) to stderr.
const accessLogProxy = adminHead + frontListener + frontHCM + `
          access_log:
          - name: envoy.access_loggers.file
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
              path: {{.file}}
              log_format: {text_format_source: {inline_string: "{{.format}}"}}
          - name: envoy.access_loggers.stdout
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog
              log_format:
                json_format: {code: "%RESPONSE_CODE%", path: "%REQ(:PATH)%", up: {host: "%UPSTREAM_HOST%"}, dur: "%DURATION%", none: "%REQ(x-none)%"}
          - name: errors
            filter: {status_code_filter: {comparison: {op: GE, value: {default_value: 400, runtime_key: x}}}}
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StderrAccessLog
              log_format: {text_format: "%RESPONSE_CODE% %RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS%\n"}
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - name: r1
                match: {prefix: /ok}
                route: {cluster: backend}` + routerFilter + `
  clusters:` + backendCluster + backendEndpoint

// logBuffer is a goroutine-safe writer the proxy's stdout/stderr loggers
// write to.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// waitLines waits (deadline 5 s) until read returns at least n lines.
func waitLines(t *testing.T, what string, n int, read func() string) []string {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		s := read()
		lines := strings.Split(strings.TrimSuffix(s, "\n"), "\n")
		if s != "" && len(lines) >= n {
			return lines
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: want %d lines, have:\n%s", what, n, s)
		}
		time.Sleep(5 * time.Millisecond) // polling a condition with a deadline
	}
}

func readFile(path string) func() string {
	return func() string {
		b, _ := os.ReadFile(path)
		return string(b)
	}
}

func TestAccessLogHTTP(t *testing.T) {
	up := StartHTTP(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		io.WriteString(w, "hello")
	}))
	host, port := HostPort(up)
	file := filepath.Join(t.TempDir(), "access.log")
	var stdout, stderr logBuffer
	yaml := Render(t, accessLogProxy, map[string]any{"host": host, "port": port, "file": file, "format": istioAccessLogFormat})
	p := startProxyWith(t, yaml, func(o *server.Options) {
		o.AccessLog.Stdout, o.AccessLog.Stderr = &stdout, &stderr
		o.AccessLog.FlushInterval = 10 * time.Millisecond
	})

	req, _ := http.NewRequest("POST", p.URL("front")+"/ok?x=1", strings.NewReader("twelve bytes"))
	req.Header.Set("user-agent", "alog-test")
	req.Header.Set("x-request-id", "rid-42")
	resp, err := Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if code, _, _ := Get(t, Client(), p.URL("front")+"/missing"); code != 404 {
		t.Fatalf("GET /missing: %d, want 404", code)
	}

	lines := waitLines(t, "file", 2, readFile(file))
	front := p.Addr("front")
	upstream := net.JoinHostPort(host, fmt.Sprint(port))
	ok := regexp.MustCompile(`^\[\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\] "POST /ok\?x=1 HTTP/1\.1" 200 - via_upstream - "-" 12 5 \d+ \d+ "-" "alog-test" "rid-42" "` +
		regexp.QuoteMeta(front) + `" "` + regexp.QuoteMeta(upstream) + `" backend 127\.0\.0\.1:\d+ ` + regexp.QuoteMeta(front) + ` 127\.0\.0\.1:\d+ - r1$`)
	if !ok.MatchString(lines[0]) {
		t.Errorf("proxied request line:\n%s\ndoes not match\n%s", lines[0], ok)
	}
	notFound := regexp.MustCompile(`"GET /missing HTTP/1\.1" 404 NR route_not_found - "-" 0 0 \d+ - "-" "Go-http-client/1\.1" "[0-9a-f-]{36}" "` +
		regexp.QuoteMeta(front) + `" "-" - - ` + regexp.QuoteMeta(front) + ` 127\.0\.0\.1:\d+ - -$`)
	if !notFound.MatchString(lines[1]) {
		t.Errorf("404 line:\n%s\ndoes not match\n%s", lines[1], notFound)
	}

	js := waitLines(t, "stdout", 2, stdout.String)
	var first map[string]any
	if err := json.Unmarshal([]byte(js[0]), &first); err != nil {
		t.Fatalf("stdout line %q: %v", js[0], err)
	}
	if first["code"] != 200.0 || first["path"] != "/ok?x=1" || first["none"] != nil ||
		first["up"].(map[string]any)["host"] != upstream {
		t.Errorf("JSON line: %s", js[0])
	}
	if _, isNumber := first["dur"].(float64); !isNumber {
		t.Errorf("dur is not a number (typed JSON): %s", js[0])
	}
	// The filter keeps only the 404.
	errs := waitLines(t, "stderr", 1, stderr.String)
	if len(errs) != 1 || errs[0] != "404 NR route_not_found" {
		t.Errorf("stderr (status >= 400 only): %q", errs)
	}
	if n := p.Stat("access_logs.dropped"); n != 0 {
		t.Errorf("access_logs.dropped = %d", n)
	}
}

// tcpAccessLogProxy: listener "tcp" proxies every connection to cluster
// "up" and logs it; listener "strict" has no filter chain for plaintext
// connections, and its own access_log (Istio's shape: NR only) logs them.
const tcpAccessLogProxy = adminHead + `
  - name: tcp
    address: {socket_address: {address: 127.0.0.1, port_value: 0}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.tcp_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
          stat_prefix: tcp
          cluster: up
          access_log:
          - name: envoy.access_loggers.stdout
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog
              log_format: {text_format: "tcp %RESPONSE_CODE% %PROTOCOL% %BYTES_RECEIVED% %BYTES_SENT% %UPSTREAM_HOST% %UPSTREAM_CLUSTER% %UPSTREAM_REQUEST_ATTEMPT_COUNT% %RESPONSE_FLAGS%\n"}
  - name: strict
    address: {socket_address: {address: 127.0.0.1, port_value: 0}}
    access_log:
    - name: envoy.access_loggers.stdout
      filter: {response_flag_filter: {flags: [NR]}}
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog
        log_format: {text_format: "listener %RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS% %DOWNSTREAM_LOCAL_ADDRESS%\n"}
    filter_chains:
    - filter_chain_match: {transport_protocol: tls}
      filters:
      - name: envoy.filters.network.tcp_proxy
        typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy, stat_prefix: strict, cluster: up}
  clusters:
  - name: up
    type: STATIC
    connect_timeout: 1s
    load_assignment:
      cluster_name: up
      endpoints:
      - lb_endpoints:
        - endpoint: {address: {socket_address: {address: {{.host}}, port_value: {{.port}}}}}
`

// TestAccessLogTCPAndListener: a tcp_proxy logs each connection (bytes,
// upstream, attempts); a listener's access_log logs a connection no
// filter chain takes, with NR.
func TestAccessLogTCPAndListener(t *testing.T) {
	upstream := tagUpstream(t, "up")
	host, port, _ := net.SplitHostPort(upstream)
	var stdout logBuffer
	p := startProxyWith(t, Render(t, tcpAccessLogProxy, map[string]any{"host": host, "port": port}), func(o *server.Options) {
		o.AccessLog.Stdout = &stdout
		o.AccessLog.FlushInterval = 10 * time.Millisecond
	})
	c, err := net.Dial("tcp", p.Addr("tcp"))
	if err != nil {
		t.Fatal(err)
	}
	if tag := readTag(t, c); tag != "up" {
		t.Fatalf("tag %q", tag)
	}
	io.WriteString(c, "ping")
	buf := make([]byte, 4)
	if _, err := io.ReadFull(c, buf); err != nil {
		t.Fatal(err)
	}
	c.Close()
	lines := waitLines(t, "stdout", 1, stdout.String)
	// "up\n" (3 bytes) and the echoed "ping" (4) were sent downstream.
	if want := fmt.Sprintf("tcp - - 4 7 %s up 1 -", upstream); lines[0] != want {
		t.Errorf("tcp line %q, want %q", lines[0], want)
	}

	s, err := net.Dial("tcp", p.Addr("strict"))
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(s, "GET / HTTP/1.1\r\n\r\n")
	s.SetReadDeadline(time.Now().Add(5 * time.Second))
	io.Copy(io.Discard, s) // the proxy closes the connection
	s.Close()
	lines = waitLines(t, "stdout", 2, stdout.String)
	if want := "listener NR filter_chain_not_found " + p.Addr("strict"); lines[1] != want {
		t.Errorf("listener line %q, want %q", lines[1], want)
	}
}
