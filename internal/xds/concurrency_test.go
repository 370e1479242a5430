package xds

import (
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"

	"github.com/weftmesh/weft/internal/model"
	"github.com/weftmesh/weft/internal/translate"
	"github.com/weftmesh/weft/internal/xds/xdstest"
)

// perProxy is world(w) with a listener named after the proxy's IP.
func perProxy(w uint32) func(*model.Proxy) *translate.Resources {
	return func(p *model.Proxy) *translate.Resources {
		r := world(w)
		r.Listeners = map[string]*listenerv3.Listener{p.IP(): xdstest.HTTPListener(p.IP(), p.IP(), 15001, "r1")}
		xdstest.HashVersions(r)
		return r
	}
}

// TestConcurrentProxiesAndPushes connects SotW and delta proxies (some of
// which leave early) while configurations are pushed, then checks that
// every remaining proxy converges to the last one, with and without a
// send budget. Run with -race.
func TestConcurrentProxiesAndPushes(t *testing.T) {
	tests := []struct {
		name    string
		pending int64
	}{
		{"default send budget", 0},
		// Every response waits for the previous ones to be answered.
		{"one response at a time", 1},
		{"no send budget", -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { testConcurrentProxiesAndPushes(t, tt.pending) })
	}
}

func testConcurrentProxiesAndPushes(t *testing.T, pending int64) {
	const proxies, pushes = 40, 10
	gen := newTableGen()
	for v := range pushes + 1 {
		gen.set(strconv.Itoa(v), perProxy(uint32(v*5)))
	}
	e := newEnvWith(t, Options{Generator: gen, MaxPendingBytes: pending})
	e.push("0")
	ctx := testCtx(t)

	var wg sync.WaitGroup
	waits := make([]func(func(*xdstest.State) bool) error, proxies)
	reads := make([]func(func(*xdstest.State)), proxies)
	errs := make([]error, proxies)
	for i := range proxies {
		wg.Go(func() {
			id := fmt.Sprintf("sidecar~10.9.0.%d~p-%d.default~default.svc.cluster.local", i+1, i)
			o := xdstest.Options{Address: e.addr, Node: xdstest.NodeFor(id, nil, nil)}
			if i%2 == 0 {
				c, err := xdstest.NewADS(o)
				if err != nil {
					errs[i] = err
					return
				}
				if i%5 == 4 {
					// Leaves early: its stream closes during the pushes.
					errs[i] = c.WaitSynced(ctx)
					_ = c.Close()
					return
				}
				t.Cleanup(func() { _ = c.Close() })
				waits[i] = func(f func(*xdstest.State) bool) error { return c.Wait(ctx, f) }
				reads[i] = c.Read
				return
			}
			c, err := xdstest.NewDelta(o)
			if err != nil {
				errs[i] = err
				return
			}
			if i%5 == 4 {
				errs[i] = c.WaitSynced(ctx)
				_ = c.Close()
				return
			}
			t.Cleanup(func() { _ = c.Close() })
			waits[i] = func(f func(*xdstest.State) bool) error { return c.Wait(ctx, f) }
			reads[i] = c.Read
		})
	}
	for v := 1; v <= pushes; v++ {
		wg.Go(func() { e.push(strconv.Itoa(v)) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("proxy %d: %v", i, err)
		}
	}
	// Pushes ran in any order: make the last configuration current.
	e.push(strconv.Itoa(pushes))
	final := world(uint32(pushes * 5)).Versions[xdstest.RouteType]
	for i := range proxies {
		if waits[i] == nil {
			continue
		}
		err := waits[i](func(s *xdstest.State) bool {
			return s.Synced() && s.Type(xdstest.RouteType).Version == final
		})
		if err != nil {
			t.Fatalf("proxy %d: %v", i, err)
		}
		want := fmt.Sprintf("10.9.0.%d", i+1)
		if got := names(reads[i], xdstest.ListenerType); !slices.Equal(got, []string{want}) {
			t.Errorf("proxy %d: listeners %v, want [%s]", i, got, want)
		}
	}
	e.waitConnected(ctx, proxies-proxies/5)
	if got, want := len(e.s.SyncStatus()), proxies-proxies/5; got != want {
		t.Errorf("syncz lists %d proxies, want %d", got, want)
	}
}

func TestTwoStreamsOfOneProxy(t *testing.T) {
	gen := newTableGen()
	gen.setAll("1", world(90))
	gen.setAll("2", world(40))
	e := newEnv(t, gen)
	e.push("1")
	ctx := testCtx(t)
	first := e.ads(proxyA, xdstest.Options{})
	second := e.delta(proxyA, xdstest.Options{})
	for _, wait := range []func() error{
		func() error { return first.WaitSynced(ctx) },
		func() error { return second.WaitSynced(ctx) },
	} {
		if err := wait(); err != nil {
			t.Fatal(err)
		}
	}
	if ps := e.s.SyncStatus()[proxyA]; ps.Streams != 2 {
		t.Errorf("streams of the proxy: %d, want 2", ps.Streams)
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	e.waitConnected(ctx, 1)
	e.push("2")
	if err := second.Wait(ctx, versionsReached(world(40))); err != nil {
		t.Fatal(err)
	}
}
