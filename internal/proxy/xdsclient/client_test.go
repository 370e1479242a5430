package xdsclient_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/weftmesh/weft/internal/proxy/stats"
	"github.com/weftmesh/weft/internal/proxy/xdsclient"
	"github.com/weftmesh/weft/internal/proxy/xdsclient/xdstest"
)

const nodeID = "sidecar~10.0.0.1~app-1.default~default.svc.cluster.local"

// fakeHandler records updates; it needs the EDS and RDS names it is told
// and rejects the resources in reject.
type fakeHandler struct {
	mu      sync.Mutex
	updates []*xdsclient.Update
	names   map[string][]string
	reject  map[string]error
}

func (h *fakeHandler) Apply(u *xdsclient.Update) map[string]error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.updates = append(h.updates, u)
	out := map[string]error{}
	for name := range u.Resources {
		if err, ok := h.reject[name]; ok {
			out[name] = err
		}
	}
	return out
}

func (h *fakeHandler) Names(typeURL string) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.names[typeURL]
}

func (h *fakeHandler) setReject(name string, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.reject == nil {
		h.reject = map[string]error{}
	}
	if err == nil {
		delete(h.reject, name)
		return
	}
	h.reject[name] = err
}

func cluster(name string) *clusterv3.Cluster {
	return &clusterv3.Cluster{
		Name:                 name,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
		EdsClusterConfig: &clusterv3.Cluster_EdsClusterConfig{
			EdsConfig: &corev3.ConfigSource{
				ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}},
				ResourceApiVersion:    corev3.ApiVersion_V3,
			},
		},
	}
}

// startClient runs a client against cp until the test ends.
func startClient(t *testing.T, cp *xdstest.Server, h xdsclient.Handler, st *stats.Store) *xdsclient.Client {
	t.Helper()
	c, err := xdsclient.New(xdsclient.Options{
		Node:     &corev3.Node{Id: nodeID},
		Target:   "xds-grpc",
		Dial:     func(ctx context.Context) (net.Conn, error) { return (&net.Dialer{}).DialContext(ctx, "tcp", cp.Addr()) },
		Handler:  h,
		Clusters: true, Listeners: true,
		Backoff: xdsclient.Backoff{Base: 100 * time.Millisecond, Max: 400 * time.Millisecond},
		Stats:   st,
		Logger:  slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Run returned %v, want context.Canceled", err)
		}
	})
	return c
}

func fullSnapshot(version string) xdstest.Resources {
	return xdstest.Resources{
		resource.ClusterType:  {Version: version, Items: []types.Resource{cluster("web")}},
		resource.EndpointType: {Version: version, Items: []types.Resource{&endpointv3.ClusterLoadAssignment{ClusterName: "web"}}},
		resource.ListenerType: {Version: version, Items: []types.Resource{&listenerv3.Listener{Name: "l"}}},
		resource.RouteType:    {Version: version, Items: []types.Resource{&routev3.RouteConfiguration{Name: "r"}}},
	}
}

// TestSubscriptionOrder: Envoy's order on a fresh stream: CDS; after the
// CDS response, EDS for the names the clusters need, then LDS; after the
// LDS response, RDS. Each response is ACKed with its version and nonce.
func TestSubscriptionOrder(t *testing.T) {
	cp := xdstest.Start(t)
	cp.Set(nodeID, fullSnapshot("1"))
	h := &fakeHandler{names: map[string][]string{xdsclient.EndpointType: {"web"}, xdsclient.RouteType: {"r"}}}
	startClient(t, cp, h, nil)
	cp.WaitRequest(0, 5*time.Second, "RDS ACK", xdstest.ACK(xdsclient.RouteType, "1"))
	var order []string
	for _, r := range cp.Requests() {
		if r.GetResponseNonce() == "" {
			order = append(order, xdsclient.Kind(r.GetTypeUrl()))
		}
	}
	want := []string{"cluster", "cluster_load_assignment", "listener", "route_configuration"}
	if !slices.Equal(order, want) {
		t.Fatalf("first requests by type: %v, want %v", order, want)
	}
	for _, typ := range []string{xdsclient.ClusterType, xdsclient.EndpointType, xdsclient.ListenerType} {
		cp.WaitRequest(0, time.Second, "ACK of "+typ, xdstest.ACK(typ, "1"))
	}
	eds, _ := cp.WaitRequest(0, time.Second, "EDS request", func(r *discoveryv3.DiscoveryRequest) bool {
		return r.GetTypeUrl() == xdsclient.EndpointType
	})
	if !slices.Equal(eds.GetResourceNames(), []string{"web"}) || eds.GetNode().GetId() != nodeID {
		t.Errorf("EDS request names %v node %q", eds.GetResourceNames(), eds.GetNode().GetId())
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.updates) != 4 {
		t.Fatalf("handler got %d updates, want 4", len(h.updates))
	}
	if u := h.updates[0]; u.TypeURL != xdsclient.ClusterType || u.Version != "1" || u.Resources["web"] == nil || !u.FullState() {
		t.Errorf("first update: %+v", u)
	}
}

