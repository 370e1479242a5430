// Package server assembles weft-proxy from an Envoy bootstrap: the stats
// store, the cluster manager, the listeners with their filter chains, and
// the admin interface; it runs them and drains them on shutdown.
//
// The server is the only place that knows every component; components know
// only the small interfaces they consume (network.Handler,
// network.Draining, httpfilter.Registry, the admin's Options).
package server

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	adminv3 "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"

	"github.com/weftmesh/weft/internal/proxy/admin"
	"github.com/weftmesh/weft/internal/proxy/httpfilter"
	"github.com/weftmesh/weft/internal/proxy/listener"
	"github.com/weftmesh/weft/internal/proxy/routerfilter"
	"github.com/weftmesh/weft/internal/proxy/stats"
	"github.com/weftmesh/weft/internal/proxy/upstream"
)

// Version is weft-proxy's version, reported by /server_info.
const Version = "0.1.0-dev"

// Options configure a server.
type Options struct {
	Bootstrap *bootstrapv3.Bootstrap
	// ConfigPath is the -c file, for /server_info.
	ConfigPath string
	// DrainTime bounds the drain on shutdown (Envoy's --drain-time-s):
	// zero selects Envoy's default of 600 s; a negative value means no
	// wait at all (--drain-time-s 0): in-flight requests are cut at once.
	DrainTime   time.Duration
	Concurrency int
	LogLevel    string
	Logger      *slog.Logger
	// Resolver and Dial override DNS resolution and upstream dialing
	// (nil: the system's).
	Resolver upstream.Resolver
	Dial     func(ctx context.Context, network, addr string) (net.Conn, error)
	// OnStreamDone observes completed HTTP streams (tests, access logs).
	OnStreamDone func(s *httpfilter.Stream)
}

// Server is a running weft-proxy.
type Server struct {
	o        Options
	log      *slog.Logger
	stats    *stats.Store
	clusters *upstream.Manager
	filters  *httpfilter.Registry

	listeners []*builtListener
	admin     *admin.Admin
	adminLn   net.Listener

	state        atomic.Int32 // adminv3.ServerInfo_State
	healthFailed atomic.Bool
	drain        drainSignal
	started      time.Time
	configured   time.Time

	quit     chan struct{}
	quitOnce sync.Once
	wg       sync.WaitGroup
}

// New builds the server: clusters, listeners (their sockets are bound
// here, so that ports are known and in use before Start) and the admin.
// Configuration errors name the field.
func New(o Options) (*Server, error) {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	switch {
	case o.DrainTime == 0:
		o.DrainTime = 10 * time.Minute // Envoy's --drain-time-s default
	case o.DrainTime < 0:
		o.DrainTime = 0
	}
	s := &Server{
		o:       o,
		log:     o.Logger,
		stats:   stats.NewStore(),
		started: time.Now(),
		quit:    make(chan struct{}),
	}
	s.drain.init()
	s.drain.healthFailed = &s.healthFailed
	s.state.Store(int32(adminv3.ServerInfo_PRE_INITIALIZING))
	s.clusters = upstream.NewManager(upstream.Options{
		Stats:    s.stats,
		Resolver: o.Resolver,
		Dial:     o.Dial,
		Logf:     func(f string, a ...any) { s.log.Warn(fmt.Sprintf(f, a...)) },
	})
	s.filters = httpfilter.NewRegistry()
	routerfilter.Register(s.filters)

	b := o.Bootstrap
	for i, c := range b.GetStaticResources().GetClusters() {
		if err := s.clusters.AddOrUpdate(c); err != nil {
			s.closeAll()
			return nil, fmt.Errorf("static_resources.clusters[%d]: %w", i, err)
		}
	}
	for i, l := range b.GetStaticResources().GetListeners() {
		bl, err := s.buildListener(l)
		if err != nil {
			s.closeAll()
			return nil, fmt.Errorf("static_resources.listeners[%d] (%s): %w", i, l.GetName(), err)
		}
		s.listeners = append(s.listeners, bl)
	}
	if err := s.buildAdmin(); err != nil {
		s.closeAll()
		return nil, fmt.Errorf("admin: %w", err)
	}
	s.registerServerStats()
	s.configured = time.Now()
	return s, nil
}

