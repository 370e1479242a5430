package dnsproxy

import (
	"context"
	"net"
	"reflect"
	"strconv"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/weftmesh/weft/internal/nds"
	"github.com/weftmesh/weft/internal/proxy/dnsproxy/dnstest"
)

// meshTable is a name table as weft-control sends it to a proxy of
// namespace "default".
var meshTable = nds.Table{
	"hello.default.svc.cluster.local": {IPs: []string{"240.240.0.9"}, Registry: "Kubernetes", Shortname: "hello", Namespace: "default"},
	"db.data.svc.cluster.local":       {IPs: []string{"10.0.0.5"}, Registry: "Kubernetes", Shortname: "db", Namespace: "data"},
	"api.example.com":                 {IPs: []string{"240.240.1.1", "2001:2::f0f0:101"}, Registry: "External"},
	"*.wild.example.com":              {IPs: []string{"10.9.9.9"}, Registry: "External"},
	"bad.example.com":                 {IPs: []string{"not-an-ip"}, Registry: "External"},
}

func upstreamPort(t *testing.T, u *dnstest.Upstream) int {
	_, p, _ := net.SplitHostPort(u.Addr)
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func startMeshProxy(t *testing.T) (*Server, *dnstest.Upstream) {
	up := startUpstream(t, map[string][4]byte{"example.invalid.": {192, 0, 2, 10}})
	rc := writeResolvConf(t, t.TempDir(), "# test\nnameserver 127.0.0.1\nsearch default.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5\n")
	s := startProxy(t, Options{ResolvConf: rc, UpstreamPort: upstreamPort(t, up), Namespace: "default"})
	s.UpdateTable(meshTable)
	return s, up
}

// TestAnswers asks the proxy over UDP and TCP. "forwarded" says whether
// the upstream must have seen the query (its counter moved).
func TestAnswers(t *testing.T) {
	s, up := startMeshProxy(t)
	A, AAAA := dnsmessage.TypeA, dnsmessage.TypeAAAA
	cases := []struct {
		name      string
		qname     string
		qtype     dnsmessage.Type
		rcode     dnsmessage.RCode
		want      []string
		forwarded bool
	}{
		{"fqdn", "hello.default.svc.cluster.local.", A, dnsmessage.RCodeSuccess, []string{"240.240.0.9"}, false},
		{"fqdn_upper_case", "HELLO.Default.svc.cluster.local.", A, dnsmessage.RCodeSuccess, []string{"240.240.0.9"}, false},
		{"short_same_namespace", "hello.", A, dnsmessage.RCodeSuccess, []string{"240.240.0.9"}, false},
		{"name_namespace", "hello.default.", A, dnsmessage.RCodeSuccess, []string{"240.240.0.9"}, false},
		{"name_namespace_svc", "hello.default.svc.", A, dnsmessage.RCodeSuccess, []string{"240.240.0.9"}, false},
		{"other_namespace_qualified", "db.data.", A, dnsmessage.RCodeSuccess, []string{"10.0.0.5"}, false},
		{"other_namespace_short_not_ours", "db.", A, dnsmessage.RCodeNameError, nil, true},
		{"no_ipv6_is_nodata_not_nxdomain", "hello.default.svc.cluster.local.", AAAA, dnsmessage.RCodeSuccess, nil, false},
		{"ipv6", "api.example.com.", AAAA, dnsmessage.RCodeSuccess, []string{"2001:2::f0f0:101"}, false},
		{"external_ipv4", "api.example.com.", A, dnsmessage.RCodeSuccess, []string{"240.240.1.1"}, false},
		{"wildcard", "x.y.wild.example.com.", A, dnsmessage.RCodeSuccess, []string{"10.9.9.9"}, false},
		{"search_expansion_cname", "api.example.com.default.svc.cluster.local.", A, dnsmessage.RCodeSuccess,
			[]string{"cname:api.example.com.", "240.240.1.1"}, false},
		// A name already in the search domain is not expanded (Istio's
		// agent neither): the upstream answers.
		{"search_expansion_not_twice", "hello.default.svc.cluster.local.default.svc.cluster.local.", A, dnsmessage.RCodeNameError, nil, true},
		{"search_expansion_unknown_forwarded", "www.example.com.default.svc.cluster.local.", A, dnsmessage.RCodeNameError, nil, true},
		{"forwarded_answer", "example.invalid.", A, dnsmessage.RCodeSuccess, []string{"192.0.2.10"}, true},
		{"forwarded_nxdomain", "nope.example.com.", A, dnsmessage.RCodeNameError, nil, true},
		{"unknown_in_cluster_domain_forwarded", "nope.default.svc.cluster.local.", A, dnsmessage.RCodeNameError, nil, true},
		{"other_type_forwarded", "hello.default.svc.cluster.local.", dnsmessage.TypeMX, dnsmessage.RCodeNameError, nil, true},
		{"malformed_ips_not_answered", "bad.example.com.", A, dnsmessage.RCodeNameError, nil, true},
	}
	for _, network := range []string{"udp", "tcp"} {
		for _, tc := range cases {
			t.Run(network+"/"+tc.name, func(t *testing.T) {
				before := up.Queries.Load()
				addr := s.UDPAddr().String()
				if network == "tcp" {
					addr = s.TCPAddr().String()
				}
				r := exchange(t, network, addr, tc.qname, tc.qtype)
				if r.header.RCode != tc.rcode {
					t.Errorf("rcode %v, want %v", r.header.RCode, tc.rcode)
				}
				if got := r.addrs(); !reflect.DeepEqual(got, tc.want) {
					t.Errorf("answers %v, want %v", got, tc.want)
				}
				if got := up.Queries.Load() != before; got != tc.forwarded {
					t.Errorf("forwarded %v, want %v", got, tc.forwarded)
				}
				if !tc.forwarded && !r.header.Authoritative {
					t.Error("a local answer must be authoritative")
				}
			})
		}
	}
}

// TestGoResolver: Go's own resolver, pointed at the proxy, resolves a
// service to its VIP and an outside name through the upstream.
func TestGoResolver(t *testing.T) {
	s, _ := startMeshProxy(t)
	for _, network := range []string{"udp", "tcp"} {
		r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, s.UDPAddr().String())
		}}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		got, err := r.LookupHost(ctx, "hello.default.svc.cluster.local")
		if err != nil || !reflect.DeepEqual(got, []string{"240.240.0.9"}) {
			t.Errorf("%s: LookupHost(hello) = %v, %v; want the VIP", network, got, err)
		}
		got, err = r.LookupHost(ctx, "example.invalid")
		if err != nil || !reflect.DeepEqual(got, []string{"192.0.2.10"}) {
			t.Errorf("%s: LookupHost(example.invalid) = %v, %v; want the upstream's answer", network, got, err)
		}
		_, err = r.LookupHost(ctx, "nope.example.com")
		if dnsErr, ok := err.(*net.DNSError); !ok || !dnsErr.IsNotFound {
			t.Errorf("%s: LookupHost(nope) error %v, want not found", network, err)
		}
		cancel()
	}
}

