package xds

import (
	"context"
	"errors"
	"slices"
	"testing"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	clusterservice "github.com/envoyproxy/go-control-plane/envoy/service/cluster/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"

	"github.com/weftmesh/weft/internal/model"
	"github.com/weftmesh/weft/internal/translate"
	"github.com/weftmesh/weft/internal/xds/xdstest"
)

// testClient is what the tests shared by both protocols use of either
// protocol's client (xdstest.ADS, xdstest.Delta).
type testClient interface {
	WaitSynced(ctx context.Context) error
	Wait(ctx context.Context, cond func(*xdstest.State) bool) error
	Read(f func(*xdstest.State))
}

// connectFunc opens a protocol's client for proxyA in e.
type connectFunc func(e *env, o xdstest.Options) testClient

func connectSotW(e *env, o xdstest.Options) testClient  { return e.ads(proxyA, o) }
func connectDelta(e *env, o xdstest.Options) testClient { return e.delta(proxyA, o) }

// testSendsOnlyRequested: a client of world(90) holds the clusters and
// listeners (wildcard) and only the endpoints and routes they refer to,
// each type from one response.
func testSendsOnlyRequested(t *testing.T, connect connectFunc) {
	gen := newTableGen()
	gen.setAll("1", world(90))
	e := newEnv(t, gen)
	e.push("1")
	c := connect(e, xdstest.Options{})
	if err := c.WaitSynced(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		url  string
		want []string
	}{
		{xdstest.ClusterType, []string{"a", "b"}},
		// c exists but no cluster refers to it: not requested (delta: not
		// subscribed), not sent.
		{xdstest.EndpointType, []string{"a", "b"}},
		{xdstest.ListenerType, []string{"http"}},
		// r2 exists but no listener refers to it.
		{xdstest.RouteType, []string{"r1"}},
	}
	for _, tt := range tests {
		if got := names(c.Read, tt.url); !slices.Equal(got, tt.want) {
			t.Errorf("%s: got %v, want %v", tt.url, got, tt.want)
		}
	}
	for url, n := range responses(c.Read) {
		if n != 1 {
			t.Errorf("%s: %d responses, want 1", url, n)
		}
	}
}

func TestSotWSendsOnlyRequestedResources(t *testing.T) {
	testSendsOnlyRequested(t, connectSotW)
}

// versionsReached reports whether a client holds the versions of r.
func versionsReached(r *translate.Resources) func(*xdstest.State) bool {
	return func(s *xdstest.State) bool {
		for _, url := range allTypes {
			if s.Type(url).Version != r.Versions[url] {
				return false
			}
		}
		return s.Synced()
	}
}

// changeSteps are successive configurations and the types each changes.
func changeSteps() []struct {
	name    string
	res     *translate.Resources
	changed []string
} {
	withD := func(r *translate.Resources) *translate.Resources {
		r.Clusters["d"] = xdstest.EDSCluster("d")
		r.Endpoints["d"] = xdstest.Endpoints("d", 80, "10.1.0.4")
		xdstest.HashVersions(r)
		return r
	}
	movedA := func() *translate.Resources {
		r := withD(world(50))
		r.Endpoints["a"] = xdstest.Endpoints("a", 80, "10.1.0.100")
		xdstest.HashVersions(r)
		return r
	}
	withoutB := func() *translate.Resources {
		r := movedA()
		delete(r.Clusters, "b")
		delete(r.Endpoints, "b")
		xdstest.HashVersions(r)
		return r
	}
	newPort := func() *translate.Resources {
		r := withoutB()
		r.Listeners["http"] = xdstest.HTTPListener("http", "127.0.0.1", 15002, "r1")
		xdstest.HashVersions(r)
		return r
	}
	return []struct {
		name    string
		res     *translate.Resources
		changed []string
	}{
		{"same content, new snapshot", world(90), nil},
		{"route weight", world(50), []string{xdstest.RouteType}},
		{"cluster added", withD(world(50)), []string{xdstest.ClusterType, xdstest.EndpointType}},
		{"endpoint moved", movedA(), []string{xdstest.EndpointType}},
		{"cluster removed", withoutB(), []string{xdstest.ClusterType, xdstest.EndpointType}},
		{"listener port", newPort(), []string{xdstest.ListenerType}},
		// Flushes the previous step: a stray re-send would arrive before
		// this route update, in ADS order.
		{"route weight again", func() *translate.Resources {
			r := newPort()
			r.Routes["r1"] = world(10).Routes["r1"]
			xdstest.HashVersions(r)
			return r
		}(), []string{xdstest.RouteType}},
	}
}

