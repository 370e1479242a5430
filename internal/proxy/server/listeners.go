package server

import (
	"fmt"
	"net/netip"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	tlsinspectorv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/tls_inspector/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	"google.golang.org/protobuf/proto"

	"github.com/weftmesh/weft/internal/proxy/hcm"
	"github.com/weftmesh/weft/internal/proxy/listener"
	"github.com/weftmesh/weft/internal/proxy/listener/chainmatch"
	"github.com/weftmesh/weft/internal/proxy/listener/tlsinspect"
	"github.com/weftmesh/weft/internal/proxy/network"
	"github.com/weftmesh/weft/internal/proxy/routerfilter"
	"github.com/weftmesh/weft/internal/proxy/tcpproxy"
)

// builtListener is a listener's configuration with its compiled filter
// chains and its socket.
type builtListener struct {
	cfg *listenerv3.Listener
	// sock is the listener: with a socket, or without one for
	// bind_to_port false (it serves connections handed over by a
	// use_original_dst listener: handoff.go); nil in validate mode.
	sock   *listener.Listener
	chains *listener.Chains
	// built holds every chain: filter_chains in order, then the default.
	built []*builtChain
}

// name returns the listener's name.
func (b *builtListener) name() string { return b.cfg.GetName() }

// managers returns the connection managers of the listener's chains.
func (b *builtListener) managers() []*hcm.Manager {
	var out []*hcm.Manager
	for _, c := range b.built {
		if c.mgr != nil {
			out = append(out, c.mgr)
		}
	}
	return out
}

// listenerAddr is a listener's configured address: ip:port, and whether
// it binds a socket.
type listenerAddr struct {
	ap   netip.AddrPort
	bind bool
}

func parseListenerAddr(cfg *listenerv3.Listener) (listenerAddr, error) {
	sa := cfg.GetAddress().GetSocketAddress()
	if sa == nil {
		return listenerAddr{}, fmt.Errorf("address.socket_address: required")
	}
	ip, err := netip.ParseAddr(sa.GetAddress())
	if err != nil {
		return listenerAddr{}, fmt.Errorf("address.socket_address.address: %q is not an IP address", sa.GetAddress())
	}
	bind := cfg.GetBindToPort() == nil || cfg.GetBindToPort().GetValue()
	return listenerAddr{ap: netip.AddrPortFrom(ip, uint16(sa.GetPortValue())), bind: bind}, nil
}

// buildListener builds a listener's chains and, when sock is nil and the
// listener binds, its socket. reuse holds the chains of the listener it
// updates: an unchanged chain is taken over, connections and all. On error
// nothing it built is left open.
func (s *Server) buildListener(cfg *listenerv3.Listener, reuse []*builtChain, sock *listener.Listener) (*builtListener, error) {
	la, err := parseListenerAddr(cfg)
	if err != nil {
		return nil, err
	}
	bl := &builtListener{cfg: cfg, sock: sock}
	chains, err := s.buildChains(bl, cfg, reuse)
	if err != nil {
		return nil, err
	}
	bl.chains = chains
	if sock == nil {
		lcfg := listener.Config{
			Name:       cfg.GetName(),
			Address:    la.ap.String(),
			IPv4Compat: cfg.GetAddress().GetSocketAddress().GetIpv4Compat(),
			StatPrefix: cfg.GetStatPrefix(),
			Stats:      s.stats,
			Chains:     chains,
		}
		listen := listener.Listen
		if !la.bind {
			listen = listener.NewUnbound
		}
		l, err := listen(lcfg)
		if err != nil {
			closeNew(bl.built, reuse)
			return nil, fmt.Errorf("address: %w", err)
		}
		bl.sock = l
	}
	return bl, nil
}

// closeNew closes the chains of built that are not taken over from reuse.
func closeNew(built, reuse []*builtChain) {
	for _, c := range built {
		if !containsChain(reuse, c) {
			c.close()
		}
	}
}

func containsChain(list []*builtChain, c *builtChain) bool {
	for _, x := range list {
		if x == c {
			return true
		}
	}
	return false
}

// buildChains builds the listener filters and filter chains into bl.built.
func (s *Server) buildChains(bl *builtListener, cfg *listenerv3.Listener, reuse []*builtChain) (*listener.Chains, error) {
	chains := &listener.Chains{FiltersTimeout: 15 * time.Second, BufferLimit: 1 << 20}
	if d := cfg.GetListenerFiltersTimeout(); d != nil {
		chains.FiltersTimeout = d.AsDuration()
	}
	chains.ContinueOnTimeout = cfg.GetContinueOnListenerFiltersTimeout()
	if v := cfg.GetPerConnectionBufferLimitBytes(); v != nil {
		chains.BufferLimit = int(v.GetValue())
	}
	if err := listenerFilters(chains, cfg); err != nil {
		return nil, err
	}
	s.originalDstChains(chains, cfg)
	if err := s.listenerAccessLogs(chains, cfg); err != nil {
		return nil, err
	}
	for i, fc := range cfg.GetFilterChains() {
		c, err := s.chainFor(fc, reuse, cfg.GetTrafficDirection())
		if err != nil {
			closeNew(bl.built, reuse)
			return nil, fmt.Errorf("filter_chains[%d]: %w", i, err)
		}
		bl.built = append(bl.built, c)
		chains.Handlers = append(chains.Handlers, c)
	}
	if fc := cfg.GetDefaultFilterChain(); fc != nil {
		c, err := s.chainFor(fc, reuse, cfg.GetTrafficDirection())
		if err != nil {
			closeNew(bl.built, reuse)
			return nil, fmt.Errorf("default_filter_chain: %w", err)
		}
		bl.built = append(bl.built, c)
		chains.Default = c
	}
	m, err := chainmatch.Compile(cfg.GetFilterChains(), cfg.GetDefaultFilterChain())
	if err != nil {
		closeNew(bl.built, reuse)
		return nil, err
	}
	chains.Matcher = m
	return chains, nil
}

