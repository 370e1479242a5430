// Package pool holds the connection pools of one upstream host: HTTP/1.1
// connections kept alive and reused one request at a time, and HTTP/2
// connections multiplexing many streams.
//
// Pools enforce the cluster's circuit breakers (breaker.Breakers): a new
// connection needs a connection slot; a request that finds no connection and
// no slot waits as a pending request (HTTP/1 only) if a pending slot is free,
// and otherwise fails at once with ErrOverflow.
package pool

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/weftmesh/weft/internal/proxy/stats"
	"github.com/weftmesh/weft/internal/proxy/upstream/breaker"
)

// Errors returned by Acquire. The router maps them to Envoy's response
// flags: ErrOverflow → UO, *ConnectError → UF, ErrTimeout → UT.
var (
	ErrOverflow = errors.New("upstream overflow: circuit breaker open")
	ErrTimeout  = errors.New("timed out waiting for an upstream connection")
	ErrClosed   = errors.New("connection pool closed")
)

// ConnectError is a failure to connect to the host.
type ConnectError struct {
	Addr string
	Err  error
}

func (e *ConnectError) Error() string { return fmt.Sprintf("connect to %s: %v", e.Addr, e.Err) }
func (e *ConnectError) Unwrap() error { return e.Err }

// Stats are the counters a pool updates. They are shared by every host of a
// cluster (Envoy's cluster.<name>.upstream_cx_* stats) plus the host's own
// gauge of active connections.
type Stats struct {
	CxTotal          *stats.Counter
	CxActive         *stats.Gauge
	CxConnectFail    *stats.Counter
	CxConnectTimeout *stats.Counter
	CxDestroy        *stats.Counter
	CxHTTP1Total     *stats.Counter
	CxHTTP2Total     *stats.Counter
	CxOverflow       *stats.Counter
	RqPendingTotal   *stats.Counter
	RqPendingActive  *stats.Gauge
	RqPendingOverflw *stats.Counter
	HostCxActive     *stats.Gauge // per host
	HostCxTotal      *stats.Counter
	HostCxFail       *stats.Counter
}

// Options configure a pool.
type Options struct {
	// Addr returns the address to dial, "ip:port". It is a function because
	// LOGICAL_DNS hosts change address over time.
	Addr           func() string
	ConnectTimeout time.Duration // default 5 s, Envoy's
	// IdleTimeout closes connections idle for longer (Envoy's upstream
	// common_http_protocol_options.idle_timeout, default 1 h).
	IdleTimeout time.Duration
	// MaxRequestsPerConnection closes a connection after that many requests
	// (0: unlimited).
	MaxRequestsPerConnection int
	Breakers                 *breaker.Breakers
	Stats                    *Stats
	// Dial overrides how connections are made (nil: net.Dialer).
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// KeepAlive, when set, configures TCP keepalive on new TCP connections
	// (the cluster's upstream_connection_options.tcp_keepalive; a negative
	// field keeps the operating system's value).
	KeepAlive *net.KeepAliveConfig
	// Handshake, when set, secures a new connection before it is used
	// (the cluster's TLS transport socket), under the connect timeout as
	// Envoy's connect_timeout covers the transport socket's handshake. It
	// closes c on error; the error is reported as a *ConnectError (503 UF).
	Handshake func(ctx context.Context, c net.Conn) (net.Conn, error)
	// LocalPrincipal, when set, returns the URI SAN of the certificate the
	// Handshake presents (see Identity).
	LocalPrincipal func() string
}

func (o *Options) dial(deadline time.Time) (net.Conn, error) {
	timeout := o.ConnectTimeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	dl := time.Now().Add(timeout)
	if !deadline.IsZero() && deadline.Before(dl) {
		dl = deadline
	}
	ctx, cancel := context.WithDeadline(context.Background(), dl)
	defer cancel()
	addr := o.Addr()
	var (
		c   net.Conn
		err error
	)
	switch {
	case strings.HasPrefix(addr, "unix:"): // a pipe address
		var d net.Dialer
		c, err = d.DialContext(ctx, "unix", addr[len("unix:"):])
	case o.Dial != nil:
		c, err = o.Dial(ctx, "tcp", addr)
	default:
		var d net.Dialer
		c, err = d.DialContext(ctx, "tcp", addr)
	}
	if tc, ok := c.(*net.TCPConn); ok && err == nil && o.KeepAlive != nil {
		err = tc.SetKeepAliveConfig(*o.KeepAlive)
		if err != nil {
			c.Close()
		}
	}
	if err == nil && o.Handshake != nil {
		c, err = o.Handshake(ctx, c)
	}
	if err != nil {
		o.Stats.CxConnectFail.Inc()
		o.Stats.HostCxFail.Inc()
		// A dial past its deadline reports a net.Error timeout (the net
		// package maps the context's DeadlineExceeded to it).
		var ne net.Error
		if errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout() {
			o.Stats.CxConnectTimeout.Inc()
		}
		return nil, &ConnectError{Addr: addr, Err: err}
	}
	o.Stats.CxTotal.Inc()
	o.Stats.CxActive.Inc()
	o.Stats.HostCxTotal.Inc()
	o.Stats.HostCxActive.Inc()
	return c, nil
}

func (o *Options) closed() {
	o.Stats.CxActive.Dec()
	o.Stats.HostCxActive.Dec()
	o.Stats.CxDestroy.Inc()
	o.Breakers.ReleaseConnection()
}

// DialTCP opens a raw connection (for the TCP proxy) under the cluster's
// max_connections breaker and connect timeout. release must be called once
// the connection is closed.
func DialTCP(o *Options, deadline time.Time) (c net.Conn, release func(), err error) {
	if !o.Breakers.TryConnection() {
		o.Stats.CxOverflow.Inc()
		return nil, nil, ErrOverflow
	}
	c, err = o.dial(deadline)
	if err != nil {
		o.Breakers.ReleaseConnection()
		return nil, nil, err
	}
	return c, o.closed, nil
}
