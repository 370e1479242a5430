package xds

import (
	"context"
	"io"
	"log/slog"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/weftmesh/weft/internal/model"
	"github.com/weftmesh/weft/internal/translate"
	"github.com/weftmesh/weft/internal/xds/xdstest"
)

// tableGen is a fake translator: per snapshot version, a function of the
// proxy. An unknown version gives empty resources.
type tableGen struct {
	mu sync.Mutex
	m  map[string]func(*model.Proxy) *translate.Resources
}

func newTableGen() *tableGen {
	return &tableGen{m: map[string]func(*model.Proxy) *translate.Resources{}}
}

func (g *tableGen) set(version string, f func(*model.Proxy) *translate.Resources) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.m[version] = f
}

// setAll makes version give r to every proxy.
func (g *tableGen) setAll(version string, r *translate.Resources) {
	g.set(version, func(*model.Proxy) *translate.Resources { return r })
}

func (g *tableGen) Generate(s *model.Snapshot, p *model.Proxy) *translate.Resources {
	g.mu.Lock()
	f := g.m[s.Version]
	g.mu.Unlock()
	if f == nil {
		return xdstest.NewResources()
	}
	return f(p)
}

// env is a Server on a loopback port.
type env struct {
	t    *testing.T
	s    *Server
	addr string
}

func newEnv(t *testing.T, gen Generator) *env {
	t.Helper()
	return newEnvWith(t, Options{Generator: gen})
}

func newEnvWith(t *testing.T, o Options) *env {
	t.Helper()
	o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	s, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(lis) }()
	t.Cleanup(func() {
		s.Stop()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return &env{t: t, s: s, addr: lis.Addr().String()}
}

func (e *env) push(version string) {
	e.s.Push(model.NewSnapshot(model.SnapshotOptions{Version: version}))
}

func (e *env) ads(id string, o xdstest.Options) *xdstest.ADS {
	e.t.Helper()
	o.Address, o.KeepResources = e.addr, true
	if o.Node == nil {
		o.Node = xdstest.NodeFor(id, map[string]string{"app": "test"}, nil)
	}
	c, err := xdstest.NewADS(o)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { _ = c.Close() })
	return c
}

func (e *env) delta(id string, o xdstest.Options) *xdstest.Delta {
	e.t.Helper()
	o.Address, o.KeepResources = e.addr, true
	if o.Node == nil {
		o.Node = xdstest.NodeFor(id, map[string]string{"app": "test"}, nil)
	}
	c, err := xdstest.NewDelta(o)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { _ = c.Close() })
	return c
}

// waitServerSynced waits until the server has the ACK of every type it
// sent to proxy id.
func (e *env) waitServerSynced(ctx context.Context, id string, types ...string) {
	e.t.Helper()
	for {
		ps, ok := e.s.SyncStatus()[id]
		synced := ok
		for _, url := range types {
			synced = synced && ps.Types[url].State == StateSynced
		}
		if synced {
			return
		}
		select {
		case <-ctx.Done():
			e.t.Fatalf("proxy %s: server never saw every ACK: %+v", id, ps)
		case <-time.After(5 * time.Millisecond):
			// Polling: the server has no change notification for tests.
		}
	}
}

// waitConnected waits until exactly n streams have an identified proxy.
func (e *env) waitConnected(ctx context.Context, n int) {
	e.t.Helper()
	for e.s.Connected() != n {
		select {
		case <-ctx.Done():
			e.t.Fatalf("%d proxies connected, want %d", e.s.Connected(), n)
		case <-time.After(5 * time.Millisecond):
			// Polling: the server has no change notification for tests.
		}
	}
}

// waitWatch waits until proxy id has an open watch of type url: the
// server chose to hold rather than answer.
func (e *env) waitWatch(ctx context.Context, id, url string) {
	e.t.Helper()
	for !e.hasWatch(id, url) {
		select {
		case <-ctx.Done():
			e.t.Fatalf("proxy %s: no open %s watch", id, url)
		case <-time.After(5 * time.Millisecond):
			// Polling: the server has no change notification for tests.
		}
	}
}

func (e *env) hasWatch(id, url string) bool {
	n := e.s.nodes.get(id)
	if n == nil {
		return false
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, w := range n.watches {
		if w.req.GetTypeUrl() == url {
			return true
		}
	}
	for _, w := range n.deltaWatches {
		if w.req.GetTypeUrl() == url {
			return true
		}
	}
	return false
}

// waitStatus waits until cond holds for proxy id's sync status.
func (e *env) waitStatus(ctx context.Context, id string, cond func(ProxyStatus) bool) {
	e.t.Helper()
	for {
		ps, ok := e.s.SyncStatus()[id]
		if ok && cond(ps) {
			return
		}
		select {
		case <-ctx.Done():
			e.t.Fatalf("proxy %s: status never matched: %+v", id, ps)
		case <-time.After(5 * time.Millisecond):
			// Polling: the server has no change notification for tests.
		}
	}
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

var allTypes = []string{xdstest.ClusterType, xdstest.EndpointType, xdstest.ListenerType, xdstest.RouteType}

const proxyA = "sidecar~10.0.0.9~app-1.default~default.svc.cluster.local"

// world returns the test configuration: clusters a and b, assignments for
// a, b and c (c is referenced by no cluster), listener "http" using
// route "r1", and routes r1 (splitting a/b with weight w for a) and r2
// (referenced by no listener).
func world(w uint32) *translate.Resources {
	return xdstest.NewResources(
		xdstest.EDSCluster("a"), xdstest.EDSCluster("b"),
		xdstest.Endpoints("a", 80, "10.1.0.1"), xdstest.Endpoints("b", 80, "10.1.0.2"), xdstest.Endpoints("c", 80, "10.1.0.3"),
		xdstest.HTTPListener("http", "127.0.0.1", 15001, "r1"),
		xdstest.RouteConfig("r1", xdstest.VirtualHost("all", []string{"*"},
			xdstest.WeightedCluster{Cluster: "a", Weight: w}, xdstest.WeightedCluster{Cluster: "b", Weight: 100 - w})),
		xdstest.RouteConfig("r2", xdstest.VirtualHost("other", []string{"other"}, xdstest.WeightedCluster{Cluster: "a"})),
	)
}

// responses returns the number of responses of each type a client got.
func responses(read func(func(*xdstest.State))) map[string]int {
	out := map[string]int{}
	read(func(s *xdstest.State) {
		for _, url := range allTypes {
			out[url] = s.Type(url).Responses
		}
	})
	return out
}

func names(read func(func(*xdstest.State)), url string) []string {
	var out []string
	read(func(s *xdstest.State) {
		for n := range s.Type(url).Names {
			out = append(out, n)
		}
	})
	slices.Sort(out)
	return out
}

// testutilValue reads a counter or gauge.
func testutilValue(t *testing.T, m prometheus.Metric) float64 {
	t.Helper()
	var d dto.Metric
	if err := m.Write(&d); err != nil {
		t.Fatal(err)
	}
	if d.Counter != nil {
		return d.Counter.GetValue()
	}
	return d.Gauge.GetValue()
}
