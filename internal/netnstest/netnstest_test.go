package netnstest

import "testing"

func TestFiles(t *testing.T) {
	tests := []struct {
		name   string
		hosts  map[string]string
		ns     string
		search []string
		wantH  string
		wantR  string
	}{
		{
			name:  "defaults",
			wantH: "127.0.0.1 localhost\n",
			wantR: "nameserver 127.0.0.1\n",
		},
		{
			name: "names of one address share a line, sorted",
			hosts: map[string]string{
				"hello.default.svc": "10.96.0.2", "hello": "10.96.0.2", "hello.default": "10.96.0.2",
				"weft-control": "10.1.1.1",
			},
			search: PodDNS("default").Search,
			wantH:  "127.0.0.1 localhost\n10.1.1.1 weft-control\n10.96.0.2 hello hello.default hello.default.svc\n",
			wantR:  "nameserver 127.0.0.1\nsearch default.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5\n",
		},
		{
			name:  "nameserver outside",
			ns:    "10.215.3.1",
			wantH: "127.0.0.1 localhost\n",
			wantR: "nameserver 10.215.3.1\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := hostsFile(tt.hosts); got != tt.wantH {
				t.Errorf("hostsFile = %q, want %q", got, tt.wantH)
			}
			if got := resolvConf(tt.ns, tt.search); got != tt.wantR {
				t.Errorf("resolvConf = %q, want %q", got, tt.wantR)
			}
		})
	}
}

func TestToolPackage(t *testing.T) {
	for tool, want := range map[Tool]string{IPTables: "iptables", NFTables: "nftables", "curl": "curl"} {
		if got := tool.Package(); got != want {
			t.Errorf("%s.Package() = %q, want %q", tool, got, want)
		}
	}
}
