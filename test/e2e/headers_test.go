package e2e

import (
	"bufio"
	"net"
	"net/http"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// captureUpstream is a raw upstream that sends the head lines of every
// request it gets to the returned channel and answers with resp (a whole
// response, bytes as is).
func captureUpstream(t *testing.T, resp string) (string, chan []string) {
	heads := make(chan []string, 16)
	addr := startRawUpstream(t, func(c net.Conn, br *bufio.Reader) {
		for {
			lines, err := readRawHead(br)
			if err != nil {
				return
			}
			heads <- lines
			if _, err := c.Write([]byte(resp)); err != nil {
				return
			}
		}
	})
	return addr, heads
}

// TestRequestHopByHopHeaders checks what the proxy removes from a request
// before forwarding it: the fields Connection names, Connection itself,
// keep-alive, proxy-connection, transfer-encoding, upgrade (without an
// upgrade), te except "trailers" and Expect: 100-continue, while the other
// fields pass. Nominating x-forwarded-* or 10 and more fields is a 400, as
// Envoy's codec does (http1.connection_header_rejected).
func TestRequestHopByHopHeaders(t *testing.T) {
	up, heads := captureUpstream(t, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
	p := startFront(t, front{Clusters: map[string]string{"backend": up}})
	cases := []struct {
		name    string
		fields  string
		status  int
		absent  []string
		present map[string]string
	}{{
		name: "nominated-and-fixed",
		fields: "Connection: keep-alive, X-Foo, x-bar\r\nX-Foo: 1\r\nX-Bar: 2\r\nKeep-Alive: timeout=5\r\n" +
			"Proxy-Connection: keep-alive\r\nTE: trailers, deflate\r\nUpgrade: foo/2\r\nX-Keep: k\r\n",
		status:  200,
		absent:  []string{"connection", "x-foo", "x-bar", "keep-alive", "proxy-connection", "upgrade", "transfer-encoding"},
		present: map[string]string{"te": "trailers", "x-keep": "k"},
	}, {
		name:   "te-without-trailers",
		fields: "TE: gzip, deflate\r\nConnection: te\r\n",
		status: 200,
		absent: []string{"te", "connection"},
	}, {
		name:    "chunked-request",
		fields:  "Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n",
		status:  200,
		present: map[string]string{"transfer-encoding": "chunked"}, // the proxy's own framing
	}, {
		name:   "expect",
		fields: "Expect: 100-continue\r\nContent-Length: 2\r\n\r\nhi",
		status: 200,
		absent: []string{"expect"},
	}, {
		name:   "nominates-xff",
		fields: "Connection: close, X-Forwarded-For\r\nX-Forwarded-For: 1.2.3.4\r\n",
		status: 400,
	}, {
		name:   "ten-tokens",
		fields: "Connection: a, b, c, d, e, f, g, h, i, j\r\n",
		status: 400,
	}}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rc := dialRaw(t, p.Addr("front"))
			msg := "POST /h HTTP/1.1\r\nHost: h\r\n" + c.fields
			if !strings.Contains(c.fields, "\r\n\r\n") {
				msg += "Content-Length: 0\r\n\r\n"
			}
			rc.send(msg)
			resp, _ := rc.response("POST")
			if resp.StatusCode == 100 {
				resp, _ = rc.response("POST")
			}
			if resp.StatusCode != c.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, c.status)
			}
			if c.status != 200 {
				return
			}
			head := <-heads
			for _, name := range c.absent {
				if v := headField(head, name); v != nil {
					t.Errorf("upstream got %s: %q", name, v)
				}
			}
			for name, want := range c.present {
				if v := headField(head, name); len(v) != 1 || v[0] != want {
					t.Errorf("upstream got %s: %q, want %q", name, v, want)
				}
			}
		})
	}
}

