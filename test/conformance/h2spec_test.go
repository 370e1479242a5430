// Package conformance checks weft-proxy's downstream HTTP/2 against RFC 9113
// (and RFC 7541, HPACK) with h2spec (github.com/summerwind/h2spec), built
// from the nested module in tools/ so that the main module does not depend
// on it.
package conformance

import (
	"bytes"
	"context"
	"encoding/xml"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/proxy/bootstrap"
	"github.com/weftmesh/weft/internal/proxy/server"
)

// knownDeviations are h2spec cases weft-proxy's downstream HTTP/2 codec
// (internal/proxy/codec/http2) is known to fail, each with the reason. The
// test fails if one of them starts passing, so that the list stays true.
// It is empty: the three deviations of golang.org/x/net/http2's server
// (repeated SETTINGS values refused, 400 instead of RST_STREAM for
// connection-specific fields and for "te") went with it.
var knownDeviations = map[string]string{}

// autoDeviations are the extra expected failures of a codec_type AUTO
// listener.
var autoDeviations = map[string]string{
	"http2/3.5/2": "codec_type AUTO treats a connection that does not start with the HTTP/2 " +
		"preface as HTTP/1.1, as Envoy's AUTO codec does: the invalid preface gets an HTTP/1.1 " +
		"400 and the connection closes, which h2spec reads as a frame",
}

// proxyConfig has two listeners in front of one upstream: "auto" (codec_type
// AUTO: HTTP/2 is recognised by its preface) and "h2" (codec_type HTTP2,
// prior knowledge).
const proxyConfig = `
static_resources:
  listeners:
  - name: auto
    address: {socket_address: {address: 127.0.0.1, port_value: 0}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: auto
          codec_type: AUTO
          route_config: &routes
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: {prefix: /}
                route: {cluster: upstream}
          http_filters: &filters
          - name: envoy.filters.http.router
            typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}
  - name: h2
    address: {socket_address: {address: 127.0.0.1, port_value: 0}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: h2
          codec_type: HTTP2
          route_config: *routes
          http_filters: *filters
  clusters:
  - name: upstream
    type: STATIC
    connect_timeout: 1s
    load_assignment:
      cluster_name: upstream
      endpoints:
      - lb_endpoints:
        - endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: %s}}}
`

// TestH2Spec runs every (non-strict) h2spec case against both listeners.
func TestH2Spec(t *testing.T) {
	h2spec := buildH2Spec(t)
	p := startProxy(t, startUpstream(t))

	type outcome struct {
		name string
		res  *h2specResult
		err  error
	}
	names := []string{"auto", "h2"}
	deviations := map[string]map[string]string{"auto": merge(knownDeviations, autoDeviations), "h2": knownDeviations}
	results := make(chan outcome, len(names))
	for _, name := range names {
		go func() {
			res, err := runH2Spec(h2spec, p.ListenerAddr(name).String(), t.TempDir())
			results <- outcome{name, res, err}
		}()
	}
	for range names {
		o := <-results
		t.Run(o.name, func(t *testing.T) {
			if o.err != nil {
				t.Fatalf("h2spec: %v", o.err)
			}
			checkResult(t, o.res, deviations[o.name])
		})
	}
}

// checkResult fails for every failed case that is not a known deviation,
// and for every known deviation that passed.
func checkResult(t *testing.T, res *h2specResult, known map[string]string) {
	t.Helper()
	t.Logf("h2spec summary: %s", res.summary)
	if res.total == 0 {
		t.Fatalf("h2spec ran no test case:\n%s", res.output)
	}
	if res.skipped != 0 {
		t.Errorf("h2spec skipped %d cases; the upstream must let every case run:\n%s", res.skipped, res.output)
	}
	failed := map[string]bool{}
	for _, c := range res.failed {
		failed[c.id] = true
		if why, ok := known[c.id]; ok {
			t.Logf("known deviation %s (%s): %s", c.id, c.desc, why)
			continue
		}
		t.Errorf("h2spec %s %s: %s", c.id, c.desc, strings.TrimSpace(c.detail))
	}
	for id := range known {
		if !failed[id] {
			t.Errorf("known deviation %s passed: remove it from knownDeviations", id)
		}
	}
}

func merge(ms ...map[string]string) map[string]string {
	out := map[string]string{}
	for _, m := range ms {
		maps.Copy(out, m)
	}
	return out
}

