package capture

import (
	"bytes"
	"errors"
	"net/netip"
	"strings"
	"testing"
)

// The expected rules follow istio-iptables' golden files (ip-range,
// inbound-wildcard-exclude, outbound-ports-include, ipv6-uid-gid).
func TestRenderIPTables(t *testing.T) {
	tests := []struct {
		name string
		cfg  func(c *Config)
		fam  Family
		want string
	}{{
		name: "defaults ipv4",
		cfg:  func(*Config) {},
		fam:  IPv4,
		want: `*nat
:ISTIO_INBOUND - [0:0]
:ISTIO_REDIRECT - [0:0]
:ISTIO_IN_REDIRECT - [0:0]
:ISTIO_OUTPUT - [0:0]
-A ISTIO_INBOUND -p tcp --dport 15008 -j RETURN
-A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports 15001
-A ISTIO_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006
-A PREROUTING -p tcp -j ISTIO_INBOUND
-A ISTIO_INBOUND -p tcp -m multiport --dports 15090,15021,15020 -j RETURN
-A ISTIO_INBOUND -p tcp -j ISTIO_IN_REDIRECT
-A OUTPUT -p tcp -j ISTIO_OUTPUT
-A ISTIO_OUTPUT -o lo -s 127.0.0.6/32 -j RETURN
-A ISTIO_OUTPUT -o lo ! -d 127.0.0.1/32 -p tcp ! --dport 15008 -m owner --uid-owner 1337 -j ISTIO_IN_REDIRECT
-A ISTIO_OUTPUT -o lo -m owner ! --uid-owner 1337 -j RETURN
-A ISTIO_OUTPUT -m owner --uid-owner 1337 -j RETURN
-A ISTIO_OUTPUT -o lo ! -d 127.0.0.1/32 -p tcp ! --dport 15008 -m owner --gid-owner 1337 -j ISTIO_IN_REDIRECT
-A ISTIO_OUTPUT -o lo -m owner ! --gid-owner 1337 -j RETURN
-A ISTIO_OUTPUT -m owner --gid-owner 1337 -j RETURN
-A ISTIO_OUTPUT -d 127.0.0.1/32 -j RETURN
-A ISTIO_OUTPUT -j ISTIO_REDIRECT
COMMIT
`,
	}, {
		name: "ipv6 lists",
		cfg: func(c *Config) {
			c.AllInbound, c.InboundPorts = false, []uint16{4000, 5000}
			c.AllOutbound = false
			c.OutboundIPRanges = []netip.Prefix{netip.MustParsePrefix("2001:db8::/32"), netip.MustParsePrefix("10.0.0.0/8")}
			c.ExcludeOutboundIPRanges = []netip.Prefix{netip.MustParsePrefix("2001:db8:1::/48")}
			c.ExcludeOutboundPorts = []uint16{22}
			c.IncludeOutboundPorts = []uint16{31000}
			c.ProxyUIDs, c.ProxyGIDs = []uint32{3}, nil
		},
		fam: IPv6,
		want: `*nat
:ISTIO_INBOUND - [0:0]
:ISTIO_REDIRECT - [0:0]
:ISTIO_IN_REDIRECT - [0:0]
:ISTIO_OUTPUT - [0:0]
-A ISTIO_INBOUND -p tcp --dport 15008 -j RETURN
-A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports 15001
-A ISTIO_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006
-A PREROUTING -p tcp -j ISTIO_INBOUND
-A ISTIO_INBOUND -p tcp --dport 4000 -j ISTIO_IN_REDIRECT
-A ISTIO_INBOUND -p tcp --dport 5000 -j ISTIO_IN_REDIRECT
-A OUTPUT -p tcp -j ISTIO_OUTPUT
-A ISTIO_OUTPUT -p tcp --dport 22 -j RETURN
-A ISTIO_OUTPUT -o lo -s ::6/128 -j RETURN
-A ISTIO_OUTPUT -o lo ! -d ::1/128 -p tcp ! --dport 15008 -m owner --uid-owner 3 -j ISTIO_IN_REDIRECT
-A ISTIO_OUTPUT -o lo -m owner ! --uid-owner 3 -j RETURN
-A ISTIO_OUTPUT -m owner --uid-owner 3 -j RETURN
-A ISTIO_OUTPUT -d ::1/128 -j RETURN
-A ISTIO_OUTPUT -p tcp --dport 31000 -j ISTIO_REDIRECT
-A ISTIO_OUTPUT -d 2001:db8:1::/48 -j RETURN
-A ISTIO_OUTPUT -d 2001:db8::/32 -j ISTIO_REDIRECT
COMMIT
`,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := Defaults()
			tt.cfg(&cfg)
			if err := cfg.Validate(); err != nil {
				t.Fatal(err)
			}
			if got := RenderIPTables(Plan(&cfg, []Family{tt.fam})); got != tt.want {
				t.Errorf("got\n%s\nwant\n%s", got, tt.want)
			}
		})
	}
}