// TestNACK: an invalid resource and a resource the handler cannot build
// are NACKed with the previous version and an error naming resource and
// field; the valid resources of the response still reach the handler.
// A NACK repeated word for word is paced.
func TestNACK(t *testing.T) {
	cp := xdstest.Start(t)
	cp.Set(nodeID, xdstest.Resources{resource.ClusterType: {Version: "1", Items: []types.Resource{cluster("web")}}})
	h := &fakeHandler{}
	st := stats.NewStore()
	startClient(t, cp, h, st)
	cp.WaitRequest(0, 5*time.Second, "CDS ACK v1", xdstest.ACK(xdsclient.ClusterType, "1"))

	bad := cluster("bad")
	bad.LbPolicy = clusterv3.Cluster_LOAD_BALANCING_POLICY_CONFIG
	h.setReject("web2", errors.New(`cluster "web2": connect_timeout: too long`))
	cp.Set(nodeID, xdstest.Resources{resource.ClusterType: {Version: "2", Items: []types.Resource{cluster("web"), bad, cluster("web2"), cluster("ok")}}})
	nack, i := cp.WaitRequest(0, 5*time.Second, "CDS NACK", xdstest.NACK(xdsclient.ClusterType))
	if nack.GetVersionInfo() != "1" {
		t.Errorf("NACK version_info %q, want the last accepted %q", nack.GetVersionInfo(), "1")
	}
	msg := nack.GetErrorDetail().GetMessage()
	for _, want := range []string{`cluster "bad".lb_policy: LOAD_BALANCING_POLICY_CONFIG is not supported`, `cluster "web2": connect_timeout: too long`} {
		if !strings.Contains(msg, want) {
			t.Errorf("NACK error_detail %q lacks %q", msg, want)
		}
	}
	h.mu.Lock()
	last := h.updates[len(h.updates)-1]
	h.mu.Unlock()
	if last.Resources["ok"] == nil || last.Resources["bad"] != nil || last.Invalid["bad"] == nil || last.InvalidResources["bad"] == nil {
		t.Errorf("update handed to the handler: valid %v, invalid %v", len(last.Resources), last.Invalid)
	}
	// The server sends version 2 again at once; the same NACK waits at
	// least half the back-off base (50 ms) before it goes out.
	first := time.Now()
	cp.WaitRequest(i+1, 5*time.Second, "repeated NACK", xdstest.NACK(xdsclient.ClusterType))
	if gap := time.Since(first); gap < 45*time.Millisecond {
		t.Errorf("repeated NACK after %v, want it paced (≥ 50 ms)", gap)
	}
	if st.CounterValue("cluster_manager.cds.update_rejected") < 1 || st.CounterValue("cluster_manager.cds.update_success") < 1 {
		t.Errorf("cds stats: rejected %d success %d", st.CounterValue("cluster_manager.cds.update_rejected"), st.CounterValue("cluster_manager.cds.update_success"))
	}
	// A fixed configuration is ACKed.
	h.setReject("web2", nil)
	cp.Set(nodeID, xdstest.Resources{resource.ClusterType: {Version: "3", Items: []types.Resource{cluster("web"), cluster("web2")}}})
	cp.WaitRequest(0, 5*time.Second, "CDS ACK v3", xdstest.ACK(xdsclient.ClusterType, "3"))
}

// TestReconnectResumes: when the control plane goes away the client
// reconnects with back-off and its first requests carry the versions it
// accepted and its subscriptions.
func TestReconnectResumes(t *testing.T) {
	cp := xdstest.Start(t)
	cp.Set(nodeID, fullSnapshot("1"))
	h := &fakeHandler{names: map[string][]string{xdsclient.EndpointType: {"web"}, xdsclient.RouteType: {"r"}}}
	st := stats.NewStore()
	c := startClient(t, cp, h, st)
	cp.WaitRequest(0, 5*time.Second, "RDS ACK", xdstest.ACK(xdsclient.RouteType, "1"))
	if !c.Connected() || st.CounterValue("control_plane.connected_state") != 1 {
		t.Fatal("client not connected after the first responses")
	}
	cp.Stop()
	waitFor(t, "disconnected", func() bool { return !c.Connected() })
	n := len(cp.Requests())
	cp.Restart()
	for _, typ := range []string{xdsclient.ClusterType, xdsclient.EndpointType, xdsclient.ListenerType, xdsclient.RouteType} {
		r, _ := cp.WaitRequest(n, 10*time.Second, "resumed "+typ, func(r *discoveryv3.DiscoveryRequest) bool {
			return r.GetTypeUrl() == typ && r.GetResponseNonce() == ""
		})
		if r.GetVersionInfo() != "1" {
			t.Errorf("resumed %s request carries version %q, want 1", typ, r.GetVersionInfo())
		}
	}
	waitFor(t, "reconnected", c.Connected)
	if st.CounterValue("control_plane.stream_failures") < 1 {
		t.Error("control_plane.stream_failures not counted")
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond) // polling a condition with a deadline
	}
}

func TestBackoff(t *testing.T) {
	b := xdsclient.Backoff{}
	for _, tc := range []struct {
		n        int
		r        float64
		min, max time.Duration
	}{
		{0, 0, 250 * time.Millisecond, 250 * time.Millisecond},
		{0, 0.999, 250 * time.Millisecond, 500 * time.Millisecond},
		{1, 0, 500 * time.Millisecond, 500 * time.Millisecond},
		{3, 0.5, 3 * time.Second, 3 * time.Second},
		{6, 0, 15 * time.Second, 15 * time.Second},
		{100, 0.999, 15 * time.Second, 30 * time.Second},
	} {
		if d := b.Delay(tc.n, tc.r); d < tc.min || d > tc.max {
			t.Errorf("Delay(%d, %v) = %v, want in [%v, %v]", tc.n, tc.r, d, tc.min, tc.max)
		}
	}
}
