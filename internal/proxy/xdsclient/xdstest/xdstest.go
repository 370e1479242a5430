// Package xdstest runs a control plane for tests of weft-proxy's dynamic
// mode: go-control-plane's snapshot cache and ADS server on a loopback
// port, with the requests it receives recorded so that tests can wait for
// an ACK or a NACK. It can be stopped and started again on the same
// address, to test reconnection.
package xdstest

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"google.golang.org/grpc"
)

// Server is a control plane on loopback. Safe for concurrent use.
type Server struct {
	t     testing.TB
	Cache cache.SnapshotCache
	xds   serverv3.Server
	addr  string

	mu      sync.Mutex
	cond    *sync.Cond
	grpc    *grpc.Server
	reqs    []*discoveryv3.DiscoveryRequest
	streams int // streams opened so far
}

// Start starts a control plane on 127.0.0.1 (a free port) and stops it
// when the test ends. Snapshots are keyed by node id.
func Start(t testing.TB) *Server {
	t.Helper()
	s := &Server{t: t, Cache: cache.NewSnapshotCache(false, cache.IDHash{}, nil)}
	s.cond = sync.NewCond(&s.mu)
	s.xds = serverv3.NewServer(context.Background(), s.Cache, serverv3.CallbackFuncs{
		StreamOpenFunc: func(context.Context, int64, string) error {
			s.mu.Lock()
			s.streams++
			s.cond.Broadcast()
			s.mu.Unlock()
			return nil
		},
		StreamRequestFunc: func(_ int64, req *discoveryv3.DiscoveryRequest) error {
			s.mu.Lock()
			s.reqs = append(s.reqs, req)
			s.cond.Broadcast()
			s.mu.Unlock()
			return nil
		},
	})
	s.listen("127.0.0.1:0")
	t.Cleanup(s.Stop)
	return s
}

// Addr returns the control plane's "127.0.0.1:port".
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

func (s *Server) listen(addr string) {
	var ln net.Listener
	var err error
	// Rebinding the port of a stopped server may briefly fail while the
	// kernel releases it.
	deadline := time.Now().Add(5 * time.Second)
	for {
		ln, err = net.Listen("tcp", addr)
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond) // retrying a bind, not synchronisation
	}
	if err != nil {
		s.t.Fatalf("xdstest: listen %s: %v", addr, err)
	}
	g := grpc.NewServer()
	discoveryv3.RegisterAggregatedDiscoveryServiceServer(g, s.xds)
	s.mu.Lock()
	s.grpc = g
	s.addr = ln.Addr().String()
	s.mu.Unlock()
	go g.Serve(ln)
}

// Stop stops the control plane at once: streams break.
func (s *Server) Stop() {
	s.mu.Lock()
	g := s.grpc
	s.grpc = nil
	s.mu.Unlock()
	if g != nil {
		g.Stop()
	}
}

// Restart starts the control plane again on the same address, with the
// same snapshots.
func (s *Server) Restart() {
	s.Stop()
	s.listen(s.Addr())
}

// Resources are one snapshot's resources, by type URL (resource.ClusterType,
// ...), each type with its own version.
type Resources map[resource.Type]Versioned

// Versioned is the resources of one type at one version.
type Versioned struct {
	Version string
	Items   []types.Resource
}

// Set publishes a snapshot for node.
func (s *Server) Set(node string, r Resources) {
	s.t.Helper()
	snap := &cache.Snapshot{}
	for typ, v := range r {
		idx := cache.GetResponseType(typ)
		if idx == types.UnknownType {
			s.t.Fatalf("xdstest: unknown type %s", typ)
		}
		snap.Resources[idx] = cache.NewResources(v.Version, v.Items)
	}
	if err := s.Cache.SetSnapshot(context.Background(), node, snap); err != nil {
		s.t.Fatalf("xdstest: set snapshot: %v", err)
	}
}

// Requests returns every request received so far.
func (s *Server) Requests() []*discoveryv3.DiscoveryRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*discoveryv3.DiscoveryRequest(nil), s.reqs...)
}

// Streams returns how many streams were opened so far.
func (s *Server) Streams() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.streams
}

// WaitRequest waits until a request received after the first `from`
// matches pred, and returns it with its index; it fails the test after
// timeout.
func (s *Server) WaitRequest(from int, timeout time.Duration, what string, pred func(*discoveryv3.DiscoveryRequest) bool) (*discoveryv3.DiscoveryRequest, int) {
	s.t.Helper()
	deadline := time.Now().Add(timeout)
	timer := time.AfterFunc(timeout, func() {
		s.mu.Lock()
		s.cond.Broadcast()
		s.mu.Unlock()
	})
	defer timer.Stop()
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := from; ; {
		for ; i < len(s.reqs); i++ {
			if pred(s.reqs[i]) {
				return s.reqs[i], i
			}
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("xdstest: no request %s within %v (got %d requests)", what, timeout, len(s.reqs))
		}
		s.cond.Wait()
	}
}

// ACK matches an ACK of version for typeURL.
func ACK(typeURL, version string) func(*discoveryv3.DiscoveryRequest) bool {
	return func(r *discoveryv3.DiscoveryRequest) bool {
		return r.GetTypeUrl() == typeURL && r.GetVersionInfo() == version && r.GetResponseNonce() != "" && r.GetErrorDetail() == nil
	}
}

// NACK matches a NACK for typeURL.
func NACK(typeURL string) func(*discoveryv3.DiscoveryRequest) bool {
	return func(r *discoveryv3.DiscoveryRequest) bool {
		return r.GetTypeUrl() == typeURL && r.GetErrorDetail() != nil
	}
}
