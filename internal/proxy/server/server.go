// Package server assembles weft-proxy from an Envoy bootstrap: the stats
// store, the cluster manager, the listeners with their filter chains, the
// admin interface and, with dynamic_resources, the xDS client that keeps
// listeners, clusters, routes and endpoints up to date; it runs them and
// drains them on shutdown.
//
// The server is the only place that knows every component; components know
// only the small interfaces they consume (network.Handler,
// network.Draining, httpfilter.Registry, the admin's Options,
// xdsclient.Handler).
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

	"github.com/weftmesh/weft/internal/proxy/accesslog"
	"github.com/weftmesh/weft/internal/proxy/admin"
	"github.com/weftmesh/weft/internal/proxy/httpfilter"
	"github.com/weftmesh/weft/internal/proxy/istiostats"
	"github.com/weftmesh/weft/internal/proxy/listener"
	"github.com/weftmesh/weft/internal/proxy/routerfilter"
	"github.com/weftmesh/weft/internal/proxy/stats"
	"github.com/weftmesh/weft/internal/proxy/tlsctx"
	"github.com/weftmesh/weft/internal/proxy/tracing"
	"github.com/weftmesh/weft/internal/proxy/upstream"
	"github.com/weftmesh/weft/internal/proxy/xdsclient"
)

// Version is weft-proxy's version, reported by /server_info.
const Version = "0.1.0-dev"

// Options configure a server.
type Options struct {
	Bootstrap *bootstrapv3.Bootstrap
	// ConfigPath is the -c file, for /server_info.
	ConfigPath string
	// DrainTime bounds the drain on shutdown (Envoy's --drain-time-s), and
	// the drain of listeners and filter chains that xDS removes or
	// replaces: zero selects Envoy's default of 600 s; a negative value
	// means no wait at all (--drain-time-s 0): in-flight requests are cut
	// at once.
	DrainTime   time.Duration
	Concurrency int
	LogLevel    string
	Logger      *slog.Logger
	// Resolver and Dial override DNS resolution and upstream dialing
	// (nil: the system's). Dial also reaches the control plane.
	Resolver upstream.Resolver
	Dial     func(ctx context.Context, network, addr string) (net.Conn, error)
	// OnStreamDone observes completed HTTP streams (tests, access logs).
	OnStreamDone func(s *httpfilter.Stream)
	// AccessLog configures the access log files (flush interval, queue
	// size, where /dev/stdout goes); its Stats is the server's.
	AccessLog accesslog.Options
	// XDSBackoff paces reconnection to the control plane (zero: Envoy's
	// 500 ms to 30 s).
	XDSBackoff xdsclient.Backoff
	// TraceFlushInterval is how often queued spans are exported (zero:
	// Envoy's 5 s).
	TraceFlushInterval time.Duration
}

// Server is a running weft-proxy.
type Server struct {
	o        Options
	log      *slog.Logger
	stats    *stats.Store
	clusters *upstream.Manager
	filters  *httpfilter.Registry
	// istio records Istio's standard metrics for the istio.stats filters.
	istio *istiostats.Recorder
	alogs *accesslog.Manager // access log files (accesslog.go)
	// secrets holds the SDS secrets TLS contexts read at handshake time.
	secrets *tlsctx.Store
	sds     *secretManager
	// secretDump keeps what /config_dump shows of the secrets (secretdump.go).
	secretDump secretDump
	// tracers are the tracing exporters (tracing.go).
	tracers *tracing.Providers

	admin   *admin.Admin
	adminLn net.Listener

	// lmu guards the listener registry: the bootstrap's listeners, every
	// socket that may still have connections (serving or draining) and
	// every filter chain not yet closed.
	lmu     sync.Mutex
	static  []*builtListener
	sockets map[*listener.Listener]struct{}
	chains  map[*builtChain]struct{}
	// listenerIdx finds active listeners by address for use_original_dst
	// hand-off (handoff.go).
	listenerIdx atomic.Pointer[listenerIndex]
	// stopCtx ends when Shutdown begins: listeners and chains still
	// draining after an xDS update hand their connections over to it.
	stopCtx context.Context
	stop    context.CancelFunc

	// dyn is the xDS state (nil without dynamic_resources).
	dyn *dynamic

	state        atomic.Int32 // adminv3.ServerInfo_State
	healthFailed atomic.Bool
	started      time.Time
	configured   time.Time
	initialized  chan struct{}
	initOnce     sync.Once

	quit     chan struct{}
	quitOnce sync.Once
	wg       sync.WaitGroup
}