// TestResponseHopByHopHeaders checks the response side: connection,
// keep-alive, proxy-connection, upgrade, transfer-encoding and the fields
// the upstream's Connection names do not reach the client; the body is
// reframed by the proxy.
func TestResponseHopByHopHeaders(t *testing.T) {
	up, _ := captureUpstream(t, "HTTP/1.1 200 OK\r\nConnection: X-Secret, keep-alive\r\nX-Secret: s\r\n"+
		"Keep-Alive: timeout=5\r\nProxy-Connection: keep-alive\r\nUpgrade: h2c\r\nX-Kept: yes\r\n"+
		"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
	p := startFront(t, front{Clusters: map[string]string{"backend": up}})
	rc := dialRaw(t, p.Addr("front"))
	for i := 0; i < 2; i++ {
		rc.send("GET / HTTP/1.1\r\nHost: h\r\n\r\n")
		resp, body := rc.response("GET")
		if resp.StatusCode != 200 || body != "hello" {
			t.Fatalf("got %d %q", resp.StatusCode, body)
		}
		for _, name := range []string{"Connection", "X-Secret", "Keep-Alive", "Proxy-Connection", "Upgrade"} {
			if v, ok := resp.Header[name]; ok {
				t.Errorf("client got %s: %q", name, v)
			}
		}
		if resp.Header.Get("x-kept") != "yes" {
			t.Error("x-kept lost")
		}
	}
}

var uuidV4 = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

// proxyLocalAddr is what Envoy appends to x-forwarded-for for a loopback
// peer: its local_info address, the host's first non-loopback IPv4 address
// (Network::Utility::getLocalAddress), else 127.0.0.1.
func proxyLocalAddr(t *testing.T) string {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(ipn.IP); ok && ip.Unmap().Is4() && !ip.IsLoopback() {
				return ip.Unmap().String()
			}
		}
	}
	return "127.0.0.1"
}

