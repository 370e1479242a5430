package xds

import (
	"context"
	"sort"
	"sync"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/weftmesh/weft/internal/model"
)

// streamKey identifies a stream: go-control-plane numbers SotW and delta
// streams separately.
type streamKey struct {
	delta bool
	id    int64
}

// conn is what the server tracks of one xDS stream. Its request and
// response callbacks run on the stream's goroutine; mu guards against
// readers (syncz).
type conn struct {
	key         streamKey
	peer        string
	connectedAt time.Time

	mu          sync.Mutex
	node        *node // set by the first request
	proxy       *model.Proxy
	version     string // the proxy's version (proxyVersion)
	lastRequest time.Time
	types       map[string]*typeState
}

// typeState is the ACK/NACK state of one type on one stream.
type typeState struct {
	sentVersion string
	sentNonce   string
	sentAt      time.Time
	responses   int
	// ackedVersion is the version of the last response the proxy ACKed.
	ackedVersion string
	ackedAt      time.Time
	nack         *NACK
	// nackNonce is the nonce the last NACK answered.
	nackNonce string
	// rejected is set by a NACK and cleared by the next ACK (the
	// pilot_xds_TYPE_reject gauge is set meanwhile).
	rejected    bool
	lastRequest time.Time
}

func (c *conn) typeState(url string) *typeState {
	ts := c.types[url]
	if ts == nil {
		ts = &typeState{}
		c.types[url] = ts
	}
	return ts
}

// connTable holds the live streams.
type connTable struct {
	mu sync.RWMutex
	m  map[streamKey]*conn
}

func (t *connTable) open(ctx context.Context, k streamKey) {
	c := &conn{key: k, connectedAt: time.Now(), types: map[string]*typeState{}}
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		c.peer = p.Addr.String()
	}
	t.mu.Lock()
	t.m[k] = c
	t.mu.Unlock()
}

func (t *connTable) get(k streamKey) *conn {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.m[k]
}

func (t *connTable) remove(k streamKey) *conn {
	t.mu.Lock()
	defer t.mu.Unlock()
	c := t.m[k]
	delete(t.m, k)
	return c
}

func (t *connTable) list() []*conn {
	t.mu.RLock()
	defer t.mu.RUnlock()
	out := make([]*conn, 0, len(t.m))
	for _, c := range t.m {
		out = append(out, c)
	}
	return out
}

// request is the part of a SotW or delta request the tracker reads.
type request struct {
	node    *corev3.Node
	typeURL string
	nonce   string
	err     *rpcstatus.Status
}

// onRequest runs for every request before go-control-plane acts on it.
// The first request of a stream establishes the proxy's identity (a bad
// node ends the stream with InvalidArgument). It records ACKs and NACKs;
// for a NACK of the latest response it returns the rejected version, and
// the SotW caller makes the request carry it, so that the watch waits for
// the next change instead of answering the rejected configuration again
// at once (SnapshotCache's behaviour: a request whose version differs from
// the snapshot's is answered immediately, and a NACK carries the previous
// version).
func (s *Server) onRequest(k streamKey, r request) (rejected string, nacked bool, err error) {
	c := s.conns.get(k)
	if c == nil {
		return "", false, status.Error(codes.Internal, "weft-control: request on an unknown stream")
	}
	if err := s.identify(c, r.node); err != nil {
		return "", false, err
	}
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lastRequest = now
	ts := c.typeState(r.typeURL)
	ts.lastRequest = now
	switch {
	case r.nonce == "":
		// A first request for the type, or a reconnecting proxy.
	case r.nonce != ts.sentNonce:
		// go-control-plane ignores requests for an older response.
		s.metrics.expiredNonce.WithLabelValues(shortName(r.typeURL)).Inc()
	case r.err != nil:
		ts.nack = &NACK{Version: ts.sentVersion, Message: r.err.GetMessage(), Time: now}
		ts.nackNonce = r.nonce
		ts.rejected = true
		s.metrics.nacked(r.typeURL, c.proxy.ID, r.err.GetCode())
		s.log.Warn("xds: proxy rejected configuration (NACK); holding until the configuration changes",
			"proxy", c.proxy.ID, "type", r.typeURL, "version", ts.sentVersion, "error", r.err.GetMessage())
		return ts.sentVersion, true, nil
	default:
		ts.ackedVersion = ts.sentVersion
		ts.ackedAt = now
		if ts.rejected {
			ts.rejected = false
			s.metrics.acked(r.typeURL, c.proxy.ID)
		}
	}
	return "", false, nil
}

