package server

import (
	"net/netip"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	origdstv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/original_dst/v3"

	"github.com/weftmesh/weft/internal/proxy/listener"
)

// listenerIndex maps the address of every active listener (bound or
// bind_to_port false) to it, for the hand-off of connections accepted by
// use_original_dst listeners. It is immutable; reindex swaps it whole.
type listenerIndex map[netip.AddrPort]*listener.Listener

// isOriginalDst reports whether a listener filter is
// envoy.filters.listener.original_dst.
func isOriginalDst(lf *listenerv3.ListenerFilter) bool {
	if tc := lf.GetTypedConfig(); tc != nil {
		return tc.MessageIs(&origdstv3.OriginalDst{})
	}
	return lf.GetName() == "envoy.filters.listener.original_dst"
}

// originalDstChains sets the chains' original destination handling:
// use_original_dst implies the original_dst filter (Envoy adds it to such a
// listener) and hands connections over to the listener of their original
// destination.
func (s *Server) originalDstChains(chains *listener.Chains, cfg *listenerv3.Listener) {
	if cfg.GetUseOriginalDst().GetValue() {
		chains.RestoreOriginalDst = true
		chains.HandOff = s.handOff
	}
}

// handOff returns the active listener at addr, else at the wildcard
// address of addr's family and port (0.0.0.0:port or [::]:port), as Envoy's
// getBalancedHandlerByAddress; nil when there is none. Lock-free.
func (s *Server) handOff(addr netip.AddrPort) *listener.Listener {
	idx := s.listenerIdx.Load()
	if idx == nil {
		return nil
	}
	if l := (*idx)[addr]; l != nil {
		return l
	}
	any := netip.IPv4Unspecified()
	if addr.Addr().Is6() {
		any = netip.IPv6Unspecified()
	}
	return (*idx)[netip.AddrPortFrom(any, addr.Port())]
}

// reindex rebuilds the listener index from the static listeners and the
// active dynamic ones. Callers hold d.mu when there is a dynamic state.
func (s *Server) reindex() {
	idx := listenerIndex{}
	add := func(bl *builtListener) {
		if bl != nil && bl.sock != nil {
			idx[bl.sock.AddrPort()] = bl.sock
		}
	}
	for _, bl := range s.static {
		add(bl)
	}
	if s.dyn != nil {
		for _, e := range s.dyn.listeners {
			add(e.active)
		}
	}
	s.listenerIdx.Store(&idx)
}
