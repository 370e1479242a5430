package xds

import (
	"slices"
	"sync"
	"testing"

	"github.com/weftmesh/weft/internal/translate"
	"github.com/weftmesh/weft/internal/xds/xdstest"
)

// sentLog records the resources each delta response carried.
type sentLog struct {
	mu   sync.Mutex
	sent map[string][]string // type → names added or changed, in order
	gone map[string][]string // type → names removed
}

func newSentLog() *sentLog {
	return &sentLog{sent: map[string][]string{}, gone: map[string][]string{}}
}

func (l *sentLog) record(r *xdstest.Response) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sent[r.TypeURL] = append(l.sent[r.TypeURL], r.Names...)
	l.gone[r.TypeURL] = append(l.gone[r.TypeURL], r.Removed...)
}

// take returns and clears what was recorded, names sorted.
func (l *sentLog) take() (sent, gone map[string][]string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	sent, gone = l.sent, l.gone
	l.sent, l.gone = map[string][]string{}, map[string][]string{}
	for _, m := range []map[string][]string{sent, gone} {
		for k, v := range m {
			slices.Sort(v)
			if len(v) == 0 {
				delete(m, k)
			}
		}
	}
	return sent, gone
}

func TestDeltaSendsOnlySubscribedResources(t *testing.T) {
	testSendsOnlyRequested(t, connectDelta) // sotw_test.go
}

func TestDeltaSendsOnlyChangedResources(t *testing.T) {
	want := []struct {
		sent, gone map[string][]string
	}{
		{},
		{sent: map[string][]string{xdstest.RouteType: {"r1"}}},
		{sent: map[string][]string{xdstest.ClusterType: {"d"}, xdstest.EndpointType: {"d"}}},
		{sent: map[string][]string{xdstest.EndpointType: {"a"}}},
		{gone: map[string][]string{xdstest.ClusterType: {"b"}, xdstest.EndpointType: {"b"}}},
		{sent: map[string][]string{xdstest.ListenerType: {"http"}}},
		{sent: map[string][]string{xdstest.RouteType: {"r1"}}},
	}
	gen := newTableGen()
	gen.setAll("0", world(90))
	e := newEnv(t, gen)
	e.push("0")
	log := newSentLog()
	c := e.delta(proxyA, xdstest.Options{OnResponse: log.record})
	ctx := testCtx(t)
	if err := c.WaitSynced(ctx); err != nil {
		t.Fatal(err)
	}
	log.take()
	for i, step := range changeSteps() {
		version := string(rune('1' + i))
		gen.setAll(version, step.res)
		e.push(version)
		if err := c.Wait(ctx, versionsReached(step.res)); err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		sent, gone := log.take()
		if !equalSets(sent, want[i].sent) || !equalSets(gone, want[i].gone) {
			t.Errorf("%s: sent %v removed %v; want sent %v removed %v", step.name, sent, gone, want[i].sent, want[i].gone)
		}
	}
}

func equalSets(a, b map[string][]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if !slices.Equal(v, b[k]) {
			return false
		}
	}
	return true
}

func TestDeltaNACKHoldsUntilTheNextChange(t *testing.T) {
	testNACKHolds(t, nackCase{ // sotw_test.go
		connect: connectDelta,
		held: func(t *testing.T, _ *env, c testClient, _, _ *translate.Resources) {
			if n := responses(c.Read)[xdstest.RouteType]; n != 2 {
				t.Errorf("route responses after the NACK: %d, want 2 (the good and the rejected one)", n)
			}
		},
		fixedStatus: func(t *testing.T, e *env, _ *translate.Resources) {
			if got := e.s.SyncStatus()[proxyA]; !got.Delta || got.Types[xdstest.RouteType].LastNACK == nil {
				t.Errorf("status after the fix: %+v", got)
			}
		},
	})
}

// TestEmptyTypeAnsweredAfterTheFirstPush: a proxy that connected before
// any configuration existed gets an answer for a type that turns out to be
// empty (here: no listeners), since Envoy waits for one per wildcard type
// to finish initialising.
func TestEmptyTypeAnsweredAfterTheFirstPush(t *testing.T) {
	noListeners := world(90)
	clear(noListeners.Listeners)
	clear(noListeners.Routes)
	xdstest.HashVersions(noListeners)
	for _, delta := range []bool{false, true} {
		gen := newTableGen()
		gen.setAll("1", noListeners)
		e := newEnv(t, gen)
		ctx := testCtx(t)
		var wait func() error
		if delta {
			c := e.delta(proxyA, xdstest.Options{})
			wait = func() error { return c.WaitSynced(ctx) }
		} else {
			c := e.ads(proxyA, xdstest.Options{})
			wait = func() error { return c.WaitSynced(ctx) }
		}
		e.waitConnected(ctx, 1)
		e.waitWatch(ctx, proxyA, xdstest.ListenerType)
		e.push("1")
		if err := wait(); err != nil {
			t.Fatalf("delta %v: %v", delta, err)
		}
	}
}
