package hcm

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/weftmesh/weft/internal/proxy/headers"
)

func TestXFFFromRight(t *testing.T) {
	cases := []struct {
		xff    string
		nilXFF bool
		skip   int
		want   string // "" for none
		single bool
	}{
		{nilXFF: true, want: ""},
		{xff: "1.2.3.4", want: "1.2.3.4", single: true},
		{xff: " 1.2.3.4 ", want: "1.2.3.4", single: true},
		{xff: "1.2.3.4", skip: 1, want: ""},
		{xff: "1.2.3.4, 10.0.0.1", want: "10.0.0.1"},
		{xff: "1.2.3.4, 10.0.0.1", skip: 1, want: "1.2.3.4"},
		{xff: "1.2.3.4,10.0.0.1,192.168.0.1", skip: 2, want: "1.2.3.4"},
		{xff: "1.2.3.4, 10.0.0.1", skip: 2, want: ""},
		{xff: "::ffff:1.2.3.4", want: "1.2.3.4", single: true},
		{xff: "2001:db8::1", want: "2001:db8::1", single: true},
		{xff: "garbage", want: ""},
		{xff: "1.2.3.4,", want: ""},
		{xff: "", want: ""},
	}
	for _, c := range cases {
		var v []byte
		if !c.nilXFF {
			v = []byte(c.xff)
		}
		a, single, ok := xffFromRight(v, c.skip)
		got := ""
		if ok {
			got = a.String()
		}
		if got != c.want || ok && single != c.single {
			t.Errorf("xffFromRight(%q, %d) = %q single=%v, want %q single=%v", c.xff, c.skip, got, single, c.want, c.single)
		}
	}
}

func TestNominationAllowed(t *testing.T) {
	cases := []struct {
		conn string
		ok   bool
	}{
		{"close", true},
		{"keep-alive, x-foo, te", true},
		{"a,b,c,d,e,f,g,h,i", true},
		{"a,b,c,d,e,f,g,h,i,j", false},
		{"a, , ,b", true},
		{"X-Forwarded-For", false},
		{"close, x-forwarded-proto", false},
		{"x-forwarded-host", false},
		{":path", false},
		{"x-forwarded-port", true},
	}
	for _, c := range cases {
		if got := nominationAllowed([]byte(c.conn)); got != c.ok {
			t.Errorf("nominationAllowed(%q) = %v, want %v", c.conn, got, c.ok)
		}
	}
}

func TestRemoveHopByHop(t *testing.T) {
	cases := []struct {
		name    string
		in      []string // name, value pairs
		upgrade bool
		want    string // remaining fields "name=value;..."
	}{
		{
			name: "fixed-and-nominated",
			in: []string{"connection", "keep-alive, X-Foo", "x-foo", "1", "keep-alive", "timeout=5",
				"proxy-connection", "x", "transfer-encoding", "chunked", "upgrade", "h2", "x-keep", "k"},
			want: "x-keep=k",
		},
		{name: "te-trailers", in: []string{"te", "deflate, Trailers"}, want: "te=trailers"},
		{name: "te-other", in: []string{"te", "gzip"}, want: ""},
		{name: "two-connection-fields", in: []string{"connection", "x-a", "connection", "x-b", "x-a", "1", "x-b", "2", "x-c", "3"}, want: "x-c=3"},
		{name: "upgrade", upgrade: true, in: []string{"connection", "Upgrade, x-a", "upgrade", "websocket", "x-a", "1"}, want: "upgrade=websocket;connection=upgrade"},
	}
	for _, c := range cases {
		var m headers.Map
		for i := 0; i+1 < len(c.in); i += 2 {
			m.Add(c.in[i], c.in[i+1])
		}
		if !removeHopByHop(&m, c.upgrade) {
			t.Errorf("%s: refused", c.name)
			continue
		}
		var got []string
		for _, f := range m.Fields {
			got = append(got, string(f.Name)+"="+string(f.Value))
		}
		if g := strings.Join(got, ";"); g != c.want {
			t.Errorf("%s: got %q, want %q", c.name, g, c.want)
		}
	}
	var m headers.Map
	m.Add("connection", "x-forwarded-for")
	m.Add("x-forwarded-for", "1.2.3.4")
	if removeHopByHop(&m, false) {
		t.Error("a nominated x-forwarded-for must be refused")
	}
}

func TestLocalAddressIsIPv4(t *testing.T) {
	a := localAddress()
	if !a.Is4() {
		t.Fatalf("localAddress() = %v, want an IPv4 address", a)
	}
	if a.IsLoopback() && a != netip.AddrFrom4([4]byte{127, 0, 0, 1}) {
		t.Errorf("loopback fallback %v, want 127.0.0.1", a)
	}
}

func BenchmarkRemoveHopByHop(b *testing.B) {
	b.ReportAllocs()
	var m headers.Map
	for i := 0; i < b.N; i++ {
		m.Reset()
		m.Add("user-agent", "bench")
		m.Add("accept", "*/*")
		m.Add("connection", "keep-alive, x-foo")
		m.Add("x-foo", "1")
		m.Add("te", "trailers")
		removeHopByHop(&m, false)
	}
}

func BenchmarkXFFFromRight(b *testing.B) {
	b.ReportAllocs()
	v := []byte("198.51.100.1, 203.0.113.9, 10.0.0.1")
	for i := 0; i < b.N; i++ {
		xffFromRight(v, 1)
	}
}

func TestParseAddr(t *testing.T) {
	for _, s := range []string{
		"1.2.3.4", "0.0.0.0", "255.255.255.255", "256.1.1.1", "1.2.3", "1.2.3.4.5", "01.2.3.4",
		"1..2.3", ".1.2.3", "1.2.3.", "1.2.3.4a", "1234.1.1.1", "::1", "2001:db8::1", "::ffff:1.2.3.4",
		"fe80::1%eth0", "", "x", "1.2.3.-4",
	} {
		want, err := netip.ParseAddr(s)
		got, ok := parseAddr([]byte(s))
		if ok != (err == nil) || ok && got != want {
			t.Errorf("parseAddr(%q) = %v %v, want %v %v", s, got, ok, want, err == nil)
		}
	}
}
