// Package fault is the fault injection HTTP filter
// (envoy.filters.http.fault, envoy.extensions.filters.http.fault.v3.HTTPFault):
// it delays and/or aborts a configured fraction of requests, with a fixed
// delay or HTTP/gRPC status, or with values the client chooses through the
// x-envoy-fault-* request headers when header_delay / header_abort are
// configured. It follows Envoy's fault filter
// (docs: configuration/http/http_filters/fault_filter; source:
// source/extensions/filters/http/fault/fault_filter.cc):
//
//   - a route's (or virtual host's) typed_per_filter_config replaces the
//     listener-level HTTPFault entirely; an empty HTTPFault injects nothing,
//     which is how Istio installs the filter and enables it per route;
//   - the request must match upstream_cluster and every headers matcher;
//   - a delay is injected first (response flag DI); when it ends, the abort
//     is decided (a fresh draw) and, if it fires, the request is answered
//     with http_status, or HTTP 200 and grpc-status for grpc_status
//     (response flag FI, body "fault filter abort", details
//     fault_filter_abort);
//   - max_active_faults bounds the requests with a fault in progress; over
//     it, no fault is injected and faults_overflow counts the request.
//
// Stats, under http.<connection manager stat_prefix>.fault.: delays_injected,
// aborts_injected (counters), active_faults (gauge), faults_overflow
// (counter).
//
// Not supported (configuration errors): response_rate_limit,
// downstream_nodes, the *_runtime keys, abort response_body, and
// filter_metadata (there is no runtime; defaults apply).
package fault

import (
	"fmt"
	"time"

	faultcommonv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/common/fault/v3"
	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"

	"github.com/weftmesh/weft/internal/proxy/router"
)

// Settings is one compiled HTTPFault: the listener-level configuration or a
// route's. It is immutable and safe for concurrent use.
type Settings struct {
	headers         router.HeaderMatchers
	upstreamCluster string
	maxActive       int64 // < 0: unlimited
	delay           *delayConfig
	abort           *abortConfig
}

// delayConfig is HTTPFault.delay.
type delayConfig struct {
	fixed      time.Duration
	fromHeader bool // header_delay: x-envoy-fault-delay-request
	pct        router.Fraction
}

// abortConfig is HTTPFault.abort.
type abortConfig struct {
	httpStatus int // 0 with a gRPC or header abort
	grpcStatus int
	isGRPC     bool
	fromHeader bool // header_abort: x-envoy-fault-abort-(grpc-)request
	pct        router.Fraction
}

// Empty reports whether the settings inject nothing (no delay, no abort).
func (st *Settings) Empty() bool { return st.delay == nil && st.abort == nil }

// Compile validates and compiles an HTTPFault. Errors name the field.
func Compile(cfg *faultv3.HTTPFault) (*Settings, error) {
	if err := router.CheckFields(cfg, "", "delay", "abort", "upstream_cluster", "headers", "max_active_faults",
		"disable_downstream_cluster_stats"); err != nil {
		return nil, err
	}
	st := &Settings{upstreamCluster: cfg.GetUpstreamCluster(), maxActive: -1}
	if v := cfg.GetMaxActiveFaults(); v != nil {
		st.maxActive = int64(v.GetValue())
	}
	h, err := router.CompileHeaderMatchers(cfg.GetHeaders(), "headers")
	if err != nil {
		return nil, err
	}
	st.headers = h
	if d := cfg.GetDelay(); d != nil {
		if st.delay, err = compileDelay(d); err != nil {
			return nil, err
		}
	}
	if a := cfg.GetAbort(); a != nil {
		if st.abort, err = compileAbort(a); err != nil {
			return nil, err
		}
	}
	return st, nil
}

func compileDelay(d *faultcommonv3.FaultDelay) (*delayConfig, error) {
	if err := router.CheckFields(d, "delay", "fixed_delay", "header_delay", "percentage"); err != nil {
		return nil, err
	}
	pct, err := router.CompileFraction(d.GetPercentage(), "delay.percentage")
	if err != nil {
		return nil, err
	}
	dc := &delayConfig{pct: pct}
	switch s := d.GetFaultDelaySecifier().(type) {
	case *faultcommonv3.FaultDelay_HeaderDelay_:
		dc.fromHeader = true
	case *faultcommonv3.FaultDelay_FixedDelay:
		if err := s.FixedDelay.CheckValid(); err != nil || s.FixedDelay.AsDuration() <= 0 {
			return nil, fmt.Errorf("delay.fixed_delay: must be a positive duration")
		}
		dc.fixed = s.FixedDelay.AsDuration()
	default:
		return nil, fmt.Errorf("delay: set fixed_delay or header_delay")
	}
	return dc, nil
}

func compileAbort(a *faultv3.FaultAbort) (*abortConfig, error) {
	if err := router.CheckFields(a, "abort", "http_status", "grpc_status", "header_abort", "percentage"); err != nil {
		return nil, err
	}
	pct, err := router.CompileFraction(a.GetPercentage(), "abort.percentage")
	if err != nil {
		return nil, err
	}
	ac := &abortConfig{pct: pct}
	switch s := a.GetErrorType().(type) {
	case *faultv3.FaultAbort_HttpStatus:
		// Envoy's API: http_status in [200, 600).
		if s.HttpStatus < 200 || s.HttpStatus >= 600 {
			return nil, fmt.Errorf("abort.http_status: must be in [200, 600), got %d", s.HttpStatus)
		}
		ac.httpStatus = int(s.HttpStatus)
	case *faultv3.FaultAbort_GrpcStatus:
		ac.grpcStatus, ac.isGRPC = int(s.GrpcStatus), true
	case *faultv3.FaultAbort_HeaderAbort_:
		ac.fromHeader = true
	default:
		return nil, fmt.Errorf("abort: set http_status, grpc_status or header_abort")
	}
	return ac, nil
}
