package server

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/proxy/bootstrap"
)

// rawUpstream answers every keep-alive request with a fixed 1 KiB response,
// without allocating per request, so that benchmarks measure the proxy.
func rawUpstream(b *testing.B) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	body := bytes.Repeat([]byte("x"), 1024)
	resp := append([]byte("HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\ncontent-length: "+strconv.Itoa(len(body))+"\r\n\r\n"), body...)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func(c net.Conn) {
				defer c.Close()
				br := bufio.NewReaderSize(c, 16<<10)
				for {
					// read one request head (no bodies in this benchmark)
					for {
						line, err := br.ReadSlice('\n')
						if err != nil {
							return
						}
						if len(line) <= 2 {
							break
						}
					}
					if _, err := c.Write(resp); err != nil {
						return
					}
				}
			}(c)
		}
	}()
	b.Cleanup(func() { ln.Close() })
	return ln.Addr().String()
}

const benchBootstrap = `
static_resources:
  listeners:
  - name: front%[4]s
    address: {socket_address: {address: 127.0.0.1, port_value: 0}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: front
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: {prefix: /}
                route: {cluster: backend%[2]s}
          http_filters:%[3]s
          - name: envoy.filters.http.router
            typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}
  clusters:
  - name: backend
    type: STATIC
    load_assignment:
      cluster_name: backend
      endpoints:
      - lb_endpoints:
        - endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: %[1]s}}}
`

// meshRoute and meshFilters are what weft-control gives every outbound
// route and connection manager (Istio's default retry policy, the fault
// filter with no fault): the per-request cost of a mesh route.
const (
	meshRoute = `, retry_policy: {retry_on: "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes",
                  num_retries: 2, retriable_status_codes: [503], host_selection_retry_max_attempts: 5,
                  retry_host_predicate: [{name: envoy.retry_host_predicates.previous_hosts,
                    typed_config: {"@type": type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate}}]}`
	meshFilters = `
          - name: envoy.filters.http.fault
            typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault}`
)

// statsFilter is the istio.stats filter weft-control adds last before the
// router (Istio's standard metrics, internal/proxy/istiostats).
const statsFilter = `
          - name: istio.stats
            typed_config: {"@type": type.googleapis.com/xds.type.v3.TypedStruct, type_url: type.googleapis.com/stats.PluginConfig, value: {}}`

// BenchmarkHTTP1Proxy measures one keep-alive HTTP/1.1 request through the
// proxy to an upstream answering 1 KiB: client, proxy and upstream share
// the process, so allocs/op is the proxy's (client and upstream allocate
// nothing per request).
//
// "plain" is a bare route; "mesh-route" is the route and filters
// weft-control generates for a sidecar (retry policy, fault filter).
// "+stats" adds the istio.stats filter: as a source (outbound listener:
// metadata exchange headers added, one series per response) and, with
// "inbound", as a destination (headers checked and removed).
func BenchmarkHTTP1Proxy(b *testing.B) {
	b.Run("plain", func(b *testing.B) { benchHTTP1Proxy(b, "", "", "") })
	b.Run("plain+stats", func(b *testing.B) { benchHTTP1Proxy(b, "", statsFilter, "") })
	b.Run("mesh-route", func(b *testing.B) { benchHTTP1Proxy(b, meshRoute, meshFilters, "") })
	b.Run("mesh-route+stats", func(b *testing.B) { benchHTTP1Proxy(b, meshRoute, meshFilters+statsFilter, "") })
	b.Run("mesh-route+stats-inbound", func(b *testing.B) {
		benchHTTP1Proxy(b, meshRoute, meshFilters+statsFilter, "\n    traffic_direction: INBOUND")
	})
}

func benchHTTP1Proxy(b *testing.B, route, filters, listener string) {
	up := rawUpstream(b)
	_, port, _ := net.SplitHostPort(up)
	bs, err := bootstrap.ParseAndValidate([]byte(fmt.Sprintf(benchBootstrap, port, route, filters, listener)), "bench.yaml")
	if err != nil {
		b.Fatal(err)
	}
	srv, err := New(Options{Bootstrap: bs, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), DrainTime: time.Second})
	if err != nil {
		b.Fatal(err)
	}
	srv.Start()
	defer srv.Shutdown(b.Context())
	c, err := net.Dial("tcp", srv.ListenerAddr("front").String())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	req := []byte("GET /1k.bin HTTP/1.1\r\nHost: bench\r\nUser-Agent: weft-bench\r\nAccept: */*\r\n\r\n")
	br := bufio.NewReaderSize(c, 16<<10)
	var buf [2048]byte
	roundTrip := func() {
		if _, err := c.Write(req); err != nil {
			b.Fatal(err)
		}
		n := -1
		for {
			line, err := br.ReadSlice('\n')
			if err != nil {
				b.Fatal(err)
			}
			if len(line) <= 2 {
				break
			}
			if bytes.HasPrefix(line, []byte("content-length: ")) {
				n, _ = strconv.Atoi(string(bytes.TrimSpace(line[16:])))
			}
		}
		if n < 0 {
			b.Fatal("no content-length")
		}
		if _, err := io.ReadFull(br, buf[:n]); err != nil {
			b.Fatal(err)
		}
	}
	for i := 0; i < 100; i++ {
		roundTrip()
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		roundTrip()
	}
}