func TestRenderNFT(t *testing.T) {
	cfg := Defaults()
	cfg.Families = []Family{IPv4, IPv6}
	got := RenderNFT(Plan(&cfg, cfg.Families))
	for _, want := range []string{
		"table inet weft\ndelete table inet weft\ntable inet weft {\n",
		"chain PREROUTING {\n\t\ttype nat hook prerouting priority dstnat; policy accept;\n\t\tmeta l4proto tcp jump ISTIO_INBOUND\n",
		"chain OUTPUT {\n\t\ttype nat hook output priority -100; policy accept;\n\t\tmeta l4proto tcp jump ISTIO_OUTPUT\n",
		"\t\tmeta l4proto tcp redirect to :15001\n",
		"\t\tmeta l4proto tcp redirect to :15006\n",
		"\t\ttcp dport { 15090, 15021, 15020 } return\n",
		"\t\toifname \"lo\" ip saddr 127.0.0.6/32 return\n\t\toifname \"lo\" ip6 saddr ::6/128 return\n",
		"\t\toifname \"lo\" ip daddr != 127.0.0.1/32 tcp dport != 15008 meta skuid 1337 jump ISTIO_IN_REDIRECT\n",
		"\t\toifname \"lo\" ip6 daddr != ::1/128 tcp dport != 15008 meta skuid 1337 jump ISTIO_IN_REDIRECT\n",
		"\t\toifname \"lo\" meta skuid != 1337 return\n\t\tmeta skuid 1337 return\n",
		"\t\tmeta skgid 1337 return\n",
		"\t\tip daddr 127.0.0.1/32 return\n\t\tip6 daddr ::1/128 return\n\t\tjump ISTIO_REDIRECT\n\t}\n}\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("nft script lacks %q:\n%s", want, got)
		}
	}
}

// fakeRunner records commands; fail makes the named program fail.
type fakeRunner struct {
	have  map[string]bool
	fail  string
	calls []string
}

func (f *fakeRunner) Run(name string, args []string, stdin string) (string, error) {
	f.calls = append(f.calls, name+" "+strings.Join(args, " "))
	if name == f.fail {
		return "", errors.New("boom")
	}
	return "", nil
}

func (f *fakeRunner) LookPath(name string) bool { return f.have[name] }

