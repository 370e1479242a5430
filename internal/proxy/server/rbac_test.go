package server

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/proxy/bootstrap"
)

// rbacBootstrap has an HTTP listener whose RBAC filter denies /admin and
// a TCP listener whose network RBAC filter denies every connection.
const rbacBootstrap = `
static_resources:
  listeners:
  - name: front
    address: {socket_address: {address: 127.0.0.1, port_value: 0}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: front
          route_config:
            virtual_hosts:
            - {name: all, domains: ["*"], routes: [{match: {prefix: /}, route: {cluster: backend}}]}
          http_filters:
          - name: envoy.filters.http.rbac
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC
              rules:
                action: DENY
                policies:
                  admin:
                    permissions: [{url_path: {path: {prefix: /admin}}}]
                    principals: [{any: true}]
          - name: envoy.filters.http.router
            typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}
  - name: db
    address: {socket_address: {address: 127.0.0.1, port_value: 0}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.rbac
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.rbac.v3.RBAC
          stat_prefix: tcp.
          rules: {action: DENY, policies: {all: {permissions: [{any: true}], principals: [{any: true}]}}}
      - name: envoy.filters.network.tcp_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
          stat_prefix: db
          cluster: backend
  clusters:
  - name: backend
    type: STATIC
    load_assignment:
      cluster_name: backend
      endpoints:
      - lb_endpoints:
        - endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: %s}}}
`

// TestRBACFilters: the server builds the HTTP and network RBAC filters of
// a bootstrap (validate mode too) and enforces them.
func TestRBACFilters(t *testing.T) {
	up, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "up") }), ReadHeaderTimeout: 5 * time.Second}
	go hs.Serve(up)
	defer hs.Close()
	_, port, _ := net.SplitHostPort(up.Addr().String())
	bs, err := bootstrap.ParseAndValidate([]byte(fmt.Sprintf(rbacBootstrap, port)), "rbac.yaml")
	if err != nil {
		t.Fatal(err)
	}
	o := Options{Bootstrap: bs, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), DrainTime: time.Second}
	if err := Check(o); err != nil {
		t.Fatalf("validate mode: %v", err)
	}
	srv, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	defer srv.Shutdown(t.Context())

	c := &http.Client{Timeout: 5 * time.Second}
	for path, want := range map[string]string{"/": "200 up", "/admin/x": "403 RBAC: access denied"} {
		resp, err := c.Get("http://" + srv.ListenerAddr("front").String() + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if got := fmt.Sprintf("%d %s", resp.StatusCode, b); got != want {
			t.Errorf("GET %s: %s, want %s", path, got, want)
		}
	}
	conn, err := net.Dial("tcp", srv.ListenerAddr("db").String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	conn.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
	b, err := io.ReadAll(conn)
	if len(b) != 0 || err != nil && !strings.Contains(err.Error(), "reset") {
		t.Errorf("denied TCP connection: read %q, %v; want it closed", b, err)
	}
	st := srv.Stats()
	for name, want := range map[string]int64{"http.front.rbac.allowed": 1, "http.front.rbac.denied": 1, "tcp.rbac.denied": 1} {
		if got := st.CounterValue(name); got != want {
			t.Errorf("%s = %d, want %d", name, got, want)
		}
	}
}
