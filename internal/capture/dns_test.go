package capture

import (
	"net/netip"
	"strings"
	"testing"
)

// dnsConfig is istio-iptables' dns-uid-gid golden case: no inbound
// capture, proxy UIDs 3,4 and GIDs 1,2, resolv.conf's 127.0.0.53.
func dnsConfig() Config {
	c := Defaults()
	c.AllInbound = false
	c.ProxyUIDs, c.ProxyGIDs = []uint32{3, 4}, []uint32{1, 2}
	c.RedirectDNS = true
	c.DNSServers = []netip.Addr{netip.MustParseAddr("127.0.0.53")}
	return c
}

// TestRenderIPTablesDNS follows istio-iptables' dns-uid-gid.golden (IPv4
// half). Differences, all without effect on what matches: weft writes -d
// before -p (its argument order everywhere), --to-ports for UDP too, and
// carves port 53 out of the GID rules' ISTIO_IN_REDIRECT as of the UIDs'.
func TestRenderIPTablesDNS(t *testing.T) {
	c := dnsConfig()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	want := `*nat
:ISTIO_INBOUND - [0:0]
:ISTIO_REDIRECT - [0:0]
:ISTIO_IN_REDIRECT - [0:0]
:ISTIO_OUTPUT - [0:0]
:ISTIO_OUTPUT_DNS - [0:0]
-A ISTIO_INBOUND -p tcp --dport 15008 -j RETURN
-A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports 15001
-A ISTIO_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006
-A OUTPUT -j ISTIO_OUTPUT
-A ISTIO_OUTPUT -o lo -s 127.0.0.6/32 -j RETURN
-A ISTIO_OUTPUT -o lo ! -d 127.0.0.1/32 -p tcp -m multiport ! --dports 53,15008 -m owner --uid-owner 3 -j ISTIO_IN_REDIRECT
-A ISTIO_OUTPUT -o lo -p tcp ! --dport 53 -m owner ! --uid-owner 3 -j RETURN
-A ISTIO_OUTPUT -m owner --uid-owner 3 -j RETURN
-A ISTIO_OUTPUT -o lo ! -d 127.0.0.1/32 -p tcp -m multiport ! --dports 53,15008 -m owner --uid-owner 4 -j ISTIO_IN_REDIRECT
-A ISTIO_OUTPUT -o lo -p tcp ! --dport 53 -m owner ! --uid-owner 4 -j RETURN
-A ISTIO_OUTPUT -m owner --uid-owner 4 -j RETURN
-A ISTIO_OUTPUT -o lo ! -d 127.0.0.1/32 -p tcp -m multiport ! --dports 53,15008 -m owner --gid-owner 1 -j ISTIO_IN_REDIRECT
-A ISTIO_OUTPUT -o lo -p tcp ! --dport 53 -m owner ! --gid-owner 1 -j RETURN
-A ISTIO_OUTPUT -m owner --gid-owner 1 -j RETURN
-A ISTIO_OUTPUT -o lo ! -d 127.0.0.1/32 -p tcp -m multiport ! --dports 53,15008 -m owner --gid-owner 2 -j ISTIO_IN_REDIRECT
-A ISTIO_OUTPUT -o lo -p tcp ! --dport 53 -m owner ! --gid-owner 2 -j RETURN
-A ISTIO_OUTPUT -m owner --gid-owner 2 -j RETURN
-A ISTIO_OUTPUT -j ISTIO_OUTPUT_DNS
-A ISTIO_OUTPUT_DNS -d 127.0.0.53/32 -p tcp --dport 53 -j REDIRECT --to-ports 15053
-A ISTIO_OUTPUT_DNS -p udp --dport 53 -m owner --uid-owner 3 -j RETURN
-A ISTIO_OUTPUT_DNS -p udp --dport 53 -m owner --uid-owner 4 -j RETURN
-A ISTIO_OUTPUT_DNS -p udp --dport 53 -m owner --gid-owner 1 -j RETURN
-A ISTIO_OUTPUT_DNS -p udp --dport 53 -m owner --gid-owner 2 -j RETURN
-A ISTIO_OUTPUT_DNS -d 127.0.0.53/32 -p udp --dport 53 -j REDIRECT --to-ports 15053
-A ISTIO_OUTPUT -d 127.0.0.1/32 -j RETURN
-A ISTIO_OUTPUT -j ISTIO_REDIRECT
COMMIT
*raw
:ISTIO_OUTPUT_DNS - [0:0]
:ISTIO_INBOUND - [0:0]
-A OUTPUT -j ISTIO_OUTPUT_DNS
-A ISTIO_OUTPUT_DNS -p udp --dport 53 -m owner --uid-owner 3 -j CT --zone 1
-A ISTIO_OUTPUT_DNS -p udp --sport 15053 -m owner --uid-owner 3 -j CT --zone 2
-A ISTIO_OUTPUT_DNS -p udp --dport 53 -m owner --uid-owner 4 -j CT --zone 1
-A ISTIO_OUTPUT_DNS -p udp --sport 15053 -m owner --uid-owner 4 -j CT --zone 2
-A ISTIO_OUTPUT_DNS -p udp --dport 53 -m owner --gid-owner 1 -j CT --zone 1
-A ISTIO_OUTPUT_DNS -p udp --sport 15053 -m owner --gid-owner 1 -j CT --zone 2
-A ISTIO_OUTPUT_DNS -p udp --dport 53 -m owner --gid-owner 2 -j CT --zone 1
-A ISTIO_OUTPUT_DNS -p udp --sport 15053 -m owner --gid-owner 2 -j CT --zone 2
-A PREROUTING -j ISTIO_INBOUND
-A ISTIO_OUTPUT_DNS -d 127.0.0.53/32 -p udp --dport 53 -j CT --zone 2
-A ISTIO_INBOUND -s 127.0.0.53/32 -p udp --sport 53 -j CT --zone 1
COMMIT
`
	if got := RenderIPTables(Plan(&c, []Family{IPv4})); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

// TestPlanDNSVariants: --capture-all-dns drops the destinations; servers
// of a family not captured add no DNS rule for it (Istio's conditional
// jumps), while OUTPUT still jumps for every protocol.
func TestPlanDNSVariants(t *testing.T) {
	tests := []struct {
		name      string
		cfg       func(c *Config)
		fam       Family
		want, not []string
	}{{
		name: "capture all ipv6",
		cfg: func(c *Config) {
			c.CaptureAllDNS, c.DNSServers = true, nil
			c.Families = []Family{IPv6}
		},
		fam: IPv6,
		want: []string{
			"-A ISTIO_OUTPUT -j ISTIO_OUTPUT_DNS\n-A ISTIO_OUTPUT_DNS -p tcp --dport 53 -j REDIRECT --to-ports 15053\n",
			"-A ISTIO_OUTPUT_DNS -p udp --dport 53 -m owner --gid-owner 2 -j RETURN\n-A ISTIO_OUTPUT_DNS -p udp --dport 53 -j REDIRECT --to-ports 15053\n-A ISTIO_OUTPUT -d ::1/128 -j RETURN\n",
			"-A PREROUTING -j ISTIO_INBOUND\n-A ISTIO_OUTPUT_DNS -p udp --dport 53 -j CT --zone 2\n-A ISTIO_INBOUND -p udp --sport 53 -j CT --zone 1\nCOMMIT\n",
		},
	}, {
		name: "only an ipv6 server, ipv4 planned",
		cfg:  func(c *Config) { c.DNSServers = []netip.Addr{netip.MustParseAddr("fd00::a")} },
		fam:  IPv4,
		want: []string{"-A OUTPUT -j ISTIO_OUTPUT\n", "--dports 53,15008"},
		not:  []string{"ISTIO_OUTPUT_DNS", "*raw"},
	}, {
		name: "custom port and a server",
		cfg: func(c *Config) {
			c.DNSPort = 5353
			c.DNSServers = []netip.Addr{netip.MustParseAddr("10.96.0.10")}
		},
		fam:  IPv4,
		want: []string{"-A ISTIO_OUTPUT_DNS -d 10.96.0.10/32 -p udp --dport 53 -j REDIRECT --to-ports 5353\n", "--sport 5353 -m owner --uid-owner 3 -j CT --zone 2\n", "-A ISTIO_INBOUND -s 10.96.0.10/32 -p udp --sport 53 -j CT --zone 1\n"},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := dnsConfig()
			tt.cfg(&c)
			if err := c.Validate(); err != nil {
				t.Fatal(err)
			}
			got := RenderIPTables(Plan(&c, []Family{tt.fam}))
			for _, w := range tt.want {
				if !strings.Contains(got, w) {
					t.Errorf("lacks %q:\n%s", w, got)
				}
			}
			for _, n := range tt.not {
				if strings.Contains(got, n) {
					t.Errorf("has %q:\n%s", n, got)
				}
			}
		})
	}
}

