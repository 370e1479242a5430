package rbac

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	rbachttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	rbactcpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/rbac/v3"

	"github.com/weftmesh/weft/internal/proxy/headers"
	"github.com/weftmesh/weft/internal/proxy/httpfilter"
	"github.com/weftmesh/weft/internal/proxy/network"
	"github.com/weftmesh/weft/internal/proxy/stats"
)

// httpFilter builds an HTTP filter from rules and shadow rules (JSON, ""
// for none) with stats under http.inbound.
func httpFilter(t testing.TB, rules, shadow string, store *stats.Store) *HTTPFilter {
	t.Helper()
	cfg := &rbachttpv3.RBAC{ShadowRulesStatPrefix: "istio_dry_run_deny_"}
	if rules != "" {
		cfg.Rules = mustRBAC(t, rules)
	}
	if shadow != "" {
		cfg.ShadowRules = mustRBAC(t, shadow)
	}
	f, err := NewHTTP(cfg, store.Root().Scope("http").Scope("inbound"))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// serve runs the filter on a request and returns the stream.
func serve(f *HTTPFilter, req *headers.Request) (*httpfilter.Stream, *fakeWriter, httpfilter.Status) {
	w := &fakeWriter{}
	s := &httpfilter.Stream{Ctx: context.Background(), W: w, Conn: testConn(connOpts{})}
	s.Req = *req
	s.Info.DownstreamRemote = s.Conn.Remote
	return s, w, f.DecodeHeaders(s)
}

func TestHTTPFilterDenies(t *testing.T) {
	store := stats.NewStore()
	f := httpFilter(t, onePolicy("DENY", adminPath, anyJSON), onePolicy("DENY", getMethod, anyJSON), store)

	s, w, st := serve(f, testReq("GET", "/admin/x", "svc"))
	if st != httpfilter.Stop || w.status != 403 || w.body.String() != DeniedBody {
		t.Fatalf("denied request: status %v, response %d %q; want Stop, 403 %q", st, w.status, w.body.String(), DeniedBody)
	}
	if got := s.Info.Details; got != "rbac_access_denied_matched_policy[p]" {
		t.Errorf("details = %q", got)
	}
	if s.Info.Flags != 0 {
		t.Errorf("flags = %v, want none (Envoy sets no response flag for RBAC)", s.Info.Flags)
	}
	if ct := w.hdr.Get("content-type"); string(ct) != "text/plain" {
		t.Errorf("content-type = %q", ct)
	}

	_, w, st = serve(f, testReq("POST", "/public", "svc"))
	if st != httpfilter.Continue || w.sent {
		t.Fatalf("allowed request: status %v, response sent %v", st, w.sent)
	}
	for name, want := range map[string]int64{
		"http.inbound.rbac.allowed":                           1,
		"http.inbound.rbac.denied":                            1,
		"http.inbound.rbac.istio_dry_run_deny_shadow_denied":  1,
		"http.inbound.rbac.istio_dry_run_deny_shadow_allowed": 1,
	} {
		if got := store.CounterValue(name); got != want {
			t.Errorf("%s = %d, want %d", name, got, want)
		}
	}
}

func TestHTTPFilterAllowNone(t *testing.T) {
	f := httpFilter(t, onePolicy("ALLOW", getMethod, anyJSON), "", stats.NewStore())
	s, w, _ := serve(f, testReq("DELETE", "/", "svc"))
	if w.status != 403 || s.Info.Details != "rbac_access_denied_matched_policy[none]" {
		t.Errorf("got %d %q, want 403 rbac_access_denied_matched_policy[none]", w.status, s.Info.Details)
	}
}

func TestHTTPFilterShadowOnly(t *testing.T) {
	store := stats.NewStore()
	f := httpFilter(t, "", onePolicy("DENY", anyJSON, anyJSON), store)
	_, w, st := serve(f, testReq("GET", "/", "svc"))
	if st != httpfilter.Continue || w.sent {
		t.Fatal("shadow rules must not enforce")
	}
	if store.CounterValue("http.inbound.rbac.istio_dry_run_deny_shadow_denied") != 1 || store.CounterValue("http.inbound.rbac.denied") != 0 {
		t.Error("shadow denial not counted as shadow_denied only")
	}
}

func TestFilterConfigErrors(t *testing.T) {
	sc := stats.NewStore().Root()
	if _, err := NewHTTP(&rbachttpv3.RBAC{TrackPerRuleStats: true}, sc); err == nil {
		t.Error("track_per_rule_stats accepted")
	}
	if _, err := NewNetwork(&rbactcpv3.RBAC{StatPrefix: "tcp.", EnforcementType: rbactcpv3.RBAC_CONTINUOUS}, sc); err == nil {
		t.Error("CONTINUOUS enforcement accepted")
	}
	if _, err := NewNetwork(&rbactcpv3.RBAC{}, sc); err == nil {
		t.Error("network filter without stat_prefix accepted")
	}
	_, err := NewHTTP(&rbachttpv3.RBAC{Rules: mustRBAC(t, `{"action": "DENY", "policies": {"x": {"permissions": [{"any": true}], "principals": [{"remoteIp": {"addressPrefix": "nope"}}]}}}`)}, sc)
	if err == nil || !strings.HasPrefix(err.Error(), `rules.policies["x"].principals[0].remote_ip.address_prefix`) {
		t.Errorf("bad address: %v", err)
	}
}

// echoHandler is a terminal network filter that echoes one line.
type echoHandler struct{}

func (echoHandler) ServeConn(c *network.Conn) {
	defer c.Conn.Close()
	buf := make([]byte, 64)
	n, _ := c.Read(buf)
	c.Conn.Write(buf[:n])
}

// TestNetworkFilterLoopback runs a real listener: a connection from an
// allowed client is proxied to the terminal filter, a denied one is closed
// before any byte reaches it.
func TestNetworkFilterLoopback(t *testing.T) {
	store := stats.NewStore()
	deny, err := NewNetwork(&rbactcpv3.RBAC{StatPrefix: "tcp.", Rules: mustRBAC(t,
		onePolicy("DENY", `{"destinationPort": 1}`, anyJSON))}, store.Root())
	if err != nil {
		t.Fatal(err)
	}
	allowLoopback, err := NewNetwork(&rbactcpv3.RBAC{StatPrefix: "tcp.", Rules: mustRBAC(t,
		onePolicy("ALLOW", anyJSON, `{"directRemoteIp": {"addressPrefix": "127.0.0.0", "prefixLen": 8}}`))}, store.Root())
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		filters []*NetworkFilter
		allowed bool
	}{
		{"allowed", []*NetworkFilter{deny, allowLoopback}, true},
		{"denied", []*NetworkFilter{allowLoopback, denyAll(t, store)}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var denied []string
			h := &Handler{Filters: tc.filters, Next: echoHandler{}, OnDenied: func(_ *network.Conn, d string) { denied = append(denied, d) }}
			got := roundTrip(t, h)
			if tc.allowed && got != "ping" {
				t.Errorf("allowed connection: echo %q, want ping", got)
			}
			if !tc.allowed && (got != "" || len(denied) != 1 || denied[0] != "rbac_access_denied_matched_policy[p]") {
				t.Errorf("denied connection: echo %q, denials %q", got, denied)
			}
		})
	}
	if store.CounterValue("tcp.rbac.allowed") != 3 || store.CounterValue("tcp.rbac.denied") != 1 {
		t.Errorf("tcp.rbac.allowed = %d, denied = %d; want 3, 1", store.CounterValue("tcp.rbac.allowed"), store.CounterValue("tcp.rbac.denied"))
	}
}

func denyAll(t *testing.T, store *stats.Store) *NetworkFilter {
	f, err := NewNetwork(&rbactcpv3.RBAC{StatPrefix: "tcp.", Rules: mustRBAC(t, onePolicy("DENY", anyJSON, anyJSON))}, store.Root())
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// roundTrip accepts one connection on loopback, serves it with h, sends
// "ping" and returns what comes back before the connection closes.
func roundTrip(t *testing.T, h network.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		nc := &network.Conn{Conn: c, Local: netip.MustParseAddrPort(c.LocalAddr().String()), Remote: netip.MustParseAddrPort(c.RemoteAddr().String())}
		h.ServeConn(nc)
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte("ping")); err != nil && !errors.Is(err, net.ErrClosed) {
		t.Logf("write: %v", err)
	}
	b, err := io.ReadAll(c)
	if err != nil && !isReset(err) {
		t.Fatalf("read: %v", err)
	}
	<-done
	return string(b)
}

// isReset reports a connection reset (a denied connection closed with
// unread data may be reset rather than closed cleanly).
func isReset(err error) bool {
	return strings.Contains(err.Error(), "connection reset")
}
