package e2e

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/weftmesh/weft/internal/proxy/bootstrap"
	"github.com/weftmesh/weft/internal/proxy/server"
)

// dnsServer is an authoritative DNS server on loopback UDP answering A and
// AAAA queries from a table the test changes at will.
type dnsServer struct {
	addr    string
	queries atomic.Int64

	mu      sync.Mutex
	records map[string][]netip.Addr // "name." → addresses
	fail    bool                    // answer SERVFAIL to everything
	failFor map[string]bool         // answer SERVFAIL for these names
}

func startDNS(t *testing.T) *dnsServer {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	d := &dnsServer{addr: pc.LocalAddr().String(), records: map[string][]netip.Addr{}, failFor: map[string]bool{}}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if out, ok := d.answer(buf[:n]); ok {
				pc.WriteTo(out, from)
			}
		}
	}()
	t.Cleanup(func() { pc.Close(); <-done })
	return d
}

// set replaces the addresses of name.
func (d *dnsServer) set(name string, addrs ...string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var as []netip.Addr
	for _, a := range addrs {
		as = append(as, netip.MustParseAddr(a))
	}
	d.records[dnsmessage.MustNewName(name+".").String()] = as
}

func (d *dnsServer) setFail(fail bool) {
	d.mu.Lock()
	d.fail = fail
	d.mu.Unlock()
}

// failName makes lookups of name fail (SERVFAIL) or succeed again.
func (d *dnsServer) failName(name string, fail bool) {
	d.mu.Lock()
	d.failFor[name+"."] = fail
	d.mu.Unlock()
}

// remove deletes name: lookups answer NXDOMAIN.
func (d *dnsServer) remove(name string) {
	d.mu.Lock()
	delete(d.records, name+".")
	d.mu.Unlock()
}

// answer builds the response to one query.
func (d *dnsServer) answer(query []byte) ([]byte, bool) {
	var p dnsmessage.Parser
	h, err := p.Start(query)
	if err != nil {
		return nil, false
	}
	q, err := p.Question()
	if err != nil {
		return nil, false
	}
	d.queries.Add(1)
	d.mu.Lock()
	name := strings.ToLower(q.Name.String())
	addrs, known := d.records[name]
	fail := d.fail || d.failFor[name]
	d.mu.Unlock()
	rh := dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true, RecursionDesired: h.RecursionDesired}
	switch {
	case fail:
		rh.RCode = dnsmessage.RCodeServerFailure
	case !known:
		rh.RCode = dnsmessage.RCodeNameError
	}
	b := dnsmessage.NewBuilder(nil, rh)
	b.EnableCompression()
	b.StartQuestions()
	b.Question(q)
	b.StartAnswers()
	rr := dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 1}
	for _, a := range addrs {
		switch {
		case q.Type == dnsmessage.TypeA && a.Is4() && !fail:
			b.AResource(rr, dnsmessage.AResource{A: a.As4()})
		case q.Type == dnsmessage.TypeAAAA && a.Is6() && !fail:
			b.AAAAResource(rr, dnsmessage.AAAAResource{AAAA: a.As16()})
		}
	}
	out, err := b.Finish()
	return out, err == nil
}

// resolver returns a Go resolver that asks only this server.
func (d *dnsServer) resolver() *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var dl net.Dialer
		return dl.DialContext(ctx, "udp", d.addr)
	}}
}

// startProxyWith is StartProxy with server options adjusted by opt.
func startProxyWith(t *testing.T, yaml string, opt func(*server.Options)) *Proxy {
	t.Helper()
	b, err := bootstrap.ParseAndValidate([]byte(yaml), t.Name()+".yaml")
	if err != nil {
		t.Fatalf("bootstrap: %v\n%s", err, yaml)
	}
	p := &Proxy{t: t}
	p.cond = sync.NewCond(&p.mu)
	o := server.Options{
		Bootstrap:    b,
		DrainTime:    5 * time.Second,
		Logger:       slog.New(slog.NewTextHandler(io.Discard, nil)),
		OnStreamDone: p.record,
	}
	opt(&o)
	srv, err := server.New(o)
	if err != nil {
		t.Fatalf("server.New: %v", err)
	}
	srv.Start()
	p.srv = srv
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	return p
}

