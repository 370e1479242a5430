package server

import (
	"fmt"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"

	"github.com/weftmesh/weft/internal/proxy/istiostats"
	"github.com/weftmesh/weft/internal/proxy/network"
	"github.com/weftmesh/weft/internal/proxy/tcpproxy"
)

// istioNetworkFilter takes an istio.stats network filter (a TypedStruct of
// stats.PluginConfig, as Istio puts it before tcp_proxy) off the front of
// fs, which comes after i network RBAC filters. It returns the remaining
// filters and the filter (nil when there is none).
func (s *Server) istioNetworkFilter(fs []*listenerv3.Filter, i int, dir corev3.TrafficDirection) ([]*listenerv3.Filter, *istiostats.NetworkFilter, error) {
	if len(fs) < 2 || !istiostats.IsConfig(fs[0].GetTypedConfig()) {
		return fs, nil, nil
	}
	f, err := istiostats.NewNetwork(fs[0].GetTypedConfig(), s.istio, dir)
	if err != nil {
		return nil, nil, fmt.Errorf("filters[%d].typed_config (istio.stats).%w", i, err)
	}
	return fs[1:], f, nil
}

// observeTCP attaches the istio.stats network filter to the terminal
// tcp_proxy; before a connection manager it is an error (Istio records
// HTTP with the HTTP filter).
func observeTCP(h network.Handler, f *istiostats.NetworkFilter) error {
	p, ok := h.(*tcpproxy.Proxy)
	if !ok {
		return fmt.Errorf("filters: the istio.stats network filter is supported before tcp_proxy only (use the istio.stats HTTP filter in http_filters)")
	}
	p.Observer = f
	return nil
}
