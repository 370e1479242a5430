// Package tcpproxy is the TCP proxy network filter
// (envoy.filters.network.tcp_proxy): it connects each downstream connection
// to a host of the configured cluster (or one of weighted_clusters) and
// relays bytes both ways until both sides are done or the idle timeout
// passes.
package tcpproxy

import (
	"fmt"
	"math/rand/v2"
	"net"
	"time"

	tcpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"

	"github.com/weftmesh/weft/internal/proxy/accesslog"
	"github.com/weftmesh/weft/internal/proxy/network"
	"github.com/weftmesh/weft/internal/proxy/relay"
	"github.com/weftmesh/weft/internal/proxy/stats"
	"github.com/weftmesh/weft/internal/proxy/streaminfo"
	"github.com/weftmesh/weft/internal/proxy/upstream"
	"github.com/weftmesh/weft/internal/proxy/upstream/lb"
)

type weighted struct {
	name   string
	weight uint64
}

// Proxy is one configured tcp_proxy. It implements network.Handler.
type Proxy struct {
	clusters    *upstream.Manager
	targets     []weighted
	total       uint64
	idleTimeout time.Duration
	attempts    int
	stats       proxyStats
	// Observer, when set before the proxy serves, sees each relayed
	// connection (the istio.stats network filter).
	Observer   Observer
	accessLogs accesslog.Loggers
}

// Observer sees the connections a tcp_proxy relays.
type Observer interface {
	// Opened is called on the connection's goroutine once the upstream
	// connection to h of cluster is established; info is the
	// connection's record so far (upstream principals included), valid
	// until done returns. The returned function, when not nil, is called
	// with the bytes received from and sent to the downstream once the
	// relay is done.
	Opened(c *network.Conn, info *streaminfo.Info, cluster *upstream.Cluster, h *upstream.Host) (done func(received, sent int64))
}

type proxyStats struct {
	cxTotal, noRoute, idleTimeout, connectFail, rxBytes, txBytes *stats.Counter
}

var _ network.Handler = (*Proxy)(nil)

// New builds a TCP proxy from its configuration.
func New(cfg *tcpv3.TcpProxy, clusters *upstream.Manager, st *stats.Store) (*Proxy, error) {
	p := &Proxy{clusters: clusters, idleTimeout: time.Hour, attempts: 1}
	switch {
	case cfg.GetCluster() != "":
		p.targets = []weighted{{cfg.GetCluster(), 1}}
	case cfg.GetWeightedClusters() != nil:
		for i, c := range cfg.GetWeightedClusters().GetClusters() {
			if c.GetWeight() == 0 {
				continue
			}
			if c.GetName() == "" {
				return nil, fmt.Errorf("weighted_clusters.clusters[%d].name: required", i)
			}
			p.targets = append(p.targets, weighted{c.GetName(), uint64(c.GetWeight())})
		}
	}
	for _, t := range p.targets {
		p.total += t.weight
	}
	if p.total == 0 {
		return nil, fmt.Errorf("cluster or weighted_clusters: a cluster is required")
	}
	if d := cfg.GetIdleTimeout(); d != nil {
		p.idleTimeout = d.AsDuration() // 0 disables it
	}
	if v := cfg.GetMaxConnectAttempts(); v != nil {
		p.attempts = int(v.GetValue())
	}
	sc := st.Root().Tagged("tcp", "envoy_tcp_prefix", cfg.GetStatPrefix())
	p.stats = proxyStats{
		cxTotal:     sc.Counter("downstream_cx_total"),
		noRoute:     sc.Counter("downstream_cx_no_route"),
		idleTimeout: sc.Counter("idle_timeout"),
		connectFail: sc.Counter("upstream_connect_fail"),
		rxBytes:     sc.Counter("downstream_cx_rx_bytes_total"),
		txBytes:     sc.Counter("downstream_cx_tx_bytes_total"),
	}
	return p, nil
}

