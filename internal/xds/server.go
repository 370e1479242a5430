// Package xds is weft-control's xDS server: it serves each connected proxy
// its own Envoy resources (listeners, routes, clusters, endpoints) over the
// Aggregated Discovery Service, state-of-the-world and delta, and over the
// per-type services (CDS, EDS, LDS, RDS), on go-control-plane's gRPC
// server with a cache of its own.
//
// Data flow: the caller (internal/controlplane) builds an immutable
// model.Snapshot and calls Push; the server recomputes every connected
// proxy's resources with a Generator (translate.Translator), keeps them per
// proxy as shared, encoded sets (one per type and content version), and
// answers the proxies' open watches for the types whose version changed.
// A proxy's identity comes from the node of its first request (Istio's id
// form and metadata; model.ParseProxy).
//
// Protocol behaviour (Envoy's xDS protocol doc, "ACK/NACK and resource type
// instance version", "How the client specifies what resources to return"):
//   - LDS and CDS are wildcard: a proxy gets all of them; EDS and RDS are
//     named: a proxy gets the ones it asks for; delta follows the
//     subscriptions.
//   - A type is sent again only when its version (a content hash) changed.
//   - After a NACK nothing is re-sent until the configuration changes; the
//     proxy keeps its last good configuration. ACKs and NACKs are tracked
//     per proxy and type (SyncStatus, /debug/syncz).
//
// The server also provides /debug/syncz, /debug/configz and /metrics
// handlers for the control plane's monitoring port.
package xds

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime"
	"sync"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	clusterservice "github.com/envoyproxy/go-control-plane/envoy/service/cluster/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	endpointservice "github.com/envoyproxy/go-control-plane/envoy/service/endpoint/v3"
	listenerservice "github.com/envoyproxy/go-control-plane/envoy/service/listener/v3"
	routeservice "github.com/envoyproxy/go-control-plane/envoy/service/route/v3"
	"github.com/envoyproxy/go-control-plane/pkg/server/sotw/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/weftmesh/weft/internal/model"
	"github.com/weftmesh/weft/internal/translate"
)

// DefaultAddress is weft-control's default xDS address (Istio's plaintext
// xDS port).
const DefaultAddress = "127.0.0.1:15010"

// Generator computes one proxy's resources for a snapshot.
// translate.Translator implements it. Generate must be safe for concurrent
// use, must not modify its inputs, and must follow translate.Resources'
// contract: Versions holds, per type URL, a hash of that type's content
// (equal content, equal version), and the maps are keyed by resource name.
// The server shares encoded resources between proxies by (type, version).
type Generator interface {
	Generate(s *model.Snapshot, p *model.Proxy) *translate.Resources
}

var _ Generator = (*translate.Translator)(nil)

// GeneratorFunc adapts a function to Generator.
type GeneratorFunc func(s *model.Snapshot, p *model.Proxy) *translate.Resources

// Generate calls f.
func (f GeneratorFunc) Generate(s *model.Snapshot, p *model.Proxy) *translate.Resources {
	return f(s, p)
}

// Options configure a Server.
type Options struct {
	// Generator computes resources; required.
	Generator Generator
	// Logger receives connection, NACK and error events; nil:
	// slog.Default().
	Logger *slog.Logger
	// ID names this control plane instance in SyncStatus (Istio's
	// proxy-status ISTIOD column); "": DefaultID.
	ID string
	// PushWorkers is the number of goroutines a Push spreads the proxies
	// over; 0: GOMAXPROCS, at most 8.
	PushWorkers int
	// MaxPendingBytes bounds the bytes of responses sent and not yet
	// ACKed or NACKed, across all proxies (memory for a push to many
	// proxies; see sendBudget); 0: DefaultMaxPendingBytes; negative: no
	// bound.
	MaxPendingBytes int64
}

// DefaultID is the instance name when Options.ID is empty.
const DefaultID = "weft-control"

// DefaultMaxPendingBytes is the default bound of unacknowledged response
// bytes.
const DefaultMaxPendingBytes = 64 << 20

// pendingTimeout is how long an unanswered response counts against
// MaxPendingBytes.
const pendingTimeout = 5 * time.Second