// startUpstream serves a small response for every request, after reading
// the request body.
func startUpstream(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body)
			w.Header().Set("content-type", "text/plain")
			// At least 5 bytes: h2spec skips http2/6.9.2/2 for shorter
			// bodies.
			io.WriteString(w, "hello from the h2spec upstream\n")
		}),
		ReadHeaderTimeout: 10 * time.Second,
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port
}

func startProxy(t *testing.T, upstreamPort string) *server.Server {
	t.Helper()
	b, err := bootstrap.ParseAndValidate([]byte(fmt.Sprintf(proxyConfig, upstreamPort)), "h2spec.yaml")
	if err != nil {
		t.Fatalf("bootstrap: %v", err)
	}
	srv, err := server.New(server.Options{
		Bootstrap: b,
		DrainTime: time.Second,
		Logger:    slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatalf("server.New: %v", err)
	}
	srv.Start()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	return srv
}

// buildH2Spec builds h2spec from the tools module into a temporary
// directory with the go command running this test.
func buildH2Spec(t *testing.T) string {
	t.Helper()
	goCmd := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(goCmd); err != nil {
		if goCmd, err = exec.LookPath("go"); err != nil {
			t.Fatalf("no go command to build h2spec: %v", err)
		}
	}
	out := filepath.Join(t.TempDir(), "h2spec")
	cmd := exec.Command(goCmd, "build", "-mod=readonly", "-buildvcs=false", "-o", out, "github.com/summerwind/h2spec/cmd/h2spec")
	cmd.Dir = "tools" // the nested module pins h2spec and its dependencies
	cmd.Env = append(os.Environ(), "GOWORK=off")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build h2spec: %v\n%s", err, b)
	}
	return out
}

// h2specResult is one h2spec run.
type h2specResult struct {
	summary string // "N tests, N passed, N skipped, N failed"
	total   int
	skipped int
	failed  []failedCase
	output  string
}

type failedCase struct {
	id     string // h2spec's test ID, e.g. "http2/6.5.3/2"
	desc   string
	detail string
}

var summaryRE = regexp.MustCompile(`(\d+) tests, \d+ passed, (\d+) skipped, \d+ failed`)

// runH2Spec runs h2spec against addr and reads its JUnit report.
func runH2Spec(h2spec, addr, dir string) (*h2specResult, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	report := filepath.Join(dir, "report.xml")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// -o 2: a case that gets no answer fails after 2 s (h2spec's default).
	cmd := exec.CommandContext(ctx, h2spec, "-h", host, "-p", port, "-o", "2", "-j", report)
	// h2spec must not outlive the test binary (a killed test run left
	// h2spec processes spinning once).
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	runErr := cmd.Run() // exits 1 when a case failed: the report tells
	res := &h2specResult{output: out.String()}
	m := summaryRE.FindStringSubmatch(res.output)
	if m == nil {
		return nil, fmt.Errorf("no summary in h2spec output (%v):\n%s", runErr, res.output)
	}
	res.summary = m[0]
	fmt.Sscan(m[1], &res.total)
	fmt.Sscan(m[2], &res.skipped)
	failed, err := readReport(report)
	if err != nil {
		return nil, err
	}
	res.failed = failed
	return res, nil
}

// junitReport is the part of h2spec's JUnit report we read. h2spec lists a
// group's cases in order and without their number, so a case's ID is its
// group's ID and its position.
type junitReport struct {
	Suites []struct {
		Package string `xml:"package,attr"`
		Cases   []struct {
			Desc    string  `xml:"classname,attr"`
			Failure *string `xml:"failure"`
			Error   *string `xml:"error"`
		} `xml:"testcase"`
	} `xml:"testsuite"`
}

func readReport(path string) ([]failedCase, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("h2spec report: %w", err)
	}
	var r junitReport
	if err := xml.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("h2spec report: %w", err)
	}
	var failed []failedCase
	for _, s := range r.Suites {
		for i, c := range s.Cases {
			detail := c.Failure
			if detail == nil {
				detail = c.Error
			}
			if detail == nil {
				continue
			}
			failed = append(failed, failedCase{id: fmt.Sprintf("%s/%d", s.Package, i+1), desc: c.Desc, detail: *detail})
		}
	}
	return failed, nil
}
