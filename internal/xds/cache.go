package xds

import (
	"context"
	"maps"
	"strconv"
	"sync"
	"time"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/weftmesh/weft/internal/model"
)

// node is the server's state for one proxy identity (node id): its
// current resources and the open watches of its streams. Several streams
// may share a node (per-type xDS streams, or a reconnect that overlaps the
// old stream).
type node struct {
	id string

	mu    sync.Mutex
	proxy *model.Proxy
	// seq is the push sequence res was computed for; older results are
	// dropped.
	seq          uint64
	res          *nodeResources
	nextWatch    int64
	watches      map[int64]*sotwWatch
	deltaWatches map[int64]*deltaWatch

	// streams counts the live streams of this node; guarded by
	// nodeTable.mu.
	streams int
}

type sotwWatch struct {
	req *discoveryv3.DiscoveryRequest
	sub cachev3.Subscription
	ch  chan cachev3.Response
}

type deltaWatch struct {
	req *discoveryv3.DeltaDiscoveryRequest
	sub cachev3.Subscription
	ch  chan cachev3.DeltaResponse
}

func newNode(p *model.Proxy) *node {
	return &node{
		id:           p.ID,
		proxy:        p,
		watches:      map[int64]*sotwWatch{},
		deltaWatches: map[int64]*deltaWatch{},
	}
}

// watchCache implements go-control-plane's cache.Cache over the nodes of
// a Server. Unlike go-control-plane's SnapshotCache it
//   - keeps one lock per node, so pushes to different proxies run in
//     parallel;
//   - shares encoded resources between proxies (typeSet), instead of
//     marshalling every resource once per proxy and response;
//   - answers a SotW request whose names are a subset of the resources
//     (SnapshotCache in ADS mode withholds such responses);
//   - holds after a NACK: the Server rewrites a NACK's version_info to the
//     rejected version before the watch is created (see onRequest), so the
//     watch waits for the next change instead of re-sending the rejected
//     configuration at once.
type watchCache struct {
	s *Server
}

var _ cachev3.Cache = watchCache{}

