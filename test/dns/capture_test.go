package dns

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/netnstest"
	"github.com/weftmesh/weft/internal/proxy/dnsproxy/dnstest"
	"github.com/weftmesh/weft/internal/syncbuf"
)

// proxyUID is the sidecar's user and group, excluded from capture.
const proxyUID = "1337"

// TestDNSCapture is Istio's DNS capture (ISTIO_META_DNS_CAPTURE) end to
// end, once per backend: in a workload namespace whose resolv.conf names
// an upstream nameserver outside it (the root namespace's address, port
// 53, as a pod's cluster DNS), `weft iptables --redirect-dns` captures the
// queries to that nameserver into the sidecar's DNS proxy
// (127.0.0.1:15053). An unchanged resolver (Go's over UDP and over TCP,
// glibc's getent) then gets the VIP of a ServiceEntry host that the
// upstream does not know, and the upstream's answer for other names (the
// proxy forwards them); the proxy's own user still reaches the upstream
// directly. Before the rules, and after `weft iptables cleanup`, the same
// lookup gets the upstream's NXDOMAIN.
func TestDNSCapture(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: network namespaces, netfilter rules, the sidecar switching to UID 1337; run as root")
	}
	netnstest.EnsureTools(t, netnstest.IPTables, netnstest.NFTables)
	bin := netnstest.BuildCommands(t, "../../cmd/weft", "../../cmd/weft-proxy")
	tp := netnstest.New(t, netnstest.Options{Prefix: "wd", Subnet: 215})
	cp := startControlPlaneOn(t, tp.HostIP(), map[string]string{"hello.yaml": helloSE})
	vip := helloVIP(t, cp)
	up := dnstest.Start(t, tp.HostIP()+":53", map[string][4]byte{"example.invalid.": {192, 0, 2, 7}})

	opts := netnstest.PodDNS("default")
	opts.Nameserver = tp.HostIP()
	for i, backend := range []string{"iptables", "nftables"} {
		t.Run(backend, func(t *testing.T) {
			w := tp.Add(backend[:3], 2+i, nil, opts)
			const hello = "hello.default.svc.cluster.local"
			if got := lookup(t, w, false, hello); !strings.HasPrefix(got, "error:") {
				t.Fatalf("before capture: %s = %s, want the upstream's NXDOMAIN", hello, got)
			}
			run(t, w.InNS(filepath.Join(bin, "weft"), "iptables", "--backend", backend,
				"--proxy-uid", proxyUID, "--proxy-gid", proxyUID, "--redirect-dns"))
			startCaptureSidecar(t, bin, cp, w)

			waitFor(t, hello+" through the DNS proxy", 20*time.Second, func() bool { return lookup(t, w, false, hello) == vip })
			if got := lookup(t, w, true, hello); got != vip {
				t.Errorf("over TCP: %s = %s, want %s", hello, got, vip)
			}
			if got := lookup(t, w, false, "hello"); got != vip {
				t.Errorf("short name: hello = %s, want %s", got, vip)
			}
			before := up.Queries.Load()
			if got := lookup(t, w, false, "example.invalid"); got != "192.0.2.7" {
				t.Errorf("example.invalid = %s, want the upstream's 192.0.2.7 (forwarded by the proxy)", got)
			}
			if up.Queries.Load() == before {
				t.Error("the upstream saw no query for example.invalid: the proxy's forward did not reach it")
			}
			if g, err := w.InNS("getent", "ahostsv4", hello).CombinedOutput(); err != nil || !strings.HasPrefix(string(g), vip+" ") {
				t.Errorf("getent ahostsv4 %s: %v\n%s\nwant %s first", hello, err, g, vip)
			}
			// The proxy's user resolves through the upstream, unchanged:
			// no VIP for hello, the upstream's answer for example.invalid.
			if g, err := asProxy(w, "getent", "ahostsv4", hello).CombinedOutput(); err == nil {
				t.Errorf("getent as UID %s: %s resolved (%s): its query was captured, want the upstream's NXDOMAIN", proxyUID, hello, g)
			}
			if g, err := asProxy(w, "getent", "ahostsv4", "example.invalid").CombinedOutput(); err != nil || !strings.HasPrefix(string(g), "192.0.2.7 ") {
				t.Errorf("getent as UID %s: example.invalid: %v\n%s\nwant the upstream's 192.0.2.7", proxyUID, err, g)
			}

			run(t, w.InNS(filepath.Join(bin, "weft"), "iptables", "cleanup", "--backend", backend))
			checkNoRules(t, w, backend)
			if got := lookup(t, w, false, hello); !strings.HasPrefix(got, "error:") {
				t.Errorf("after cleanup: %s = %s, want the upstream's NXDOMAIN", hello, got)
			}
		})
	}
}

