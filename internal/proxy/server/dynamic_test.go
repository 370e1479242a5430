package server

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/weftmesh/weft/internal/proxy/xdsclient"
	"github.com/weftmesh/weft/internal/proxy/xdsclient/xdstest"
)

// mesh is a control plane, a dynamic weft-proxy and two upstreams a and b,
// each the only endpoint of the EDS cluster of the same name, behind the
// HTTP listener "front" (route configuration "routes") and the TCP
// listener "tcp" (to cluster a).
type mesh struct {
	cp   *xdstest.Server
	srv  *Server
	a, b *testUpstream
	url  string
}

func (m *mesh) clusters() []*clusterv3.Cluster {
	return []*clusterv3.Cluster{edsCluster("a"), edsCluster("b")}
}

func (m *mesh) endpoints() []*endpointv3.ClusterLoadAssignment {
	return []*endpointv3.ClusterLoadAssignment{assignment("a", m.a), assignment("b", m.b)}
}

func (m *mesh) listeners(t testing.TB) []*listenerv3.Listener {
	return []*listenerv3.Listener{hcmListener(t, "front", "front", "routes"), tcpListener(t, "tcp", "a", time.Hour)}
}

func startMesh(t *testing.T, split string) *mesh {
	t.Helper()
	m := &mesh{cp: xdstest.Start(t), a: startUpstream(t, "a"), b: startUpstream(t, "b")}
	m.cp.Set(testNode, snapshot("1", m.clusters(), m.endpoints(), m.listeners(t), []*routev3.RouteConfiguration{weighted("routes", split)}))
	m.srv = startDynamic(t, m.cp, 3*time.Second)
	m.url = listenerURL(t, m.srv, "front")
	return m
}

// TestDynamicTrafficFlows: CDS, EDS, LDS and RDS arrive, the server goes
// LIVE and requests reach real upstreams through the listener from LDS.
func TestDynamicTrafficFlows(t *testing.T) {
	m := startMesh(t, "a=50,b=50")
	if st := m.srv.serverState(); st.String() != "LIVE" {
		t.Fatalf("state %v, want LIVE", st)
	}
	c := client()
	seen := map[string]int{}
	for range 40 {
		code, body := get(c, m.url+"/")
		if code != 200 {
			t.Fatalf("GET: %d %q", code, body)
		}
		seen[body]++
	}
	// 40 requests split 50/50: P(one side gets none) = 2·2⁻⁴⁰.
	if seen["a"] == 0 || seen["b"] == 0 {
		t.Errorf("responses by upstream: %v, want both", seen)
	}
	conn, err := net.Dial("tcp", m.srv.ListenerAddr("tcp").String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("through the TCP listener: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	if string(body) != "a" {
		t.Errorf("TCP listener reached %q, want a", body)
	}
}

// load sends requests on workers keep-alive connections until stop is
// closed (at most 20 000 requests or 30 s), counting bodies and failures.
type load struct {
	mu       sync.Mutex
	bodies   map[string]int
	failures []string
	last     atomic.Value // string: the body of the latest response
	stop     chan struct{}
	done     sync.WaitGroup
}

func startLoad(url string, workers int) *load {
	l := &load{bodies: map[string]int{}, stop: make(chan struct{})}
	deadline := time.Now().Add(30 * time.Second)
	var count atomic.Int64
	for range workers {
		l.done.Add(1)
		go func() {
			defer l.done.Done()
			c := client()
			for count.Add(1) <= 20000 && time.Now().Before(deadline) {
				select {
				case <-l.stop:
					return
				default:
				}
				code, body := get(c, url)
				l.mu.Lock()
				if code != 200 {
					l.failures = append(l.failures, fmt.Sprintf("%d %s", code, body))
				} else {
					l.bodies[body]++
					l.last.Store(body)
				}
				l.mu.Unlock()
			}
		}()
	}
	return l
}

func (l *load) finish() {
	close(l.stop)
	l.done.Wait()
}

func (l *load) total() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := len(l.failures)
	for _, v := range l.bodies {
		n += v
	}
	return n
}