// TestForwardedHeaders checks x-forwarded-for, x-forwarded-proto,
// x-envoy-internal / x-envoy-external-address, the internal-only headers and
// x-request-id against Envoy's mutateRequestHeaders, for a client on
// loopback (an internal address). x-envoy-force-trace stands for the
// internal-only headers: the router consumes the retry headers (Envoy
// removes x-envoy-retry-on before the request goes upstream).
func TestForwardedHeaders(t *testing.T) {
	up := startEcho(t, "a")
	local := proxyLocalAddr(t)
	type want map[string]string // header → value; "" means absent; "uuid" a fresh v4 UUID
	cases := []struct {
		name, hcm string
		send      []string
		want      want
	}{{
		name: "transparent-no-xff",
		send: []string{"x-envoy-force-trace", "true", "x-envoy-internal", "true"},
		want: want{"x-forwarded-for": "", "x-forwarded-proto": "http", "x-request-id": "uuid",
			"x-envoy-internal": "", "x-envoy-force-trace": "", "x-envoy-external-address": ""},
	}, {
		name: "transparent-keeps-xff-and-proto",
		send: []string{"x-forwarded-for", "203.0.113.9", "x-forwarded-proto", "https", "x-request-id", "client-id"},
		want: want{"x-forwarded-for": "203.0.113.9", "x-forwarded-proto": "https", "x-request-id": "client-id",
			"x-envoy-internal": ""},
	}, {
		name: "transparent-single-internal-xff",
		send: []string{"x-forwarded-for", "10.1.2.3", "x-envoy-force-trace", "true"},
		want: want{"x-forwarded-for": "10.1.2.3", "x-envoy-internal": "true", "x-envoy-force-trace": "true"},
	}, {
		name: "remote-no-xff-internal",
		hcm:  "use_remote_address: true",
		send: []string{"x-request-id", "client-id", "x-envoy-force-trace", "true"},
		want: want{"x-forwarded-for": local, "x-envoy-internal": "true", "x-request-id": "client-id",
			"x-envoy-force-trace": "true", "x-envoy-external-address": "", "x-forwarded-proto": "http"},
	}, {
		name: "remote-with-xff-is-edge",
		hcm:  "use_remote_address: true",
		send: []string{"x-forwarded-for", "203.0.113.9", "x-forwarded-proto", "https", "x-request-id", "client-id",
			"x-envoy-force-trace", "true", "x-envoy-internal", "true"},
		want: want{"x-forwarded-for": "203.0.113.9," + local, "x-forwarded-proto": "http", "x-request-id": "uuid",
			"x-envoy-internal": "", "x-envoy-force-trace": "", "x-envoy-external-address": "127.0.0.1"},
	}, {
		name: "remote-preserve-external-id",
		hcm:  "use_remote_address: true\npreserve_external_request_id: true",
		send: []string{"x-forwarded-for", "203.0.113.9", "x-request-id", "client-id"},
		want: want{"x-request-id": "client-id"},
	}, {
		name: "remote-trusted-hop",
		hcm:  "use_remote_address: true\nxff_num_trusted_hops: 1",
		send: []string{"x-forwarded-for", "198.51.100.1, 203.0.113.9", "x-forwarded-proto", "https"},
		want: want{"x-forwarded-for": "198.51.100.1, 203.0.113.9," + local, "x-forwarded-proto": "https",
			"x-envoy-external-address": "203.0.113.9"},
	}, {
		name: "remote-skip-append",
		hcm:  "use_remote_address: true\nskip_xff_append: true",
		send: []string{"x-forwarded-for", "203.0.113.9"},
		want: want{"x-forwarded-for": "203.0.113.9", "x-envoy-external-address": "127.0.0.1"},
	}, {
		name: "no-request-id",
		hcm:  "generate_request_id: false",
		want: want{"x-request-id": ""},
	}}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := startFront(t, front{HCM: c.hcm, Clusters: map[string]string{"backend": up}})
			req, _ := http.NewRequest("GET", p.URL("front")+"/fwd", nil)
			for i := 0; i+1 < len(c.send); i += 2 {
				req.Header.Set(c.send[i], c.send[i+1])
			}
			_, e := doEcho(t, Client(), req)
			for name, w := range c.want {
				vs := e.Header.Values(name)
				got := strings.Join(vs, "|")
				switch w {
				case "":
					if len(vs) != 0 {
						t.Errorf("upstream got %s: %q, want none", name, got)
					}
				case "uuid":
					if len(vs) != 1 || !uuidV4.MatchString(vs[0]) {
						t.Errorf("upstream got %s: %q, want a fresh UUID v4", name, got)
					}
				default:
					if got != w {
						t.Errorf("upstream got %s: %q, want %q", name, got, w)
					}
				}
			}
		})
	}
}

// TestRequestIDUnique checks that generated request ids differ.
func TestRequestIDUnique(t *testing.T) {
	p := startFront(t, front{Clusters: map[string]string{"backend": startEcho(t, "a")}})
	seen := map[string]bool{}
	c := Client()
	for i := 0; i < 50; i++ {
		req, _ := http.NewRequest("GET", p.URL("front")+"/id", nil)
		_, e := doEcho(t, c, req)
		id := e.Header.Get("x-request-id")
		if !uuidV4.MatchString(id) || seen[id] {
			t.Fatalf("request %d: id %q (valid v4: %v, repeated: %v)", i, id, uuidV4.MatchString(id), seen[id])
		}
		seen[id] = true
	}
}

