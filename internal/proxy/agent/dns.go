package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/weftmesh/weft/internal/nds"
	"github.com/weftmesh/weft/internal/proxy/dnsproxy"
	"github.com/weftmesh/weft/internal/proxy/xdsclient"
)

// Node metadata the agent sets when it runs the DNS proxy (Istio's
// ISTIO_META_DNS_CAPTURE and ISTIO_META_DNS_AUTO_ALLOCATE): weft-control
// then builds the proxy's name table, with auto-allocated addresses.
const (
	MetaDNSCapture      = "DNS_CAPTURE"
	MetaDNSAutoAllocate = "DNS_AUTO_ALLOCATE"
)

// EnableDNSMetadata sets the node metadata of a proxy whose agent runs
// the DNS proxy. Call it before Bootstrap and StartDNS, so that the
// proxy's ADS stream and the agent's NDS stream present the same node.
func (o *Options) EnableDNSMetadata() {
	m := make(map[string]string, len(o.Metadata)+2)
	for k, v := range o.Metadata {
		m[k] = v
	}
	m[MetaDNSCapture] = "true"
	m[MetaDNSAutoAllocate] = "true"
	o.Metadata = m
}

// Node returns the proxy's xDS node, the bootstrap's.
func (o *Options) Node() (*corev3.Node, error) {
	meta, err := o.metadata()
	if err != nil {
		return nil, err
	}
	return &corev3.Node{Id: o.NodeID(), Cluster: o.serviceCluster(), Metadata: meta}, nil
}

// DNSOptions configure the agent's DNS proxy.
type DNSOptions struct {
	// Agent is the proxy's identity and weft-control's address
	// (DiscoveryAddress, plain-text gRPC); call EnableDNSMetadata on it.
	Agent *Options
	// Server configures the DNS proxy; Namespace and Domain default to
	// the proxy's, Logger to Logger.
	Server dnsproxy.Options
	// Backoff paces reconnections to weft-control (default Envoy's).
	Backoff xdsclient.Backoff
	Logger  *slog.Logger
}

// DNS is the running DNS proxy and its name-table subscription.
type DNS struct {
	srv    *dnsproxy.Server
	cancel context.CancelFunc
	done   chan struct{}
}

// StartDNS binds the DNS proxy, starts serving it and subscribes to the
// proxy's name table (NDS) over an ADS stream of its own to weft-control,
// as Istio's agent does; every table received replaces the proxy's. The
// stream reconnects with back-off until Stop. Bind and resolv.conf errors
// are returned.
func StartDNS(o DNSOptions) (*DNS, error) {
	if o.Agent == nil {
		return nil, errors.New("agent DNS: DNSOptions.Agent is required")
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	so := o.Server
	if so.Namespace == "" {
		so.Namespace = o.Agent.Namespace
	}
	if so.Domain == "" {
		so.Domain = o.Agent.Namespace + ".svc.cluster.local"
	}
	if so.Logger == nil {
		so.Logger = o.Logger
	}
	node, err := o.Agent.Node()
	if err != nil {
		return nil, fmt.Errorf("agent DNS: node: %w", err)
	}
	srv, err := dnsproxy.New(so)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	d := &DNS{srv: srv, cancel: cancel, done: make(chan struct{})}
	w := &ndsWatch{addr: o.Agent.DiscoveryAddress, node: node, srv: srv, backoff: o.Backoff, log: o.Logger}
	go func() {
		defer close(d.done)
		go w.run(ctx)
		_ = srv.Serve(ctx)
	}()
	return d, nil
}

// Server returns the DNS proxy (its addresses, Ready).
func (d *DNS) Server() *dnsproxy.Server { return d.srv }

// Stop closes the subscription and the DNS proxy and waits for the
// queries in progress.
func (d *DNS) Stop() {
	d.cancel()
	<-d.done
}

// ndsWatch keeps an NDS subscription open.
type ndsWatch struct {
	addr    string
	node    *corev3.Node
	srv     *dnsproxy.Server
	backoff xdsclient.Backoff
	log     *slog.Logger
}

// run subscribes until ctx ends, reconnecting after failures.
func (w *ndsWatch) run(ctx context.Context) {
	failures := 0
	for ctx.Err() == nil {
		got, err := w.stream(ctx)
		if ctx.Err() != nil {
			return
		}
		if got {
			failures = 0
		}
		delay := w.backoff.Delay(failures, rand.Float64())
		failures++
		w.log.Warn("agent DNS: name table stream ended; reconnecting", "control_plane", w.addr, "err", err, "in", delay.Round(time.Millisecond))
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
	}
}

// stream runs one ADS stream: the request, then each response decoded,
// applied and ACKed (or NACKed when it does not decode). got says whether
// a table arrived.
func (w *ndsWatch) stream(ctx context.Context) (got bool, err error) {
	cc, err := grpc.NewClient(w.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return false, err
	}
	defer cc.Close()
	st, err := discoveryv3.NewAggregatedDiscoveryServiceClient(cc).StreamAggregatedResources(ctx)
	if err != nil {
		return false, err
	}
	if err := st.Send(&discoveryv3.DiscoveryRequest{Node: w.node, TypeUrl: nds.TypeURL}); err != nil {
		return false, err
	}
	version := ""
	for {
		resp, err := st.Recv()
		if err != nil {
			return got, err
		}
		ack := &discoveryv3.DiscoveryRequest{TypeUrl: nds.TypeURL, ResponseNonce: resp.GetNonce(), VersionInfo: version}
		table, derr := decodeTable(resp)
		if derr != nil {
			w.log.Warn("agent DNS: rejected a name table", "version", resp.GetVersionInfo(), "err", derr)
			ack.ErrorDetail = &status.Status{Code: int32(codes.InvalidArgument), Message: derr.Error()} // as Envoy NACKs
		} else {
			w.srv.UpdateTable(table)
			version, got = resp.GetVersionInfo(), true
			ack.VersionInfo = version
			w.log.Debug("agent DNS: name table applied", "version", version, "hosts", len(table))
		}
		if err := st.Send(ack); err != nil {
			return got, err
		}
	}
}

// decodeTable reads the one name table of a response (none: an empty
// table, weft-control's answer for a proxy that sees no service).
func decodeTable(resp *discoveryv3.DiscoveryResponse) (nds.Table, error) {
	switch n := len(resp.GetResources()); n {
	case 0:
		return nds.Table{}, nil
	case 1:
		return nds.FromAny(resp.GetResources()[0])
	default:
		return nil, fmt.Errorf("%d name tables in one response, want one", n)
	}
}