func startProxyDNS(t *testing.T, yaml string, d *dnsServer) *Proxy {
	return startProxyWith(t, yaml, func(o *server.Options) { o.Resolver = d.resolver() })
}

// startSamePort starts one named upstream per IP, all on the same port (a
// DNS cluster's endpoint has one port for every address it resolves to).
// Names are "u" + the IP's last label ("u1" for 127.0.0.1, "u::1" for ::1).
func startSamePort(t *testing.T, ips ...string) (port string, us map[string]*named) {
	t.Helper()
	for attempt := 0; attempt < 20; attempt++ {
		first, err := net.Listen("tcp", net.JoinHostPort(ips[0], "0"))
		if err != nil {
			t.Fatal(err)
		}
		_, port, _ = net.SplitHostPort(first.Addr().String())
		lns := []net.Listener{first}
		for _, ip := range ips[1:] {
			ln, err := net.Listen("tcp", net.JoinHostPort(ip, port))
			if err != nil {
				break // the port is taken on this IP: try another
			}
			lns = append(lns, ln)
		}
		if len(lns) < len(ips) {
			for _, ln := range lns {
				ln.Close()
			}
			continue
		}
		us = map[string]*named{}
		for i, ln := range lns {
			name := "u" + ips[i][strings.LastIndexAny(ips[i], ".:")+1:]
			if strings.Contains(ips[i], ":") {
				name = "u::" + ips[i][strings.LastIndex(ips[i], ":")+1:]
			}
			us[ips[i]] = serveNamed(t, name, ln, nil)
		}
		return port, us
	}
	t.Fatalf("no port free on all of %v", ips)
	return "", nil
}

// hostAddrs returns the sorted addresses of cluster c's hosts.
func hostAddrs(p *Proxy, c string) []string {
	var out []string
	for _, h := range p.Server().Clusters().Get(c).Hosts() {
		out = append(out, h.Address())
	}
	slices.Sort(out)
	return out
}

func waitHosts(t *testing.T, p *Proxy, c string, want ...string) {
	t.Helper()
	slices.Sort(want)
	var got []string
	waitFor(t, time.Now().Add(5*time.Second), "hosts "+strings.Join(want, ","), func() bool {
		got = hostAddrs(p, c)
		return slices.Equal(got, want)
	})
}

func TestDNSStrictRefresh(t *testing.T) {
	port, us := startSamePort(t, "127.0.0.1", "127.0.0.2", "127.0.0.3")
	d := startDNS(t)
	d.set("svc.weft.test", "127.0.0.1", "127.0.0.2")
	p := startProxyDNS(t, httpBootstrap("{cluster: c}", "", clusterYAML("c",
		"type: STRICT_DNS\ndns_refresh_rate: 0.05s\ndns_lookup_family: V4_ONLY",
		loc{eps: []ep{{addr: "svc.weft.test:" + port}}})), d)
	h := func(ip string) string { return net.JoinHostPort(ip, port) }

	// The server starts once the first resolution is in: no request sees
	// an empty cluster.
	if got := hostAddrs(p, "c"); !slices.Equal(got, []string{h("127.0.0.1"), h("127.0.0.2")}) {
		t.Fatalf("hosts after start %v, want both resolved addresses", got)
	}
	for _, host := range p.Server().Clusters().Get("c").Hosts() {
		if host.Hostname() != "svc.weft.test" {
			t.Errorf("host %s hostname %q, want the DNS name", host.Address(), host.Hostname())
		}
	}
	c := Client()
	got := spread(t, c, p.URL("front")+"/", 10)
	if got["u1"] != 5 || got["u2"] != 5 {
		t.Errorf("initial spread %v, want u1 and u2 5 each (round robin)", got)
	}
	connsBefore := us["127.0.0.1"].conns.Load() + us["127.0.0.2"].conns.Load()

	// A refresh adds a host: traffic reaches it; the unchanged hosts keep
	// their pooled connections.
	d.set("svc.weft.test", "127.0.0.1", "127.0.0.2", "127.0.0.3")
	waitHosts(t, p, "c", h("127.0.0.1"), h("127.0.0.2"), h("127.0.0.3"))
	p.WaitStat("cluster.c.membership_total", 3)
	got = spread(t, c, p.URL("front")+"/", 30)
	if got["u1"] != 10 || got["u2"] != 10 || got["u3"] != 10 {
		t.Errorf("spread after adding 127.0.0.3: %v, want 10 each", got)
	}
	if after := us["127.0.0.1"].conns.Load() + us["127.0.0.2"].conns.Load(); after != connsBefore {
		t.Errorf("unchanged hosts opened %d new connections after the refresh, want 0 (pools kept)", after-connsBefore)
	}

	// A refresh removes a host: no more traffic to it.
	d.set("svc.weft.test", "127.0.0.2", "127.0.0.3")
	waitHosts(t, p, "c", h("127.0.0.2"), h("127.0.0.3"))
	hits1 := us["127.0.0.1"].hits.Load()
	got = spread(t, c, p.URL("front")+"/", 20)
	if got["u1"] != 0 || us["127.0.0.1"].hits.Load() != hits1 || got["u2"] != 10 || got["u3"] != 10 {
		t.Errorf("spread after removing 127.0.0.1: %v, want u2 and u3 10 each", got)
	}
	if p.Stat("cluster.c.update_success") < 3 {
		t.Errorf("cluster.c.update_success = %d, want at least 3", p.Stat("cluster.c.update_success"))
	}
}