// TestPathAndHostRewrites checks prefix_rewrite and regex_rewrite (the query
// is kept, x-envoy-original-path records the path as received) and
// host_rewrite_literal; suppress_envoy_headers drops x-envoy-original-path.
func TestPathAndHostRewrites(t *testing.T) {
	up := startEcho(t, "a")
	routes := `
virtual_hosts:
- name: all
  domains: ["*"]
  routes:
  - match: {prefix: /api/}
    route: {cluster: backend, prefix_rewrite: /v2/}
  - match: {prefix: /strip}
    route: {cluster: backend, prefix_rewrite: /}
  - match: {safe_regex: {regex: "^/re/([a-z]+)/x$"}}
    route:
      cluster: backend
      regex_rewrite: {pattern: {regex: "^/re/([a-z]+)/x$"}, substitution: "/\\1/y"}
  - match: {prefix: /host}
    route: {cluster: backend, host_rewrite_literal: rewritten.example}
`
	cases := []struct {
		path, wantURI, wantOrig, wantHost string
	}{
		{"/api/users?q=1", "/v2/users?q=1", "/api/users?q=1", "orig.example"},
		{"/strip/x", "//x", "/strip/x", "orig.example"},
		{"/re/abc/x?k=v", "/abc/y?k=v", "/re/abc/x?k=v", "orig.example"},
		{"/host/p", "/host/p", "", "rewritten.example"},
	}
	for _, suppress := range []bool{false, true} {
		router := ""
		if suppress {
			router = "suppress_envoy_headers: true"
		}
		p := startFront(t, front{Routes: routes, Router: router, Clusters: map[string]string{"backend": up}})
		for _, c := range cases {
			req, _ := http.NewRequest("GET", p.URL("front")+c.path, nil)
			req.Host = "orig.example"
			_, e := doEcho(t, Client(), req)
			wantOrig := c.wantOrig
			if suppress {
				wantOrig = ""
			}
			if e.URI != c.wantURI || e.Host != c.wantHost {
				t.Errorf("suppress=%v %s: upstream %s host %s, want %s host %s", suppress, c.path, e.URI, e.Host, c.wantURI, c.wantHost)
			}
			if got := e.Header.Get("x-envoy-original-path"); got != wantOrig {
				t.Errorf("suppress=%v %s: x-envoy-original-path %q, want %q", suppress, c.path, got, wantOrig)
			}
		}
	}
}

// mutationRoutes sets request and response header mutations at the three
// levels (route configuration, virtual host, route) with each append_action.
const mutationRoutes = `
request_headers_to_add:
- header: {key: x-level, value: global}
- header: {key: x-overwrite, value: global}
  append_action: OVERWRITE_IF_EXISTS_OR_ADD
response_headers_to_add:
- header: {key: x-resp-level, value: global}
response_headers_to_remove: [x-upstream-secret]
virtual_hosts:
- name: all
  domains: ["*"]
  request_headers_to_add:
  - header: {key: x-level, value: vhost}
  - header: {key: x-if-absent, value: vhost}
    append_action: ADD_IF_ABSENT
  - header: {key: x-if-absent-2, value: vhost}
    append_action: ADD_IF_ABSENT
  request_headers_to_remove: [x-remove-me]
  response_headers_to_add:
  - header: {key: x-resp-level, value: vhost}
  routes:
  - match: {prefix: /}
    route: {cluster: backend}
    request_headers_to_add:
    - header: {key: x-level, value: route}
    - header: {key: x-overwrite, value: route}
    - header: {key: x-only-if-exists, value: route}
      append_action: OVERWRITE_IF_EXISTS
    - header: {key: x-only-if-exists-2, value: route}
      append_action: OVERWRITE_IF_EXISTS
    - header: {key: x-client-addr, value: "%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%"}
    - header: {key: x-copied, value: "%REQ(x-source)%"}
    response_headers_to_add:
    - header: {key: x-resp-level, value: route}
    - header: {key: x-upstream-name, value: "wrapped"}
      append_action: OVERWRITE_IF_EXISTS_OR_ADD
`

