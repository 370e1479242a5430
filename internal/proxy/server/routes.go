package server

import (
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
)

// inlineRoutes returns the inline route configurations of a listener's
// connection managers, for /config_dump.
func inlineRoutes(l *listenerv3.Listener) []*routev3.RouteConfiguration {
	var out []*routev3.RouteConfiguration
	chains := append([]*listenerv3.FilterChain(nil), l.GetFilterChains()...)
	if l.GetDefaultFilterChain() != nil {
		chains = append(chains, l.GetDefaultFilterChain())
	}
	for _, fc := range chains {
		for _, f := range fc.GetFilters() {
			var h hcmv3.HttpConnectionManager
			if f.GetTypedConfig() == nil || !f.GetTypedConfig().MessageIs(&h) {
				continue
			}
			if f.GetTypedConfig().UnmarshalTo(&h) == nil && h.GetRouteConfig() != nil {
				out = append(out, h.GetRouteConfig())
			}
		}
	}
	return out
}
