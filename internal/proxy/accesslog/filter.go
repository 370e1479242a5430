package accesslog

import (
	"fmt"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"

	"github.com/weftmesh/weft/internal/proxy/streaminfo"
)

type filterKind uint8

const (
	filterStatus filterKind = iota + 1
	filterDuration
	filterNotHealthCheck
	filterFlags
	filterAnd
	filterOr
)

// filter is a compiled AccessLogFilter. It is a concrete tree (not an
// interface) so that matching an Entry does not make it escape.
type filter struct {
	kind  filterKind
	op    accesslogv3.ComparisonFilter_Op
	value int64                    // status code, or duration in ms
	flags streaminfo.ResponseFlags // filterFlags: 0 means "any flag"
	subs  []filter                 // and, or
}

// match reports whether e is logged, as Envoy's access log filters decide.
func (f *filter) match(e *Entry) bool {
	switch f.kind {
	case filterStatus:
		// Envoy compares a missing response code (TCP) as 0.
		return compare(f.op, int64(e.Info.ResponseCode), f.value)
	case filterDuration:
		return compare(f.op, e.Info.Duration.Milliseconds(), f.value)
	case filterNotHealthCheck:
		// weft-proxy has no health check filter
		// (envoy.filters.http.health_check), so no request is one.
		return true
	case filterFlags:
		if f.flags == 0 {
			return e.Info.Flags != 0
		}
		return e.Info.Flags&f.flags != 0
	case filterAnd:
		for i := range f.subs {
			if !f.subs[i].match(e) {
				return false
			}
		}
		return true
	case filterOr:
		for i := range f.subs {
			if f.subs[i].match(e) {
				return true
			}
		}
		return false
	}
	return true
}

func compare(op accesslogv3.ComparisonFilter_Op, v, want int64) bool {
	switch op {
	case accesslogv3.ComparisonFilter_GE:
		return v >= want
	case accesslogv3.ComparisonFilter_LE:
		return v <= want
	case accesslogv3.ComparisonFilter_NE:
		return v != want
	}
	return v == want
}

// compileFilter compiles an AccessLogFilter; errors name the field below
// path.
func compileFilter(cfg *accesslogv3.AccessLogFilter, path string) (filter, error) {
	switch s := cfg.GetFilterSpecifier().(type) {
	case *accesslogv3.AccessLogFilter_StatusCodeFilter:
		return compileComparison(filterStatus, s.StatusCodeFilter.GetComparison(), path+".status_code_filter")
	case *accesslogv3.AccessLogFilter_DurationFilter:
		return compileComparison(filterDuration, s.DurationFilter.GetComparison(), path+".duration_filter")
	case *accesslogv3.AccessLogFilter_NotHealthCheckFilter:
		return filter{kind: filterNotHealthCheck}, nil
	case *accesslogv3.AccessLogFilter_ResponseFlagFilter:
		f := filter{kind: filterFlags}
		for i, name := range s.ResponseFlagFilter.GetFlags() {
			flag, ok := streaminfo.ParseFlag(name)
			if !ok {
				return filter{}, fmt.Errorf("%s.response_flag_filter.flags[%d]: %q is not a response flag (UH, UF, UO, NR, URX, ...)", path, i, name)
			}
			f.flags |= flag
		}
		return f, nil
	case *accesslogv3.AccessLogFilter_AndFilter:
		return compileList(filterAnd, s.AndFilter.GetFilters(), path+".and_filter.filters")
	case *accesslogv3.AccessLogFilter_OrFilter:
		return compileList(filterOr, s.OrFilter.GetFilters(), path+".or_filter.filters")
	case nil:
		return filter{}, fmt.Errorf("%s: a filter is required (status_code_filter, duration_filter, response_flag_filter, not_health_check_filter, and_filter, or_filter)", path)
	}
	return filter{}, fmt.Errorf("%s: this filter is not supported by weft-proxy (status_code_filter, duration_filter, response_flag_filter, not_health_check_filter, and_filter, or_filter are)", path)
}

func compileComparison(kind filterKind, c *accesslogv3.ComparisonFilter, path string) (filter, error) {
	if c == nil {
		return filter{}, fmt.Errorf("%s.comparison: required", path)
	}
	// value.runtime_key is ignored: weft-proxy has no runtime, so the
	// default value applies, as it does in Envoy while the key is unset.
	return filter{kind: kind, op: c.GetOp(), value: int64(c.GetValue().GetDefaultValue())}, nil
}

func compileList(kind filterKind, fs []*accesslogv3.AccessLogFilter, path string) (filter, error) {
	if len(fs) < 2 {
		return filter{}, fmt.Errorf("%s: at least two filters are required", path)
	}
	f := filter{kind: kind, subs: make([]filter, len(fs))}
	for i, sub := range fs {
		c, err := compileFilter(sub, fmt.Sprintf("%s[%d]", path, i))
		if err != nil {
			return filter{}, err
		}
		f.subs[i] = c
	}
	return f, nil
}