// New builds the server: clusters, listeners (their sockets are bound
// here, so that ports are known and in use before Start), the admin and,
// with dynamic_resources, the xDS client (started by Start).
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
		o:           o,
		log:         o.Logger,
		stats:       stats.NewStore(),
		started:     time.Now(),
		quit:        make(chan struct{}),
		initialized: make(chan struct{}),
		sockets:     map[*listener.Listener]struct{}{},
		chains:      map[*builtChain]struct{}{},
		secrets:     tlsctx.NewStore(),
	}
	s.stopCtx, s.stop = context.WithCancel(context.Background())
	s.state.Store(int32(adminv3.ServerInfo_PRE_INITIALIZING))
	s.clusters = upstream.NewManager(upstream.Options{
		Stats:    s.stats,
		Resolver: o.Resolver,
		Dial:     o.Dial,
		Secrets:  s.secrets,
		Logf:     func(f string, a ...any) { s.log.Warn(fmt.Sprintf(f, a...)) },
	})
	s.tracers = s.newTracing()
	s.filters = httpfilter.NewRegistry()
	routerfilter.Register(s.filters)
	rec, err := istiostats.New(istiostats.Options{Stats: s.stats, Node: o.Bootstrap.GetNode()})
	if err != nil {
		return nil, fmt.Errorf("node.metadata: %w", err)
	}
	s.istio = rec
	s.alogs = newAccessLogs(o.AccessLog, s.stats)

	b := o.Bootstrap
	for i, c := range b.GetStaticResources().GetClusters() {
		if err := s.clusters.AddOrUpdate(c); err != nil {
			s.closeAll()
			return nil, fmt.Errorf("static_resources.clusters[%d]: %w", i, err)
		}
	}
	for i, l := range b.GetStaticResources().GetListeners() {
		bl, err := s.buildListener(l, nil, nil)
		if err != nil {
			s.closeAll()
			return nil, fmt.Errorf("static_resources.listeners[%d] (%s): %w", i, l.GetName(), err)
		}
		s.track(bl)
		s.static = append(s.static, bl)
	}
	s.reindex()
	s.sds = newSecretManager(s)
	if err := s.newDynamic(); err != nil {
		s.closeAll()
		return nil, err
	}
	refs := s.staticSecretRefs()
	if err := s.sds.checkRefs(refs); err != nil {
		s.closeAll()
		return nil, fmt.Errorf("static_resources: %w", err)
	}
	s.sds.subscribe(refs)
	if err := s.buildAdmin(); err != nil {
		s.closeAll()
		return nil, fmt.Errorf("admin: %w", err)
	}
	s.registerServerStats()
	s.configured = time.Now()
	return s, nil
}

// Start serves the listeners and the admin. A static server becomes LIVE
// once every cluster has its first hosts (DNS clusters resolve first), as
// Envoy's init manager does, or after initTimeout. With dynamic_resources,
// Start also starts the xDS client and returns; the server becomes LIVE
// once the first clusters and listeners from the control plane are warm
// (or their initial_fetch_timeout passed). Initialized tells when.
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
	s.sds.start()
	waiting := s.serveStatic()
	if s.dyn == nil {
		if waiting == nil {
			s.markInitialized()
		} else {
			go func() {
				<-waiting
				s.markInitialized()
			}()
		}
		return
	}
	s.dyn.start()
}

const initTimeout = 15 * time.Second

// Initialized is closed when the server is LIVE: at the end of Start for a
// static configuration; once the initial xDS configuration is warm with
// dynamic_resources.
func (s *Server) Initialized() <-chan struct{} { return s.initialized }