// TestRDSWeightChangeUnderLoad: a weight change from RDS applies under
// continuous load without a single failed request, and the traffic moves.
func TestRDSWeightChangeUnderLoad(t *testing.T) {
	m := startMesh(t, "a=100,b=0")
	l := startLoad(m.url+"/", 4)
	waitFor(t, "load running", func() bool { return l.total() >= 200 })
	m.cp.Set(testNode, snapshot("2", m.clusters(), m.endpoints(), m.listeners(t), []*routev3.RouteConfiguration{weighted("routes", "a=0,b=100")}))
	changed := time.Now()
	waitFor(t, "traffic on b", func() bool { v, _ := l.last.Load().(string); return v == "b" })
	t.Logf("weights applied %v after the push", time.Since(changed))
	before := l.total()
	waitFor(t, "more load after the change", func() bool { return l.total() >= before+200 })
	l.finish()
	if len(l.failures) > 0 {
		t.Fatalf("%d requests failed during the change, first: %s", len(l.failures), l.failures[0])
	}
	if l.bodies["a"] == 0 || l.bodies["b"] == 0 {
		t.Errorf("responses %v: want a before the change and b after", l.bodies)
	}
	// The route change reached the proxy as RDS only: clusters and
	// listeners were not rebuilt.
	if v := m.srv.dyn.versionOf(xdsclient.RouteType, "routes"); v != "2" {
		t.Errorf("route version %q, want 2", v)
	}
	if v := m.srv.dyn.versionOf(xdsclient.ClusterType, "a"); v != "1" {
		t.Errorf("cluster a version %q, want 1 (unchanged clusters are kept)", v)
	}
}