// Start serves the listeners and the admin. The server becomes LIVE once
// every cluster has its first hosts (DNS clusters resolve first), as
// Envoy's init manager does, or after initTimeout.
func (s *Server) Start() {
	s.state.Store(int32(adminv3.ServerInfo_INITIALIZING))
	if s.admin != nil {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.admin.Serve(s.adminLn)
		}()
	}
	ctx, cancel := context.WithTimeout(context.Background(), initTimeout)
	if err := s.clusters.WaitReady(ctx); err != nil {
		s.log.Warn("starting before every cluster is ready", "err", err)
	}
	cancel()
	for _, bl := range s.listeners {
		s.wg.Add(1)
		go func(l *listener.Listener) {
			defer s.wg.Done()
			l.Serve()
		}(bl.l)
	}
	s.state.Store(int32(adminv3.ServerInfo_LIVE))
}

const initTimeout = 15 * time.Second

// ListenerAddr returns the bound address of the listener named name.
func (s *Server) ListenerAddr(name string) net.Addr {
	for _, bl := range s.listeners {
		if bl.l.Name() == name {
			return bl.l.Addr()
		}
	}
	return nil
}

// AdminAddr returns the admin's bound address, or nil without admin.
func (s *Server) AdminAddr() net.Addr {
	if s.adminLn == nil {
		return nil
	}
	return s.adminLn.Addr()
}

// Stats returns the stats store.
func (s *Server) Stats() *stats.Store { return s.stats }

// Clusters returns the cluster manager.
func (s *Server) Clusters() *upstream.Manager { return s.clusters }

// Quit asks the server to shut down (as POST /quitquitquit does).
func (s *Server) Quit() { s.quitOnce.Do(func() { close(s.quit) }) }

// Done is closed when Quit is called.
func (s *Server) Done() <-chan struct{} { return s.quit }

// Shutdown drains the server: it stops accepting connections, tells
// connection managers to stop keep-alive (HTTP/1 connection: close,
// HTTP/2 GOAWAY), waits for in-flight streams up to the drain time (or
// ctx), then closes what is left.
func (s *Server) Shutdown(ctx context.Context) error {
	s.state.Store(int32(adminv3.ServerInfo_DRAINING))
	s.drain.start()
	for _, bl := range s.listeners {
		bl.l.StopAccepting()
	}
	ctx, cancel := context.WithTimeout(ctx, s.o.DrainTime)
	defer cancel()
	var err error
	for _, bl := range s.listeners {
		if werr := bl.l.Wait(ctx); werr != nil && err == nil {
			err = fmt.Errorf("drain ended with connections open: %w", werr)
		}
	}
	for _, bl := range s.listeners {
		bl.l.CloseConns()
	}
	s.closeAll()
	s.wg.Wait()
	return err
}

func (s *Server) closeAll() {
	for _, bl := range s.listeners {
		bl.l.StopAccepting()
		bl.close()
	}
	if s.admin != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		s.admin.Shutdown(ctx)
		cancel()
	} else if s.adminLn != nil {
		s.adminLn.Close()
	}
	s.clusters.Close()
}

// drainSignal implements network.Draining.
type drainSignal struct {
	on   atomic.Bool
	ch   chan struct{}
	once sync.Once
	// healthFailed is the server's /healthcheck/fail state: like Envoy's
	// drainClose(), it makes connection managers close HTTP/1
	// connections after their current response, without draining.
	healthFailed *atomic.Bool
}

// DrainClose reports whether connections should close after their
// current response: while draining, or while health checks are failed.
func (d *drainSignal) DrainClose() bool {
	return d.on.Load() || d.healthFailed != nil && d.healthFailed.Load()
}

func (d *drainSignal) init() { d.ch = make(chan struct{}) }

func (d *drainSignal) start()                        { d.once.Do(func() { d.on.Store(true); close(d.ch) }) }
func (d *drainSignal) Draining() bool                { return d.on.Load() }
func (d *drainSignal) DrainStarted() <-chan struct{} { return d.ch }

// ListenerAddr is a listener's name and bound address.
type ListenerAddr struct {
	Name string
	Addr net.Addr
}

// ListenerAddrs returns every listener's bound address.
func (s *Server) ListenerAddrs() []ListenerAddr {
	out := make([]ListenerAddr, 0, len(s.listeners))
	for _, bl := range s.listeners {
		out = append(out, ListenerAddr{bl.l.Name(), bl.l.Addr()})
	}
	return out
}
