package kube

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// network is the pods' network, as test/capture builds it (kept minimal
// here rather than shared): a "switch" namespace with a bridge, the root
// namespace attached by one veth (weft-control listens on its address,
// the "node's" IP), and one namespace per pod with its own veth and
// address on the same /24, its loopback up and a default route through
// the root's address. No sysctl of the root namespace is touched.
type network struct {
	t      *testing.T
	prefix string // names of namespaces and interfaces
	subnet string // "10.214.X"
	sw     string // the switch namespace
	root   string // the root end of the root's veth
}

func newNetwork(t *testing.T) *network {
	t.Helper()
	pid := os.Getpid() % 100000
	n := &network{t: t, prefix: fmt.Sprintf("wk%d", pid), subnet: fmt.Sprintf("10.214.%d", pid%250+1)}
	n.sw = n.prefix + "-sw"
	n.root = n.prefix + "r"
	t.Cleanup(n.cleanup)
	n.ip("netns", "add", n.sw)
	n.ip("-n", n.sw, "link", "add", "br0", "type", "bridge")
	n.ip("-n", n.sw, "link", "set", "br0", "up")
	n.ip("link", "add", n.root, "type", "veth", "peer", "name", n.root+"s", "netns", n.sw)
	n.ip("addr", "add", n.hostIP()+"/24", "dev", n.root)
	n.ip("link", "set", n.root, "up")
	n.ip("-n", n.sw, "link", "set", n.root+"s", "master", "br0", "up")
	return n
}

// hostIP is the root namespace's address: the node's IP.
func (n *network) hostIP() string { return n.subnet + ".1" }

// addPod creates the network namespace of a pod, with address
// SUBNET.host, and its /etc/netns files (which `ip netns exec` mounts
// over /etc): hosts, resolv.conf with Kubernetes' search path for the
// pod's namespace, nsswitch.conf (files, then DNS).
func (n *network) addPod(name string, host int, podNS, hosts string) (netns, ip string) {
	n.t.Helper()
	netns = n.prefix + "-" + strconv.Itoa(host)
	ip = fmt.Sprintf("%s.%d", n.subnet, host)
	sw := n.prefix + "p" + strconv.Itoa(host)
	n.ip("netns", "add", netns)
	n.ip("-n", n.sw, "link", "add", sw, "type", "veth", "peer", "name", "eth0", "netns", netns)
	n.ip("-n", n.sw, "link", "set", sw, "master", "br0", "up")
	n.ip("-n", netns, "addr", "add", ip+"/24", "dev", "eth0")
	n.ip("-n", netns, "link", "set", "eth0", "up")
	n.ip("-n", netns, "link", "set", "lo", "up")
	n.ip("-n", netns, "route", "add", "default", "via", n.hostIP())
	dir := filepath.Join("/etc/netns", netns)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		n.t.Fatal(err)
	}
	// No DNS server is reachable: a nameserver on the pod's own
	// loopback fails at once instead of timing out (names are in hosts).
	resolv := fmt.Sprintf("nameserver 127.0.0.1\nsearch %s.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5\n", podNS)
	files := map[string]string{
		"hosts":         "127.0.0.1 localhost\n" + ip + " " + name + "\n" + hosts,
		"resolv.conf":   resolv,
		"nsswitch.conf": "hosts: files dns\n",
	}
	for f, content := range files {
		if err := os.WriteFile(filepath.Join(dir, f), []byte(content), 0o644); err != nil {
			n.t.Fatal(err)
		}
	}
	return netns, ip
}

func (n *network) ip(args ...string) {
	n.t.Helper()
	if out, err := run("ip", args...); err != nil {
		n.t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// cleanup deletes the namespaces (and with them their veths) and their
// /etc/netns files.
func (n *network) cleanup() {
	out, _ := run("ip", "netns", "list")
	for _, line := range strings.Split(out, "\n") {
		ns, _, _ := strings.Cut(strings.TrimSpace(line), " ")
		if strings.HasPrefix(ns, n.prefix+"-") {
			run("ip", "netns", "del", ns)
			os.RemoveAll(filepath.Join("/etc/netns", ns))
		}
	}
	run("ip", "link", "del", n.root)
}

// run runs a command with a deadline and returns its combined output.
func run(name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	return string(out), err
}

func itoa(i int) string { return strconv.Itoa(i) }