func (p *Proxy) pick() string {
	if len(p.targets) == 1 {
		return p.targets[0].name
	}
	r := rand.Uint64N(p.total)
	for _, t := range p.targets {
		if r < t.weight {
			return t.name
		}
		r -= t.weight
	}
	return p.targets[len(p.targets)-1].name
}

// SetAccessLogs sets the loggers of the proxy's access_log (built by the
// server with accesslog.Manager.Build); call it before serving.
func (p *Proxy) SetAccessLogs(ls accesslog.Loggers) { p.accessLogs = ls }

// ServeConn implements network.Handler.
func (p *Proxy) ServeConn(c *network.Conn) {
	var info streaminfo.Info
	info.StartTime = time.Now()
	info.DownstreamRemote, info.DownstreamLocal = c.Remote, c.Local
	defer func() {
		c.Close()
		if len(p.accessLogs) > 0 {
			info.Duration = time.Since(info.StartTime)
			p.accessLogs.Log(&accesslog.Entry{Info: &info, Conn: c, TCP: true})
		}
	}()
	p.stats.cxTotal.Inc()
	info.UpstreamCluster = p.pick()
	cl := p.clusters.Get(info.UpstreamCluster)
	if cl == nil {
		p.stats.noRoute.Inc()
		info.SetFlag(streaminfo.NoClusterFound)
		return
	}
	up, h, release := p.connect(c, cl, &info)
	if up == nil {
		return
	}
	defer release()
	defer up.Close()
	var done func(received, sent int64)
	if p.Observer != nil {
		done = p.Observer.Opened(c, &info, cl, h)
	}
	rx, tx := p.relay(c, up, &info)
	if done != nil {
		done(rx, tx)
	}
}

// connect tries up to max_connect_attempts hosts. On failure it sets
// Envoy's flags: UH without a healthy host, UF when connecting failed,
// plus URX when more than one attempt was allowed and all failed.
func (p *Proxy) connect(c *network.Conn, cl *upstream.Cluster, info *streaminfo.Info) (net.Conn, *upstream.Host, func()) {
	var ctx lb.Context
	if c.LocalRestored {
		ctx.OriginalDst = c.Local // ORIGINAL_DST clusters connect there
	}
	for i := 0; i < p.attempts; i++ {
		h := cl.Choose(&ctx)
		if h == nil {
			info.SetFlag(streaminfo.NoHealthyUpstream)
			return nil, nil, nil
		}
		info.UpstreamAttempts = i + 1
		info.UpstreamHost = h.Address()
		h.Stats.RqActive.Inc()
		c, release, err := h.DialTCP(time.Time{})
		if err == nil {
			if a, ok := c.LocalAddr().(*net.TCPAddr); ok {
				info.UpstreamLocal = a.AddrPort()
			}
			id := h.Identity(c)
			info.UpstreamPeerPrincipal, info.UpstreamLocalPrincipal = id.Peer, id.Local
			return c, h, func() {
				release()
				h.Stats.RqActive.Dec()
			}
		}
		h.Stats.RqActive.Dec()
		p.stats.connectFail.Inc()
	}
	info.SetFlag(streaminfo.UpstreamConnectionFailure)
	if p.attempts > 1 {
		info.SetFlag(streaminfo.UpstreamRetryLimitExceeded)
	}
	return nil, nil, nil
}

// relay copies both ways until both sides are done or the idle timeout,
// and returns the bytes received from and sent to the downstream.
func (p *Proxy) relay(down *network.Conn, up net.Conn, info *streaminfo.Info) (received, sent int64) {
	// Bytes a listener filter peeked at (a TLS ClientHello) go first; then
	// the raw socket is relayed directly.
	pending := down.Peeked
	down.Peeked = nil
	r := relay.Run(down.Conn, up, relay.Options{IdleTimeout: p.idleTimeout, PendingA: pending})
	p.stats.rxBytes.Add(uint64(r.AToB))
	p.stats.txBytes.Add(uint64(r.BToA))
	info.BytesReceived, info.BytesSent = r.AToB, r.BToA
	if r.IdleTimedOut {
		p.stats.idleTimeout.Inc()
	}
	return int64(r.AToB), int64(r.BToA)
}
