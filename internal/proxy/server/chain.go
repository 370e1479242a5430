package server

import (
	"context"
	"sync"
	"sync/atomic"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"

	"github.com/weftmesh/weft/internal/proxy/hcm"
	"github.com/weftmesh/weft/internal/proxy/network"
	"github.com/weftmesh/weft/internal/proxy/tlsctx"
)

// builtChain is one filter chain, built: its terminal network filter, the
// drain signal its connection manager watches, and the connections it
// serves. It implements network.Handler. A chain outlives a listener
// update that leaves it unchanged (Envoy's in-place filter chain update):
// its connections are not disturbed. A chain that is removed or changed is
// drained: its connections get connection: close / GOAWAY, and those still
// open after the drain time are closed.
type builtChain struct {
	cfg   *listenerv3.FilterChain
	h     network.Handler
	mgr   *hcm.Manager // nil for tcp_proxy
	drain *drainSignal
	// tls terminates TLS before the filter runs (nil: plaintext).
	tls *tlsctx.Server

	mu    sync.Mutex
	conns map[*network.Conn]struct{}
	// empty is closed when the last connection ends; nil while nobody
	// waits.
	empty  chan struct{}
	closed atomic.Bool
}

func newChain(cfg *listenerv3.FilterChain, healthFailed *atomic.Bool) *builtChain {
	return &builtChain{cfg: cfg, drain: newDrainSignal(healthFailed), conns: map[*network.Conn]struct{}{}}
}

// ServeConn implements network.Handler: the connection is tracked while
// the chain's filter serves it.
func (c *builtChain) ServeConn(nc *network.Conn) {
	if c.tls != nil && !terminateTLS(nc, c.tls) {
		return // the listener closes the socket
	}
	c.mu.Lock()
	c.conns[nc] = struct{}{}
	c.mu.Unlock()
	defer c.untrack(nc)
	c.h.ServeConn(nc)
}

func (c *builtChain) untrack(nc *network.Conn) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.conns, nc)
	if len(c.conns) == 0 && c.empty != nil {
		close(c.empty)
		c.empty = nil
	}
}

// active returns the number of connections the chain serves.
func (c *builtChain) active() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.conns)
}

// wait waits until the chain serves no connection, or ctx ends.
func (c *builtChain) wait(ctx context.Context) error {
	for {
		c.mu.Lock()
		if len(c.conns) == 0 {
			c.mu.Unlock()
			return nil
		}
		if c.empty == nil {
			c.empty = make(chan struct{})
		}
		ch := c.empty
		c.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// closeConns closes every connection the chain serves.
func (c *builtChain) closeConns() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for nc := range c.conns {
		nc.Conn.Close()
	}
}

// close releases the chain's connection manager (its background work).
func (c *builtChain) close() {
	if c.closed.Swap(true) {
		return
	}
	if c.mgr != nil {
		c.mgr.Close()
	}
}

// drainSignal implements network.Draining for one filter chain: it is on
// when the server drains (shutdown) or when the chain is retired by a
// listener update or removal.
type drainSignal struct {
	on   atomic.Bool
	ch   chan struct{}
	once sync.Once
	// healthFailed is the server's /healthcheck/fail state: like Envoy's
	// drainClose(), it makes connection managers close HTTP/1
	// connections after their current response, without draining.
	healthFailed *atomic.Bool
}

func newDrainSignal(healthFailed *atomic.Bool) *drainSignal {
	return &drainSignal{ch: make(chan struct{}), healthFailed: healthFailed}
}

// DrainClose reports whether connections should close after their
// current response: while draining, or while health checks are failed.
func (d *drainSignal) DrainClose() bool {
	return d.on.Load() || d.healthFailed != nil && d.healthFailed.Load()
}

func (d *drainSignal) start()                        { d.once.Do(func() { d.on.Store(true); close(d.ch) }) }
func (d *drainSignal) Draining() bool                { return d.on.Load() }
func (d *drainSignal) DrainStarted() <-chan struct{} { return d.ch }
