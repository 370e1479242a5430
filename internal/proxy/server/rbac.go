package server

import (
	"fmt"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	rbactcpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/rbac/v3"

	"github.com/weftmesh/weft/internal/proxy/hcm"
	"github.com/weftmesh/weft/internal/proxy/httpfilter"
	"github.com/weftmesh/weft/internal/proxy/network"
	"github.com/weftmesh/weft/internal/proxy/rbac"
)

// buildFilter builds a filter chain's network filters: any number of
// envoy.filters.network.rbac filters, then the terminal filter
// (http_connection_manager or tcp_proxy). A connection an RBAC filter
// denies is closed before the terminal filter sees it.
func (s *Server) buildFilter(fc *listenerv3.FilterChain, drain network.Draining, dir corev3.TrafficDirection) (network.Handler, *hcm.Manager, error) {
	fs := fc.GetFilters()
	var rbacs []*rbac.NetworkFilter
	for len(fs) > 1 && fs[0].GetTypedConfig().MessageIs(&rbactcpv3.RBAC{}) {
		i := len(rbacs)
		var cfg rbactcpv3.RBAC
		if err := fs[0].GetTypedConfig().UnmarshalTo(&cfg); err != nil {
			return nil, nil, fmt.Errorf("filters[%d].typed_config: %w", i, err)
		}
		f, err := rbac.NewNetwork(&cfg, s.stats.Root())
		if err != nil {
			return nil, nil, fmt.Errorf("filters[%d].typed_config (rbac).%w", i, err)
		}
		rbacs = append(rbacs, f)
		fs = fs[1:]
	}
	h, mgr, err := s.buildTerminal(fs, drain, dir)
	if err != nil {
		if len(rbacs) > 0 {
			err = fmt.Errorf("after %d network rbac filters: %w", len(rbacs), err)
		}
		return nil, nil, err
	}
	if len(rbacs) > 0 {
		h = &rbac.Handler{Filters: rbacs, Next: h, OnDenied: func(c *network.Conn, details string) {
			s.log.Debug("connection denied by network rbac", "listener", c.ListenerName, "remote", c.Remote.String(), "details", details)
		}}
	}
	return h, mgr, nil
}

// httpFilters returns the HTTP filter registry of one connection manager:
// the server's, plus envoy.filters.http.rbac and
// envoy.filters.http.jwt_authn with the manager's stats scope
// (http.<stat_prefix>.rbac.*, http.<stat_prefix>.jwt_authn.*), and
// envoy.filters.http.fault and envoy.filters.http.local_ratelimit.
func (s *Server) httpFilters(statPrefix string) *httpfilter.Registry {
	r := s.filters.Clone()
	scope := s.stats.Root().Tagged("http", "envoy_http_conn_manager_prefix", statPrefix)
	rbac.RegisterHTTP(r, scope)
	s.registerJWT(r, scope) // jwt.go
	// fault and local_ratelimit: resiliencefilters.go
	s.registerResilienceFilters(r, scope)
	return r
}
