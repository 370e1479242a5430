package chainmatch

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

type fcm = listenerv3.FilterChainMatch

// cidr parses "addr/len" ("addr" alone leaves prefix_len unset).
func cidr(s string) *corev3.CidrRange {
	addr, bits, found := strings.Cut(s, "/")
	r := &corev3.CidrRange{AddressPrefix: addr}
	if found {
		n, err := strconv.Atoi(bits)
		if err != nil {
			panic(err)
		}
		r.PrefixLen = wrapperspb.UInt32(uint32(n))
	}
	return r
}

func cidrs(ss ...string) []*corev3.CidrRange {
	out := make([]*corev3.CidrRange, len(ss))
	for i, s := range ss {
		out[i] = cidr(s)
	}
	return out
}

func chainsOf(ms ...*fcm) []*listenerv3.FilterChain {
	out := make([]*listenerv3.FilterChain, len(ms))
	for i, m := range ms {
		out[i] = &listenerv3.FilterChain{Name: fmt.Sprintf("c%d", i), FilterChainMatch: m}
	}
	return out
}

// conn describes a connection tersely: "local", "remote", then key=value
// options sni=, tp=, alpn=a,b and direct=.
func conn(local, remote string, opts ...string) ConnInfo {
	c := ConnInfo{TransportProtocol: "raw_buffer"}
	if local != "" {
		c.Local = netip.MustParseAddrPort(local)
	}
	if remote != "" {
		c.Remote = netip.MustParseAddrPort(remote)
	}
	for _, o := range opts {
		k, v, _ := strings.Cut(o, "=")
		switch k {
		case "sni":
			c.ServerName = v
		case "tp":
			c.TransportProtocol = v
		case "alpn":
			c.ApplicationProtocols = strings.Split(v, ",")
		case "direct":
			c.DirectRemote = netip.MustParseAddrPort(v)
		default:
			panic("unknown option " + o)
		}
	}
	return c
}

const (
	local443 = "10.0.0.1:443"
	peer     = "192.0.2.7:40000"
)

type matchCase struct {
	conn ConnInfo
	want int
}