// identify sets the stream's proxy from its first request, and attaches
// the stream to its node.
func (s *Server) identify(c *conn, n *corev3.Node) error {
	c.mu.Lock()
	known := c.node != nil
	c.mu.Unlock()
	if known {
		return nil
	}
	p, err := proxyFromNode(n)
	if err != nil {
		s.metrics.badNodes.Inc()
		s.log.Warn("xds: refusing stream: bad node identity", "peer", c.peer, "error", err)
		return status.Errorf(codes.InvalidArgument, "weft-control: refusing xDS stream: %v", err)
	}
	nd := s.attach(p)
	v := proxyVersion(n, p)
	c.mu.Lock()
	c.node, c.proxy, c.version = nd, p, v
	c.mu.Unlock()
	s.metrics.connected.WithLabelValues(v).Inc()
	s.log.Info("xds: proxy connected", "proxy", p.ID, "peer", c.peer, "delta", c.key.delta)
	return nil
}

// onResponse records a response about to be sent.
func (s *Server) onResponse(k streamKey, typeURL, version, nonce string, size int) {
	s.metrics.pushes.WithLabelValues(shortName(typeURL)).Inc()
	s.metrics.configSize.WithLabelValues(shortName(typeURL)).Observe(float64(size))
	s.metrics.sentBytes.WithLabelValues(shortName(typeURL)).Add(float64(size))
	c := s.conns.get(k)
	if c == nil {
		return
	}
	c.mu.Lock()
	ts := c.typeState(typeURL)
	ts.sentVersion, ts.sentNonce, ts.sentAt = version, nonce, time.Now()
	ts.responses++
	c.mu.Unlock()
}

// onClose forgets a stream and detaches it from its node.
func (s *Server) onClose(k streamKey) {
	c := s.conns.remove(k)
	if c == nil {
		return
	}
	c.mu.Lock()
	n, p, v := c.node, c.proxy, c.version
	c.mu.Unlock()
	if n == nil {
		return
	}
	s.nodes.detach(n)
	s.metrics.connected.WithLabelValues(v).Dec()
	if s.nodes.get(p.ID) == nil {
		s.metrics.forget(p.ID)
	}
	s.log.Info("xds: proxy disconnected", "proxy", p.ID, "peer", c.peer)
}

// NACK is a proxy's rejection of a response.
type NACK struct {
	// Version is the rejected version.
	Version string    `json:"version"`
	Message string    `json:"message"`
	Time    time.Time `json:"time"`
}

// ProxyStatus is the sync state of one proxy (all its streams).
type ProxyStatus struct {
	Type string `json:"type"`
	// Name is the node id's workload (pod) name, Namespace its namespace.
	Name      string `json:"name"`
	Namespace string `json:"namespace"`
	// ClusterID is node metadata CLUSTER_ID ("" when not sent).
	ClusterID string `json:"cluster_id,omitempty"`
	// Version is the proxy's version: node metadata ISTIO_VERSION, else
	// the node's user_agent_version or user_agent_build_version.
	Version string `json:"version,omitempty"`
	// AdminAddress is the proxy's admin ip:port as its node metadata
	// WEFT_ADMIN_ADDRESS reports it (`weft proxy-config` reads it).
	AdminAddress string `json:"admin_address,omitempty"`
	// ControlPlane is the instance serving the proxy (Options.ID).
	ControlPlane string `json:"control_plane"`
	// ConnectedSince is when its oldest live stream opened.
	ConnectedSince time.Time `json:"connected_since"`
	LastRequest    time.Time `json:"last_request,omitzero"`
	Streams        int       `json:"streams"`
	Peer           string    `json:"peer,omitempty"`
	// Delta is true when the proxy uses the incremental protocol.
	Delta bool `json:"delta,omitempty"`
	// Types is the state per type URL.
	Types map[string]TypeStatus `json:"types"`
}

