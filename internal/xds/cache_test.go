package xds

import (
	"context"
	"runtime"
	"slices"
	"testing"
	"time"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/server/stream/v3"

	"github.com/weftmesh/weft/internal/model"
	"github.com/weftmesh/weft/internal/translate"
	"github.com/weftmesh/weft/internal/xds/xdstest"
)

func mustSet(t *testing.T, typ int, w uint32) *typeSet {
	t.Helper()
	r := world(w)
	ts, err := encodeType(r, typ, r.Versions[typeURLs[typ]])
	if err != nil {
		t.Fatal(err)
	}
	return ts
}

func TestSotwShouldRespond(t *testing.T) {
	eds := mustSet(t, typeEndpoint, 90) // a, b, c
	cds := mustSet(t, typeCluster, 90)  // a, b
	// returnedFor is what the stream holds after a response to names.
	returnedFor := func(ts *typeSet, names ...string) map[string]string {
		sub := stream.NewSotwSubscription(names, true)
		return sotwResponseFor(ts, &discoveryv3.DiscoveryRequest{ResourceNames: names}, sub).returned
	}
	sub := func(names []string, returned map[string]string) stream.Subscription {
		s := stream.NewSotwSubscription(names, true)
		s.SetReturnedResources(returned)
		return s
	}
	tests := []struct {
		name    string
		ts      *typeSet
		version string
		sub     stream.Subscription
		names   []string
		want    bool
	}{
		{"first request", cds, "", sub(nil, map[string]string{}), nil, true},
		{"old version", cds, "old", sub(nil, nil), nil, true},
		{"wildcard, everything sent", cds, cds.version, sub(nil, nil), nil, false},
		{"wildcard, reconnect with the current version", cds, cds.version, sub(nil, map[string]string{}), nil, true},
		{"named, all returned", eds, eds.version, sub([]string{"a", "b"}, returnedFor(eds, "a", "b")), []string{"a", "b"}, false},
		{"named, same names in another order", eds, eds.version, sub([]string{"b", "a"}, returnedFor(eds, "a", "b")), []string{"b", "a"}, false},
		{"named, new name", eds, eds.version, sub([]string{"a", "b", "c"}, returnedFor(eds, "a", "b")), []string{"a", "b", "c"}, true},
		{"named, new name that does not exist", eds, eds.version, sub([]string{"a", "x"}, returnedFor(eds, "a", "x")), []string{"a", "x"}, false},
		{"named, nothing exists", eds, eds.version, sub([]string{"x"}, returnedFor(eds, "x")), []string{"x"}, false},
		{"named, reconnect with the current version", eds, eds.version, sub([]string{"a"}, map[string]string{}), []string{"a"}, true},
		// Fewer names: answered once more (go-control-plane would not),
		// harmless: the ACK that follows holds.
		{"named, fewer names", eds, eds.version, sub([]string{"b"}, returnedFor(eds, "a", "b")), []string{"b"}, true},
		{"no resources computed", nil, "", sub(nil, map[string]string{}), nil, false},
	}
	for _, tt := range tests {
		req := &discoveryv3.DiscoveryRequest{VersionInfo: tt.version, ResourceNames: tt.names}
		if got := sotwShouldRespond(tt.ts, req, tt.sub); got != tt.want {
			t.Errorf("%s: got %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestSotwResponseFor(t *testing.T) {
	eds := mustSet(t, typeEndpoint, 90)
	tests := []struct {
		name   string
		names  []string
		want   []string
		marker string
	}{
		{"wildcard", nil, []string{"a", "b", "c"}, ""},
		{"named, in request order, unknown and repeated names dropped", []string{"c", "x", "a", "c"}, []string{"c", "a"}, "c"},
		{"named, none exists", []string{"x"}, nil, ""},
	}
	for _, tt := range tests {
		s := stream.NewSotwSubscription(tt.names, true)
		r := sotwResponseFor(eds, &discoveryv3.DiscoveryRequest{ResourceNames: tt.names}, s)
		var got []string
		for _, a := range r.resources {
			got = append(got, nameOf(eds, a))
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("%s: resources %v, want %v", tt.name, got, tt.want)
		}
		switch {
		case tt.names == nil && r.returned != nil:
			t.Errorf("%s: a wildcard response must return nil (everything of the version)", tt.name)
		case tt.names != nil && tt.marker == "" && len(r.returned) != 0:
			t.Errorf("%s: returned %v, want none", tt.name, r.returned)
		case tt.marker != "" && (len(r.returned) != 1 || r.returned[tt.marker] == ""):
			t.Errorf("%s: returned %v, want one fingerprint under %q", tt.name, r.returned, tt.marker)
		}
	}
}

func nameOf(ts *typeSet, a any) string {
	for i, b := range ts.anys {
		if a == any(b) {
			return ts.names[i]
		}
	}
	return "?"
}

func TestDeltaResponseFor(t *testing.T) {
	eds := mustSet(t, typeEndpoint, 90)
	v := eds.versions
	tests := []struct {
		name             string
		subscribe        []string
		returned         map[string]string
		wantSent, wantRm []string
		wantNil          bool
	}{
		{"wildcard, nothing known", nil, map[string]string{}, []string{"a", "b", "c"}, nil, false},
		{"wildcard, up to date", nil, map[string]string{"a": v["a"], "b": v["b"], "c": v["c"]}, nil, nil, true},
		{"wildcard, one stale, one gone", nil, map[string]string{"a": "old", "b": v["b"], "c": v["c"], "z": "1"}, []string{"a"}, []string{"z"}, false},
		{"named, new subscription", []string{"a", "b"}, map[string]string{"a": v["a"]}, []string{"b"}, nil, false},
		{"named, up to date (also after a NACK)", []string{"a"}, map[string]string{"a": v["a"]}, nil, nil, true},
		{"named, subscribed resource removed", []string{"a", "z"}, map[string]string{"a": v["a"], "z": "1"}, nil, []string{"z"}, false},
		{"named, never existed", []string{"x"}, map[string]string{}, nil, nil, true},
	}
	for _, tt := range tests {
		sub := stream.NewDeltaSubscription(tt.subscribe, nil, tt.returned, true)
		r := deltaResponseFor(eds, &discoveryv3.DeltaDiscoveryRequest{ResourceNamesSubscribe: tt.subscribe}, &sub)
		if tt.wantNil {
			if r != nil {
				t.Errorf("%s: got a response %v %v, want none", tt.name, r.resources, r.removed)
			}
			continue
		}
		if r == nil {
			t.Errorf("%s: got no response", tt.name)
			continue
		}
		var sent []string
		for _, res := range r.resources {
			sent = append(sent, res.GetName())
		}
		slices.Sort(sent)
		slices.Sort(r.removed)
		if !slices.Equal(sent, tt.wantSent) || !slices.Equal(r.removed, tt.wantRm) {
			t.Errorf("%s: sent %v removed %v, want %v %v", tt.name, sent, r.removed, tt.wantSent, tt.wantRm)
		}
	}
}

func TestProxiesShareEncodedResources(t *testing.T) {
	gen := newTableGen()
	gen.set("1", func(p *model.Proxy) *translate.Resources {
		r := world(90)
		if p.Namespace == "prod" { // another listener, same everything else
			r.Listeners["http"] = xdstest.HTTPListener("http", "127.0.0.1", 15009, "r1")
			xdstest.HashVersions(r)
		}
		return r
	})
	s, err := New(Options{Generator: gen})
	if err != nil {
		t.Fatal(err)
	}
	s.Push(model.NewSnapshot(model.SnapshotOptions{Version: "1"}))
	ids := []string{
		"sidecar~10.0.0.1~a-1.default~default.svc.cluster.local",
		"sidecar~10.0.0.2~a-2.default~default.svc.cluster.local",
		"sidecar~10.0.0.3~b-1.prod~prod.svc.cluster.local",
	}
	var res []*nodeResources
	for _, id := range ids {
		p, err := model.ParseProxy(id, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		n := s.attach(p)
		res = append(res, n.res)
	}
	for typ := range numTypes {
		if res[0].sets[typ] != res[1].sets[typ] {
			t.Errorf("%s: same content, different sets", shortNames[typ])
		}
		shared := res[0].sets[typ] == res[2].sets[typ]
		if want := typ != typeListener; shared != want {
			t.Errorf("%s: shared with the prod proxy %v, want %v", shortNames[typ], shared, want)
		}
	}
}

func TestUnusedSetsAreReleased(t *testing.T) {
	c := newSetCache()
	for w := range uint32(10) {
		r := world(w * 10)
		if _, err := c.build(nil, r); err != nil {
			t.Fatal(err)
		}
	}
	if c.len() == 0 {
		t.Fatal("nothing cached")
	}
	// Nothing holds the sets: garbage collection evicts them (cleanups
	// run on their own goroutine, so wait with a deadline).
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for c.len() > 0 {
		runtime.GC()
		select {
		case <-ctx.Done():
			t.Fatalf("%d sets still cached", c.len())
		case <-time.After(time.Millisecond):
		}
	}
}