func TestInstall(t *testing.T) {
	tests := []struct {
		name      string
		backend   Backend
		have      []string
		fail      string
		wantLast  []string
		wantErr   string
		wantCalls int
	}{
		{name: "auto iptables", backend: Auto, have: []string{"iptables-restore", "nft"},
			wantLast: []string{"iptables-restore --noflush", "ip6tables-restore --noflush"}, wantCalls: 2*19 + 2},
		{name: "auto nft", backend: Auto, have: []string{"nft"}, wantLast: []string{"nft -f -"}, wantCalls: 2},
		{name: "forced nft", backend: NFTables, wantLast: []string{"nft -f -"}, wantCalls: 2},
		{name: "none", backend: Auto, wantErr: "neither iptables"},
		{name: "cleanup failures ignored, restore failure reported", backend: IPTables, fail: "iptables-restore", wantErr: "boom"},
		{name: "bad backend", backend: "ipfw", wantErr: `backend "ipfw"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &fakeRunner{have: map[string]bool{}, fail: tt.fail}
			for _, h := range tt.have {
				r.have[h] = true
			}
			cfg := Defaults()
			cfg.Families = []Family{IPv4, IPv6}
			err := Install(&cfg, Options{Backend: tt.backend, Runner: r})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(r.calls) != tt.wantCalls {
				t.Errorf("%d calls, want %d: %q", len(r.calls), tt.wantCalls, r.calls)
			}
			last := r.calls[len(r.calls)-len(tt.wantLast):]
			if strings.Join(last, "|") != strings.Join(tt.wantLast, "|") {
				t.Errorf("last calls %q, want %q", last, tt.wantLast)
			}
		})
	}
}

func TestDryRunPrintsAndRunsNothing(t *testing.T) {
	r := &fakeRunner{have: map[string]bool{"iptables-restore": true}}
	var out bytes.Buffer
	cfg := Defaults()
	cfg.Families = []Family{IPv4}
	if err := Install(&cfg, Options{Runner: r, DryRun: true, Out: &out}); err != nil {
		t.Fatal(err)
	}
	if len(r.calls) != 0 {
		t.Errorf("dry run ran %q", r.calls)
	}
	if !strings.HasPrefix(out.String(), "# iptables -t nat -D PREROUTING -p tcp -j ISTIO_INBOUND (may fail: nothing to remove)\n") ||
		!strings.Contains(out.String(), "# iptables-restore --noflush\n*nat\n") || !strings.Contains(out.String(), "-j REDIRECT --to-ports 15001") {
		t.Errorf("dry run output:\n%s", out.String())
	}
}

func TestCleanupNFT(t *testing.T) {
	r := &fakeRunner{fail: "nft"}
	if err := Cleanup([]Family{IPv4, IPv6}, Options{Backend: NFTables, Runner: r}); err != nil {
		t.Fatalf("cleanup of nothing must succeed: %v", err)
	}
	if len(r.calls) != 1 || r.calls[0] != "nft delete table inet weft" {
		t.Errorf("calls %q", r.calls)
	}
}

func TestParse(t *testing.T) {
	ports, all, err := ParsePorts("80, 443,*")
	if err != nil || !all || len(ports) != 2 || ports[1] != 443 {
		t.Errorf("ParsePorts = %v %v %v", ports, all, err)
	}
	if _, _, err := ParsePorts("80,http"); err == nil || !strings.Contains(err.Error(), `port "http"`) {
		t.Errorf("ParsePorts(http) err = %v", err)
	}
	cidrs, all, err := ParseCIDRs("10.1.2.3/8,::1,*")
	if err != nil || !all || cidrs[0].String() != "10.0.0.0/8" || cidrs[1].String() != "::1/128" {
		t.Errorf("ParseCIDRs = %v %v %v", cidrs, all, err)
	}
	if _, _, err := ParseCIDRs("10.0.0.0/99"); err == nil {
		t.Error("ParseCIDRs accepted /99")
	}
	ids, err := ParseIDs("1337,0")
	if err != nil || len(ids) != 2 || ids[0] != 1337 {
		t.Errorf("ParseIDs = %v %v", ids, err)
	}
	if _, err := ParseIDs("istio-proxy"); err == nil {
		t.Error("ParseIDs accepted a name")
	}
}

func TestValidate(t *testing.T) {
	c := Defaults()
	c.ProxyUIDs, c.ProxyGIDs = nil, nil
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "loops") {
		t.Errorf("Validate without owner = %v", err)
	}
}

// FuzzParseAndRender: the list parsers never panic, and whatever they
// accept renders for both tools.
func FuzzParseAndRender(f *testing.F) {
	for _, s := range []string{"80,443", "*", "10.0.0.0/8,::1", "", "0", "65536", "1.2.3.4/33", ",,*,", "10.96.0.10,fd00::53"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		cfg := Defaults()
		cfg.Families = []Family{IPv4, IPv6}
		var err error
		if cfg.ExcludeOutboundPorts, _, err = ParsePorts(s); err != nil {
			cfg.ExcludeOutboundPorts = nil
		}
		if cfg.ExcludeOutboundIPRanges, _, err = ParseCIDRs(s); err != nil {
			cfg.ExcludeOutboundIPRanges = nil
		}
		if cfg.DNSServers, err = ParseAddrs(s); err == nil {
			// DNS capture of whatever addresses parsed, all of port 53 when none.
			cfg.RedirectDNS, cfg.CaptureAllDNS = true, len(cfg.DNSServers) == 0
		}
		if _, err := ParseIDs(s); err != nil && !strings.Contains(err.Error(), "numeric") {
			t.Errorf("ParseIDs(%q): %v", s, err)
		}
		if cfg.Validate() != nil {
			return
		}
		rules := Plan(&cfg, cfg.Families)
		if !strings.Contains(RenderIPTables(rules), "COMMIT") || !strings.Contains(RenderNFT(rules), "table inet weft {") {
			t.Errorf("%q: incomplete rendering", s)
		}
	})
}