// TestRenderNFTDNS: the same rules in table inet weft; the raw table's
// chains are base chains at priority raw and RAW_-prefixed chains, a jump
// one family needs matches meta nfproto.
func TestRenderNFTDNS(t *testing.T) {
	c := dnsConfig()
	c.Families = []Family{IPv4, IPv6}
	got := RenderNFT(Plan(&c, c.Families))
	for _, want := range []string{
		"chain OUTPUT {\n\t\ttype nat hook output priority -100; policy accept;\n\t\tjump ISTIO_OUTPUT\n",
		"\t\toifname \"lo\" ip daddr != 127.0.0.1/32 tcp dport != { 53, 15008 } meta skuid 3 jump ISTIO_IN_REDIRECT\n",
		"\t\toifname \"lo\" tcp dport != 53 meta skgid != 1 return\n",
		"\t\tmeta skgid 2 return\n\t\tmeta nfproto ipv4 jump ISTIO_OUTPUT_DNS\n\t\tip daddr 127.0.0.1/32 return\n",
		"chain ISTIO_OUTPUT_DNS {\n\t\tip daddr 127.0.0.53/32 tcp dport 53 redirect to :15053\n\t\tudp dport 53 meta skuid 3 return\n",
		"\t\tudp dport 53 meta skgid 2 return\n\t\tip daddr 127.0.0.53/32 udp dport 53 redirect to :15053\n\t}\n",
		"chain RAW_PREROUTING {\n\t\ttype filter hook prerouting priority raw; policy accept;\n\t\tmeta nfproto ipv4 jump RAW_ISTIO_INBOUND\n\t}\n",
		"chain RAW_OUTPUT {\n\t\ttype filter hook output priority raw; policy accept;\n\t\tjump RAW_ISTIO_OUTPUT_DNS\n\t}\n",
		"chain RAW_ISTIO_OUTPUT_DNS {\n\t\tudp dport 53 meta skuid 3 ct zone set 1\n\t\tudp sport 15053 meta skuid 3 ct zone set 2\n",
		"\t\tudp sport 15053 meta skgid 2 ct zone set 2\n\t\tip daddr 127.0.0.53/32 udp dport 53 ct zone set 2\n\t}\n",
		"chain RAW_ISTIO_INBOUND {\n\t\tip saddr 127.0.0.53/32 udp sport 53 ct zone set 1\n\t}\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("nft script lacks %q:\n%s", want, got)
		}
	}
	if plain := Defaults(); strings.Contains(RenderNFT(Plan(&plain, plain.Families)), "RAW_") {
		t.Error("raw chains without DNS capture")
	}
}

