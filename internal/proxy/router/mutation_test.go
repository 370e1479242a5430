package router

import (
	"net/netip"
	"testing"

	"github.com/weftmesh/weft/internal/proxy/headers"
)

const levelsYAML = `
request_headers_to_add:
- {header: {key: x-level, value: global}, append_action: OVERWRITE_IF_EXISTS_OR_ADD}
- {header: {key: x-all, value: global}}
response_headers_to_add:
- {header: {key: x-level, value: global}, append_action: OVERWRITE_IF_EXISTS_OR_ADD}
virtual_hosts:
- name: v
  domains: ["*"]
  request_headers_to_add:
  - {header: {key: x-level, value: vhost}, append_action: OVERWRITE_IF_EXISTS_OR_ADD}
  - {header: {key: x-all, value: vhost}}
  response_headers_to_add:
  - {header: {key: x-level, value: vhost}, append_action: OVERWRITE_IF_EXISTS_OR_ADD}
  routes:
  - name: r
    match: {prefix: "/"}
    request_headers_to_add:
    - {header: {key: x-level, value: route}, append_action: OVERWRITE_IF_EXISTS_OR_ADD}
    - {header: {key: x-all, value: route}}
    response_headers_to_add:
    - {header: {key: x-level, value: route}, append_action: OVERWRITE_IF_EXISTS_OR_ADD}
    route:
      weighted_clusters:
        clusters:
        - name: only
          weight: 1
          request_headers_to_add:
          - {header: {key: x-level, value: cluster}, append_action: OVERWRITE_IF_EXISTS_OR_ADD}
          - {header: {key: x-all, value: cluster}}
          response_headers_to_add:
          - {header: {key: x-level, value: cluster}, append_action: OVERWRITE_IF_EXISTS_OR_ADD}
`

func TestHeaderMutationLevelOrder(t *testing.T) {
	for _, tc := range []struct {
		mostSpecific bool
		wantLevel    string
		wantAll      string
	}{
		// Envoy's default: cluster, route, vhost, then route configuration;
		// the last evaluated (least specific) wins.
		{false, "global", "cluster|route|vhost|global"},
		{true, "route", "cluster|global|vhost|route"},
	} {
		y := levelsYAML
		if tc.mostSpecific {
			y = "most_specific_header_mutations_wins: true\n" + y
		}
		tab := compileYAML(t, y)
		req := newReq("h", "/")
		r, _ := tab.Route(req)
		target := r.PickCluster(7)
		r.FinalizeRequest(req, target, nil)
		if got := allValues(&req.Map, "x-level"); got != tc.wantLevel {
			t.Errorf("most specific %v: request x-level %q, want %q", tc.mostSpecific, got, tc.wantLevel)
		}
		if got := allValues(&req.Map, "x-all"); got != tc.wantAll {
			t.Errorf("most specific %v: request x-all %q, want %q", tc.mostSpecific, got, tc.wantAll)
		}
		resp := &headers.Response{Status: 200}
		r.ApplyResponseHeaders(resp, req, target, nil)
		if got := allValues(&resp.Map, "x-level"); got != tc.wantLevel {
			t.Errorf("most specific %v: response x-level %q, want %q", tc.mostSpecific, got, tc.wantLevel)
		}
	}
}