// TestHeaderMutations checks request/response headers_to_add/_remove at the
// route, virtual host and route configuration levels: Envoy evaluates the
// route's first and the route configuration's last, so with appends the
// values come in that order, and with overwrites the least specific level
// wins (most_specific_header_mutations_wins reverses both).
func TestHeaderMutations(t *testing.T) {
	up := StartHTTP(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("x-upstream-secret", "s")
		w.Header().Set("x-upstream-name", "up")
		echoHandler("a").ServeHTTP(w, r)
	}))
	for _, mostSpecific := range []bool{false, true} {
		routes := mutationRoutes
		if mostSpecific {
			routes = "most_specific_header_mutations_wins: true\n" + routes
		}
		p := startFront(t, front{Routes: routes, Clusters: map[string]string{"backend": up}})
		req, _ := http.NewRequest("GET", p.URL("front")+"/m", nil)
		req.Header.Set("x-level", "client")
		req.Header.Set("x-overwrite", "client")
		req.Header.Set("x-if-absent", "client")
		req.Header.Set("x-only-if-exists-2", "client")
		req.Header.Set("x-remove-me", "gone")
		req.Header.Set("x-source", "src")
		resp, e := doEcho(t, Client(), req)
		levels, overwrite, respLevels := "client|route|vhost|global", "global", "route|vhost|global"
		if mostSpecific {
			levels, overwrite, respLevels = "client|global|vhost|route", "global|route", "global|vhost|route"
		}
		checks := map[string]string{
			"x-level": levels, "x-overwrite": overwrite, "x-if-absent": "client", "x-if-absent-2": "vhost",
			"x-only-if-exists": "", "x-only-if-exists-2": "route", "x-remove-me": "",
			"x-client-addr": "127.0.0.1", "x-copied": "src",
		}
		for name, want := range checks {
			if got := strings.Join(e.Header.Values(name), "|"); got != want {
				t.Errorf("most_specific=%v: upstream %s = %q, want %q", mostSpecific, name, got, want)
			}
		}
		if got := strings.Join(resp.Header.Values("x-resp-level"), "|"); got != respLevels {
			t.Errorf("most_specific=%v: response x-resp-level = %q, want %q", mostSpecific, got, respLevels)
		}
		if v := resp.Header.Values("x-upstream-secret"); len(v) != 0 {
			t.Errorf("response_headers_to_remove: client got x-upstream-secret %q", v)
		}
		if got := resp.Header.Values("x-upstream-name"); !slices.Equal(got, []string{"wrapped"}) {
			t.Errorf("response overwrite: x-upstream-name %q", got)
		}
	}
}

// TestWeightedClusterHeaders routes across two weighted clusters, each
// adding its own request and response headers: every response must come
// from the cluster whose headers it carries, and both clusters must serve.
func TestWeightedClusterHeaders(t *testing.T) {
	routes := `
virtual_hosts:
- name: all
  domains: ["*"]
  routes:
  - match: {prefix: /}
    route:
      weighted_clusters:
        clusters:
        - name: a
          weight: 50
          request_headers_to_add: [{header: {key: x-wc, value: a}}]
          response_headers_to_add: [{header: {key: x-wc-resp, value: a}}]
        - name: b
          weight: 50
          request_headers_to_add: [{header: {key: x-wc, value: b}}]
          response_headers_to_add: [{header: {key: x-wc-resp, value: b}}]
          request_headers_to_remove: [x-drop-on-b]
`
	p := startFront(t, front{Routes: routes, Clusters: map[string]string{"a": startEcho(t, "a"), "b": startEcho(t, "b")}})
	count := map[string]int{}
	c := Client()
	const n = 60
	for i := 0; i < n; i++ {
		req, _ := http.NewRequest("GET", p.URL("front")+"/w", nil)
		req.Header.Set("x-drop-on-b", "1")
		resp, e := doEcho(t, c, req)
		count[e.Upstream]++
		if got := e.Header.Get("x-wc"); got != e.Upstream {
			t.Fatalf("request %d served by %s carried x-wc %q", i, e.Upstream, got)
		}
		if got := resp.Header.Get("x-wc-resp"); got != e.Upstream {
			t.Fatalf("response %d from %s carried x-wc-resp %q", i, e.Upstream, got)
		}
		if dropped := e.Header.Get("x-drop-on-b") == ""; dropped != (e.Upstream == "b") {
			t.Fatalf("request %d to %s: x-drop-on-b removed=%v", i, e.Upstream, dropped)
		}
	}
	// With weights 50/50 the chance that one cluster gets none of 60
	// requests is 2^-59: a failure here is a routing bug, not bad luck.
	if count["a"] == 0 || count["b"] == 0 {
		t.Errorf("distribution %v: both clusters must serve", count)
	}
}