// listenerFilters sets up the listener filters: tls_inspector and
// original_dst (which runs first whatever its position: weft has no other
// filter whose result it could change).
func listenerFilters(chains *listener.Chains, cfg *listenerv3.Listener) error {
	for i, lf := range cfg.GetListenerFilters() {
		if isOriginalDst(lf) {
			chains.RestoreOriginalDst = true
			continue
		}
		if lf.GetTypedConfig() != nil && lf.GetTypedConfig().MessageIs(&tlsinspectorv3.TlsInspector{}) || lf.GetName() == "envoy.filters.listener.tls_inspector" {
			var ti tlsinspectorv3.TlsInspector
			if lf.GetTypedConfig() != nil {
				if err := lf.GetTypedConfig().UnmarshalTo(&ti); err != nil {
					return fmt.Errorf("listener_filters[%d].typed_config: %w", i, err)
				}
			}
			in, err := tlsinspect.New(tlsinspect.Options{MaxClientHelloSize: int(ti.GetMaxClientHelloSize().GetValue())})
			if err != nil {
				return fmt.Errorf("listener_filters[%d]: %w", i, err)
			}
			chains.TLSInspector = in
			continue
		}
		return fmt.Errorf("listener_filters[%d] (%s): not supported by weft-proxy (tls_inspector and original_dst are)", i, lf.GetName())
	}
	return nil
}

// chainFor returns the chain of reuse whose configuration equals fc (an
// unchanged chain keeps serving its connections, as Envoy's in-place
// filter chain update does), or builds a new one.
func (s *Server) chainFor(fc *listenerv3.FilterChain, reuse []*builtChain, dir corev3.TrafficDirection) (*builtChain, error) {
	for _, c := range reuse {
		if !c.closed.Load() && proto.Equal(c.cfg, fc) {
			return c, nil
		}
	}
	c := newChain(fc, &s.healthFailed)
	srv, err := s.chainTLS(fc.GetTransportSocket())
	if err != nil {
		return nil, err
	}
	c.tls = srv
	h, mgr, err := s.buildFilter(fc, c.drain, dir)
	if err != nil {
		return nil, err
	}
	c.h, c.mgr = h, mgr
	if mgr != nil && mgr.RDSName() != "" && s.dyn != nil {
		// A connection manager fed by RDS starts with the route
		// configuration already received, when there is one.
		if err := s.dyn.routesFor(mgr); err != nil {
			c.close()
			return nil, fmt.Errorf("filters[0].typed_config (http_connection_manager).rds: %w", err)
		}
	}
	return c, nil
}

// buildTerminal builds a filter chain's terminal network filter (after
// its RBAC filters: rbac.go).
// dir is the listener's traffic_direction (the connection manager's
// tracing operation: tracing.go).
func (s *Server) buildTerminal(fs []*listenerv3.Filter, drain network.Draining, dir corev3.TrafficDirection) (network.Handler, *hcm.Manager, error) {
	if len(fs) != 1 {
		return nil, nil, fmt.Errorf("filters: one terminal network filter is supported (http_connection_manager or tcp_proxy, after any envoy.filters.network.rbac), got %d", len(fs))
	}
	f := fs[0]
	tc := f.GetTypedConfig()
	if tc == nil {
		return nil, nil, fmt.Errorf("filters[0] (%s).typed_config: required", f.GetName())
	}
	switch {
	case tc.MessageIs(&hcmv3.HttpConnectionManager{}):
		var cfg hcmv3.HttpConnectionManager
		if err := tc.UnmarshalTo(&cfg); err != nil {
			return nil, nil, fmt.Errorf("filters[0].typed_config: %w", err)
		}
		m, err := hcm.New(&cfg, hcm.Options{
			Stats:        s.stats,
			Filters:      s.httpFilters(cfg.GetStatPrefix(), dir),
			FilterDeps:   routerfilter.Deps{Clusters: s.clusters},
			Drain:        drain,
			OnStreamDone: s.o.OnStreamDone,
			AccessLogs:   s.alogs,
			Tracing:      s.tracingOptions(dir),
		})
		if err != nil {
			return nil, nil, fmt.Errorf("filters[0].typed_config (http_connection_manager).%w", err)
		}
		return m, m, nil
	case tc.MessageIs(&tcpv3.TcpProxy{}):
		var cfg tcpv3.TcpProxy
		if err := tc.UnmarshalTo(&cfg); err != nil {
			return nil, nil, fmt.Errorf("filters[0].typed_config: %w", err)
		}
		p, err := tcpproxy.New(&cfg, s.clusters, s.stats)
		if err == nil {
			err = s.tcpAccessLogs(p, &cfg)
		}
		if err != nil {
			return nil, nil, fmt.Errorf("filters[0].typed_config (tcp_proxy).%w", err)
		}
		return p, nil, nil
	}
	return nil, nil, fmt.Errorf("filters[0].typed_config: type %s is not supported (http_connection_manager, tcp_proxy)", tc.MessageName())
}
