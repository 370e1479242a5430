package xds

import (
	"testing"

	"github.com/weftmesh/weft/internal/xds/xdstest"
)

// TestConnectedProxies: one identity per node id (a proxy with two
// streams counts once), sorted, with its metadata; a disconnected proxy
// leaves the list.
func TestConnectedProxies(t *testing.T) {
	const proxyB = "sidecar~10.0.0.10~b-1.default~default.svc.cluster.local"
	gen := newTableGen()
	gen.setAll("1", world(3))
	e := newEnv(t, gen)
	e.push("1")
	ctx := testCtx(t)
	node := xdstest.NodeFor(proxyB, map[string]string{"app": "b"}, map[string]string{"WEFT_METRICS_ADDRESS": "127.0.0.1:9"})
	b := e.ads(proxyB, xdstest.Options{Node: node})
	a1 := e.ads(proxyA, xdstest.Options{})
	a2 := e.delta(proxyA, xdstest.Options{})
	for _, wait := range []func() error{
		func() error { return b.WaitSynced(ctx) },
		func() error { return a1.WaitSynced(ctx) },
		func() error { return a2.WaitSynced(ctx) },
	} {
		if err := wait(); err != nil {
			t.Fatal(err)
		}
	}
	ps := e.s.ConnectedProxies()
	if len(ps) != 2 || ps[0].ID >= ps[1].ID {
		t.Fatalf("proxies %v, want proxyA and proxyB once each, sorted", ps)
	}
	for _, p := range ps {
		if p.ID == proxyB && (p.Metadata["WEFT_METRICS_ADDRESS"] != "127.0.0.1:9" || p.Labels["app"] != "b") {
			t.Errorf("proxyB identity %+v", p)
		}
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	e.waitConnected(ctx, 2) // streams: proxyA's two
	if ps := e.s.ConnectedProxies(); len(ps) != 1 || ps[0].ID != proxyA {
		t.Fatalf("after proxyB left: %v", ps)
	}
}
