package router

import (
	"bytes"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// MirrorPolicy is one compiled RouteAction.request_mirror_policies entry.
// It is immutable.
type MirrorPolicy struct {
	// Cluster receives the shadow requests.
	Cluster string
	// DisableShadowHostSuffix keeps the Host/:authority as it is instead of
	// appending "-shadow" to its host part.
	DisableShadowHostSuffix bool

	fraction Fraction
}

// Sampled reports whether a request with the given random value is
// mirrored: runtime_fraction's default_value (100 % when not set), as
// Envoy's featureEnabled(key, default, random) decides without a runtime
// override: random % denominator < numerator.
func (m *MirrorPolicy) Sampled(random uint64) bool { return m.fraction.Hit(random) }

// ShadowAuthority returns authority with "-shadow" appended to its host
// part, before any port ("foo:8080" becomes "foo-shadow:8080", as Envoy
// does), written into dst[:0].
func ShadowAuthority(dst, authority []byte) []byte {
	host, port := authority, []byte(nil)
	if i := bytes.LastIndexByte(authority, ':'); i >= 0 && !bytes.Contains(authority[i:], []byte("]")) {
		host, port = authority[:i], authority[i:]
	}
	dst = append(dst[:0], host...)
	dst = append(dst, "-shadow"...)
	return append(dst, port...)
}

func (c *compiler) compileMirrorPolicies(r *Route, ps []*routev3.RouteAction_RequestMirrorPolicy, path string) error {
	for i, p := range ps {
		pp := index(path, i)
		// trace_sampled is accepted: weft-proxy does not trace yet, so
		// there is nothing to sample (Istio sets it to false).
		if err := checkFields(p, pp, "cluster", "runtime_fraction", "disable_shadow_host_suffix_append",
			"trace_sampled"); err != nil {
			return err
		}
		if p.GetCluster() == "" {
			return errAt(field(pp, "cluster"), "cluster name is required (cluster_header is not supported)")
		}
		if err := c.checkCluster(p.GetCluster(), field(pp, "cluster")); err != nil {
			return err
		}
		m := MirrorPolicy{Cluster: p.GetCluster(), DisableShadowHostSuffix: p.GetDisableShadowHostSuffixAppend(),
			fraction: Fraction{Num: 100, Den: 100}} // every request when runtime_fraction is unset
		if rf := p.GetRuntimeFraction(); rf != nil {
			f, err := CompileRuntimeFraction(rf, field(pp, "runtime_fraction"))
			if err != nil {
				return err
			}
			m.fraction = f
		}
		r.mirrors = append(r.mirrors, m)
	}
	return nil
}

// resilience holds the retry, mirroring and buffering settings of a route
// or virtual host.
type resilience struct {
	retry          *RetryPolicy
	mirrors        []MirrorPolicy
	bufferLimit    uint32
	hasBufferLimit bool
	// virtual host only
	attemptCountRequest  bool
	attemptCountResponse bool
}

// RetryPolicy is the retry_policy that applies to the route: the route's,
// else its virtual host's; nil when neither has one.
func (r *Route) RetryPolicy() *RetryPolicy { return r.retry }

// MirrorPolicies are the route's request_mirror_policies (nil when none).
// The slice must not be modified.
func (r *Route) MirrorPolicies() []MirrorPolicy { return r.mirrors }

// BufferLimit is per_request_buffer_limit_bytes of the route, else of its
// virtual host; ok is false when neither sets it (the listener's
// per_connection_buffer_limit_bytes applies).
func (r *Route) BufferLimit() (n uint32, ok bool) { return r.bufferLimit, r.hasBufferLimit }

// IncludeRequestAttemptCount reports the virtual host's
// include_request_attempt_count: x-envoy-attempt-count goes upstream.
func (v *VirtualHost) IncludeRequestAttemptCount() bool { return v.attemptCountRequest }

// IncludeAttemptCountInResponse reports the virtual host's
// include_attempt_count_in_response: x-envoy-attempt-count goes
// downstream.
func (v *VirtualHost) IncludeAttemptCountInResponse() bool { return v.attemptCountResponse }

func compileBufferLimit(res *resilience, v *wrapperspb.UInt32Value) {
	if v != nil {
		res.bufferLimit, res.hasBufferLimit = v.GetValue(), true
	}
}

// compileVirtualHostResilience reads the virtual host's retry_policy,
// attempt-count flags and per_request_buffer_limit_bytes.
func compileVirtualHostResilience(vh *VirtualHost, vhc *routev3.VirtualHost, path string) error {
	var err error
	if vh.retry, err = compileRetryPolicy(vhc.GetRetryPolicy(), vh.table, field(path, "retry_policy")); err != nil {
		return err
	}
	vh.attemptCountRequest = vhc.GetIncludeRequestAttemptCount()
	vh.attemptCountResponse = vhc.GetIncludeAttemptCountInResponse()
	compileBufferLimit(&vh.resilience, vhc.GetPerRequestBufferLimitBytes())
	return nil
}

// compileRouteResilience reads the route action's retry_policy (which
// replaces the virtual host's) and request_mirror_policies, and the
// route's per_request_buffer_limit_bytes (else the virtual host's).
func (c *compiler) compileRouteResilience(r *Route, rtc *routev3.Route, path string) error {
	r.bufferLimit, r.hasBufferLimit = r.vhost.bufferLimit, r.vhost.hasBufferLimit
	compileBufferLimit(&r.resilience, rtc.GetPerRequestBufferLimitBytes())
	ra := rtc.GetRoute()
	if ra == nil {
		return nil
	}
	ap := field(path, "route")
	var err error
	if r.retry, err = compileRetryPolicy(ra.GetRetryPolicy(), r.vhost.table, field(ap, "retry_policy")); err != nil {
		return err
	}
	if r.retry == nil {
		r.retry = r.vhost.retry
	}
	return c.compileMirrorPolicies(r, ra.GetRequestMirrorPolicies(), field(ap, "request_mirror_policies"))
}
