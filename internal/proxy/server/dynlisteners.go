package server

import (
	"fmt"
	"sort"
	"time"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	"google.golang.org/protobuf/proto"

	"github.com/weftmesh/weft/internal/proxy/listener"
	"github.com/weftmesh/weft/internal/proxy/xdsclient"
)

// dynListener is a listener from LDS: the version serving and, while its
// route configurations have not all arrived, the warming version (Envoy's
// listener warming: a new listener starts accepting, and an updated one
// replaces the old, only once its RDS responses arrived or their
// initial_fetch_timeout passed).
type dynListener struct {
	active       *builtListener
	activeState  *resourceState
	warming      *builtListener
	warmingState *resourceState
	// routesTimedOut: the warming version's route configurations missed
	// their initial_fetch_timeout; it starts without them once its SDS
	// secrets are there (those have no timeout: Istio's SDS config
	// sources set initial_fetch_timeout 0, and a listener serving TLS
	// without its certificate would only fail handshakes).
	routesTimedOut bool
	warmTimer
}

// latest returns the newest configuration received.
func (l *dynListener) latest() proto.Message {
	if l.warming != nil {
		return l.warming.cfg
	}
	return l.active.cfg
}

// applyListeners applies an LDS response: removals first (state of the
// world; a removed listener stops accepting and drains), then additions
// and updates. Unchanged listeners are left alone.
func (d *dynamic) applyListeners(u *xdsclient.Update) map[string]error {
	errs := applySotW(d.listeners, u, d.removeListener, func(name string, msg proto.Message) error {
		if err := d.updateListener(msg.(*listenerv3.Listener), u.Version); err != nil {
			return fmt.Errorf("%s: %w", xdsclient.ResourcePath(xdsclient.ListenerType, name), err)
		}
		return nil
	})
	// Route configurations no listener names any more are dropped (the
	// client unsubscribes them).
	used := map[string]bool{}
	for _, n := range d.rdsNames() {
		used[n] = true
	}
	for n := range d.routes {
		if !used[n] {
			delete(d.routes, n)
		}
	}
	return errs
}

// updateListener adds or updates one listener. An update on the same
// address keeps the socket: new connections get the new filter chains,
// established connections stay on theirs; unchanged chains are taken over
// as they are (Envoy's in-place filter chain update), changed and removed
// ones drain. An update to another address binds the new one and drains
// the old listener.
func (d *dynamic) updateListener(cfg *listenerv3.Listener, version string) error {
	name := cfg.GetName()
	if d.isStaticListener(name) {
		return fmt.Errorf("a static listener of the bootstrap has this name; LDS cannot replace it")
	}
	e := d.listeners[name]
	if e != nil && proto.Equal(e.latest(), cfg) {
		return nil
	}
	la, err := parseListenerAddr(cfg)
	if err != nil {
		return err
	}
	if other := d.addressOwner(la, name); other != "" {
		return fmt.Errorf("address: %s is already used by listener %q", la.ap, other)
	}
	if e == nil {
		e = &dynListener{}
	}
	var reuse []*builtChain
	var sock *listener.Listener
	if e.active != nil {
		if inPlace(e.active.cfg, cfg) {
			reuse, sock = e.active.built, e.active.sock
		} else if ola, _ := parseListenerAddr(e.active.cfg); ola == la && la.bind && la.ap.Port() != 0 {
			// Same address, other socket settings: the socket must go
			// before the new one binds.
			d.s.retire(e.active.built, e.active.sock)
			e.active, e.activeState = nil, nil
		}
	}
	if e.warming != nil {
		d.discardWarming(e)
	}
	bl, err := d.s.buildListener(cfg, reuse, sock)
	if err != nil {
		if e.active == nil && e.warming == nil {
			delete(d.listeners, name)
		}
		return err
	}
	d.s.track(bl)
	d.listeners[name] = e
	rs := &resourceState{msg: cfg, version: version, updated: time.Now()}
	if err := d.s.sds.checkRefs(listenerSecretRefs(bl)); err != nil {
		d.s.discard(bl, reuse, sock)
		if e.active == nil {
			delete(d.listeners, name)
		}
		return err
	}
	if d.listenerReady(bl) {
		d.activate(e, bl, rs)
		return nil
	}
	e.warming, e.warmingState, e.routesTimedOut = bl, rs, false
	e.timer = d.warmTimer(d.routeTimeout(bl), func() {
		if d.listeners[name] == e && e.warming == bl {
			d.s.log.Warn("xds: route configurations missing after initial_fetch_timeout; the listener starts without them",
				"listener", name, "missing", d.missingRoutes(bl))
			e.routesTimedOut = true
			if d.listenerSecretsReady(bl) {
				d.activate(e, bl, e.warmingState)
			}
		}
	})
	return nil
}

// inPlace reports whether an update keeps the listener's socket: same
// address and binding, and the same socket settings.
func inPlace(old, next *listenerv3.Listener) bool {
	oa, err1 := parseListenerAddr(old)
	na, err2 := parseListenerAddr(next)
	return err1 == nil && err2 == nil && oa == na &&
		old.GetStatPrefix() == next.GetStatPrefix() &&
		old.GetAddress().GetSocketAddress().GetIpv4Compat() == next.GetAddress().GetSocketAddress().GetIpv4Compat()
}