func TestAppendActions(t *testing.T) {
	tab := compileYAML(t, `
virtual_hosts:
- name: v
  domains: ["*"]
  routes:
  - name: r
    match: {prefix: "/"}
    route: {cluster: c}
    request_headers_to_remove: [x-remove, x-replace-me]
    request_headers_to_add:
    - {header: {key: x-append, value: new}}
    - {header: {key: x-append-old, value: new}, append: true}
    - {header: {key: x-overwrite-old, value: new}, append: false}
    - {header: {key: x-absent, value: new}, append_action: ADD_IF_ABSENT}
    - {header: {key: x-absent-missing, value: new}, append_action: ADD_IF_ABSENT}
    - {header: {key: x-owe, value: new}, append_action: OVERWRITE_IF_EXISTS}
    - {header: {key: x-owe-missing, value: new}, append_action: OVERWRITE_IF_EXISTS}
    - {header: {key: x-owa, value: new}, append_action: OVERWRITE_IF_EXISTS_OR_ADD}
    - {header: {key: x-empty, value: ""}}
    - {header: {key: x-keep-empty, value: ""}, keep_empty_value: true}
    - {header: {key: x-empty-req, value: "%REQ(x-nope)%"}}
    - {header: {key: X-Replace-Me, value: added}}
    - {header: {key: x-copy, value: "%REQ(x-remove)%|%REQ(x-append)%"}}
`)
	req := newReq("h", "/",
		"x-append", "old", "x-append-old", "old", "x-overwrite-old", "old1", "x-overwrite-old", "old2",
		"x-absent", "old", "x-owe", "old", "x-owa", "old", "x-remove", "gone", "x-replace-me", "gone")
	r, _ := tab.Route(req)
	r.ApplyRequestHeaders(req, r.PickCluster(0), nil)
	want := map[string]string{
		"x-append":         "old|new",
		"x-append-old":     "old|new",
		"x-overwrite-old":  "new",
		"x-absent":         "old",
		"x-absent-missing": "new",
		"x-owe":            "new",
		"x-owe-missing":    "",
		"x-owa":            "new",
		"x-empty":          "",
		"x-keep-empty":     "",
		"x-empty-req":      "",
		"x-remove":         "",
		"x-replace-me":     "added", // removals happen before additions
		"x-copy":           "|old",  // formatted against the headers before this level's additions
	}
	for name, v := range want {
		if got := allValues(&req.Map, name); got != v {
			t.Errorf("%s = %q, want %q", name, got, v)
		}
	}
	if !req.Has("x-keep-empty") || req.Has("x-empty") || req.Has("x-empty-req") {
		t.Errorf("keep_empty_value: x-keep-empty %v x-empty %v x-empty-req %v",
			req.Has("x-keep-empty"), req.Has("x-empty"), req.Has("x-empty-req"))
	}
}

func TestFormatVariables(t *testing.T) {
	tab := compileYAML(t, `
virtual_hosts:
- name: v
  domains: ["*"]
  routes:
  - name: r
    match: {prefix: "/"}
    route: {cluster: c}
    request_headers_to_add:
    - {header: {key: x-remote, value: "%DOWNSTREAM_REMOTE_ADDRESS%"}}
    - {header: {key: x-remote-ip, value: "%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%"}}
    - {header: {key: x-local, value: "%DOWNSTREAM_LOCAL_ADDRESS%"}}
    - {header: {key: x-local-ip, value: "%DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT%"}}
    - {header: {key: x-upstream, value: "%UPSTREAM_REMOTE_ADDRESS%"}}
    - {header: {key: x-proto, value: "%PROTOCOL%"}}
    - {header: {key: x-host, value: "%HOSTNAME%"}}
    - {header: {key: x-start, value: "%START_TIME%"}}
    - {header: {key: x-req, value: "[%REQ(X-In)%] [%REQ(:PATH)%] [%REQ(x-missing?x-in)%] [%REQ(x-in):3%]"}}
    - {header: {key: x-lit, value: "100%% sure"}}
    response_headers_to_add:
    - {header: {key: x-req-echo, value: "%REQ(x-in)%"}}
`)
	req := newReq("h", "/p?q", "x-in", "hello")
	r, _ := tab.Route(req)
	vars := defaultVars()
	vars.remote = netip.MustParseAddrPort("[::ffff:10.0.0.9]:4444") // v4-mapped prints as IPv4
	r.ApplyRequestHeaders(req, nil, vars)
	want := map[string]string{
		"x-remote":    "10.0.0.9:4444",
		"x-remote-ip": "10.0.0.9",
		"x-local":     "10.0.0.2:8080",
		"x-local-ip":  "10.0.0.2",
		"x-upstream":  "[2001:db8::1]:9000",
		"x-proto":     "HTTP/2",
		"x-host":      "proxy-1",
		"x-start":     "2024-03-05T07:08:09.123Z",
		"x-req":       "[hello] [/p?q] [hello] [hel]",
		"x-lit":       "100% sure",
	}
	for name, v := range want {
		if got := allValues(&req.Map, name); got != v {
			t.Errorf("%s = %q, want %q", name, got, v)
		}
	}
	resp := &headers.Response{Status: 200}
	r.ApplyResponseHeaders(resp, req, nil, vars)
	if got := allValues(&resp.Map, "x-req-echo"); got != "hello" {
		t.Errorf("response x-req-echo = %q", got)
	}

	// Without vars, variables print as empty and the headers are not added.
	req = newReq("h", "/p")
	r.ApplyRequestHeaders(req, nil, nil)
	if req.Has("x-remote") || req.Has("x-upstream") || allValues(&req.Map, "x-lit") != "100% sure" {
		t.Errorf("nil vars: %v", req.Map.Fields)
	}
}
