package router

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/proxy/headers"
)

func firstRoute(t *testing.T, y string) *Route {
	t.Helper()
	return compileYAML(t, y).vhosts[0].routes[0]
}

func TestRetryPolicyCompile(t *testing.T) {
	r := firstRoute(t, `
virtual_hosts:
- name: v
  domains: ["*"]
  routes:
  - match: {prefix: /}
    route:
      cluster: c
      retry_policy:
        retry_on: "5xx, reset,unavailable,retriable-status-codes"
        num_retries: 4
        per_try_timeout: 0.25s
        per_try_idle_timeout: 1s
        retriable_status_codes: [409, 418]
        host_selection_retry_max_attempts: 5
        retry_back_off: {base_interval: 0.1s}
        retry_host_predicate:
        - name: envoy.retry_host_predicates.previous_hosts
          typed_config: {"@type": type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate}
        retriable_headers: [{name: x-retry, present_match: true}]
`)
	p := r.RetryPolicy()
	if p == nil {
		t.Fatal("no retry policy")
	}
	wantOn := Retry5xx | RetryReset | RetryGrpcUnavailable | RetryRetriableStatusCodes
	switch {
	case p.On != wantOn:
		t.Errorf("On = %b, want %b", p.On, wantOn)
	case p.NumRetries != 4 || p.PerTryTimeout != 250*time.Millisecond || p.PerTryIdleTimeout != time.Second:
		t.Errorf("num %d per-try %v idle %v", p.NumRetries, p.PerTryTimeout, p.PerTryIdleTimeout)
	case !slices.Equal(p.RetriableStatusCodes, []uint32{409, 418}):
		t.Errorf("codes = %v", p.RetriableStatusCodes)
	case !p.PreviousHosts || p.HostSelectionMaxAttempts != 5:
		t.Errorf("previous hosts %v, attempts %d", p.PreviousHosts, p.HostSelectionMaxAttempts)
	case p.BaseInterval != 100*time.Millisecond || p.MaxInterval != time.Second:
		t.Errorf("back-off %v..%v, want 100ms..1s (10 × base by default)", p.BaseInterval, p.MaxInterval)
	}
	yes := &headers.Map{}
	yes.Set("x-retry", "1")
	if !p.RetriableHeaders(yes) || p.RetriableHeaders(&headers.Map{}) {
		t.Error("retriable_headers: present_match does not decide on x-retry")
	}
}

func TestRetryPolicyDefaultsAndInheritance(t *testing.T) {
	tab := compileYAML(t, `
virtual_hosts:
- name: v
  domains: ["*"]
  retry_policy: {retry_on: connect-failure}
  include_request_attempt_count: true
  per_request_buffer_limit_bytes: 100
  routes:
  - match: {prefix: /a}
    route: {cluster: c, retry_policy: {retry_on: gateway-error}}
    per_request_buffer_limit_bytes: 7
  - match: {prefix: /}
    route: {cluster: c}
`)
	a, b := tab.vhosts[0].routes[0], tab.vhosts[0].routes[1]
	if a.RetryPolicy().On != RetryGatewayError {
		t.Errorf("route policy On = %b, want gateway-error (the route's replaces the virtual host's)", a.RetryPolicy().On)
	}
	p := b.RetryPolicy()
	if p == nil || p.On != RetryConnectFailure {
		t.Fatalf("inherited policy = %+v, want the virtual host's", p)
	}
	if p.NumRetries != DefaultNumRetries || p.BaseInterval != 25*time.Millisecond || p.MaxInterval != 250*time.Millisecond {
		t.Errorf("defaults: num %d back-off %v..%v, want 1, 25ms..250ms", p.NumRetries, p.BaseInterval, p.MaxInterval)
	}
	if n, ok := a.BufferLimit(); !ok || n != 7 {
		t.Errorf("route buffer limit = %d %v, want 7", n, ok)
	}
	if n, ok := b.BufferLimit(); !ok || n != 100 {
		t.Errorf("inherited buffer limit = %d %v, want 100", n, ok)
	}
	if !b.VirtualHost().IncludeRequestAttemptCount() || b.VirtualHost().IncludeAttemptCountInResponse() {
		t.Error("attempt-count flags not read")
	}
}