func TestSotWResendsOnlyChangedTypes(t *testing.T) {
	gen := newTableGen()
	gen.setAll("0", world(90))
	e := newEnv(t, gen)
	e.push("0")
	c := e.ads(proxyA, xdstest.Options{})
	ctx := testCtx(t)
	if err := c.WaitSynced(ctx); err != nil {
		t.Fatal(err)
	}
	for i, step := range changeSteps() {
		version := string(rune('1' + i))
		gen.setAll(version, step.res)
		before := responses(c.Read)
		e.push(version)
		if err := c.Wait(ctx, versionsReached(step.res)); err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		after := responses(c.Read)
		for _, url := range allTypes {
			n := after[url] - before[url]
			if slices.Contains(step.changed, url) && n == 0 {
				t.Errorf("%s: %s changed but was not sent", step.name, url)
			}
			if !slices.Contains(step.changed, url) && n != 0 {
				t.Errorf("%s: %s did not change but was sent %d times", step.name, url, n)
			}
		}
	}
	// The last assignment set follows the clusters: b is gone, d is in.
	if got, want := names(c.Read, xdstest.EndpointType), []string{"a", "d"}; !slices.Equal(got, want) {
		t.Errorf("endpoints after the changes: got %v, want %v", got, want)
	}
}

// weightOfA returns the weight of cluster a in route r1 of a response.
func weightOfA(r *xdstest.Response) uint32 {
	rc, _ := r.Resources["r1"].(*routev3.RouteConfiguration)
	for _, wc := range rc.GetVirtualHosts()[0].GetRoutes()[0].GetRoute().GetWeightedClusters().GetClusters() {
		if wc.GetName() == "a" {
			return wc.GetWeight().GetValue()
		}
	}
	return 0
}

// rejectWeight50 is a client-side validation that refuses a route
// splitting 50/50, standing in for an invalid resource.
func rejectWeight50(r *xdstest.Response) error {
	if r.TypeURL == xdstest.RouteType && weightOfA(r) == 50 {
		return errors.New("route r1: weight 50 is not allowed")
	}
	return nil
}

// nackSteps are the configurations of the NACK tests: good, bad (the
// route the client rejects), bad with an unrelated listener change (the
// barrier: the client sees it only after any re-send of the bad route),
// good again.
func nackSteps() (good, bad, badNewListener, fixed *translate.Resources) {
	good, bad, fixed = world(90), world(50), world(70)
	badNewListener = world(50)
	badNewListener.Listeners["http"] = xdstest.HTTPListener("http", "127.0.0.1", 15002, "r1")
	xdstest.HashVersions(badNewListener)
	return good, bad, badNewListener, fixed
}

// nackCase is one protocol's NACK test: connect opens its client; held
// checks the client and the server once the barrier arrived (the rejected
// route was not sent again); fixedStatus checks the server's status once
// the fix is synced.
type nackCase struct {
	connect     connectFunc
	held        func(t *testing.T, e *env, c testClient, good, bad *translate.Resources)
	fixedStatus func(t *testing.T, e *env, fixed *translate.Resources)
}

// testNACKHolds: the client rejects a route (NACK); the server holds it
// (an open route watch, not the same route again) until the next change,
// then sends the fix, which the client accepts.
func testNACKHolds(t *testing.T, nc nackCase) {
	good, bad, barrier, fixed := nackSteps()
	gen := newTableGen()
	gen.setAll("1", good)
	gen.setAll("2", bad)
	gen.setAll("3", barrier)
	gen.setAll("4", fixed)
	e := newEnv(t, gen)
	e.push("1")
	c := nc.connect(e, xdstest.Options{Reject: rejectWeight50})
	ctx := testCtx(t)
	if err := c.WaitSynced(ctx); err != nil {
		t.Fatal(err)
	}

	e.push("2")
	if err := c.Wait(ctx, func(s *xdstest.State) bool { return s.Type(xdstest.RouteType).NACKs == 1 }); err != nil {
		t.Fatal(err)
	}
	// The server processed the NACK and holds: an open route watch (had it
	// answered the NACK with the same route, there would be none).
	e.waitStatus(ctx, proxyA, func(ps ProxyStatus) bool { return ps.Types[xdstest.RouteType].State == StateNACKed })
	e.waitWatch(ctx, proxyA, xdstest.RouteType)
	e.push("3")
	if err := c.Wait(ctx, func(s *xdstest.State) bool {
		return s.Type(xdstest.ListenerType).Version == barrier.Versions[xdstest.ListenerType]
	}); err != nil {
		t.Fatal(err)
	}
	nc.held(t, e, c, good, bad)

	e.push("4")
	if err := c.Wait(ctx, versionsReached(fixed)); err != nil {
		t.Fatal(err)
	}
	if n := responses(c.Read)[xdstest.RouteType]; n != 3 {
		t.Errorf("route responses after the fix: %d, want 3", n)
	}
	e.waitServerSynced(ctx, proxyA, allTypes...)
	nc.fixedStatus(t, e, fixed)
}