// Server is the xDS server. Create it with New, serve it with Serve (or
// Register on a gRPC server of the caller's), feed it with Push.
type Server struct {
	o       Options
	log     *slog.Logger
	metrics *metrics
	sets    *setCache
	nodes   nodeTable
	conns   connTable
	xds     serverv3.Server
	budget  *sendBudget
	// interned holds the resource names proxies subscribe to (with the
	// budget: both wrap the streams).
	interned *interner
	ctx      context.Context
	cancel   context.CancelFunc

	pushMu      sync.Mutex // serialises pushes
	unversioned sync.Once  // warns about missing versions

	mu   sync.Mutex // guards snap, seq and grpc
	snap *model.Snapshot
	seq  uint64
	grpc *grpc.Server
}

// New returns a Server with no configuration: proxies that connect before
// the first Push wait for it.
func New(o Options) (*Server, error) {
	if o.Generator == nil {
		return nil, errors.New("xds.New: Options.Generator is required (a translate.Translator)")
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.ID == "" {
		o.ID = DefaultID
	}
	if o.PushWorkers <= 0 {
		o.PushWorkers = min(runtime.GOMAXPROCS(0), 8)
	}
	if o.MaxPendingBytes == 0 {
		o.MaxPendingBytes = DefaultMaxPendingBytes
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{
		o:       o,
		log:     o.Logger,
		metrics: newMetrics(),
		sets:    newSetCache(),
		nodes:   nodeTable{m: map[string]*node{}},
		conns:   connTable{m: map[streamKey]*conn{}},
		ctx:     ctx,
		cancel:  cancel,
	}
	if o.MaxPendingBytes > 0 {
		s.budget = newSendBudget(o.MaxPendingBytes, pendingTimeout)
		s.interned = newInterner()
	}
	// Ordered ADS: one response queue per stream, so that the order in
	// which the cache answers (CDS, EDS, LDS, RDS) is the order sent.
	s.xds = serverv3.NewServer(ctx, watchCache{s: s}, callbacks{s: s},
		sotw.WithOrderedADS(), sotw.WithLogger(gcpLogger{s.log}))
	return s, nil
}

// Idle receives a value each time every response sent so far has been
// answered (ACK or NACK, or given up on after 5 s): the moment a push or a
// wave of connecting proxies is over. Nil (never ready) when
// MaxPendingBytes is negative.
func (s *Server) Idle() <-chan struct{} {
	if s.budget == nil {
		return nil
	}
	return s.budget.idle
}

// PendingBytes returns the bytes of responses sent and not yet answered.
func (s *Server) PendingBytes() int64 {
	if s.budget == nil {
		return 0
	}
	return s.budget.pending()
}

// Register adds the aggregated (SotW and delta) and per-type (CDS, EDS,
// LDS, RDS) discovery services to g.
func (s *Server) Register(g *grpc.Server) {
	discoveryv3.RegisterAggregatedDiscoveryServiceServer(g, adsService{s})
	clusterservice.RegisterClusterDiscoveryServiceServer(g, clusterService{s: s})
	endpointservice.RegisterEndpointDiscoveryServiceServer(g, endpointService{s: s})
	listenerservice.RegisterListenerDiscoveryServiceServer(g, listenerService{s: s})
	routeservice.RegisterRouteDiscoveryServiceServer(g, routeService{s: s})
}

// Serve serves xDS on lis until Stop; it returns nil after Stop.
// Keepalive follows Istio's defaults: a ping after 30 s idle, 10 s to
// answer; clients may ping every 10 s.
func (s *Server) Serve(lis net.Listener) error {
	g := grpc.NewServer(
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
		// Release a connection's write buffer after each flush: most
		// proxies are idle most of the time.
		grpc.SharedWriteBuffer(true),
	)
	s.Register(g)
	s.mu.Lock()
	if s.ctx.Err() != nil {
		s.mu.Unlock()
		return nil
	}
	s.grpc = g
	s.mu.Unlock()
	if err := g.Serve(lis); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
		return fmt.Errorf("xds: serving on %s: %w", lis.Addr(), err)
	}
	return nil
}

// Stop closes every stream and stops Serve. Proxies keep their
// configuration and reconnect to the next control plane.
func (s *Server) Stop() {
	s.mu.Lock()
	g := s.grpc
	s.cancel()
	s.mu.Unlock()
	if g != nil {
		g.Stop()
	}
}

// Connected returns the number of streams with an established proxy
// identity.
func (s *Server) Connected() int {
	n := 0
	for _, c := range s.conns.list() {
		c.mu.Lock()
		if c.node != nil {
			n++
		}
		c.mu.Unlock()
	}
	return n
}

// callbacks connect go-control-plane's stream events to the tracker.
type callbacks struct{ s *Server }

var _ serverv3.Callbacks = callbacks{}

func (c callbacks) OnStreamOpen(ctx context.Context, id int64, _ string) error {
	c.s.conns.open(ctx, streamKey{id: id})
	return nil
}

func (c callbacks) OnStreamClosed(id int64, _ *corev3.Node) { c.s.onClose(streamKey{id: id}) }

func (c callbacks) OnStreamRequest(id int64, req *discoveryv3.DiscoveryRequest) error {
	rejected, nacked, err := c.s.onRequest(streamKey{id: id}, request{
		node: req.GetNode(), typeURL: req.GetTypeUrl(), nonce: req.GetResponseNonce(), err: req.GetErrorDetail(),
	})
	if err != nil {
		return err
	}
	if nacked {
		// Hold: the watch now sees the version the proxy has (the
		// rejected one) and waits for the next change.
		req.VersionInfo = rejected
	}
	c.s.canonicalNames(streamKey{id: id}, req.GetTypeUrl(), req.GetResourceNames())
	return nil
}

func (c callbacks) OnStreamResponse(_ context.Context, id int64, _ *discoveryv3.DiscoveryRequest, resp *discoveryv3.DiscoveryResponse) {
	c.s.onResponse(streamKey{id: id}, resp.GetTypeUrl(), resp.GetVersionInfo(), resp.GetNonce(), proto.Size(resp))
}

func (c callbacks) OnDeltaStreamOpen(ctx context.Context, id int64, _ string) error {
	c.s.conns.open(ctx, streamKey{delta: true, id: id})
	return nil
}

func (c callbacks) OnDeltaStreamClosed(id int64, _ *corev3.Node) {
	c.s.onClose(streamKey{delta: true, id: id})
}

// OnStreamDeltaRequest needs no rewrite after a NACK: go-control-plane's
// delta server records the versions it sent as the proxy's, so the cache
// finds nothing to send until the resources change.
func (c callbacks) OnStreamDeltaRequest(id int64, req *discoveryv3.DeltaDiscoveryRequest) error {
	_, _, err := c.s.onRequest(streamKey{delta: true, id: id}, request{
		node: req.GetNode(), typeURL: req.GetTypeUrl(), nonce: req.GetResponseNonce(), err: req.GetErrorDetail(),
	})
	if err != nil {
		return err
	}
	c.s.canonicalNames(streamKey{delta: true, id: id}, req.GetTypeUrl(), req.GetResourceNamesSubscribe())
	return nil
}

func (c callbacks) OnStreamDeltaResponse(id int64, _ *discoveryv3.DeltaDiscoveryRequest, resp *discoveryv3.DeltaDiscoveryResponse) {
	c.s.onResponse(streamKey{delta: true, id: id}, resp.GetTypeUrl(), resp.GetSystemVersionInfo(), resp.GetNonce(), proto.Size(resp))
}

func (c callbacks) OnFetchRequest(context.Context, *discoveryv3.DiscoveryRequest) error {
	return status.Error(codes.Unimplemented, "weft-control serves xDS over gRPC streams, not unary fetch")
}

func (c callbacks) OnFetchResponse(*discoveryv3.DiscoveryRequest, *discoveryv3.DiscoveryResponse) {}

// gcpLogger adapts slog to go-control-plane's logger; its debug and info
// chatter (stale nonces, new subscriptions) goes to debug.
type gcpLogger struct{ l *slog.Logger }

func (g gcpLogger) Debugf(format string, args ...any) { g.debug(format, args) }
func (g gcpLogger) Infof(format string, args ...any)  { g.debug(format, args) }
func (g gcpLogger) Warnf(format string, args ...any)  { g.l.Warn(fmt.Sprintf(format, args...)) }
func (g gcpLogger) Errorf(format string, args ...any) { g.l.Error(fmt.Sprintf(format, args...)) }

func (g gcpLogger) debug(format string, args []any) {
	if g.l.Enabled(context.Background(), slog.LevelDebug) {
		g.l.Debug(fmt.Sprintf(format, args...))
	}
}
