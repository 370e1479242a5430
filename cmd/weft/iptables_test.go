package main

import (
	"strings"
	"testing"
)

// TestIPTablesDryRun: --dry-run prints the restore input for the backend
// forced, with the flags applied, and installs nothing.
func TestIPTablesDryRun(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{name: "iptables", args: []string{"--backend", "iptables", "--families", "ipv4", "-u", "1500", "-g", "1501", "-x", "10.96.0.0/12"},
			want: []string{"# iptables-restore --noflush\n*nat\n", "-m owner --uid-owner 1500 -j RETURN", "--gid-owner 1501", "-A ISTIO_OUTPUT -d 10.96.0.0/12 -j RETURN\n-A ISTIO_OUTPUT -j ISTIO_REDIRECT\n"}},
		{name: "nftables", args: []string{"--backend", "nftables", "--inbound-ports", "8080,9090", "--families", "ipv4,ipv6"},
			want: []string{"# nft -f -\ntable inet weft\n", "tcp dport 8080 jump ISTIO_IN_REDIRECT", "ip6 saddr ::6/128 return"}},
		{name: "dns servers", args: []string{"--backend", "iptables", "--redirect-dns", "--dns-servers", "10.96.0.10"},
			want: []string{"-A OUTPUT -j ISTIO_OUTPUT\n", "-A ISTIO_OUTPUT_DNS -d 10.96.0.10/32 -p udp --dport 53 -j REDIRECT --to-ports 15053\n", "*raw\n", "-A ISTIO_INBOUND -s 10.96.0.10/32 -p udp --sport 53 -j CT --zone 1\n"}},
		{name: "dns all", args: []string{"--backend", "nftables", "--redirect-dns", "--capture-all-dns"},
			want: []string{"\t\tudp dport 53 redirect to :15053\n", "\t\tudp dport 53 meta skuid 1337 ct zone set 1\n", "chain RAW_ISTIO_INBOUND {\n\t\tudp sport 53 ct zone set 1\n"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := weft(append([]string{"iptables", "--dry-run"}, tt.args...)...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
		})
	}
}

func TestIPTablesBadFlags(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"-x", "10.0.0.0/33"}, "--exclude-outbound-ip-ranges"},
		{[]string{"-u", "root"}, "--proxy-uid"},
		{[]string{"--families", "ipx"}, "--families"},
		{[]string{"-u", "", "-g", ""}, "loops back"},
		{[]string{"--redirect-dns", "--dns-servers", "10.0.0.0/8"}, "--dns-servers"},
	} {
		code, _, errOut := weft(append([]string{"iptables", "--dry-run"}, tt.args...)...)
		if code != 1 || !strings.Contains(errOut, tt.want) {
			t.Errorf("%v: exit %d, stderr %q, want %q", tt.args, code, errOut, tt.want)
		}
	}
}