// CreateWatch answers a SotW request at once when the proxy does not have
// the current version of what it asks for, and otherwise opens a watch
// that the next change of that type answers.
func (c watchCache) CreateWatch(req *cachev3.Request, sub cachev3.Subscription, ch chan cachev3.Response) (func(), error) {
	n := c.s.nodes.get(req.GetNode().GetId())
	if n == nil {
		return nil, status.Errorf(codes.FailedPrecondition, "node %q has no state: the stream's first request must carry the node", req.GetNode().GetId())
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if t, ok := typeIndex(req.GetTypeUrl()); ok && n.res != nil {
		if ts := n.res.sets[t]; sotwShouldRespond(ts, req, sub) {
			c.s.sendSotw(ch, sotwResponseFor(ts, req, sub), time.Time{})
			return func() {}, nil
		}
	}
	// Types weft-control does not serve wait forever, like
	// SnapshotCache's watches for a type its snapshot lacks.
	n.nextWatch++
	id := n.nextWatch
	n.watches[id] = &sotwWatch{req: req, sub: sub, ch: ch}
	return func() {
		n.mu.Lock()
		delete(n.watches, id)
		n.mu.Unlock()
	}, nil
}

// CreateDeltaWatch answers a delta request at once when the proxy lacks
// resources it subscribes to (or has stale versions of them, or holds
// removed ones), and otherwise opens a watch for the next change.
func (c watchCache) CreateDeltaWatch(req *cachev3.DeltaRequest, sub cachev3.Subscription, ch chan cachev3.DeltaResponse) (func(), error) {
	n := c.s.nodes.get(req.GetNode().GetId())
	if n == nil {
		return nil, status.Errorf(codes.FailedPrecondition, "node %q has no state: the stream's first request must carry the node", req.GetNode().GetId())
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if t, ok := typeIndex(req.GetTypeUrl()); ok && n.res != nil {
		if resp := deltaAnswer(n.res.sets[t], req, sub); resp != nil {
			c.s.sendDelta(ch, resp, time.Time{})
			return func() {}, nil
		}
	}
	n.nextWatch++
	id := n.nextWatch
	n.deltaWatches[id] = &deltaWatch{req: req, sub: sub, ch: ch}
	return func() {
		n.mu.Lock()
		delete(n.deltaWatches, id)
		n.mu.Unlock()
	}, nil
}

// Fetch is the REST (and unary gRPC) fetch; weft-control serves xDS over
// streams only.
func (c watchCache) Fetch(context.Context, *cachev3.Request) (cachev3.Response, error) {
	return nil, status.Error(codes.Unimplemented, "weft-control serves xDS over gRPC streams (ADS or per-type), not REST or unary fetch")
}

// set installs resources computed for push sequence seq and answers the
// open watches whose type changed, in ADS order. A result older than the
// node's current one is dropped (a connection and a push may compute
// concurrently). It reports whether res was installed.
func (s *Server) set(n *node, seq uint64, res *nodeResources, pushStart time.Time) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if seq < n.seq {
		return false
	}
	old := n.res
	n.res, n.seq = res, seq
	for t := range numTypes {
		if old != nil && old.sets[t] == res.sets[t] {
			continue
		}
		s.answerWatches(n, t, pushStart)
	}
	return true
}

// answerWatches answers the node's open watches of type t that the new
// resources satisfy. n.mu is held.
func (s *Server) answerWatches(n *node, t int, pushStart time.Time) {
	ts := n.res.sets[t]
	for id, w := range n.watches {
		if w.req.GetTypeUrl() != typeURLs[t] || !sotwShouldRespond(ts, w.req, w.sub) {
			continue
		}
		s.sendSotw(w.ch, sotwResponseFor(ts, w.req, w.sub), pushStart)
		delete(n.watches, id)
	}
	for id, w := range n.deltaWatches {
		if w.req.GetTypeUrl() != typeURLs[t] {
			continue
		}
		if resp := deltaAnswer(ts, w.req, w.sub); resp != nil {
			s.sendDelta(w.ch, resp, pushStart)
			delete(n.deltaWatches, id)
		}
	}
}

// sendSotw hands a response to a stream. The channel always has room:
// go-control-plane's server keeps at most one open watch per type and
// stream, and a watch is answered once, so a stream never has more
// pending responses than types. A full channel would be a broken
// invariant: it is logged and counted, never allowed to block a push.
func (s *Server) sendSotw(ch chan cachev3.Response, r *sotwResponse, pushStart time.Time) {
	select {
	case ch <- r:
		s.observeQueued(r.req.GetTypeUrl(), pushStart)
	default:
		s.log.Error("xds: response channel full, response dropped (broken invariant)", "type", r.req.GetTypeUrl(), "node", r.req.GetNode().GetId())
		s.metrics.dropped.Inc()
	}
}

// sendDelta is sendSotw for delta streams.
func (s *Server) sendDelta(ch chan cachev3.DeltaResponse, r *deltaResponse, pushStart time.Time) {
	select {
	case ch <- r:
		s.observeQueued(r.req.GetTypeUrl(), pushStart)
	default:
		s.log.Error("xds: delta response channel full, response dropped (broken invariant)", "type", r.req.GetTypeUrl(), "node", r.req.GetNode().GetId())
		s.metrics.dropped.Inc()
	}
}

func (s *Server) observeQueued(typeURL string, pushStart time.Time) {
	if !pushStart.IsZero() {
		s.metrics.pushTime.WithLabelValues(shortName(typeURL)).Observe(time.Since(pushStart).Seconds())
	}
}

// sotwShouldRespond reports whether a SotW request gets ts now: when the
// request's version differs from ts (first request, a change the proxy
// has not seen, a reconnect with an old version, a NACK (see onRequest)),
// or when, at the same version, the proxy's subscription covers resources
// of ts other than those returned on this stream.
//
// What was returned on the stream is sub.ReturnedResources(), the map
// sotwResponseFor made for the stream's last response (go-control-plane's
// server hands it back; a new stream starts with an empty map):
//   - nil after a wildcard response: everything of that version was sent;
//   - otherwise one entry, a subscribed name mapped to a fingerprint of the
//     returned names (returnedPrint). go-control-plane's server deletes
//     entries whose name leaves the subscription, so the entry is keyed by
//     a returned name; a missing entry reads as "nothing returned".
//
// A fingerprint instead of a map of every name keeps a proxy's EDS state
// small (a mesh proxy asks for a thousand or more assignments).
func sotwShouldRespond(ts *typeSet, req *discoveryv3.DiscoveryRequest, sub cachev3.Subscription) bool {
	if ts == nil {
		return false
	}
	if req.GetVersionInfo() != ts.version {
		return true
	}
	returned := sub.ReturnedResources()
	if sub.IsWildcard() {
		if returned == nil {
			return false
		}
		for _, name := range ts.names {
			if _, ok := returned[name]; !ok {
				return true
			}
		}
		return false
	}
	var sent string
	for _, fp := range returned {
		sent = fp
	}
	var p namePrint
	for name := range sub.SubscribedResources() {
		if i, ok := ts.index[name]; ok {
			p.add(ts.hashes[i])
		}
	}
	if len(returned) != 1 {
		return p.n > 0
	}
	return p.String() != sent
}

// sotwResponseFor builds the response to a SotW request: every resource
// for a wildcard subscription (Envoy's LDS and CDS), the requested ones
// that exist otherwise (EDS, RDS, and proxyless gRPC's named LDS/CDS), in
// the order requested.
func sotwResponseFor(ts *typeSet, req *discoveryv3.DiscoveryRequest, sub cachev3.Subscription) *sotwResponse {
	r := &sotwResponse{req: req, version: ts.version}
	if sub.IsWildcard() {
		r.resources = ts.anys // shared, read-only
		return r
	}
	picked := make([]uint64, (len(ts.names)+63)/64) // dedupes repeated names
	var p namePrint
	first := ""
	for _, name := range req.GetResourceNames() {
		i, ok := ts.index[name]
		if !ok || picked[i/64]&(1<<(i%64)) != 0 {
			continue
		}
		picked[i/64] |= 1 << (i % 64)
		r.resources = append(r.resources, ts.anys[i])
		p.add(ts.hashes[i])
		if first == "" {
			first = ts.names[i]
		}
	}
	r.returned = map[string]string{}
	if p.n > 0 {
		// Keyed by a returned name, so that it stays while that name is
		// subscribed (see sotwShouldRespond).
		r.returned[first] = p.String()
	}
	return r
}

// namePrint is an order-independent fingerprint of a set of names: their
// number and the sum of their hashes.
type namePrint struct {
	n   int
	sum uint64
}

func (p *namePrint) add(h uint64) { p.n++; p.sum += h }

func (p namePrint) String() string {
	return strconv.Itoa(p.n) + ":" + strconv.FormatUint(p.sum, 16)
}

// deltaAnswer returns the response to a delta request, or nil to wait:
// what the subscription lacks (deltaResponseFor), and for the first
// wildcard request of a stream an answer even when nothing is lacking,
// because Envoy waits for it to finish initialising (go-control-plane's
// SnapshotCache does the same).
func deltaAnswer(ts *typeSet, req *discoveryv3.DeltaDiscoveryRequest, sub cachev3.Subscription) *deltaResponse {
	if resp := deltaResponseFor(ts, req, sub); resp != nil {
		return resp
	}
	if ts == nil || !sub.IsWildcard() || req.GetResponseNonce() != "" {
		return nil
	}
	// Nothing differs: the proxy has exactly the set.
	return &deltaResponse{req: req, version: ts.version, next: maps.Clone(ts.versions)}
}

// deltaResponseFor returns what a delta subscription lacks from ts: added
// or changed resources and removed ones, or nil when the proxy is up to
// date. The proxy's state is sub.ReturnedResources(): go-control-plane's
// server sets it to the versions sent, when sending, so a NACKed update is
// not sent again until its resources change (no resend storm after a
// NACK).
func deltaResponseFor(ts *typeSet, req *discoveryv3.DeltaDiscoveryRequest, sub cachev3.Subscription) *deltaResponse {
	if ts == nil {
		return nil
	}
	returned := sub.ReturnedResources()
	r := &deltaResponse{req: req, version: ts.version}
	all := ts.deltaResources()
	if sub.IsWildcard() {
		for i, name := range ts.names {
			if v, ok := returned[name]; !ok || v != all[i].Version {
				r.resources = append(r.resources, all[i])
			}
		}
		for name := range returned {
			if !ts.has(name) {
				r.removed = append(r.removed, name)
			}
		}
		if len(r.resources) == 0 && len(r.removed) == 0 {
			return nil
		}
		r.next = maps.Clone(ts.versions)
		return r
	}
	r.next = make(map[string]string, len(sub.SubscribedResources()))
	for name := range sub.SubscribedResources() {
		i, ok := ts.index[name]
		prev, known := returned[name]
		switch {
		case ok:
			r.next[name] = all[i].Version
			if !known || prev != all[i].Version {
				r.resources = append(r.resources, all[i])
			}
		case known:
			r.removed = append(r.removed, name)
		}
	}
	if len(r.resources) == 0 && len(r.removed) == 0 {
		return nil
	}
	return r
}

// sotwResponse implements cache.Response over a shared typeSet.
type sotwResponse struct {
	req       *discoveryv3.DiscoveryRequest
	version   string
	resources []*anypb.Any
	returned  map[string]string
}

var _ cachev3.Response = (*sotwResponse)(nil)

// GetDiscoveryResponse returns a new response message each call (the
// server sets its nonce); the resources are shared and read-only.
func (r *sotwResponse) GetDiscoveryResponse() (*discoveryv3.DiscoveryResponse, error) {
	return &discoveryv3.DiscoveryResponse{
		VersionInfo: r.version,
		Resources:   r.resources,
		TypeUrl:     r.req.GetTypeUrl(),
	}, nil
}

func (r *sotwResponse) GetRequest() *discoveryv3.DiscoveryRequest { return r.req }
func (r *sotwResponse) GetVersion() (string, error)               { return r.version, nil }
func (r *sotwResponse) GetResponseVersion() string                { return r.version }
func (r *sotwResponse) GetReturnedResources() map[string]string   { return r.returned }
func (r *sotwResponse) GetContext() context.Context               { return context.Background() }

// deltaResponse implements cache.DeltaResponse over a shared typeSet.
type deltaResponse struct {
	req       *discoveryv3.DeltaDiscoveryRequest
	version   string
	resources []*discoveryv3.Resource
	removed   []string
	next      map[string]string
}

var _ cachev3.DeltaResponse = (*deltaResponse)(nil)

// GetDeltaDiscoveryResponse returns a new response message each call (the
// server sets its nonce); the resources are shared and read-only.
func (r *deltaResponse) GetDeltaDiscoveryResponse() (*discoveryv3.DeltaDiscoveryResponse, error) {
	return &discoveryv3.DeltaDiscoveryResponse{
		SystemVersionInfo: r.version,
		Resources:         r.resources,
		RemovedResources:  r.removed,
		TypeUrl:           r.req.GetTypeUrl(),
	}, nil
}

func (r *deltaResponse) GetDeltaRequest() *discoveryv3.DeltaDiscoveryRequest { return r.req }
func (r *deltaResponse) GetSystemVersion() (string, error)                   { return r.version, nil }
func (r *deltaResponse) GetResponseVersion() string                          { return r.version }
func (r *deltaResponse) GetNextVersionMap() map[string]string                { return r.next }
func (r *deltaResponse) GetReturnedResources() map[string]string             { return r.next }
func (r *deltaResponse) GetContext() context.Context                         { return context.Background() }