func TestSotWNACKHoldsUntilTheNextChange(t *testing.T) {
	testNACKHolds(t, nackCase{
		connect: connectSotW,
		held: func(t *testing.T, e *env, c testClient, good, bad *translate.Resources) {
			c.Read(func(s *xdstest.State) {
				rds := s.Type(xdstest.RouteType)
				// One good response, one bad: the NACK was not answered with the
				// same configuration again (a storm would count many).
				if rds.Responses != 2 || rds.NACKs != 1 {
					t.Errorf("after the NACK: %d route responses, %d NACKs; want 2 and 1", rds.Responses, rds.NACKs)
				}
				if rds.Version != good.Versions[xdstest.RouteType] {
					t.Errorf("client's route version %q, want the last good one %q", rds.Version, good.Versions[xdstest.RouteType])
				}
			})
			rds := e.s.SyncStatus()[proxyA].Types[xdstest.RouteType]
			if rds.State != StateNACKed || rds.LastNACK == nil || rds.LastNACK.Version != bad.Versions[xdstest.RouteType] ||
				rds.LastNACK.Message != "route r1: weight 50 is not allowed" || rds.AckedVersion != good.Versions[xdstest.RouteType] {
				t.Errorf("syncz route status after the NACK: %+v (nack %+v)", rds, rds.LastNACK)
			}
		},
		fixedStatus: func(t *testing.T, e *env, fixed *translate.Resources) {
			if got := e.s.SyncStatus()[proxyA].Types[xdstest.RouteType]; got.LastNACK == nil || got.AckedVersion != fixed.Versions[xdstest.RouteType] {
				t.Errorf("route status after the fix: %+v", got)
			}
		},
	})
}

func TestSotWWaitsForTheFirstPush(t *testing.T) {
	gen := newTableGen()
	gen.setAll("1", world(90))
	e := newEnv(t, gen)
	c := e.ads(proxyA, xdstest.Options{})
	ctx := testCtx(t)
	// Connected and identified, but there is no configuration yet.
	e.waitConnected(ctx, 1)
	if n := responses(c.Read)[xdstest.ClusterType]; n != 0 {
		t.Fatalf("got %d cluster responses before any push", n)
	}
	e.push("1")
	if err := c.Wait(ctx, versionsReached(world(90))); err != nil {
		t.Fatal(err)
	}
}

func TestSotWProxiesGetTheirOwnResources(t *testing.T) {
	gen := newTableGen()
	// Each proxy gets a listener named after its namespace and IP.
	gen.set("1", func(p *model.Proxy) *translate.Resources {
		r := world(90)
		r.Listeners = map[string]*listenerv3.Listener{}
		l := xdstest.HTTPListener(p.Namespace+"_"+p.IP(), p.IP(), 15001, "r1")
		r.Listeners[l.GetName()] = l
		xdstest.HashVersions(r)
		return r
	})
	e := newEnv(t, gen)
	e.push("1")
	ctx := testCtx(t)
	tests := []struct{ id, listener string }{
		{"sidecar~10.0.0.1~a-1.default~default.svc.cluster.local", "default_10.0.0.1"},
		{"sidecar~10.0.0.2~b-1.prod~prod.svc.cluster.local", "prod_10.0.0.2"},
		{"router~10.0.0.3~gw-1.istio-system~istio-system.svc.cluster.local", "istio-system_10.0.0.3"},
	}
	for _, tt := range tests {
		c := e.ads(tt.id, xdstest.Options{})
		if err := c.WaitSynced(ctx); err != nil {
			t.Fatal(err)
		}
		if got := names(c.Read, xdstest.ListenerType); !slices.Equal(got, []string{tt.listener}) {
			t.Errorf("%s: listeners %v, want [%s]", tt.id, got, tt.listener)
		}
	}
}

func TestPerTypeStream(t *testing.T) {
	gen := newTableGen()
	gen.setAll("1", world(90))
	e := newEnv(t, gen)
	e.push("1")
	conn, err := xdstest.Dial(e.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	stream, err := clusterservice.NewClusterDiscoveryServiceClient(conn).StreamClusters(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&discoveryv3.DiscoveryRequest{Node: xdstest.NodeFor(proxyA, nil, nil)}); err != nil {
		t.Fatal(err)
	}
	resp, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetTypeUrl() != xdstest.ClusterType || len(resp.GetResources()) != 2 || resp.GetVersionInfo() != world(90).Versions[xdstest.ClusterType] {
		t.Errorf("CDS stream: type %s, %d resources, version %s", resp.GetTypeUrl(), len(resp.GetResources()), resp.GetVersionInfo())
	}
}
