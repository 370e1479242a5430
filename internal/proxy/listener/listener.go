// Package listener runs weft-proxy's listeners: it accepts downstream
// connections, runs the listener filters (tls_inspector), chooses the
// filter chain with Envoy's filter_chain_match rules and hands the
// connection to the chain's terminal network filter on its own goroutine.
// It also tracks connections, so the server can drain and close them.
package listener

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/weftmesh/weft/internal/proxy/accesslog"
	"github.com/weftmesh/weft/internal/proxy/listener/chainmatch"
	"github.com/weftmesh/weft/internal/proxy/listener/tlsinspect"
	"github.com/weftmesh/weft/internal/proxy/network"
	"github.com/weftmesh/weft/internal/proxy/stats"
	"github.com/weftmesh/weft/internal/proxy/streaminfo"
)

// Chains is a listener's filter chains, compiled. It is immutable; a
// listener update swaps it whole.
type Chains struct {
	Matcher  *chainmatch.Matcher
	Handlers []network.Handler // by filter chain index
	Default  network.Handler   // default_filter_chain, nil when absent
	// TLSInspector is set when the listener has the tls_inspector filter.
	TLSInspector *tlsinspect.Inspector
	// FiltersTimeout is listener_filters_timeout (Envoy's default 15 s; 0
	// disables it).
	FiltersTimeout    time.Duration
	ContinueOnTimeout bool
	BufferLimit       int
	// AccessLogs is the listener's access_log: it logs the connections
	// no filter chain takes (flag NR), as Envoy's listener access logs.
	AccessLogs accesslog.Loggers
	// RestoreOriginalDst runs the original_dst listener filter first: the
	// connection's local address becomes its original destination
	// (handoff.go).
	RestoreOriginalDst bool
	// HandOff is set for a listener with use_original_dst: it returns the
	// listener a connection whose original destination is addr goes to,
	// or nil when it stays here. It must not block.
	HandOff func(addr netip.AddrPort) *Listener
}

// Config is what a listener needs to bind.
type Config struct {
	Name string
	// Address is "ip:port"; port 0 picks a free port.
	Address string
	// IPv4Compat lets an IPv6 wildcard listener accept IPv4 too (Envoy's
	// ipv4_compat); otherwise IPv6 sockets are IPv6-only, as in Envoy.
	IPv4Compat bool
	// StatPrefix names the listener's stats (default: the address with
	// ':' replaced by '_', as Envoy).
	StatPrefix string
	Stats      *stats.Store
	Chains     *Chains
}

// Listener is one bound listener.
type Listener struct {
	name string
	ln   net.Listener // nil for a listener without a socket (handoff.go)
	// addr is the configured address of a listener without a socket.
	addr   netip.AddrPort
	chains atomic.Pointer[Chains]
	stats  listenerStats

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

type listenerStats struct {
	cxTotal, cxDestroy, noChain, preCxTimeout, helloTooLarge *stats.Counter
	cxActive                                                 *stats.Gauge
}

// Listen binds the listener's socket.
func Listen(cfg Config) (*Listener, error) {
	lc := net.ListenConfig{Control: func(network, address string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1)
			if serr == nil && strings.HasSuffix(network, "6") {
				v6only := 1
				if cfg.IPv4Compat {
					v6only = 0
				}
				serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_IPV6, syscall.IPV6_V6ONLY, v6only)
			}
		})
		if err != nil {
			return err
		}
		return serr
	}}
	ap, err := netip.ParseAddrPort(cfg.Address)
	if err != nil {
		return nil, err
	}
	netw := "tcp4"
	if ap.Addr().Is6() {
		netw = "tcp6"
	}
	ln, err := lc.Listen(context.Background(), netw, cfg.Address)
	if err != nil {
		return nil, err
	}
	return newListener(cfg, ln, ap), nil
}

// newListener makes the listener of cfg around ln (nil: no socket).
func newListener(cfg Config, ln net.Listener, ap netip.AddrPort) *Listener {
	prefix := cfg.StatPrefix
	if prefix == "" {
		a := ap.String()
		if ln != nil {
			a = ln.Addr().String()
		}
		prefix = strings.ReplaceAll(a, ":", "_")
		prefix = strings.NewReplacer("[", "", "]", "").Replace(prefix)
	}
	sc := cfg.Stats.Root().Tagged("listener", "envoy_listener_address", prefix)
	l := &Listener{
		name:  cfg.Name,
		ln:    ln,
		addr:  ap,
		conns: map[net.Conn]struct{}{},
		stats: listenerStats{
			cxTotal:       sc.Counter("downstream_cx_total"),
			cxDestroy:     sc.Counter("downstream_cx_destroy"),
			noChain:       sc.Counter("no_filter_chain_match"),
			preCxTimeout:  sc.Counter("downstream_pre_cx_timeout"),
			helloTooLarge: sc.Counter("tls_inspector.client_hello_too_large"),
			cxActive:      sc.Gauge("downstream_cx_active"),
		},
	}
	l.chains.Store(cfg.Chains)
	return l
}

// Name returns the listener's name.
func (l *Listener) Name() string { return l.name }

// Addr returns the bound address (useful when the port was 0), or the
// configured address of a listener without a socket.
func (l *Listener) Addr() net.Addr {
	if l.ln == nil {
		return net.TCPAddrFromAddrPort(l.addr)
	}
	return l.ln.Addr()
}

// SetChains replaces the filter chains; new connections use them.
func (l *Listener) SetChains(c *Chains) { l.chains.Store(c) }

