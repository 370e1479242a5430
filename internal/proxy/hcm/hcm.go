package hcm

import (
	"bytes"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/weftmesh/weft/internal/proxy/codec/http1"
	"github.com/weftmesh/weft/internal/proxy/network"
)

var _ network.Handler = (*Manager)(nil)

// http2Preface is the HTTP/2 client connection preface (RFC 9113 §3.4).
var http2Preface = []byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")

// ServeConn implements network.Handler.
func (m *Manager) ServeConn(c *network.Conn) {
	defer c.Close()
	m.stats.cxTotal.Inc()
	m.stats.cxActive.Inc()
	defer func() {
		m.stats.cxActive.Dec()
		m.stats.cxDestroy.Inc()
	}()
	switch m.codec {
	case codecHTTP2:
		m.serveHTTP2(c)
		return
	case codecHTTP1:
		m.serveHTTP1(c, m.newHTTP1Conn(c))
		return
	}
	hc := m.newHTTP1Conn(c)
	if m.idleTimeout > 0 {
		c.SetReadDeadline(time.Now().Add(m.idleTimeout))
	}
	if !sniffHTTP2(hc) {
		m.serveHTTP1(c, hc)
		return
	}
	// Hand the bytes the HTTP/1 reader buffered to the HTTP/2 server.
	buffered, _ := hc.Peek(0)
	c.Peeked = append([]byte(nil), buffered...)
	hc.Release()
	m.serveHTTP2(c)
}

func (m *Manager) newHTTP1Conn(c *network.Conn) *http1.Conn {
	opts := http1.Options{MaxHeaderBytes: m.maxRequestHeadersBytes, MaxHeaders: m.maxHeaders}
	if c.BufferLimit > 0 && c.BufferLimit < 16<<10 {
		opts.BufferSize = max(c.BufferLimit, 4<<10)
	}
	return http1.NewConn(c.Raw(), opts)
}

// sniffHTTP2 reports whether the connection starts with the HTTP/2 preface,
// reading only as many bytes as needed to tell (Envoy's AUTO codec).
func sniffHTTP2(hc *http1.Conn) bool {
	for n := 1; ; n++ {
		b, err := hc.Peek(n)
		if len(b) > len(http2Preface) {
			b = b[:len(http2Preface)]
		}
		if !bytes.HasPrefix(http2Preface, b) || err != nil {
			return false // HTTP/1 (its reader reports any error)
		}
		if len(b) == len(http2Preface) {
			return true
		}
		n = len(b)
	}
}

// connSet tracks live HTTP/1 connections so that draining can close idle
// ones at once.
type connSet struct {
	mu    sync.Mutex
	conns map[*h1conn]struct{}
}

func (s *connSet) add(c *h1conn) {
	s.mu.Lock()
	if s.conns == nil {
		s.conns = map[*h1conn]struct{}{}
	}
	s.conns[c] = struct{}{}
	s.mu.Unlock()
}

func (s *connSet) remove(c *h1conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

// wakeIdle interrupts the read of every connection waiting for a request;
// they see the drain and close.
func (s *connSet) wakeIdle() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		if c.idle.Load() {
			c.nc.SetReadDeadline(time.Now())
		}
	}
}

// h1conn is the connection-level state of one HTTP/1 connection.
type h1conn struct {
	nc   net.Conn
	idle atomic.Bool
}