func TestValidateDNS(t *testing.T) {
	tests := []struct {
		name string
		cfg  func(c *Config)
		want string
	}{
		{"no servers", func(c *Config) { c.DNSServers = nil }, "--capture-all-dns"},
		{"no port", func(c *Config) { c.DNSPort = 0 }, "dns port"},
		{"bad server", func(c *Config) { c.DNSServers = []netip.Addr{{}} }, "invalid address"},
		{"capture all without servers", func(c *Config) { c.DNSServers, c.CaptureAllDNS = nil, true }, ""},
		{"off: servers not needed", func(c *Config) { c.DNSServers, c.RedirectDNS = nil, false }, ""},
	}
	for _, tt := range tests {
		c := dnsConfig()
		tt.cfg(&c)
		err := c.Validate()
		if (tt.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("%s: err = %v, want %q", tt.name, err, tt.want)
		}
	}
}

// TestCleanupRemovesDNSChains: iptables cleanup unhooks the every-protocol
// OUTPUT jump and removes ISTIO_OUTPUT_DNS (nat) and the raw chains.
func TestCleanupRemovesDNSChains(t *testing.T) {
	r := &fakeRunner{fail: "iptables"}
	if err := Cleanup([]Family{IPv4}, Options{Backend: IPTables, Runner: r}); err != nil {
		t.Fatalf("cleanup of nothing must succeed: %v", err)
	}
	calls := strings.Join(r.calls, "\n") + "\n"
	for _, want := range []string{
		"iptables -t nat -D OUTPUT -j ISTIO_OUTPUT\n",
		"iptables -t nat -F ISTIO_OUTPUT\niptables -t nat -F ISTIO_OUTPUT_DNS\n",
		"iptables -t nat -X ISTIO_OUTPUT_DNS\n",
		"iptables -t raw -D OUTPUT -j ISTIO_OUTPUT_DNS\niptables -t raw -D PREROUTING -j ISTIO_INBOUND\n",
		"iptables -t raw -X ISTIO_OUTPUT_DNS\niptables -t raw -X ISTIO_INBOUND\n",
	} {
		if !strings.Contains(calls, want) {
			t.Errorf("cleanup lacks %q:\n%s", want, calls)
		}
	}
}

func TestParseDNSServers(t *testing.T) {
	got := ResolvConfServers([]byte("# generated\nsearch default.svc.cluster.local\nnameserver 10.96.0.10\nnameserver fe80::1%eth0 ; link-local\nnameserver bogus\noptions ndots:5\n"))
	if len(got) != 2 || got[0].String() != "10.96.0.10" || got[1].String() != "fe80::1" {
		t.Errorf("ResolvConfServers = %v, want [10.96.0.10 fe80::1]", got)
	}
	addrs, err := ParseAddrs("10.0.0.1, ::ffff:10.0.0.2,,fd00::1")
	if err != nil || len(addrs) != 3 || addrs[1].String() != "10.0.0.2" {
		t.Errorf("ParseAddrs = %v, %v", addrs, err)
	}
	if _, err := ParseAddrs("10.0.0.0/8"); err == nil || !strings.Contains(err.Error(), `address "10.0.0.0/8"`) {
		t.Errorf("ParseAddrs(CIDR) err = %v", err)
	}
}
