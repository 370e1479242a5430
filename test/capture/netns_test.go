package capture

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// topology is the test network: a "switch" namespace with a bridge, the
// root namespace attached to it by one veth (weft-control listens on its
// address), and one namespace per workload with its own veth and address,
// its loopback up and a default route through the root's address. No
// sysctl of the root namespace is touched.
type topology struct {
	t      *testing.T
	prefix string // names of namespaces and interfaces
	subnet string // "10.213.X"
	sw     string // the switch namespace
	root   string // the root end of the root's veth
}

// workload is a namespace with its address.
type workload struct {
	ns, ip string
}

// newTopology creates the switch namespace and the root's veth; the
// namespaces, interfaces and /etc/netns files go at the test's end.
func newTopology(t *testing.T) *topology {
	t.Helper()
	pid := os.Getpid() % 100000
	tp := &topology{
		t:      t,
		prefix: fmt.Sprintf("wc%d", pid),
		subnet: fmt.Sprintf("10.213.%d", pid%250+1),
	}
	tp.sw = tp.prefix + "-sw"
	tp.root = tp.prefix + "r"
	t.Cleanup(tp.cleanup)
	tp.ip("netns", "add", tp.sw)
	tp.ip("-n", tp.sw, "link", "add", "br0", "type", "bridge")
	tp.ip("-n", tp.sw, "link", "set", "br0", "up")
	tp.ip("link", "add", tp.root, "type", "veth", "peer", "name", tp.root+"s", "netns", tp.sw)
	tp.ip("addr", "add", tp.hostIP()+"/24", "dev", tp.root)
	tp.ip("link", "set", tp.root, "up")
	tp.ip("-n", tp.sw, "link", "set", tp.root+"s", "master", "br0", "up")
	return tp
}

// hostIP is the root namespace's address on the test network.
func (tp *topology) hostIP() string { return tp.subnet + ".1" }

// addWorkload creates namespace name with address SUBNET.host and the
// files /etc/netns/NS/hosts (holding hosts) and resolv.conf, which `ip
// netns exec` mounts over /etc/hosts and /etc/resolv.conf.
func (tp *topology) addWorkload(name string, host int, hosts map[string]string) workload {
	tp.t.Helper()
	w := workload{ns: tp.prefix + "-" + name, ip: fmt.Sprintf("%s.%d", tp.subnet, host)}
	sw := tp.prefix + name
	tp.ip("netns", "add", w.ns)
	tp.ip("-n", tp.sw, "link", "add", sw, "type", "veth", "peer", "name", "eth0", "netns", w.ns)
	tp.ip("-n", tp.sw, "link", "set", sw, "master", "br0", "up")
	tp.ip("-n", w.ns, "addr", "add", w.ip+"/24", "dev", "eth0")
	tp.ip("-n", w.ns, "link", "set", "eth0", "up")
	tp.ip("-n", w.ns, "link", "set", "lo", "up")
	tp.ip("-n", w.ns, "route", "add", "default", "via", tp.hostIP())
	var b strings.Builder
	b.WriteString("127.0.0.1 localhost\n")
	for name, ip := range hosts {
		fmt.Fprintf(&b, "%s %s\n", ip, name)
	}
	dir := filepath.Join("/etc/netns", w.ns)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		tp.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "hosts"), []byte(b.String()), 0o644); err != nil {
		tp.t.Fatal(err)
	}
	// No DNS server is reachable from the namespace: a resolver on its own
	// loopback fails at once (port unreachable) instead of timing out, so
	// that lookups of names beyond /etc/hosts (gRPC asks for TXT records)
	// do not stall.
	if err := os.WriteFile(filepath.Join(dir, "resolv.conf"), []byte("nameserver 127.0.0.1\n"), 0o644); err != nil {
		tp.t.Fatal(err)
	}
	return w
}

// ip runs the ip command and fails the test on error.
func (tp *topology) ip(args ...string) {
	tp.t.Helper()
	if out, err := run("ip", args...); err != nil {
		tp.t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// cleanup deletes what the test created (deleting a namespace deletes its
// veths, and with them their peers).
func (tp *topology) cleanup() {
	out, _ := run("ip", "netns", "list")
	for _, line := range strings.Split(out, "\n") {
		ns, _, _ := strings.Cut(strings.TrimSpace(line), " ")
		if strings.HasPrefix(ns, tp.prefix+"-") {
			run("ip", "netns", "del", ns)
			os.RemoveAll(filepath.Join("/etc/netns", ns))
		}
	}
	run("ip", "link", "del", tp.root)
}

// inNS returns a command that runs name in namespace ns.
func inNS(ns, name string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", ns, name}, args...)...)
}

// run runs a command with a deadline and returns its combined output.
func run(name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	return string(out), err
}
