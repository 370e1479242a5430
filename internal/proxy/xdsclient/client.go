package xdsclient

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"sync/atomic"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/weftmesh/weft/internal/proxy/stats"
)

// Options configure a Client.
type Options struct {
	// Node identifies the proxy to the control plane (the bootstrap's node).
	Node *corev3.Node
	// Target names the control plane in logs and errors (the ads_config
	// cluster's name).
	Target string
	// Dial opens a connection to the control plane. Each stream attempt
	// dials anew, so a control plane that moved is found again.
	Dial func(ctx context.Context) (net.Conn, error)
	// Handler applies the updates; required.
	Handler Handler
	// Clusters and Listeners select the wildcard subscriptions: CDS
	// (cds_config) and LDS (lds_config). At least one is required.
	Clusters, Listeners bool
	// SetNodeOnFirstMessageOnly sends the node only on a stream's first
	// request (ads_config.set_node_on_first_message_only).
	SetNodeOnFirstMessageOnly bool
	// Backoff paces reconnection (zero: 500 ms to 30 s).
	Backoff Backoff
	// Stats receives the client's statistics (nil: none kept).
	Stats  *stats.Store
	Logger *slog.Logger
}

// Client is an ADS client. Create it with New and run it with Run.
type Client struct {
	o     Options
	stats clientStats
	// types holds each type's protocol state, in typeOrder; only Run's
	// goroutine touches it.
	types map[string]*typeState
	// connected is 1 while a stream is up (control_plane.connected_state).
	connected atomic.Int64
}

// typeState is what the client knows of one resource type.
type typeState struct {
	url string
	// version is the last accepted version_info ("" before any).
	version string
	// names is the subscription; nil with wildcard.
	names    []string
	wildcard bool
	// started is set once the type has been requested (RDS and EDS after
	// their first names; LDS after the first CDS response).
	started bool
	// nonce is the last response nonce of this type on the current stream.
	nonce string
	// received is set once a response of this type was processed, ever.
	received bool
	// disabled: the bootstrap does not ask for this wildcard (LDS).
	disabled bool
	// lastNack is the version and message of the last NACK, and
	// nackRepeats how many times in a row it was repeated (NACK pacing).
	lastNack    string
	nackRepeats int
}

// New returns a client; it does nothing until Run.
func New(o Options) (*Client, error) {
	if o.Handler == nil {
		return nil, errors.New("xdsclient: Options.Handler is required")
	}
	if o.Dial == nil {
		return nil, errors.New("xdsclient: Options.Dial is required")
	}
	if !o.Clusters && !o.Listeners {
		return nil, errors.New("xdsclient: subscribe to Clusters, Listeners or both")
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	o.Backoff = o.Backoff.withDefaults()
	c := &Client{o: o, types: map[string]*typeState{}}
	for _, url := range typeOrder {
		c.types[url] = &typeState{url: url, wildcard: fullState(url)}
	}
	// CDS and LDS are wildcard subscriptions. CDS starts at once; LDS after
	// the first CDS response (Envoy initialises clusters first), or at once
	// without CDS; EDS and RDS when the clusters and listeners name
	// resources.
	c.types[ClusterType].started = o.Clusters
	c.types[ListenerType].started = o.Listeners && !o.Clusters
	c.types[ListenerType].disabled = !o.Listeners
	c.stats = newClientStats(o.Stats, &c.connected)
	return c, nil
}

// Run keeps an ADS stream to the control plane until ctx ends: when the
// stream cannot be opened or breaks, the proxy keeps serving what it has
// and Run reconnects after a back-off, resuming with the versions it
// accepted. Run returns ctx's error.
func (c *Client) Run(ctx context.Context) error {
	failures := 0
	for {
		progressed, err := c.attempt(ctx)
		c.connected.Store(0)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if progressed {
			failures = 0 // the stream worked: start the back-off over
		}
		wait := c.o.Backoff.next(failures)
		failures++
		c.stats.streamFailures.Inc()
		c.o.Logger.Warn("xds: stream to the control plane ended; serving the last good configuration",
			"target", c.o.Target, "err", err, "retry_in", wait.Round(time.Millisecond))
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// Connected reports whether a stream to the control plane is up.
func (c *Client) Connected() bool { return c.connected.Load() == 1 }

// attempt runs one stream until it fails or ctx ends. progressed reports
// whether the control plane answered at least once.
func (c *Client) attempt(ctx context.Context) (progressed bool, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// The target only names the channel (its :authority); Dial decides
	// where to connect. A fixed name keeps any cluster name acceptable.
	cc, err := grpc.NewClient("passthrough:///xds",
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return c.o.Dial(ctx) }),
		// A large mesh's CDS or EDS response exceeds gRPC's default 4 MiB
		// limit; Envoy sets none.
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(math.MaxInt32)),
	)
	if err != nil {
		return false, fmt.Errorf("control plane %s: %w", c.o.Target, err)
	}
	defer cc.Close()
	stream, err := discoveryv3.NewAggregatedDiscoveryServiceClient(cc).StreamAggregatedResources(ctx)
	if err != nil {
		return false, fmt.Errorf("control plane %s: opening the ADS stream: %w", c.o.Target, err)
	}
	s := &streamState{c: c, stream: stream}
	return s.run(ctx)
}

// clientStats are the client's statistics, with Envoy's names where Envoy
// has one: control_plane.connected_state, cluster_manager.cds.* and
// listener_manager.lds.*; RDS and EDS updates count under
// control_plane.rds.* and control_plane.eds.*.
type clientStats struct {
	streamFailures *stats.Counter
	perType        map[string]typeStats
}

type typeStats struct {
	attempt, success, rejected *stats.Counter
}

func newClientStats(st *stats.Store, connected *atomic.Int64) clientStats {
	if st == nil {
		st = stats.NewStore()
	}
	root := st.Root()
	cp := root.Scope("control_plane")
	cp.GaugeFunc("connected_state", connected.Load)
	out := clientStats{streamFailures: cp.Counter("stream_failures"), perType: map[string]typeStats{}}
	scopes := map[string]*stats.Scope{
		ClusterType:  root.Scope("cluster_manager").Scope("cds"),
		ListenerType: root.Scope("listener_manager").Scope("lds"),
		RouteType:    cp.Scope("rds"),
		EndpointType: cp.Scope("eds"),
		SecretType:   cp.Scope("sds"),
	}
	for url, sc := range scopes {
		out.perType[url] = typeStats{
			attempt:  sc.Counter("update_attempt"),
			success:  sc.Counter("update_success"),
			rejected: sc.Counter("update_rejected"),
		}
	}
	return out
}