// lookup runs this test binary in w as an unchanged application
// (TestHelperLookup: net.LookupHost, over TCP when tcp) and returns its
// answer for name: "addr,addr" or "error:...".
func lookup(t *testing.T, w netnstest.Namespace, tcp bool, name string) string {
	t.Helper()
	cmd := w.InNS(os.Args[0], "-test.run=^TestHelperLookup$", "-test.count=1")
	cmd.Env = append(os.Environ(), lookupEnv+"="+name)
	if tcp {
		cmd.Env = append(cmd.Env, lookupTCPEnv+"=1")
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("lookup helper in %s: %v\n%s", w.Name, err, out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(line, name+"="); ok {
			return v
		}
	}
	t.Fatalf("lookup helper printed no answer for %s:\n%s", name, out)
	return ""
}

// asProxy runs a command in w as the sidecar's user and group.
func asProxy(w netnstest.Namespace, name string, args ...string) *exec.Cmd {
	return w.InNS("setpriv", append([]string{"--reuid", proxyUID, "--regid", proxyUID, "--clear-groups", name}, args...)...)
}

// startCaptureSidecar runs `weft-proxy sidecar --capture` in w as UID/GID
// 1337, plain text (no CA), with its DNS proxy on 127.0.0.1:15053 (where
// REDIRECT sends a namespace's own packets) and its upstreams from the
// namespace's resolv.conf.
func startCaptureSidecar(t *testing.T, bin string, cp *controlPlane, w netnstest.Namespace) {
	t.Helper()
	cmd := w.InNS(filepath.Join(bin, "weft-proxy"), "sidecar", "--capture", "--uid", proxyUID, "--gid", proxyUID,
		"--name", "client-"+w.Name, "--namespace", "default", "--ip", w.IP,
		"--discovery-address", cp.XDSAddr().String(), "--ca-dir=",
		"--dns-address", "127.0.0.1:15053", "--admin-address", "127.0.0.1:15000",
		"--metrics-address=", "--health-address=", "--status-address=", "--drain-time-s", "1")
	var out syncbuf.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("sidecar in %s:\n%s", w.Name, out.String())
		}
	})
}

// checkNoRules: after cleanup no ISTIO_ chain is left in the nat and raw
// tables (iptables), or table inet weft is gone (nftables).
func checkNoRules(t *testing.T, w netnstest.Namespace, backend string) {
	t.Helper()
	if backend == "nftables" {
		if out, err := w.InNS("nft", "list", "table", "inet", "weft").CombinedOutput(); err == nil {
			t.Errorf("table inet weft left after cleanup:\n%s", out)
		}
		return
	}
	for _, table := range []string{"nat", "raw"} {
		out, err := w.InNS("iptables-save", "-t", table).CombinedOutput()
		if err != nil || bytes.Contains(out, []byte("ISTIO_")) {
			t.Errorf("iptables-save -t %s after cleanup: %v\n%s", table, err, out)
		}
	}
}

// run runs cmd and fails the test with its output on error.
func run(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(cmd.Args, " "), err, out)
	}
}