func (d *dynamic) isStaticListener(name string) bool {
	for _, bl := range d.s.static {
		if bl.name() == name {
			return true
		}
	}
	return false
}

// addressOwner returns the name of another listener (static or dynamic,
// active or warming) bound to the same address, or "". Port 0 (a port
// picked at bind time) and unbound listeners never conflict.
func (d *dynamic) addressOwner(la listenerAddr, name string) string {
	if !la.bind || la.ap.Port() == 0 {
		return ""
	}
	same := func(cfg *listenerv3.Listener) bool {
		o, err := parseListenerAddr(cfg)
		return err == nil && o.bind && o.ap == la.ap
	}
	for _, bl := range d.s.static {
		if same(bl.cfg) {
			return bl.name()
		}
	}
	for _, other := range sortedNames(d.listeners) {
		e := d.listeners[other]
		if other == name {
			continue
		}
		for _, bl := range []*builtListener{e.active, e.warming} {
			if bl != nil && same(bl.cfg) {
				return other
			}
		}
	}
	return ""
}

// activate makes bl the serving version of e.
func (d *dynamic) activate(e *dynListener, bl *builtListener, rs *resourceState) {
	e.stopTimer()
	old := e.active
	e.active, e.activeState = bl, rs
	e.warming, e.warmingState = nil, nil
	e.activeState.updated = time.Now()
	switch {
	case old == nil:
		d.s.serve(bl.sock)
	case old.sock == bl.sock:
		// Same socket: new connections take the new chains; established
		// ones stay on theirs, and the chains that went drain.
		if bl.sock != nil {
			bl.sock.SetChains(bl.chains)
		}
		d.s.retire(chainsNotIn(old.built, bl.built), nil)
	default:
		d.s.serve(bl.sock)
		d.s.retire(old.built, old.sock)
	}
	d.s.reindex()
}

// discardWarming drops a warming version that never served.
func (d *dynamic) discardWarming(e *dynListener) {
	e.stopTimer()
	var keep []*builtChain
	var keepSock *listener.Listener
	if e.active != nil {
		keep, keepSock = e.active.built, e.active.sock
	}
	d.s.discard(e.warming, keep, keepSock)
	e.warming, e.warmingState = nil, nil
}

// removeListener removes a listener: it stops accepting and drains.
func (d *dynamic) removeListener(name string) {
	e := d.listeners[name]
	if e.warming != nil {
		d.discardWarming(e)
	}
	if e.active != nil {
		d.s.retire(e.active.built, e.active.sock)
	}
	delete(d.listeners, name)
	d.s.reindex()
}

// missingRoutes returns the route configurations bl's connection managers
// wait for.
func (d *dynamic) missingRoutes(bl *builtListener) []string {
	var out []string
	for _, m := range bl.managers() {
		if n := m.RDSName(); n != "" && d.routes[n] == nil {
			out = append(out, n)
		}
	}
	return out
}

// routeTimeout is how long bl warms: the longest initial_fetch_timeout of
// its missing route configurations, 0 (for ever) when one of them has 0.
func (d *dynamic) routeTimeout(bl *builtListener) time.Duration {
	var longest time.Duration
	for _, m := range bl.managers() {
		if n := m.RDSName(); n == "" || d.routes[n] != nil {
			continue
		}
		t := m.RDSInitialFetchTimeout()
		if t == 0 {
			return 0
		}
		longest = max(longest, t)
	}
	return longest
}

// activateWarm activates the warming listeners whose route configurations
// all arrived.
func (d *dynamic) activateWarm() {
	for _, name := range sortedNames(d.listeners) {
		e := d.listeners[name]
		if e.warming != nil && (d.listenerReady(e.warming) || e.routesTimedOut && d.listenerSecretsReady(e.warming)) {
			d.activate(e, e.warming, e.warmingState)
		}
	}
}

// activeSocket returns the socket of an active listener.
func (d *dynamic) activeSocket(name string) *listener.Listener {
	d.mu.Lock()
	defer d.mu.Unlock()
	if e := d.listeners[name]; e != nil && e.active != nil && e.active.sock != nil && e.active.sock.Bound() {
		return e.active.sock
	}
	return nil
}

// activeAddrs returns the bound address of every active listener.
func (d *dynamic) activeAddrs() []ListenerAddr {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []ListenerAddr
	for _, name := range sortedNames(d.listeners) {
		if e := d.listeners[name]; e.active != nil && e.active.sock != nil && e.active.sock.Bound() {
			out = append(out, ListenerAddr{name, e.active.sock.Addr()})
		}
	}
	return out
}

// rdsNames returns the route configurations the listeners (active or
// warming) name, sorted.
func (d *dynamic) rdsNames() []string {
	set := map[string]bool{}
	for _, e := range d.listeners {
		for _, bl := range []*builtListener{e.active, e.warming} {
			if bl == nil {
				continue
			}
			for _, m := range bl.managers() {
				if n := m.RDSName(); n != "" {
					set[n] = true
				}
			}
		}
	}
	out := make([]string, 0, len(set))
	for n := range set {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}