// TestServfail: before the first table, and when no upstream answers,
// the proxy answers SERVFAIL (Istio's agent does both).
func TestServfail(t *testing.T) {
	up := startUpstream(t, nil)
	rc := writeResolvConf(t, t.TempDir(), "nameserver 127.0.0.1\n")
	s := startProxy(t, Options{ResolvConf: rc, UpstreamPort: upstreamPort(t, up), Namespace: "default"})
	if r := exchange(t, "udp", s.UDPAddr().String(), "hello.default.svc.cluster.local.", dnsmessage.TypeA); r.header.RCode != dnsmessage.RCodeServerFailure {
		t.Errorf("before the table: rcode %v, want SERVFAIL", r.header.RCode)
	}
	if up.Queries.Load() != 0 {
		t.Error("a query before the table went upstream")
	}
	// No upstream: a nameserver address where nothing listens.
	dead := writeResolvConf(t, t.TempDir(), "nameserver 127.0.0.1\n")
	s2 := startProxy(t, Options{ResolvConf: dead, UpstreamPort: closedPort(t), UpstreamTimeout: time.Second, Namespace: "default"})
	s2.UpdateTable(meshTable)
	for _, network := range []string{"udp", "tcp"} {
		addr := s2.UDPAddr().String()
		if network == "tcp" {
			addr = s2.TCPAddr().String()
		}
		if r := exchange(t, network, addr, "example.invalid.", dnsmessage.TypeA); r.header.RCode != dnsmessage.RCodeServerFailure {
			t.Errorf("%s, no upstream: rcode %v, want SERVFAIL", network, r.header.RCode)
		}
	}
}