func TestMatch(t *testing.T) {
	tests := []struct {
		name       string
		chains     []*listenerv3.FilterChain
		hasDefault bool
		cases      []matchCase
	}{
		{
			name:       "destination_port",
			chains:     chainsOf(&fcm{DestinationPort: wrapperspb.UInt32(443)}, &fcm{}),
			hasDefault: true,
			cases: []matchCase{
				{conn("10.0.0.1:443", peer), 0},
				{conn("10.0.0.1:80", peer), 1},
				{conn("[2001:db8::1]:443", peer), 0},
				{conn("", peer), 1}, // not an IP socket: destination_port is skipped
			},
		},
		{
			name: "a chain naming the port excludes port-less chains",
			chains: chainsOf(
				&fcm{DestinationPort: wrapperspb.UInt32(443), ServerNames: []string{"a.example.com"}},
				&fcm{},
			),
			hasDefault: true,
			cases: []matchCase{
				{conn(local443, peer, "sni=a.example.com"), 0},
				{conn(local443, peer, "sni=b.example.com"), DefaultChain},
				{conn("10.0.0.1:80", peer, "sni=b.example.com"), 1},
			},
		},
		{
			name: "no default chain closes the connection",
			chains: chainsOf(
				&fcm{DestinationPort: wrapperspb.UInt32(443), ServerNames: []string{"a.example.com"}},
			),
			cases: []matchCase{
				{conn(local443, peer, "sni=a.example.com"), 0},
				{conn(local443, peer, "sni=b.example.com"), NoChain},
				{conn("10.0.0.1:80", peer), NoChain},
			},
		},
		{
			name: "destination IP: most specific range, IPv4 and IPv6",
			chains: chainsOf(
				&fcm{PrefixRanges: cidrs("10.0.0.0/8")},
				&fcm{PrefixRanges: cidrs("10.1.0.0/16", "2001:db8:1::/48")},
				&fcm{PrefixRanges: cidrs("2001:db8::/32")},
				&fcm{},
			),
			cases: []matchCase{
				{conn("10.1.2.3:80", peer), 1},
				{conn("10.2.0.1:80", peer), 0},
				{conn("192.168.0.1:80", peer), 3},
				{conn("[2001:db8:1::5]:80", peer), 1},
				{conn("[2001:db8:2::1]:80", peer), 2},
				{conn("[2001:db9::1]:80", peer), 3},
				{conn("[::ffff:10.1.2.3]:80", peer), 1}, // IPv4 peer on a dual-stack socket
				{conn("", peer), 3},                     // not IP: only catch-all ranges
			},
		},
		{
			name: "destination IP: exact /32 and mapped range",
			chains: chainsOf(
				&fcm{PrefixRanges: cidrs("10.0.0.1/32")},
				&fcm{PrefixRanges: cidrs("::ffff:10.0.0.0/104")}, // = 10.0.0.0/8
			),
			cases: []matchCase{
				{conn("10.0.0.1:80", peer), 0},
				{conn("10.0.0.2:80", peer), 1},
				{conn("11.0.0.2:80", peer), NoChain},
			},
		},
		{
			name: "destination IP: unset prefix_len covers the address family",
			chains: chainsOf(
				&fcm{PrefixRanges: cidrs("10.0.0.0")},
			),
			cases: []matchCase{
				{conn("192.168.1.1:80", peer), 0},
				{conn("[2001:db8::1]:80", peer), NoChain},
			},
		},
		{
			name: "destination IP: no backtracking to a wider range",
			chains: chainsOf(
				&fcm{PrefixRanges: cidrs("10.0.0.0/8")},
				&fcm{PrefixRanges: cidrs("10.1.0.0/16"), ServerNames: []string{"a.example.com"}},
			),
			hasDefault: true,
			cases: []matchCase{
				{conn("10.1.0.9:80", peer, "sni=a.example.com"), 1},
				{conn("10.1.0.9:80", peer, "sni=b.example.com"), DefaultChain},
				{conn("10.2.0.9:80", peer, "sni=b.example.com"), 0},
			},
		},
		{
			name: "server_names: exact, longest wildcard, then none",
			chains: chainsOf(
				&fcm{ServerNames: []string{"www.example.com"}},
				&fcm{ServerNames: []string{"*.example.com", "API.Example.org"}},
				&fcm{ServerNames: []string{"*.com"}},
				&fcm{},
			),
			cases: []matchCase{
				{conn(local443, peer, "sni=www.example.com"), 0},
				{conn(local443, peer, "sni=WWW.Example.COM"), 0},
				{conn(local443, peer, "sni=api.example.com"), 1},
				{conn(local443, peer, "sni=a.b.example.com"), 1},
				{conn(local443, peer, "sni=api.example.org"), 1},
				{conn(local443, peer, "sni=example.com"), 2}, // "*.example.com" needs a label before it
				{conn(local443, peer, "sni=foo.com"), 2},
				{conn(local443, peer, "sni=foo.org"), 3},
				{conn(local443, peer, "sni=com"), 3},
				{conn(local443, peer, "sni=www.example.com."), 3}, // trailing dot is not stripped
				{conn(local443, peer), 3},
			},
		},
		{
			name: "server_names: a leading-dot name acts as a wildcard (Envoy's shared map)",
			chains: chainsOf(
				&fcm{ServerNames: []string{".example.com"}},
			),
			cases: []matchCase{
				{conn(local443, peer, "sni=www.example.com"), 0},
				{conn(local443, peer, "sni=example.com"), NoChain},
			},
		},
		{
			name: "server_names: no fallback from an exact match to a wildcard",
			chains: chainsOf(
				&fcm{ServerNames: []string{"www.example.com"}, TransportProtocol: "tls"},
				&fcm{ServerNames: []string{"*.example.com"}},
			),
			hasDefault: true,
			cases: []matchCase{
				{conn(local443, peer, "sni=www.example.com", "tp=tls"), 0},
				{conn(local443, peer, "sni=www.example.com"), DefaultChain},
				{conn(local443, peer, "sni=api.example.com"), 1},
			},
		},
		{
			name: "transport_protocol",
			chains: chainsOf(
				&fcm{TransportProtocol: "tls"},
				&fcm{TransportProtocol: "raw_buffer"},
				&fcm{},
			),
			cases: []matchCase{
				{conn(local443, peer, "tp=tls"), 0},
				{conn(local443, peer, "tp=raw_buffer"), 1},
				{conn(local443, peer, "tp=quic"), 2},
			},
		},
		{
			name:   "transport_protocol without a catch-all",
			chains: chainsOf(&fcm{TransportProtocol: "tls"}),
			cases: []matchCase{
				{conn(local443, peer, "tp=tls"), 0},
				{conn(local443, peer, "tp=raw_buffer"), NoChain},
			},
		},
		{
			name: "application_protocols: the client's first protocol a chain names",
			chains: chainsOf(
				&fcm{ApplicationProtocols: []string{"h2", "h2c"}},
				&fcm{ApplicationProtocols: []string{"http/1.1"}},
				&fcm{},
			),
			cases: []matchCase{
				{conn(local443, peer, "alpn=http/1.1,h2"), 1},
				{conn(local443, peer, "alpn=h2,http/1.1"), 0},
				{conn(local443, peer, "alpn=h3,h2c"), 0},
				{conn(local443, peer, "alpn=h3"), 2},
				{conn(local443, peer), 2},
			},
		},
		{
			name: "direct source IP",
			chains: chainsOf(
				&fcm{DirectSourcePrefixRanges: cidrs("192.168.0.0/16")},
				&fcm{},
			),
			cases: []matchCase{
				{conn(local443, "10.9.9.9:1000", "direct=192.168.1.1:2000"), 0},
				{conn(local443, "192.168.1.1:1000"), 0}, // no proxy protocol: direct = remote
				{conn(local443, "192.168.1.1:1000", "direct=10.9.9.9:2000"), 1},
			},
		},
		{
			name: "source_type",
			chains: chainsOf(
				&fcm{SourceType: listenerv3.FilterChainMatch_SAME_IP_OR_LOOPBACK},
				&fcm{SourceType: listenerv3.FilterChainMatch_EXTERNAL},
				&fcm{},
			),
			cases: []matchCase{
				{conn("127.0.0.1:443", "127.0.0.1:5000"), 0},
				{conn("10.0.0.1:443", "127.0.0.9:5000"), 0},
				{conn("10.0.0.1:443", "10.0.0.1:5000"), 0},
				{conn("[::1]:443", "[::1]:5000"), 0},
				{conn("10.0.0.1:443", ""), 0}, // not an IP peer (a pipe): local
				{conn("10.0.0.1:443", "8.8.8.8:5000"), 1},
			},
		},
		{
			name: "source_type: local chains only, external falls to ANY",
			chains: chainsOf(
				&fcm{SourceType: listenerv3.FilterChainMatch_SAME_IP_OR_LOOPBACK},
				&fcm{SourceType: listenerv3.FilterChainMatch_ANY},
			),
			cases: []matchCase{
				{conn("10.0.0.1:443", "127.0.0.1:5000"), 0},
				{conn("10.0.0.1:443", "8.8.8.8:5000"), 1},
			},
		},
		{
			name: "source_type: no ANY chain",
			chains: chainsOf(
				&fcm{SourceType: listenerv3.FilterChainMatch_EXTERNAL},
			),
			hasDefault: true,
			cases: []matchCase{
				{conn("10.0.0.1:443", "8.8.8.8:5000"), 0},
				{conn("10.0.0.1:443", "127.0.0.1:5000"), DefaultChain},
			},
		},
		{
			name: "source IP: most specific range",
			chains: chainsOf(
				&fcm{SourcePrefixRanges: cidrs("10.0.0.0/8", "2001:db8::/32")},
				&fcm{SourcePrefixRanges: cidrs("10.1.0.0/16")},
			),
			hasDefault: true,
			cases: []matchCase{
				{conn(local443, "10.1.2.3:1"), 1},
				{conn(local443, "10.2.2.3:1"), 0},
				{conn(local443, "[2001:db8::7]:1"), 0},
				{conn(local443, "[::ffff:10.1.0.1]:1"), 1},
				{conn(local443, "192.168.0.1:1"), DefaultChain},
			},
		},
		{
			name: "source_ports",
			chains: chainsOf(
				&fcm{SourcePorts: []uint32{1234, 5678}},
				&fcm{},
			),
			cases: []matchCase{
				{conn(local443, "10.0.0.2:1234"), 0},
				{conn(local443, "10.0.0.2:5678"), 0},
				{conn(local443, "10.0.0.2:9999"), 1},
			},
		},
		{
			name: "precedence: each criterion outranks the next",
			chains: chainsOf(
				&fcm{DestinationPort: wrapperspb.UInt32(443)},
				&fcm{PrefixRanges: cidrs("10.0.0.0/8")},
				&fcm{ServerNames: []string{"a.example.com"}},
				&fcm{TransportProtocol: "tls"},
				&fcm{ApplicationProtocols: []string{"h2"}},
				&fcm{DirectSourcePrefixRanges: cidrs("172.16.0.0/12")},
				&fcm{SourceType: listenerv3.FilterChainMatch_EXTERNAL},
				&fcm{SourcePrefixRanges: cidrs("192.0.2.0/24")},
				&fcm{SourcePorts: []uint32{1234}},
			),
			hasDefault: true,
			cases: []matchCase{
				// A connection matching every chain picks the earliest criterion.
				{conn("10.0.0.1:443", "192.0.2.7:1234", "sni=a.example.com", "tp=tls", "alpn=h2", "direct=172.16.0.1:1"), 0},
				{conn("10.0.0.1:80", "192.0.2.7:1234", "sni=a.example.com", "tp=tls", "alpn=h2", "direct=172.16.0.1:1"), 1},
				{conn("11.0.0.1:80", "192.0.2.7:1234", "sni=a.example.com", "tp=tls", "alpn=h2", "direct=172.16.0.1:1"), 2},
				{conn("11.0.0.1:80", "192.0.2.7:1234", "sni=b.example.com", "tp=tls", "alpn=h2", "direct=172.16.0.1:1"), 3},
				{conn("11.0.0.1:80", "192.0.2.7:1234", "alpn=h2", "direct=172.16.0.1:1"), 4},
				{conn("11.0.0.1:80", "192.0.2.7:1234", "direct=172.16.0.1:1"), 5},
				{conn("11.0.0.1:80", "192.0.2.7:1234"), 6},
				// Local connections skip the EXTERNAL chain and go on among the ANY ones.
				{conn("192.0.2.7:80", "192.0.2.7:1234"), 7},
				{conn("127.0.0.1:80", "127.0.0.1:1234"), 8},
				{conn("127.0.0.1:80", "127.0.0.1:999"), DefaultChain},
			},
		},
		{
			name: "precedence: source IP over source port",
			chains: chainsOf(
				&fcm{SourcePrefixRanges: cidrs("192.0.2.0/24")},
				&fcm{SourcePorts: []uint32{1234}},
			),
			cases: []matchCase{
				{conn(local443, "192.0.2.7:1234"), 0},
				{conn(local443, "198.51.100.1:1234"), 1},
				{conn(local443, "198.51.100.1:1235"), NoChain},
			},
		},
		{
			name:       "no chains",
			hasDefault: true,
			cases:      []matchCase{{conn(local443, peer), DefaultChain}},
		},
		{
			name:  "no chains, no default",
			cases: []matchCase{{conn(local443, peer), NoChain}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var def *listenerv3.FilterChain
			if tt.hasDefault {
				def = &listenerv3.FilterChain{Name: "default"}
			}
			m, err := Compile(tt.chains, def)
			if err != nil {
				t.Fatal(err)
			}
			for i, c := range tt.cases {
				if got := m.Match(&c.conn); got != c.want {
					t.Errorf("case %d %+v: Match = %d, want %d", i, c.conn, got, c.want)
				}
			}
		})
	}
}