func TestRetryPolicyErrors(t *testing.T) {
	for _, tc := range []struct{ name, policy, path, msg string }{
		{"unknown condition", `{retry_on: "5xx,sometimes"}`, "retry_policy.retry_on", `unknown retry condition "sometimes"`},
		{"bad status code", `{retry_on: retriable-status-codes, retriable_status_codes: [700]}`, "retry_policy.retriable_status_codes[0]", "[100, 599]"},
		{"max below base", `{retry_on: 5xx, retry_back_off: {base_interval: 1s, max_interval: 0.5s}}`, "retry_policy.retry_back_off.max_interval", "at least base_interval"},
		{"unsupported predicate", `{retry_on: 5xx, retry_host_predicate: [{name: envoy.retry_host_predicates.omit_canary_hosts}]}`, "retry_policy.retry_host_predicate[0]", "only envoy.retry_host_predicates.previous_hosts"},
		{"unsupported field", `{retry_on: 5xx, retry_priority: {name: x}}`, "retry_policy.retry_priority", "not supported"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Compile(parseRC(t, `
virtual_hosts:
- {name: v, domains: ["*"], routes: [{match: {prefix: /}, route: {cluster: c, retry_policy: `+tc.policy+`}}]}`), CompileOptions{})
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("err = %v, want a ConfigError", err)
			}
			if want := "virtual_hosts[0].routes[0].route." + tc.path; ce.Path != want || !strings.Contains(ce.Err.Error(), tc.msg) {
				t.Errorf("error at %q: %v; want at %q containing %q", ce.Path, ce.Err, want, tc.msg)
			}
		})
	}
}

func TestParseRetryOnHeader(t *testing.T) {
	for _, tc := range []struct {
		v    string
		grpc bool
		want RetryOn
	}{
		{"5xx", false, Retry5xx},
		{" 5xx , connect-failure,unknown", false, Retry5xx | RetryConnectFailure},
		{"reset-before-request,refused-stream,retriable-4xx", false, RetryResetBeforeRequest | RetryRefusedStream | RetryRetriable4xx},
		{"unavailable", false, 0}, // gRPC conditions belong in x-envoy-retry-grpc-on
		{"cancelled,deadline-exceeded,internal,resource-exhausted,unavailable", true, RetryGrpcAny},
		{"", false, 0},
	} {
		parse := ParseRetryOn
		if tc.grpc {
			parse = ParseRetryGrpcOn
		}
		if got := parse([]byte(tc.v)); got != tc.want {
			t.Errorf("parse(%q, grpc=%v) = %b, want %b", tc.v, tc.grpc, got, tc.want)
		}
	}
	if n := testing.AllocsPerRun(100, func() { ParseRetryOn([]byte("5xx,reset,connect-failure")) }); n != 0 {
		t.Errorf("ParseRetryOn allocates %v times", n)
	}
}

func TestGRPCRetriable(t *testing.T) {
	on := RetryGrpcUnavailable | RetryGrpcCancelled
	for code, want := range map[int]bool{14: true, 1: true, 4: false, 13: false, 0: false} {
		if got := on.GRPCRetriable(code); got != want {
			t.Errorf("GRPCRetriable(%d) = %v, want %v", code, got, want)
		}
	}
}

func TestMirrorPolicies(t *testing.T) {
	r := firstRoute(t, `
virtual_hosts:
- name: v
  domains: ["*"]
  routes:
  - match: {prefix: /}
    route:
      cluster: c
      request_mirror_policies:
      - {cluster: s1}
      - {cluster: s2, disable_shadow_host_suffix_append: true, runtime_fraction: {default_value: {numerator: 25, denominator: TEN_THOUSAND}, runtime_key: k}}
`)
	ms := r.MirrorPolicies()
	if len(ms) != 2 || ms[0].Cluster != "s1" || ms[1].Cluster != "s2" || ms[0].DisableShadowHostSuffix || !ms[1].DisableShadowHostSuffix {
		t.Fatalf("policies = %+v", ms)
	}
	// Sampled is random % denominator < numerator: exact for these inputs.
	for _, tc := range []struct {
		m      int
		random uint64
		want   bool
	}{{0, 12345, true}, {1, 24, true}, {1, 25, false}, {1, 10024, true}, {1, 9999, false}} {
		if got := ms[tc.m].Sampled(tc.random); got != tc.want {
			t.Errorf("policy %d Sampled(%d) = %v, want %v", tc.m, tc.random, got, tc.want)
		}
	}
}

func TestShadowAuthority(t *testing.T) {
	for in, want := range map[string]string{
		"example.com":      "example.com-shadow",
		"example.com:8080": "example.com-shadow:8080",
		"10.0.0.1:80":      "10.0.0.1-shadow:80",
		"[::1]:80":         "[::1]-shadow:80",
		"[::1]":            "[::1]-shadow",
	} {
		if got := string(ShadowAuthority(nil, []byte(in))); got != want {
			t.Errorf("ShadowAuthority(%q) = %q, want %q", in, got, want)
		}
	}
}

func BenchmarkParseRetryOn(b *testing.B) {
	v := []byte("5xx,reset,connect-failure,retriable-status-codes")
	b.ReportAllocs()
	for b.Loop() {
		if ParseRetryOn(v) == 0 {
			b.Fatal("nothing parsed")
		}
	}
}
