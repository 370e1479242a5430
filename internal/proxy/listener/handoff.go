package listener

import (
	"net/netip"

	"github.com/weftmesh/weft/internal/proxy/network"
)

// NewUnbound makes a listener without a socket (Envoy's bind_to_port:
// false): it serves only the connections another listener with
// use_original_dst hands over to it (Adopt). cfg.Address is still its
// address, by which hand-off finds it.
func NewUnbound(cfg Config) (*Listener, error) {
	ap, err := netip.ParseAddrPort(cfg.Address)
	if err != nil {
		return nil, err
	}
	return newListener(cfg, nil, ap), nil
}

// Bound reports whether the listener has a socket.
func (l *Listener) Bound() bool { return l.ln != nil }

// AddrPort returns the listener's address: the bound one, or the
// configured one without a socket.
func (l *Listener) AddrPort() netip.AddrPort {
	if l.ln == nil {
		return l.addr
	}
	return addrPort(l.ln.Addr())
}

// restoreOriginalDst is Envoy's original_dst listener filter: the local
// address becomes the destination the connection had before netfilter
// redirected it. A connection that was not redirected keeps its address
// (SO_ORIGINAL_DST then returns it, or fails without conntrack) and is
// not marked restored, as Envoy restores only a different address.
func restoreOriginalDst(c *network.Conn) {
	ap, err := OriginalDst(c.Conn)
	if err != nil || !ap.IsValid() || ap == c.Local {
		return
	}
	c.Local = ap
	c.LocalRestored = true
}

// handOffTarget returns the listener a connection goes to when this one
// has use_original_dst, or nil when it stays. Envoy hands a connection
// whose local address was restored to the listener bound to that address,
// or to 0.0.0.0:port ([::]:port) when there is none
// (ConnectionHandlerImpl::getBalancedHandlerByAddress); a connection with
// no such listener stays on the one that accepted it.
func (l *Listener) handOffTarget(c *network.Conn, ch *Chains) *Listener {
	if ch.HandOff == nil || !c.LocalRestored {
		return nil
	}
	to := ch.HandOff(c.Local)
	if to == l {
		return nil
	}
	return to
}

// adopt serves a connection handed over by another listener on the
// calling goroutine: this listener's filters and filter chains, stats and
// drain. The connection is not handed over again, as in Envoy.
func (l *Listener) adopt(c *network.Conn) {
	if !l.track(c.Conn) {
		c.Conn.Close()
		return
	}
	ch := l.chains.Load()
	c.ListenerName = l.name
	c.BufferLimit = ch.BufferLimit
	l.handle(c, ch)
}