// closedPort returns a loopback port with no UDP or TCP listener.
func closedPort(t *testing.T) int {
	s := &Server{}
	if err := s.bind("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	_, p, _ := net.SplitHostPort(s.udp.LocalAddr().String())
	s.udp.Close()
	s.tcp.Close()
	n, _ := strconv.Atoi(p)
	return n
}

// TestResolvConfReread: a changed resolv.conf is used without a restart.
func TestResolvConfReread(t *testing.T) {
	up := startUpstream(t, map[string][4]byte{"example.invalid.": {192, 0, 2, 10}})
	dir := t.TempDir()
	// 127.0.0.2 is loopback too, but the upstream listens on 127.0.0.1 only.
	rc := writeResolvConf(t, dir, "nameserver 127.0.0.2\n")
	s := startProxy(t, Options{ResolvConf: rc, UpstreamPort: upstreamPort(t, up), UpstreamTimeout: time.Second, Namespace: "default"})
	s.UpdateTable(meshTable)
	if r := exchange(t, "udp", s.UDPAddr().String(), "example.invalid.", dnsmessage.TypeA); r.header.RCode != dnsmessage.RCodeServerFailure {
		t.Fatalf("with the wrong nameserver: rcode %v, want SERVFAIL", r.header.RCode)
	}
	writeResolvConf(t, dir, "nameserver 127.0.0.1\nsearch default.svc.cluster.local\n")
	// The file is checked at most once a second: wait up to 5 s.
	waitFor(t, "the new nameserver", 5*time.Second, func() bool {
		r := exchange(t, "udp", s.UDPAddr().String(), "example.invalid.", dnsmessage.TypeA)
		return r.header.RCode == dnsmessage.RCodeSuccess && reflect.DeepEqual(r.addrs(), []string{"192.0.2.10"})
	})
}

// TestTruncation: a UDP answer larger than the client's 512 bytes comes
// back truncated and without records; over TCP it is complete.
func TestTruncation(t *testing.T) {
	ips := make([]string, 40)
	for i := range ips {
		ips[i] = "10.1.0." + strconv.Itoa(i+1)
	}
	up := startUpstream(t, nil)
	rc := writeResolvConf(t, t.TempDir(), "nameserver 127.0.0.1\n")
	s := startProxy(t, Options{ResolvConf: rc, UpstreamPort: upstreamPort(t, up), Namespace: "default"})
	s.UpdateTable(nds.Table{"big.example.com": {IPs: ips}})
	r := exchange(t, "udp", s.UDPAddr().String(), "big.example.com.", dnsmessage.TypeA)
	if !r.header.Truncated || len(r.answers) != 0 {
		t.Errorf("UDP: truncated %v with %d answers, want truncated and none", r.header.Truncated, len(r.answers))
	}
	r = exchange(t, "tcp", s.TCPAddr().String(), "big.example.com.", dnsmessage.TypeA)
	if r.header.Truncated || len(r.answers) != 40 {
		t.Errorf("TCP: truncated %v with %d answers, want 40", r.header.Truncated, len(r.answers))
	}
}

func TestParseResolvConf(t *testing.T) {
	cases := []struct {
		name, in, exclude string
		want              resolvConf
	}{
		{"basic", "nameserver 10.0.0.1\nnameserver 2001:db8::1\nsearch a.b c.d\n", "",
			resolvConf{servers: []string{"10.0.0.1:53", "[2001:db8::1]:53"}, search: []string{"a.b", "c.d"}}},
		{"comments_and_junk", "# x\n; y\nnameserver nonsense\noptions ndots:5\nnameserver 10.0.0.2 # z\n", "",
			resolvConf{servers: []string{"10.0.0.2:53"}}},
		{"domain_then_search_last_wins", "domain x.y\nsearch a\n", "", resolvConf{search: []string{"a"}}},
		{"search_then_domain_last_wins", "search a\ndomain x.y\n", "", resolvConf{search: []string{"x.y"}}},
		{"own_address_excluded", "nameserver 127.0.0.1\nnameserver 10.0.0.1\n", "127.0.0.1:53", resolvConf{servers: []string{"10.0.0.1:53"}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := parseResolvConf([]byte(tc.in), "53", tc.exclude); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestAltNames(t *testing.T) {
	d := newDomainInfo("default", "default.svc.cluster.local")
	if d.domain != "svc.cluster.local" || d.firstPart != "svc" {
		t.Fatalf("domain info %+v", d)
	}
	cases := []struct {
		name string
		host string
		ni   nds.NameInfo
		want []string
	}{
		{"same_namespace", "a.default.svc.cluster.local", nds.NameInfo{Registry: "Kubernetes", Shortname: "a", Namespace: "default"},
			[]string{"a.default.", "a.default.svc.", "a."}},
		{"other_namespace", "b.other.svc.cluster.local", nds.NameInfo{Registry: "Kubernetes", Shortname: "b", Namespace: "other"},
			[]string{"b.other.", "b.other.svc."}},
		{"other_domain", "c.default.svc.remote.local", nds.NameInfo{Registry: "Kubernetes", Shortname: "c", Namespace: "default"}, nil},
		{"external", "api.example.com", nds.NameInfo{Registry: "External"}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := altNames(tc.host, tc.ni, d); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func BenchmarkAnswerLocal(b *testing.B) {
	tab := buildTable(meshTable, newDomainInfo("default", "default.svc.cluster.local"))
	bld := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: 1, RecursionDesired: true})
	bld.StartQuestions()
	bld.Question(dnsmessage.Question{Name: dnsmessage.MustNewName("hello.default.svc.cluster.local."), Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET})
	msg, _ := bld.Finish()
	b.ReportAllocs()
	for b.Loop() {
		q, _, _ := parseQuery(msg)
		res, ok := resolve(tab, q.question, nil)
		if !ok {
			b.Fatal("not found")
		}
		if _, err := answerFound(q, res, 512); err != nil {
			b.Fatal(err)
		}
	}
}

func FuzzParseQuery(f *testing.F) {
	bld := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: 1})
	bld.StartQuestions()
	bld.Question(dnsmessage.Question{Name: dnsmessage.MustNewName("hello."), Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET})
	msg, _ := bld.Finish()
	f.Add(msg)
	f.Add([]byte{0, 1, 0, 0})
	tab := buildTable(meshTable, newDomainInfo("default", "default.svc.cluster.local"))
	f.Fuzz(func(t *testing.T, data []byte) {
		q, ok, err := parseQuery(data)
		if !ok || err != nil || !q.hasQ {
			if ok {
				answerError(q, dnsmessage.RCodeFormatError)
			}
			return
		}
		if res, found := resolve(tab, q.question, []string{"default.svc.cluster.local"}); found {
			if _, err := answerFound(q, res, q.udpSize); err != nil {
				t.Fatalf("answer for a parsed question failed: %v", err)
			}
		}
	})
}

// TestMissingResolvConf: without the file the local resolver is assumed
// (glibc's and Go's default), and the file is used once it appears.
func TestMissingResolvConf(t *testing.T) {
	dir := t.TempDir()
	w, err := newResolvWatcher(dir+"/resolv.conf", "53", "")
	if err != nil {
		t.Fatal(err)
	}
	if got := w.get().servers; !reflect.DeepEqual(got, []string{"127.0.0.1:53", "[::1]:53"}) {
		t.Fatalf("servers %v, want the local resolver", got)
	}
	writeResolvConf(t, dir, "nameserver 10.0.0.1\n")
	waitFor(t, "the new file", 5*time.Second, func() bool {
		return reflect.DeepEqual(w.get().servers, []string{"10.0.0.1:53"})
	})
}