// Serve accepts connections until StopAccepting. It returns nil then, and
// at once for a listener without a socket.
func (l *Listener) Serve() error {
	if l.ln == nil {
		return nil
	}
	var backoff time.Duration
	for {
		nc, err := l.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			// Temporary failures (EMFILE...): back off as net/http does.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		if !l.track(nc) {
			nc.Close()
			continue
		}
		go l.accepted(nc)
	}
}

func (l *Listener) track(nc net.Conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return false
	}
	l.conns[nc] = struct{}{}
	l.wg.Add(1)
	return true
}

// forget removes a tracked connection from the listener (it closed, or
// went to another listener).
func (l *Listener) forget(nc net.Conn) {
	l.mu.Lock()
	delete(l.conns, nc)
	l.mu.Unlock()
	l.wg.Done()
}

// accepted serves a connection the listener accepted, on its own
// goroutine: the original_dst filter and the hand-off first (handoff.go),
// then handle.
func (l *Listener) accepted(nc net.Conn) {
	ch := l.chains.Load()
	c := &network.Conn{
		Conn:              nc,
		Local:             addrPort(nc.LocalAddr()),
		Remote:            addrPort(nc.RemoteAddr()),
		TransportProtocol: tlsinspect.TransportRawBuffer,
		ListenerName:      l.name,
		Accepted:          time.Now(),
		BufferLimit:       ch.BufferLimit,
	}
	if ch.RestoreOriginalDst {
		restoreOriginalDst(c)
	}
	if to := l.handOffTarget(c, ch); to != nil {
		l.forget(nc)
		to.adopt(c)
		return
	}
	l.handle(c, ch)
}

// handle runs the listener filters and the filter chain for one
// connection, with the listener's stats; the connection is tracked.
func (l *Listener) handle(c *network.Conn, ch *Chains) {
	l.stats.cxTotal.Inc()
	l.stats.cxActive.Inc()
	defer func() {
		l.stats.cxActive.Dec()
		l.stats.cxDestroy.Inc()
		l.forget(c.Conn)
	}()
	defer c.Conn.Close()
	if ch.TLSInspector != nil && !l.inspect(c, ch) {
		return
	}
	info := chainmatch.ConnInfo{
		Local:                c.Local,
		Remote:               c.Remote,
		ServerName:           c.ServerName,
		TransportProtocol:    c.TransportProtocol,
		ApplicationProtocols: c.ALPN,
	}
	var h network.Handler
	switch idx := ch.Matcher.Match(&info); {
	case idx >= 0:
		h = ch.Handlers[idx]
	case idx == chainmatch.DefaultChain:
		h = ch.Default
	}
	if h == nil {
		l.stats.noChain.Inc()
		if len(ch.AccessLogs) > 0 {
			logNoChain(c, ch.AccessLogs)
		}
		return
	}
	h.ServeConn(c)
}

// inspect runs tls_inspector under listener_filters_timeout. It reports
// whether the connection goes on to a filter chain.
func (l *Listener) inspect(c *network.Conn, ch *Chains) bool {
	if ch.FiltersTimeout > 0 {
		c.Conn.SetReadDeadline(time.Now().Add(ch.FiltersTimeout))
	}
	// Read through c: bytes a listener that handed the connection over
	// already peeked at come first, and stay peeked.
	res, peeked, err := ch.TLSInspector.ReadClientHello(c, nil)
	c.Peeked = peeked
	if ch.FiltersTimeout > 0 {
		c.Conn.SetReadDeadline(time.Time{})
	}
	switch {
	case err == nil:
		c.TransportProtocol = res.TransportProtocol()
		c.ServerName = res.ServerName
		c.ALPN = res.ALPN
		return true
	case errors.Is(err, tlsinspect.ErrClientHelloTooLarge):
		l.stats.helloTooLarge.Inc()
		return false
	case isTimeout(err):
		l.stats.preCxTimeout.Inc()
		// Envoy: continue_on_listener_filters_timeout sends the
		// connection on as if the filter had found nothing.
		return ch.ContinueOnTimeout
	}
	return false
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func addrPort(a net.Addr) netip.AddrPort {
	if t, ok := a.(*net.TCPAddr); ok {
		ap := t.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	return netip.AddrPort{}
}

// StopAccepting closes the listening socket; connections go on.
func (l *Listener) StopAccepting() error {
	l.mu.Lock()
	l.closed = true
	l.mu.Unlock()
	if l.ln == nil {
		return nil
	}
	return l.ln.Close()
}

// Wait waits for every connection to end, or for ctx.
func (l *Listener) Wait(ctx context.Context) error {
	done := make(chan struct{})
	go func() {
		l.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// CloseConns closes every connection at once.
func (l *Listener) CloseConns() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for c := range l.conns {
		c.Close()
	}
}

// ActiveConns returns the number of open connections.
func (l *Listener) ActiveConns() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.conns)
}

// logNoChain writes the listener access log line of a connection no
// filter chain took, as Envoy's ActiveStreamListenerBase does: flag NR
// ("no matching filter chain for a downstream connection") and response
// code details "filter_chain_not_found".
func logNoChain(c *network.Conn, ls accesslog.Loggers) {
	info := streaminfo.Info{
		StartTime:        c.Accepted,
		DownstreamRemote: c.Remote,
		DownstreamLocal:  c.Local,
		Flags:            streaminfo.NoRouteFound,
		Details:          "filter_chain_not_found",
	}
	if info.StartTime.IsZero() {
		info.StartTime = time.Now()
	}
	info.Duration = time.Since(info.StartTime)
	ls.Log(&accesslog.Entry{Info: &info, Conn: c, TCP: true})
}