func TestDNSFailureKeepsHosts(t *testing.T) {
	port, _ := startSamePort(t, "127.0.0.1")
	d := startDNS(t)
	d.set("svc.weft.test", "127.0.0.1")
	p := startProxyDNS(t, httpBootstrap("{cluster: c}", "", clusterYAML("c",
		"type: STRICT_DNS\ndns_refresh_rate: 0.05s\ndns_lookup_family: V4_ONLY",
		loc{eps: []ep{{addr: "svc.weft.test:" + port}}})), d)
	d.setFail(true)
	waitFor(t, time.Now().Add(5*time.Second), "a failed resolution", func() bool { return p.Stat("cluster.c.update_failure") > 0 })
	if code, _, _ := Get(t, Client(), p.URL("front")+"/"); code != 200 {
		t.Errorf("after a failed refresh: %d, want 200 (previous hosts kept)", code)
	}
	if got := hostAddrs(p, "c"); len(got) != 1 {
		t.Errorf("hosts %v after a failed refresh, want the previous one", got)
	}
}

// TestDNSTargetsResolveIndependently checks a STRICT_DNS cluster with two
// names: a failed lookup keeps that name's hosts while the other name's
// change applies; a name that stops existing (NXDOMAIN) loses its hosts.
func TestDNSTargetsResolveIndependently(t *testing.T) {
	port, _ := startSamePort(t, "127.0.0.1", "127.0.0.2", "127.0.0.3")
	h := func(ip string) string { return net.JoinHostPort(ip, port) }
	d := startDNS(t)
	d.set("one.weft.test", "127.0.0.1")
	d.set("two.weft.test", "127.0.0.2")
	p := startProxyDNS(t, httpBootstrap("{cluster: c}", "", clusterYAML("c",
		"type: STRICT_DNS\ndns_refresh_rate: 0.05s\ndns_lookup_family: V4_ONLY",
		loc{eps: []ep{{addr: "one.weft.test:" + port}, {addr: "two.weft.test:" + port}}})), d)
	waitHosts(t, p, "c", h("127.0.0.1"), h("127.0.0.2"))

	d.failName("one.weft.test", true)
	d.set("two.weft.test", "127.0.0.3")
	waitHosts(t, p, "c", h("127.0.0.1"), h("127.0.0.3"))
	if p.Stat("cluster.c.update_failure") == 0 {
		t.Errorf("cluster.c.update_failure = 0 while one name fails to resolve")
	}

	d.failName("one.weft.test", false)
	d.remove("one.weft.test")
	waitHosts(t, p, "c", h("127.0.0.3"))
	if got := spread(t, Client(), p.URL("front")+"/", 4); got["u3"] != 4 {
		t.Errorf("after one.weft.test disappeared: %v, want every request on u3", got)
	}
}

