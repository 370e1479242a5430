package server

import (
	"context"

	"github.com/weftmesh/weft/internal/proxy/listener"
)

// retire drains filter chains that a listener update or removal replaced,
// and the listener's socket when it goes too (sock nil: the socket stays,
// with new chains). Following Envoy's listener drain: the socket stops
// accepting at once; the chains' connection managers drain (HTTP/1
// connection: close after the current response and idle connections
// closed, HTTP/2 GOAWAY); after the drain time (--drain-time-s) the
// connections still open are closed. Requests in flight meanwhile finish
// on the configuration they started with. If the server shuts down first,
// its own drain takes the connections over.
func (s *Server) retire(chains []*builtChain, sock *listener.Listener) {
	for _, c := range chains {
		c.drain.start()
	}
	if sock != nil {
		sock.StopAccepting()
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		ctx, cancel := context.WithTimeout(s.stopCtx, s.o.DrainTime)
		defer cancel()
		for _, c := range chains {
			c.wait(ctx)
		}
		if sock != nil {
			sock.Wait(ctx)
		}
		if s.stopCtx.Err() != nil {
			return // Shutdown drains what is left
		}
		for _, c := range chains {
			c.closeConns()
			s.closeChain(c)
		}
		if sock != nil {
			sock.CloseConns()
			s.lmu.Lock()
			delete(s.sockets, sock)
			s.lmu.Unlock()
		}
	}()
}

// discard closes what a listener that never served built: its chains that
// are not shared with live listeners (keep) and its own socket.
func (s *Server) discard(bl *builtListener, keep []*builtChain, keepSock *listener.Listener) {
	for _, c := range bl.built {
		if !containsChain(keep, c) {
			s.closeChain(c)
		}
	}
	if bl.sock != nil && bl.sock != keepSock {
		bl.sock.StopAccepting()
		s.lmu.Lock()
		delete(s.sockets, bl.sock)
		s.lmu.Unlock()
	}
}

// closeChain closes a chain and forgets it.
func (s *Server) closeChain(c *builtChain) {
	c.close()
	s.lmu.Lock()
	delete(s.chains, c)
	s.lmu.Unlock()
}

// chainsNotIn returns the chains of old that next does not take over.
func chainsNotIn(old, next []*builtChain) []*builtChain {
	var out []*builtChain
	for _, c := range old {
		if !containsChain(next, c) {
			out = append(out, c)
		}
	}
	return out
}
