package chainmatch

import (
	"fmt"
	"strings"
	"testing"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

func TestCompileErrors(t *testing.T) {
	tests := []struct {
		name   string
		chains []*listenerv3.FilterChain
		want   []string // fragments the error must contain
	}{
		{"null chain", []*listenerv3.FilterChain{{}, nil},
			[]string{"filter_chains[1]: is null"}},
		{"partial wildcard", chainsOf(&fcm{ServerNames: []string{"a.com", "*w.example.com"}}),
			[]string{"filter_chains[0].filter_chain_match.server_names[1]: ", "partial wildcards"}},
		{"bare star", chainsOf(&fcm{ServerNames: []string{"*"}}),
			[]string{"server_names[0]: ", "partial wildcards"}},
		{"second star", chainsOf(&fcm{ServerNames: []string{"*.*.com"}}),
			[]string{"server_names[0]: ", "partial wildcards"}},
		{"star dot", chainsOf(&fcm{ServerNames: []string{"*."}}),
			[]string{"server_names[0]: ", "no domain"}},
		{"empty server name", chainsOf(&fcm{ServerNames: []string{""}}),
			[]string{"server_names[0]: is empty"}},
		{"repeated server name", chainsOf(&fcm{ServerNames: []string{"A.com", "b.com", "a.COM"}}),
			[]string{"server_names[2]: ", "repeats filter_chains[0].filter_chain_match.server_names[0]"}},
		{"bad address", chainsOf(&fcm{PrefixRanges: cidrs("10.0.0.0/8", "10.0.0.x/8")}),
			[]string{"filter_chains[0].filter_chain_match.prefix_ranges[1]: ", `"10.0.0.x" is not an IP address`}},
		{"zoned address", chainsOf(&fcm{PrefixRanges: cidrs("fe80::1%eth0/64")}),
			[]string{"prefix_ranges[0]: ", "not an IP address"}},
		{"prefix_len above 128", chainsOf(&fcm{SourcePrefixRanges: cidrs("2001:db8::/129")}),
			[]string{"source_prefix_ranges[0]: prefix_len 129"}},
		{"repeated range after masking", chainsOf(&fcm{DirectSourcePrefixRanges: cidrs("10.1.0.0/8", "10.0.0.0/8")}),
			[]string{"direct_source_prefix_ranges[1]: 10.0.0.0/8 repeats", "direct_source_prefix_ranges[0]"}},
		{"destination port 0", chainsOf(&fcm{DestinationPort: wrapperspb.UInt32(0)}),
			[]string{"filter_chains[0].filter_chain_match.destination_port: 0 is not a port"}},
		{"destination port too big", chainsOf(&fcm{DestinationPort: wrapperspb.UInt32(70000)}),
			[]string{"destination_port: 70000"}},
		{"source port 0", chainsOf(&fcm{SourcePorts: []uint32{80, 0}}),
			[]string{"source_ports[1]: 0 is not a port"}},
		{"repeated source port", chainsOf(&fcm{SourcePorts: []uint32{80, 80}}),
			[]string{"source_ports[1]: 80 repeats"}},
		{"empty application protocol", chainsOf(&fcm{ApplicationProtocols: []string{"h2", ""}}),
			[]string{"application_protocols[1]: is empty"}},
		{"repeated application protocol", chainsOf(&fcm{ApplicationProtocols: []string{"h2", "h2"}}),
			[]string{"application_protocols[1]: \"h2\" repeats"}},
		{"address_suffix", chainsOf(&fcm{AddressSuffix: "::1"}),
			[]string{"address_suffix: is not implemented"}},
		{"suffix_len", chainsOf(&fcm{SuffixLen: wrapperspb.UInt32(8)}),
			[]string{"suffix_len: is not implemented"}},
		{"unknown source_type", chainsOf(&fcm{SourceType: 7}),
			[]string{"source_type: unknown value 7"}},
		{"every bad chain is reported", chainsOf(
			&fcm{ServerNames: []string{"*x.com"}}, &fcm{}, &fcm{PrefixRanges: cidrs("bad")}),
			[]string{"filter_chains[0].filter_chain_match.server_names[0]", "filter_chains[2].filter_chain_match.prefix_ranges[0]"}},
		{"identical matches", chainsOf(
			&fcm{ServerNames: []string{"a.com"}}, &fcm{ServerNames: []string{"b.com"}}, &fcm{ServerNames: []string{"a.com"}}),
			[]string{`filter_chains[2].filter_chain_match: filter chain "c2" has the same matching rules as filter_chains[0] "c0"`}},
		{"missing and empty match are identical", []*listenerv3.FilterChain{{}, {FilterChainMatch: &fcm{}}},
			[]string{"filter_chains[1].filter_chain_match: filter chain has the same matching rules as filter_chains[0]"}},
		{"overlapping server names", chainsOf(
			&fcm{ServerNames: []string{"a.com", "b.com"}}, &fcm{ServerNames: []string{"B.com"}}),
			[]string{`filter_chains[1].filter_chain_match: filter chain "c1" overlaps filter_chains[0] "c0": both match server name "b.com"`}},
		{"wildcard and leading dot overlap", chainsOf(
			&fcm{ServerNames: []string{"*.example.com"}}, &fcm{ServerNames: []string{".example.com"}}),
			[]string{`overlaps filter_chains[0] "c0": both match server name "*.example.com"`}},
		{"ranges equal after masking overlap", chainsOf(
			&fcm{PrefixRanges: cidrs("10.1.0.0/8"), DestinationPort: wrapperspb.UInt32(443)},
			&fcm{PrefixRanges: cidrs("10.0.0.0/8", "11.0.0.0/8"), DestinationPort: wrapperspb.UInt32(443)}),
			[]string{"filter_chains[1].filter_chain_match: ", "both match destination_port 443, destination 10.0.0.0/8"}},
		{"catch-all range overlaps an empty list", chainsOf(
			&fcm{TransportProtocol: "tls"}, &fcm{TransportProtocol: "tls", SourcePrefixRanges: cidrs("::/0")}),
			[]string{"filter_chains[1].filter_chain_match: ", `both match transport_protocol "tls"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := Compile(tt.chains, nil)
			if err == nil {
				t.Fatalf("Compile succeeded (%v), want an error containing %q", m, tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestCompileAcceptsDistinctChains(t *testing.T) {
	chains := chainsOf(
		&fcm{DestinationPort: wrapperspb.UInt32(443), ServerNames: []string{"a.com"}},
		&fcm{DestinationPort: wrapperspb.UInt32(8443), ServerNames: []string{"a.com"}},
		&fcm{ServerNames: []string{"a.com"}, TransportProtocol: "tls"},
		&fcm{ServerNames: []string{"a.com"}},
		&fcm{ServerNames: []string{"*.a.com"}},
		&fcm{PrefixRanges: cidrs("10.0.0.0/8")},
		&fcm{PrefixRanges: cidrs("10.0.0.0/16")},
		&fcm{SourceType: listenerv3.FilterChainMatch_EXTERNAL},
		&fcm{SourcePorts: []uint32{1}},
		&fcm{},
	)
	// The default chain's own filter_chain_match is ignored, as in Envoy.
	def := &listenerv3.FilterChain{FilterChainMatch: &fcm{ServerNames: []string{"*bad"}}}
	if _, err := Compile(chains, def); err != nil {
		t.Fatal(err)
	}
}

// TestMatchAllocs: Match must not allocate (ServerName lower-case).
func TestMatchAllocs(t *testing.T) {
	m, conns, want := benchListener(t)
	for i := range conns {
		if got := m.Match(&conns[i]); got != want[i] {
			t.Fatalf("Match(%+v) = %d, want %d", conns[i], got, want[i])
		}
		if n := testing.AllocsPerRun(100, func() { m.Match(&conns[i]) }); n != 0 {
			t.Fatalf("Match(%+v) allocates %v times per call", conns[i], n)
		}
	}
}

// benchListener is a sidecar-like inbound listener: per-port chains split by
// TLS and ALPN, SNI chains for an ingress port, and a catch-all.
// It returns the connections to match and the chain each must select.
func benchListener(tb testing.TB) (*Matcher, []ConnInfo, []int) {
	tb.Helper()
	var ms []*fcm
	for port := uint32(8000); port < 8010; port++ {
		ms = append(ms,
			&fcm{DestinationPort: wrapperspb.UInt32(port), TransportProtocol: "tls", ApplicationProtocols: []string{"istio-peer-exchange", "istio"}},
			&fcm{DestinationPort: wrapperspb.UInt32(port), TransportProtocol: "tls"},
			&fcm{DestinationPort: wrapperspb.UInt32(port), TransportProtocol: "raw_buffer", ApplicationProtocols: []string{"http/1.1", "h2c"}},
			&fcm{DestinationPort: wrapperspb.UInt32(port), TransportProtocol: "raw_buffer"},
		)
	}
	for i := range 20 {
		ms = append(ms, &fcm{DestinationPort: wrapperspb.UInt32(443), ServerNames: []string{fmt.Sprintf("svc%d.example.com", i), fmt.Sprintf("*.svc%d.example.org", i)}})
	}
	ms = append(ms, &fcm{PrefixRanges: cidrs("10.0.0.0/8", "2001:db8::/32")}, &fcm{})
	m, err := Compile(chainsOf(ms...), &listenerv3.FilterChain{})
	if err != nil {
		tb.Fatal(err)
	}
	conns := []ConnInfo{
		conn("10.0.0.5:8003", "10.0.0.9:41000", "tp=tls", "alpn=istio-peer-exchange,istio"),
		conn("10.0.0.5:8007", "10.0.0.9:41000", "alpn=http/1.1"),
		conn("10.0.0.5:443", "192.0.2.1:41000", "tp=tls", "sni=a.b.svc17.example.org", "alpn=h2,http/1.1"),
		conn("[2001:db8::5]:9999", "[2001:db8::9]:41000"),
		conn("192.168.0.5:9999", "192.168.0.9:41000"),
	}
	return m, conns, []int{3*4 + 0, 7*4 + 2, 40 + 17, 60, 61}
}

func BenchmarkMatch(b *testing.B) {
	m, conns, _ := benchListener(b)
	names := []string{"port-tls-alpn", "port-plain-alpn", "sni-wildcard", "ipv6-range", "catch-all"}
	for i := range conns {
		b.Run(names[i], func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				m.Match(&conns[i])
			}
		})
	}
}

func BenchmarkCompile(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		benchListener(b)
	}
}