func TestDNSLookupFamily(t *testing.T) {
	port, us := startSamePort(t, "127.0.0.1", "::1")
	d := startDNS(t)
	d.set("dual.weft.test", "127.0.0.1", "::1")
	d.set("v4.weft.test", "127.0.0.1")
	d.set("v6.weft.test", "::1")
	v4, v6 := net.JoinHostPort("127.0.0.1", port), net.JoinHostPort("::1", port)
	for _, tc := range []struct {
		name, family, host string
		want               []string
	}{
		// Envoy: AUTO looks up AAAA first and falls back to A.
		{"auto_dual", "AUTO", "dual", []string{v6}},
		{"auto_v4_only_name", "AUTO", "v4", []string{v4}},
		{"v4_only", "V4_ONLY", "dual", []string{v4}},
		{"v6_only", "V6_ONLY", "dual", []string{v6}},
		// V4_PREFERRED: A first, AAAA when there is none.
		{"v4_preferred", "V4_PREFERRED", "dual", []string{v4}},
		{"v4_preferred_v6_name", "V4_PREFERRED", "v6", []string{v6}},
		// ALL: both families.
		{"all", "ALL", "dual", []string{v4, v6}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := startProxyDNS(t, httpBootstrap("{cluster: c}", "", clusterYAML("c",
				"type: STRICT_DNS\ndns_lookup_family: "+tc.family,
				loc{eps: []ep{{addr: tc.host + ".weft.test:" + port}}})), d)
			got := hostAddrs(p, "c")
			want := slices.Sorted(slices.Values(tc.want))
			if !slices.Equal(got, want) {
				t.Fatalf("hosts %v, want %v", got, want)
			}
			seen := spread(t, Client(), p.URL("front")+"/", 2*len(want))
			for _, a := range want {
				ap := netip.MustParseAddrPort(a)
				name := us[ap.Addr().String()].name
				if seen[name] != 2 {
					t.Errorf("upstream %s got %d of %d requests, want 2 (all: %v)", name, seen[name], 2*len(want), seen)
				}
			}
		})
	}
}

// TestDNSLogical checks LOGICAL_DNS: one logical host whose address is the
// first one resolved and follows DNS changes for new connections.
func TestDNSLogical(t *testing.T) {
	port, us := startSamePort(t, "127.0.0.1", "127.0.0.2")
	d := startDNS(t)
	d.set("svc.weft.test", "127.0.0.1")
	p := startProxyDNS(t, httpBootstrap("{cluster: c}", "", clusterYAML("c",
		"type: LOGICAL_DNS\ndns_refresh_rate: 0.05s\ndns_lookup_family: V4_ONLY",
		loc{eps: []ep{{addr: "svc.weft.test:" + port}}})), d)
	c := Client()
	if got := pick(t, c, p.URL("front")+"/"); got != "u1" {
		t.Fatalf("first request reached %s, want u1", got)
	}
	host := p.Server().Clusters().Get("c").Hosts()[0]
	d.set("svc.weft.test", "127.0.0.2", "127.0.0.1")
	want := net.JoinHostPort("127.0.0.2", port)
	waitFor(t, time.Now().Add(5*time.Second), "the logical host to follow DNS", func() bool {
		return p.Server().Clusters().Get("c").Hosts()[0].Address() == want
	})
	if hs := p.Server().Clusters().Get("c").Hosts(); len(hs) != 1 || hs[0] != host {
		t.Errorf("LOGICAL_DNS has %d hosts after the change (or a new host), want the same single logical host", len(hs))
	}
	if got := p.Stat("cluster.c.membership_total"); got != 1 {
		t.Errorf("membership_total = %d, want 1", got)
	}
	// The old upstream goes away (closing the pooled connection); new
	// connections go to the new address.
	us["127.0.0.1"].stop()
	for range 5 {
		if got := pick(t, c, p.URL("front")+"/"); got != "u2" {
			t.Fatalf("after the DNS change a request reached %s, want u2", got)
		}
	}
}