// Sync states of a type, as Istio's proxy-status names them.
const (
	StateSynced  = "SYNCED"   // the latest response was ACKed
	StateStale   = "STALE"    // sent, not ACKed yet
	StateNACKed  = "NACKED"   // the latest response was rejected
	StateNotSent = "NOT SENT" // requested, nothing sent yet
)

// TypeStatus is the sync state of one type of one proxy.
type TypeStatus struct {
	State        string    `json:"state"`
	SentVersion  string    `json:"sent_version,omitempty"`
	SentAt       time.Time `json:"sent_at,omitzero"`
	Responses    int       `json:"responses"`
	AckedVersion string    `json:"acked_version,omitempty"`
	AckedAt      time.Time `json:"acked_at,omitzero"`
	LastNACK     *NACK     `json:"last_nack,omitempty"`
	LastRequest  time.Time `json:"last_request,omitzero"`
}

// SyncStatus returns the sync state of every connected proxy by node id.
// Safe for concurrent use.
func (s *Server) SyncStatus() map[string]ProxyStatus {
	out := s.syncStatus()
	for id, ps := range out {
		ps.ControlPlane = s.o.ID
		out[id] = ps
	}
	return out
}

func (s *Server) syncStatus() map[string]ProxyStatus {
	conns := s.conns.list()
	sort.Slice(conns, func(i, j int) bool { return conns[i].connectedAt.Before(conns[j].connectedAt) })
	out := map[string]ProxyStatus{}
	for _, c := range conns {
		c.mu.Lock()
		if c.proxy != nil {
			out[c.proxy.ID] = mergeConn(out[c.proxy.ID], c)
		}
		c.mu.Unlock()
	}
	return out
}

// mergeConn adds one stream (c.mu held) to a proxy's status. Streams come
// oldest first, so a newer stream's view of a type wins.
func mergeConn(ps ProxyStatus, c *conn) ProxyStatus {
	if ps.Streams == 0 {
		ps = ProxyStatus{
			Type:           string(c.proxy.Type),
			Name:           c.proxy.Name,
			Namespace:      c.proxy.Namespace,
			ClusterID:      c.proxy.ClusterID,
			Version:        c.version,
			AdminAddress:   c.proxy.Metadata[model.MetaAdminAddress],
			ConnectedSince: c.connectedAt,
			Types:          map[string]TypeStatus{},
		}
	}
	ps.Streams++
	ps.Peer = c.peer
	ps.Delta = ps.Delta || c.key.delta
	if c.lastRequest.After(ps.LastRequest) {
		ps.LastRequest = c.lastRequest
	}
	for url, ts := range c.types {
		ps.Types[url] = ts.status()
	}
	return ps
}

func (ts *typeState) status() TypeStatus {
	st := TypeStatus{
		SentVersion:  ts.sentVersion,
		SentAt:       ts.sentAt,
		Responses:    ts.responses,
		AckedVersion: ts.ackedVersion,
		AckedAt:      ts.ackedAt,
		LastRequest:  ts.lastRequest,
	}
	if ts.nack != nil {
		n := *ts.nack
		st.LastNACK = &n
	}
	switch {
	case ts.sentNonce == "":
		st.State = StateNotSent
	case ts.nack != nil && ts.nackNonce == ts.sentNonce:
		st.State = StateNACKed
	case ts.ackedAt.IsZero() || ts.ackedAt.Before(ts.sentAt):
		st.State = StateStale
	default:
		st.State = StateSynced
	}
	return st
}

// canonicalNames replaces requested names by the server's copies of them.
// go-control-plane keeps each stream's latest request and subscription;
// without this they hold a private copy of every name, and a mesh proxy's
// EDS request names a thousand or more clusters.
func (s *Server) canonicalNames(k streamKey, typeURL string, names []string) {
	t, ok := typeIndex(typeURL)
	if !ok || len(names) == 0 {
		return
	}
	c := s.conns.get(k)
	if c == nil {
		return
	}
	c.mu.Lock()
	n := c.node
	c.mu.Unlock()
	if n == nil {
		return
	}
	n.mu.Lock()
	var ts *typeSet
	if n.res != nil {
		ts = n.res.sets[t]
	}
	n.mu.Unlock()
	if ts == nil {
		return
	}
	for i, name := range names {
		if j, ok := ts.index[name]; ok {
			names[i] = ts.names[j]
		}
	}
}