func (s *Server) markInitialized() {
	s.initOnce.Do(func() {
		if adminv3.ServerInfo_State(s.state.Load()) == adminv3.ServerInfo_INITIALIZING {
			s.state.Store(int32(adminv3.ServerInfo_LIVE))
		}
		close(s.initialized)
	})
}

// serve starts accepting on a bound socket (nil: nothing to do).
func (s *Server) serve(sock *listener.Listener) {
	if sock == nil {
		return
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		sock.Serve()
	}()
}

// track registers a built listener's socket and chains, so that shutdown
// drains them.
func (s *Server) track(bl *builtListener) {
	s.lmu.Lock()
	defer s.lmu.Unlock()
	if bl.sock != nil {
		s.sockets[bl.sock] = struct{}{}
	}
	for _, c := range bl.built {
		s.chains[c] = struct{}{}
	}
}

// ListenerAddr returns the bound address of the listener named name
// (static, or dynamic and active), or nil.
func (s *Server) ListenerAddr(name string) net.Addr {
	for _, bl := range s.static {
		if bl.name() == name && bl.sock != nil && bl.sock.Bound() {
			return bl.sock.Addr()
		}
	}
	if s.dyn != nil {
		if sock := s.dyn.activeSocket(name); sock != nil {
			return sock.Addr()
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

// Shutdown drains the server: it stops the xDS client, stops accepting
// connections, tells connection managers to stop keep-alive (HTTP/1
// connection: close, HTTP/2 GOAWAY), waits for in-flight streams up to the
// drain time (or ctx), then closes what is left.
func (s *Server) Shutdown(ctx context.Context) error {
	s.state.Store(int32(adminv3.ServerInfo_DRAINING))
	s.stop()
	if s.dyn != nil {
		s.dyn.stop()
	}
	s.sds.stop()
	socks, chains := s.registry()
	for _, c := range chains {
		c.drain.start()
	}
	for _, l := range socks {
		l.StopAccepting()
	}
	ctx, cancel := context.WithTimeout(ctx, s.o.DrainTime)
	defer cancel()
	var err error
	for _, l := range socks {
		if werr := l.Wait(ctx); werr != nil && err == nil {
			err = fmt.Errorf("drain ended with connections open: %w", werr)
		}
	}
	for _, c := range chains {
		if werr := c.wait(ctx); werr != nil && err == nil {
			err = fmt.Errorf("drain ended with connections open: %w", werr)
		}
	}
	for _, l := range socks {
		l.CloseConns()
	}
	for _, c := range chains {
		c.closeConns()
	}
	s.closeAll()
	s.wg.Wait()
	return err
}

// registry returns the sockets and chains in the registry.
func (s *Server) registry() ([]*listener.Listener, []*builtChain) {
	s.lmu.Lock()
	defer s.lmu.Unlock()
	socks := make([]*listener.Listener, 0, len(s.sockets))
	for l := range s.sockets {
		socks = append(socks, l)
	}
	chains := make([]*builtChain, 0, len(s.chains))
	for c := range s.chains {
		chains = append(chains, c)
	}
	return socks, chains
}

// closeAll closes every socket, chain, the admin and the clusters.
func (s *Server) closeAll() {
	s.stop()
	socks, chains := s.registry()
	for _, l := range socks {
		l.StopAccepting()
	}
	for _, c := range chains {
		c.close()
	}
	if s.admin != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		s.admin.Shutdown(ctx)
		cancel()
	} else if s.adminLn != nil {
		s.adminLn.Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	s.shutdownTracing(ctx)
	cancel()
	s.clusters.Close()
	s.alogs.Close()
}

// ListenerAddr is a listener's name and bound address.
type ListenerAddr struct {
	Name string
	Addr net.Addr
}

// ListenerAddrs returns the bound address of every static listener and
// every active dynamic listener.
func (s *Server) ListenerAddrs() []ListenerAddr {
	var out []ListenerAddr
	for _, bl := range s.static {
		if bl.sock != nil && bl.sock.Bound() {
			out = append(out, ListenerAddr{bl.name(), bl.sock.Addr()})
		}
	}
	if s.dyn != nil {
		out = append(out, s.dyn.activeAddrs()...)
	}
	return out
}
