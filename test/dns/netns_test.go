package dns

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/weftmesh/weft/internal/netnstest"
	"github.com/weftmesh/weft/internal/proxy/dnsproxy"
	"github.com/weftmesh/weft/internal/proxy/dnsproxy/dnstest"
)

// lookupEnv makes the test binary a plain resolver client: when set, the
// helper test looks the names up with net.LookupHost (the application,
// unchanged) and prints "name=addr,addr" lines.
const lookupEnv = "WEFT_DNS_TEST_LOOKUP"

// lookupTCPEnv set makes the helper's resolver (Go's) send its queries
// over TCP to the nameserver of resolv.conf.
const lookupTCPEnv = "WEFT_DNS_TEST_TCP"

// TestHelperLookup is not a test: TestNetnsLookup runs the test binary as
// a process inside the network namespace with lookupEnv set.
func TestHelperLookup(t *testing.T) {
	names := os.Getenv(lookupEnv)
	if names == "" {
		return // run as a test: nothing to do
	}
	r := net.DefaultResolver
	if os.Getenv(lookupTCPEnv) != "" {
		r = &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, addr string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "tcp", addr)
		}}
	}
	for _, name := range strings.Split(names, ",") {
		addrs, err := r.LookupHost(context.Background(), name)
		if err != nil {
			fmt.Printf("%s=error:%v\n", name, err)
			continue
		}
		fmt.Printf("%s=%s\n", name, strings.Join(addrs, ","))
	}
}

// TestNetnsLookup: inside a network namespace whose resolv.conf (the
// /etc/netns/NAME/resolv.conf that `ip netns exec` mounts) names the DNS
// proxy, an unchanged program's net.LookupHost, and glibc's getent, get
// the service's VIP for its FQDN and for its short name (through the
// search list), and the upstream's answer for an outside name. The DNS
// proxy's sockets are bound inside the namespace (127.0.0.1:53, where a
// resolv.conf can point); the agent and weft-control run outside it.
func TestNetnsLookup(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates a network namespace (ip netns) and binds port 53 in it; run as root to prove resolution inside a workload namespace")
	}
	cp := startControlPlane(t, map[string]string{"hello.yaml": helloSE})
	vip := helloVIP(t, cp)
	up := dnstest.Start(t, "127.0.0.1:0", map[string][4]byte{"example.invalid.": {192, 0, 2, 7}})

	// The application's view (the /etc/netns files `ip netns exec`
	// mounts): the DNS proxy is its nameserver, with Kubernetes' search
	// list for namespace default, and hosts lookups through files, then
	// DNS. The pod's interface matters too: glibc's getaddrinfo
	// (AI_ADDRCONFIG) asks for no IPv4 address at all in a namespace
	// with loopback only.
	tp := netnstest.New(t, netnstest.Options{Prefix: "wd", Subnet: 215})
	app := tp.Add("app", 2, nil, netnstest.PodDNS("default"))
	// The proxy's upstream: the fake resolver outside the namespace.
	proxyConf := filepath.Join(t.TempDir(), "resolv.conf")
	if err := os.WriteFile(proxyConf, []byte("nameserver 127.0.0.1\nsearch default.svc.cluster.local svc.cluster.local cluster.local\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	udp, tcp := listenInNetns(t, app.Name, "127.0.0.1:53")
	startAgentDNS(t, cp, dnsproxy.Options{PacketConn: udp, Listener: tcp, ResolvConf: proxyConf, UpstreamPort: up.Port})

	names := []string{"hello.default.svc.cluster.local", "hello", "example.invalid"}
	cmd := app.InNS(os.Args[0], "-test.run=^TestHelperLookup$", "-test.count=1")
	cmd.Env = append(os.Environ(), lookupEnv+"="+strings.Join(names, ","))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("lookup in the namespace: %v\n%s", err, out)
	}
	want := []string{
		"hello.default.svc.cluster.local=" + vip,
		"hello=" + vip,
		"example.invalid=192.0.2.7",
	}
	for _, w := range want {
		if !strings.Contains(string(out), w+"\n") {
			t.Errorf("net.LookupHost in the namespace: want %q in\n%s", w, out)
		}
	}
	// glibc's resolver, through nsswitch (hosts: files dns).
	g, err := app.InNS("getent", "ahostsv4", "hello.default.svc.cluster.local").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(g), vip+" ") {
		t.Errorf("getent ahostsv4 in the namespace: %v\n%s\nwant %s first", err, g, vip)
	}
}

// listenInNetns binds UDP and TCP sockets on addr inside network
// namespace ns: a goroutine locked to its thread enters the namespace,
// binds, and returns to the original one; sockets keep the namespace they
// were created in.
func listenInNetns(t *testing.T, ns, addr string) (net.PacketConn, net.Listener) {
	t.Helper()
	type result struct {
		udp net.PacketConn
		tcp net.Listener
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		r := result{}
		defer func() { ch <- r }()
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			r.err = err
			runtime.UnlockOSThread()
			return
		}
		defer orig.Close()
		target, err := os.Open(filepath.Join("/var/run/netns", ns))
		if err != nil {
			r.err = err
			runtime.UnlockOSThread()
			return
		}
		defer target.Close()
		if r.err = unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); r.err != nil {
			runtime.UnlockOSThread()
			return
		}
		if r.udp, r.err = net.ListenPacket("udp", addr); r.err == nil {
			r.tcp, r.err = net.Listen("tcp", addr)
		}
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
			// The thread is in the wrong namespace: leave it locked, so
			// that the runtime ends it with the goroutine.
			r.err = fmt.Errorf("returning to the original namespace: %w", err)
			return
		}
		runtime.UnlockOSThread()
	}()
	r := <-ch
	if r.err != nil {
		t.Fatalf("binding %s in namespace %s: %v", addr, ns, r.err)
	}
	return r.udp, r.tcp
}
