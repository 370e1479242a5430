package server

import (
	"fmt"
	"net/netip"
	"time"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	tlsinspectorv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/tls_inspector/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"

	"github.com/weftmesh/weft/internal/proxy/hcm"
	"github.com/weftmesh/weft/internal/proxy/listener"
	"github.com/weftmesh/weft/internal/proxy/listener/chainmatch"
	"github.com/weftmesh/weft/internal/proxy/listener/tlsinspect"
	"github.com/weftmesh/weft/internal/proxy/network"
	"github.com/weftmesh/weft/internal/proxy/routerfilter"
	"github.com/weftmesh/weft/internal/proxy/tcpproxy"
)

// builtListener is a bound listener with the connection managers its
// chains own.
type builtListener struct {
	cfg      *listenerv3.Listener
	l        *listener.Listener
	managers []*hcm.Manager
}

func (b *builtListener) close() {
	for _, m := range b.managers {
		m.Close()
	}
}

func (s *Server) buildListener(cfg *listenerv3.Listener) (*builtListener, error) {
	sa := cfg.GetAddress().GetSocketAddress()
	if sa == nil {
		return nil, fmt.Errorf("address.socket_address: required")
	}
	ip, err := netip.ParseAddr(sa.GetAddress())
	if err != nil {
		return nil, fmt.Errorf("address.socket_address.address: %q is not an IP address", sa.GetAddress())
	}
	bl := &builtListener{cfg: cfg}
	chains, err := s.buildChains(bl, cfg)
	if err != nil {
		bl.close()
		return nil, err
	}
	l, err := listener.Listen(listener.Config{
		Name:       cfg.GetName(),
		Address:    netip.AddrPortFrom(ip, uint16(sa.GetPortValue())).String(),
		IPv4Compat: sa.GetIpv4Compat(),
		StatPrefix: cfg.GetStatPrefix(),
		Stats:      s.stats,
		Chains:     chains,
	})
	if err != nil {
		bl.close()
		return nil, fmt.Errorf("address: %w", err)
	}
	bl.l = l
	return bl, nil
}

// buildChains builds the listener filters and filter chains.
func (s *Server) buildChains(bl *builtListener, cfg *listenerv3.Listener) (*listener.Chains, error) {
	chains := &listener.Chains{FiltersTimeout: 15 * time.Second, BufferLimit: 1 << 20}
	if d := cfg.GetListenerFiltersTimeout(); d != nil {
		chains.FiltersTimeout = d.AsDuration()
	}
	chains.ContinueOnTimeout = cfg.GetContinueOnListenerFiltersTimeout()
	if v := cfg.GetPerConnectionBufferLimitBytes(); v != nil {
		chains.BufferLimit = int(v.GetValue())
	}
	for i, lf := range cfg.GetListenerFilters() {
		if lf.GetTypedConfig() != nil && lf.GetTypedConfig().MessageIs(&tlsinspectorv3.TlsInspector{}) || lf.GetName() == "envoy.filters.listener.tls_inspector" {
			var ti tlsinspectorv3.TlsInspector
			if lf.GetTypedConfig() != nil {
				if err := lf.GetTypedConfig().UnmarshalTo(&ti); err != nil {
					return nil, fmt.Errorf("listener_filters[%d].typed_config: %w", i, err)
				}
			}
			in, err := tlsinspect.New(tlsinspect.Options{MaxClientHelloSize: int(ti.GetMaxClientHelloSize().GetValue())})
			if err != nil {
				return nil, fmt.Errorf("listener_filters[%d]: %w", i, err)
			}
			chains.TLSInspector = in
			continue
		}
		return nil, fmt.Errorf("listener_filters[%d] (%s): not supported by weft-proxy (tls_inspector is)", i, lf.GetName())
	}
	for i, fc := range cfg.GetFilterChains() {
		h, err := s.buildChain(bl, fc)
		if err != nil {
			return nil, fmt.Errorf("filter_chains[%d]: %w", i, err)
		}
		chains.Handlers = append(chains.Handlers, h)
	}
	if fc := cfg.GetDefaultFilterChain(); fc != nil {
		h, err := s.buildChain(bl, fc)
		if err != nil {
			return nil, fmt.Errorf("default_filter_chain: %w", err)
		}
		chains.Default = h
	}
	m, err := chainmatch.Compile(cfg.GetFilterChains(), cfg.GetDefaultFilterChain())
	if err != nil {
		return nil, err
	}
	chains.Matcher = m
	return chains, nil
}

// buildChain builds a filter chain's terminal network filter.
func (s *Server) buildChain(bl *builtListener, fc *listenerv3.FilterChain) (network.Handler, error) {
	fs := fc.GetFilters()
	if len(fs) != 1 {
		return nil, fmt.Errorf("filters: exactly one network filter is supported (http_connection_manager or tcp_proxy), got %d", len(fs))
	}
	f := fs[0]
	tc := f.GetTypedConfig()
	if tc == nil {
		return nil, fmt.Errorf("filters[0] (%s).typed_config: required", f.GetName())
	}
	switch {
	case tc.MessageIs(&hcmv3.HttpConnectionManager{}):
		var cfg hcmv3.HttpConnectionManager
		if err := tc.UnmarshalTo(&cfg); err != nil {
			return nil, fmt.Errorf("filters[0].typed_config: %w", err)
		}
		m, err := hcm.New(&cfg, hcm.Options{
			Stats:        s.stats,
			Filters:      s.filters,
			FilterDeps:   routerfilter.Deps{Clusters: s.clusters},
			Drain:        &s.drain,
			OnStreamDone: s.o.OnStreamDone,
		})
		if err != nil {
			return nil, fmt.Errorf("filters[0].typed_config (http_connection_manager).%w", err)
		}
		bl.managers = append(bl.managers, m)
		return m, nil
	case tc.MessageIs(&tcpv3.TcpProxy{}):
		var cfg tcpv3.TcpProxy
		if err := tc.UnmarshalTo(&cfg); err != nil {
			return nil, fmt.Errorf("filters[0].typed_config: %w", err)
		}
		p, err := tcpproxy.New(&cfg, s.clusters, s.stats)
		if err != nil {
			return nil, fmt.Errorf("filters[0].typed_config (tcp_proxy).%w", err)
		}
		return p, nil
	}
	return nil, fmt.Errorf("filters[0].typed_config: type %s is not supported (http_connection_manager, tcp_proxy)", tc.MessageName())
}