// TestEndpointRemovalDrains: an endpoint removed by EDS gets no new
// request, its in-flight request completes, and the endpoints that stay
// keep their Host objects.
func TestEndpointRemovalDrains(t *testing.T) {
	m := startMesh(t, "a=100,b=0")
	c := startUpstream(t, "c")
	// Cluster a: endpoints a and c; a request held on a.
	clas := []*endpointv3.ClusterLoadAssignment{assignment("a", m.a, c), assignment("b", m.b)}
	m.cp.Set(testNode, snapshot("2", m.clusters(), clas, m.listeners(t), []*routev3.RouteConfiguration{weighted("routes", "a=100,b=0")}))
	cl := m.srv.Clusters()
	waitFor(t, "two hosts in a", func() bool { return len(cl.Get("a").Hosts()) == 2 })
	hostC := cl.Get("a").Hosts()[1]
	type result struct {
		code int
		body string
	}
	// c answers held requests at once: send held requests until one is
	// held on a (round robin alternates).
	c.free()
	inflight := make(chan result, 1)
	held := false
	for i := 0; i < 10 && !held; i++ {
		go func() {
			code, body := get(client(), m.url+"/?hold=1")
			inflight <- result{code, body}
		}()
		select {
		case <-m.a.held:
			held = true
		case r := <-inflight:
			if r.code != 200 || r.body != "c" {
				t.Fatalf("request on c: %d %q", r.code, r.body)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("request neither held nor answered")
		}
	}
	if !held {
		t.Fatal("no request held on a")
	}
	// Remove a.
	clas = []*endpointv3.ClusterLoadAssignment{assignment("a", c), assignment("b", m.b)}
	m.cp.Set(testNode, snapshot("3", m.clusters(), clas, m.listeners(t), []*routev3.RouteConfiguration{weighted("routes", "a=100,b=0")}))
	waitFor(t, "a removed", func() bool { return len(cl.Get("a").Hosts()) == 1 })
	if cl.Get("a").Hosts()[0] != hostC {
		t.Error("the endpoint that stayed got a new Host (its pool would be lost)")
	}
	hc := client()
	for range 10 {
		if code, body := get(hc, m.url+"/"); code != 200 || body != "c" {
			t.Fatalf("after the removal: %d %q, want 200 c", code, body)
		}
	}
	m.a.free()
	select {
	case r := <-inflight:
		if r.code != 200 || r.body != "a" {
			t.Fatalf("in-flight request on the removed endpoint: %d %q, want 200 a", r.code, r.body)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("in-flight request did not complete")
	}
}

// TestListenerUpdateKeepsConnections: an LDS update of a listener on the
// same address swaps its chains for new connections only: an in-flight
// request on the old chain completes, a TCP connection established before
// the update keeps relaying, and an unchanged chain keeps its idle
// keep-alive connections without a drain.
func TestListenerUpdateKeepsConnections(t *testing.T) {
	m := startMesh(t, "a=100,b=0")
	frontAddr, tcpAddr := m.srv.ListenerAddr("front").String(), m.srv.ListenerAddr("tcp").String()

	// An idle keep-alive connection on "tcp" (its chain stays the same in
	// the first update) and a request in flight on "front".
	tc, err := net.Dial("tcp", tcpAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	tbr := bufio.NewReader(tc)
	roundTrip := func(what string) {
		t.Helper()
		tc.SetDeadline(time.Now().Add(5 * time.Second))
		fmt.Fprintf(tc, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, err := http.ReadResponse(tbr, nil)
		if err != nil {
			t.Fatalf("%s: TCP relay: %v", what, err)
		}
		b, _ := io.ReadAll(resp.Body)
		if string(b) != "a" {
			t.Fatalf("%s: TCP relay answered %q", what, b)
		}
	}
	roundTrip("before the update")
	inflight := make(chan string, 1)
	go func() {
		code, body := get(client(), "http://"+frontAddr+"/?hold=1")
		inflight <- fmt.Sprint(code, " ", body)
	}()
	<-m.a.held

	// Update: "front" gets another stat prefix (its chain changes), "tcp"
	// only another listener_filters_timeout (its chain stays).
	front := hcmListener(t, "front", "front_v2", "routes")
	tcpl := tcpListener(t, "tcp", "a", time.Hour)
	tcpl.ListenerFiltersTimeout = durationpb.New(7 * time.Second)
	m.cp.Set(testNode, snapshot("2", m.clusters(), m.endpoints(), []*listenerv3.Listener{front, tcpl}, []*routev3.RouteConfiguration{weighted("routes", "a=100,b=0")}))
	waitFor(t, "listener update applied", func() bool { return m.srv.dyn.versionOf(xdsclient.ListenerType, "front") == "2" })
	if got := m.srv.ListenerAddr("front").String(); got != frontAddr {
		t.Fatalf("front moved from %s to %s: an update on the same address keeps the socket", frontAddr, got)
	}
	// New connections take the new chain.
	if code, body := get(client(), "http://"+frontAddr+"/"); code != 200 || body != "a" {
		t.Fatalf("new connection after the update: %d %q", code, body)
	}
	if n := m.srv.Stats().CounterValue("http.front_v2.downstream_rq_total"); n != 1 {
		t.Errorf("http.front_v2.downstream_rq_total = %d, want 1 (new connections on the new chain)", n)
	}
	// The established connections were kept.
	roundTrip("after the update")
	m.a.free()
	if got := <-inflight; got != "200 a" {
		t.Fatalf("request in flight during the update: %q, want 200 a", got)
	}

	// Second update: the TCP chain itself changes: the established relay
	// keeps working until the drain time ends (3 s here).
	tcpl2 := tcpListener(t, "tcp", "a", 2*time.Hour)
	tcpl2.ListenerFiltersTimeout = durationpb.New(7 * time.Second)
	m.cp.Set(testNode, snapshot("3", m.clusters(), m.endpoints(), []*listenerv3.Listener{front, tcpl2}, []*routev3.RouteConfiguration{weighted("routes", "a=100,b=0")}))
	waitFor(t, "tcp chain update applied", func() bool { return m.srv.dyn.versionOf(xdsclient.ListenerType, "tcp") == "3" })
	updated := time.Now()
	roundTrip("on a draining chain")
	// After the drain time (3 s) the old chain's connection is closed.
	tc.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := tbr.ReadByte(); err == nil {
		t.Fatal("read a byte from an idle relay")
	}
	if took := time.Since(updated); took < 2500*time.Millisecond {
		t.Errorf("draining connection closed %v after the update, want after the 3 s drain time", took)
	}
}

// TestInvalidResourceNACKed: an invalid route configuration and an
// invalid cluster are NACKed with the resource and field named; the
// previous configuration keeps serving and config_dump shows the error.
func TestInvalidResourceNACKed(t *testing.T) {
	m := startMesh(t, "a=100,b=0")
	bad := weighted("routes", "b=100")
	bad.VirtualHosts[0].Routes[0].Match = &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_SafeRegex{}}
	badCluster := edsCluster("a")
	badCluster.LbPolicy = clusterv3.Cluster_LOAD_BALANCING_POLICY_CONFIG
	n := len(m.cp.Requests())
	m.cp.Set(testNode, snapshot("2", []*clusterv3.Cluster{badCluster, edsCluster("b")}, m.endpoints(), m.listeners(t), []*routev3.RouteConfiguration{bad}))
	rds, _ := m.cp.WaitRequest(n, 10*time.Second, "RDS NACK", xdstest.NACK(xdsclient.RouteType))
	cds, _ := m.cp.WaitRequest(n, 10*time.Second, "CDS NACK", xdstest.NACK(xdsclient.ClusterType))
	if msg := rds.GetErrorDetail().GetMessage(); !strings.Contains(msg, `route_configuration "routes".virtual_hosts[0].routes[0].match.safe_regex`) {
		t.Errorf("RDS NACK: %q, want the route configuration and the field named", msg)
	}
	if msg := cds.GetErrorDetail().GetMessage(); !strings.Contains(msg, `cluster "a".lb_policy: LOAD_BALANCING_POLICY_CONFIG is not supported`) {
		t.Errorf("CDS NACK: %q", msg)
	}
	if rds.GetVersionInfo() != "1" || cds.GetVersionInfo() != "1" {
		t.Errorf("NACK versions %q %q, want the last accepted 1", rds.GetVersionInfo(), cds.GetVersionInfo())
	}
	c := client()
	for range 10 {
		if code, body := get(c, m.url+"/"); code != 200 || body != "a" {
			t.Fatalf("after the NACK: %d %q, want the previous route (200 a)", code, body)
		}
	}
	dump := adminConfigDump(t, m.srv)
	if !strings.Contains(dump, `"error_state"`) || !strings.Contains(dump, `"client_status": "NACKED"`) {
		t.Errorf("config_dump lacks the error state of the rejected updates")
	}
}

// TestControlPlaneRestart: the proxy keeps serving while the control plane
// is away and resynchronises when it comes back.
func TestControlPlaneRestart(t *testing.T) {
	m := startMesh(t, "a=100,b=0")
	m.cp.Stop()
	waitFor(t, "stream down", func() bool { return !m.srv.dyn.client.Connected() })
	c := client()
	for range 10 {
		if code, body := get(c, m.url+"/"); code != 200 || body != "a" {
			t.Fatalf("control plane down: %d %q, want 200 a", code, body)
		}
	}
	m.cp.Set(testNode, snapshot("2", m.clusters(), m.endpoints(), m.listeners(t), []*routev3.RouteConfiguration{weighted("routes", "a=0,b=100")}))
	m.cp.Restart()
	waitFor(t, "resynchronised", func() bool { _, body := get(c, m.url+"/"); return body == "b" })
	if !m.srv.dyn.client.Connected() {
		t.Error("client not connected after the control plane came back")
	}
}

// TestListenerWarming: a listener whose route configuration has not
// arrived is warming (not bound) and becomes active when it arrives.
func TestListenerWarming(t *testing.T) {
	cp := xdstest.Start(t)
	a := startUpstream(t, "a")
	m := &mesh{cp: cp, a: a, b: a}
	cp.Set(testNode, snapshot("1", m.clusters(), m.endpoints(), []*listenerv3.Listener{hcmListener(t, "front", "front", "routes")}, nil))
	srv := newDynamicNoWait(t, cp)
	waitFor(t, "warming listener", func() bool {
		d := adminConfigDump(t, srv)
		return strings.Contains(d, `"warming_state"`)
	})
	if srv.ListenerAddr("front") != nil {
		t.Fatal("warming listener is bound and active")
	}
	select {
	case <-srv.Initialized():
		t.Fatal("initialized while a listener is warming")
	default:
	}
	cp.Set(testNode, snapshot("2", m.clusters(), m.endpoints(), []*listenerv3.Listener{hcmListener(t, "front", "front", "routes")}, []*routev3.RouteConfiguration{weighted("routes", "a=1")}))
	url := listenerURL(t, srv, "front")
	<-srv.Initialized()
	if code, body := get(client(), url+"/"); code != 200 || body != "a" {
		t.Fatalf("after warming: %d %q", code, body)
	}
}

// TestConfigDumpVersions: /config_dump shows the dynamic resources with
// the version that brought each and when it last changed.
func TestConfigDumpVersions(t *testing.T) {
	m := startMesh(t, "a=100,b=0")
	m.cp.Set(testNode, snapshot("2", m.clusters(), m.endpoints(), m.listeners(t), []*routev3.RouteConfiguration{weighted("routes", "a=50,b=50")}))
	waitFor(t, "routes v2", func() bool { return m.srv.dyn.versionOf(xdsclient.RouteType, "routes") == "2" })
	var dump struct {
		Configs []map[string]json.RawMessage `json:"configs"`
	}
	if err := json.Unmarshal([]byte(adminConfigDump(t, m.srv)), &dump); err != nil {
		t.Fatal(err)
	}
	byType := map[string]map[string]json.RawMessage{}
	var order []string
	for _, c := range dump.Configs {
		var typ string
		json.Unmarshal(c["@type"], &typ)
		byType[typ] = c
		order = append(order, typ[strings.LastIndex(typ, ".")+1:])
	}
	if got := strings.Join(order, ","); got != "BootstrapConfigDump,ClustersConfigDump,EndpointsConfigDump,ListenersConfigDump,RoutesConfigDump,SecretsConfigDump" {
		t.Errorf("config order %s", got)
	}
	type versioned struct {
		VersionInfo string `json:"version_info"`
		LastUpdated string `json:"last_updated"`
	}
	check := func(typ, field string, want map[string]string, name func(json.RawMessage) string) {
		t.Helper()
		var entries []json.RawMessage
		json.Unmarshal(byType["type.googleapis.com/envoy.admin.v3."+typ][field], &entries)
		got := map[string]string{}
		for _, e := range entries {
			var v versioned
			json.Unmarshal(e, &v)
			if v.LastUpdated == "" {
				t.Errorf("%s.%s entry without last_updated: %s", typ, field, e)
			}
			got[name(e)] = v.VersionInfo
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s.%s versions %v, want %v", typ, field, got, want)
		}
	}
	field := func(path ...string) func(json.RawMessage) string {
		return func(e json.RawMessage) string {
			var m map[string]json.RawMessage
			for _, p := range path[:len(path)-1] {
				json.Unmarshal(e, &m)
				e = m[p]
			}
			json.Unmarshal(e, &m)
			var s string
			json.Unmarshal(m[path[len(path)-1]], &s)
			return s
		}
	}
	check("ClustersConfigDump", "dynamic_active_clusters", map[string]string{"a": "1", "b": "1"}, field("cluster", "name"))
	check("EndpointsConfigDump", "dynamic_endpoint_configs", map[string]string{"a": "1", "b": "1"}, field("endpoint_config", "cluster_name"))
	check("RoutesConfigDump", "dynamic_route_configs", map[string]string{"routes": "2"}, field("route_config", "name"))
	var listeners []struct {
		Name        string    `json:"name"`
		ActiveState versioned `json:"active_state"`
	}
	json.Unmarshal(byType["type.googleapis.com/envoy.admin.v3.ListenersConfigDump"]["dynamic_listeners"], &listeners)
	if len(listeners) != 2 || listeners[0].Name != "front" || listeners[0].ActiveState.VersionInfo != "1" || listeners[0].ActiveState.LastUpdated == "" {
		t.Errorf("dynamic_listeners: %+v", listeners)
	}
	var static []json.RawMessage
	json.Unmarshal(byType["type.googleapis.com/envoy.admin.v3.ClustersConfigDump"]["static_clusters"], &static)
	if len(static) != 1 || !strings.Contains(string(static[0]), `"xds-grpc"`) {
		t.Errorf("static_clusters: %s", static)
	}
}

// adminConfigDump fetches /config_dump.
func adminConfigDump(t *testing.T, s *Server) string {
	t.Helper()
	code, body := get(client(), "http://"+s.AdminAddr().String()+"/config_dump?include_eds")
	if code != 200 {
		t.Fatalf("/config_dump: %d %s", code, body)
	}
	return body
}

// TestRemovalsAndUnboundListener: a listener removed by LDS stops
// accepting while its established connection keeps relaying (it drains);
// a cluster removed by CDS goes with its endpoints; a listener with
// bind_to_port false is active without a socket.
func TestRemovalsAndUnboundListener(t *testing.T) {
	m := startMesh(t, "a=100,b=0")
	tcpAddr := m.srv.ListenerAddr("tcp").String()
	tc, err := net.Dial("tcp", tcpAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	// One exchange first: the connection is then accepted and relayed by
	// the listener (a dialed connection still in the accept queue when the
	// listener closes is reset, as with Envoy).
	br := bufio.NewReader(tc)
	roundTrip := func(when string) {
		t.Helper()
		tc.SetDeadline(time.Now().Add(5 * time.Second))
		fmt.Fprintf(tc, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("connection of the tcp listener, %s: %v", when, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	roundTrip("before its removal")
	unbound := tcpListener(t, "outbound_8080", "a", time.Hour)
	unbound.Address = sockAddr("0.0.0.0", 8080)
	unbound.BindToPort = wrapperspb.Bool(false)
	m.cp.Set(testNode, snapshot("2", []*clusterv3.Cluster{edsCluster("a")}, []*endpointv3.ClusterLoadAssignment{assignment("a", m.a)},
		[]*listenerv3.Listener{hcmListener(t, "front", "front", "routes"), unbound}, []*routev3.RouteConfiguration{weighted("routes", "a=1")}))
	waitFor(t, "tcp removed", func() bool { return m.srv.ListenerAddr("tcp") == nil })
	if c, err := net.DialTimeout("tcp", tcpAddr, time.Second); err == nil {
		c.Close()
		t.Error("a removed listener still accepts connections")
	}
	roundTrip("after its removal (draining)")
	// CDS and LDS arrive as separate responses: the listener's removal
	// says nothing about when the cluster's is applied.
	waitFor(t, "cluster b removed", func() bool { return m.srv.Clusters().Get("b") == nil })
	waitFor(t, "endpoints of removed cluster b dropped", func() bool { return m.srv.dyn.versionOf(xdsclient.EndpointType, "b") == "" })
	if v := m.srv.dyn.versionOf(xdsclient.ListenerType, "outbound_8080"); v != "2" || m.srv.ListenerAddr("outbound_8080") != nil {
		t.Errorf("unbound listener: version %q, address %v; want active without a socket", v, m.srv.ListenerAddr("outbound_8080"))
	}
}
