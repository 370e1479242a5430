// Package netnstest builds a small test network out of Linux network
// namespaces for end-to-end tests that run as root (test/capture, test/dns,
// test/kube): a "switch" namespace with a bridge, the root namespace
// attached to it by one veth (its address is HostIP, where servers of the
// test such as weft-control listen), and one namespace per workload or pod
// with its own veth and address on the same /24, its loopback up and a
// default route through HostIP. No sysctl of the root namespace is touched.
//
// Each namespace gets /etc/netns/NAME files, which `ip netns exec` mounts
// over /etc: hosts, resolv.conf and, on request, nsswitch.conf. Everything
// is deleted at the test's end. EnsureTools installs the netfilter tools
// the tests need. The package is imported only by _test.go files.
package netnstest

import (
	"context"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Options name one test's network. Tests of different packages run at
// the same time as different processes: each package gives its own
// Prefix and Subnet, and the process ID is added to both.
type Options struct {
	// Prefix starts the names of the namespaces and interfaces ("wc"
	// gives wc<pid>-sw, wc<pid>r, wc<pid>-NAME). Kept short: an
	// interface name is at most 15 bytes.
	Prefix string
	// Subnet is the second octet of the network: 10.Subnet.X.0/24,
	// where X is derived from the process ID.
	Subnet int
}

// Topology is a test network; New creates it. Its methods fail the test
// (t.Fatal) on error and must be called from the test's goroutine.
type Topology struct {
	t      *testing.T
	prefix string // names of namespaces and interfaces
	subnet string // "10.213.X"
	sw     string // the switch namespace
	root   string // the root end of the root's veth
}

// Namespace is a namespace of the topology: its name (for `ip netns
// exec`) and its address on the test network.
type Namespace struct {
	Name, IP string
}

// NSOptions say what a namespace's /etc/netns files hold beyond the
// defaults: hosts with "127.0.0.1 localhost" and the entries given to
// Add, resolv.conf with "nameserver 127.0.0.1" alone. (No DNS server is
// reachable there: a resolver on the namespace's own loopback fails at
// once, port unreachable, instead of timing out, so that lookups of names
// beyond /etc/hosts, such as gRPC's TXT records, do not stall; a test
// that runs a DNS server binds it there.)
type NSOptions struct {
	// Hostname, when set, is the namespace's own name in its hosts file,
	// at its address (as the kubelet writes a pod's hostname); it wins
	// over an entry of the same name given to Add.
	Hostname string
	// Search, when set, is resolv.conf's search list, written with
	// "options ndots:5" as in a Kubernetes pod.
	Search []string
	// Nameserver, when set, is resolv.conf's nameserver instead of
	// 127.0.0.1 (a resolver outside the namespace, as a pod's cluster DNS).
	Nameserver string
	// FilesThenDNS writes nsswitch.conf with "hosts: files dns", a pod's
	// hosts lookup. (A desktop's nsswitch.conf may send *.local names to
	// mDNS first and stop there, which would hide cluster.local names
	// from DNS.)
	FilesThenDNS bool
}

// PodDNS returns the options of a Kubernetes pod in namespace ns:
// Kubernetes' search list for ns (ns.svc.cluster.local svc.cluster.local
// cluster.local) with ndots:5, and hosts lookups through files, then DNS.
func PodDNS(ns string) NSOptions {
	return NSOptions{
		Search:       []string{ns + ".svc.cluster.local", "svc.cluster.local", "cluster.local"},
		FilesThenDNS: true,
	}
}

// New creates the switch namespace and the root's veth, with HostIP on
// it; the namespaces, interfaces and /etc/netns files it and Add create
// are deleted at the test's end (t.Cleanup). It needs root.
func New(t *testing.T, opts Options) *Topology {
	t.Helper()
	pid := os.Getpid() % 100000
	tp := &Topology{
		t:      t,
		prefix: fmt.Sprintf("%s%d", opts.Prefix, pid),
		subnet: fmt.Sprintf("10.%d.%d", opts.Subnet, pid%250+1),
	}
	tp.sw = tp.prefix + "-sw"
	tp.root = tp.prefix + "r"
	t.Cleanup(tp.cleanup)
	tp.ip("netns", "add", tp.sw)
	tp.ip("-n", tp.sw, "link", "add", "br0", "type", "bridge")
	tp.ip("-n", tp.sw, "link", "set", "br0", "up")
	tp.ip("link", "add", tp.root, "type", "veth", "peer", "name", tp.root+"s", "netns", tp.sw)
	tp.ip("addr", "add", tp.HostIP()+"/24", "dev", tp.root)
	tp.ip("link", "set", tp.root, "up")
	tp.ip("-n", tp.sw, "link", "set", tp.root+"s", "master", "br0", "up")
	return tp
}

// HostIP is the root namespace's address on the test network (SUBNET.1):
// the namespaces' default gateway, where the test's own servers listen.
func (tp *Topology) HostIP() string { return tp.subnet + ".1" }

// Add creates namespace PREFIX-name with address SUBNET.host (host in
// 2..254, unique in the topology) on eth0, attached to the bridge, and
// its /etc/netns files: hosts holds the entries of hosts (name → address;
// the names of one address share a line, sorted) and what opts adds.
func (tp *Topology) Add(name string, host int, hosts map[string]string, opts NSOptions) Namespace {
	tp.t.Helper()
	n := Namespace{Name: tp.prefix + "-" + name, IP: fmt.Sprintf("%s.%d", tp.subnet, host)}
	sw := tp.prefix + "p" + strconv.Itoa(host)
	tp.ip("netns", "add", n.Name)
	tp.ip("-n", tp.sw, "link", "add", sw, "type", "veth", "peer", "name", "eth0", "netns", n.Name)
	tp.ip("-n", tp.sw, "link", "set", sw, "master", "br0", "up")
	tp.ip("-n", n.Name, "addr", "add", n.IP+"/24", "dev", "eth0")
	tp.ip("-n", n.Name, "link", "set", "eth0", "up")
	tp.ip("-n", n.Name, "link", "set", "lo", "up")
	tp.ip("-n", n.Name, "route", "add", "default", "via", tp.HostIP())
	if opts.Hostname != "" {
		hosts = mapWith(hosts, opts.Hostname, n.IP)
	}
	files := map[string]string{
		"hosts":       hostsFile(hosts),
		"resolv.conf": resolvConf(opts.Nameserver, opts.Search),
	}
	if opts.FilesThenDNS {
		files["nsswitch.conf"] = "hosts: files dns\n"
	}
	dir := filepath.Join("/etc/netns", n.Name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		tp.t.Fatal(err)
	}
	for f, content := range files {
		if err := os.WriteFile(filepath.Join(dir, f), []byte(content), 0o644); err != nil {
			tp.t.Fatal(err)
		}
	}
	return n
}

// InNS returns a command that runs name with args in the namespace
// (through `ip netns exec`, which mounts its /etc/netns files).
func (n Namespace) InNS(name string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", n.Name, name}, args...)...)
}

// hostsFile returns an /etc/hosts: localhost, then one line per address
// (in order) with its names (sorted).
func hostsFile(hosts map[string]string) string {
	byIP := map[string][]string{}
	for name, ip := range hosts {
		byIP[ip] = append(byIP[ip], name)
	}
	var b strings.Builder
	b.WriteString("127.0.0.1 localhost\n")
	for _, ip := range slices.Sorted(maps.Keys(byIP)) {
		names := byIP[ip]
		slices.Sort(names)
		fmt.Fprintf(&b, "%s %s\n", ip, strings.Join(names, " "))
	}
	return b.String()
}

// resolvConf returns a resolv.conf naming ns (default the namespace's
// loopback), with search list and ndots:5 when search is set.
func resolvConf(ns string, search []string) string {
	if ns == "" {
		ns = "127.0.0.1"
	}
	if len(search) == 0 {
		return "nameserver " + ns + "\n"
	}
	return "nameserver " + ns + "\nsearch " + strings.Join(search, " ") + "\noptions ndots:5\n"
}

// mapWith returns a copy of m with k set to v.
func mapWith(m map[string]string, k, v string) map[string]string {
	c := maps.Clone(m)
	if c == nil {
		c = map[string]string{}
	}
	c[k] = v
	return c
}

// ip runs the ip command and fails the test on error.
func (tp *Topology) ip(args ...string) {
	tp.t.Helper()
	if out, err := run(time.Minute, nil, "ip", args...); err != nil {
		tp.t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// cleanup deletes what the test created (deleting a namespace deletes its
// veths, and with them their peers) and the /etc/netns files.
func (tp *Topology) cleanup() {
	out, _ := run(time.Minute, nil, "ip", "netns", "list")
	for _, line := range strings.Split(out, "\n") {
		ns, _, _ := strings.Cut(strings.TrimSpace(line), " ")
		if strings.HasPrefix(ns, tp.prefix+"-") {
			run(time.Minute, nil, "ip", "netns", "del", ns)
			os.RemoveAll(filepath.Join("/etc/netns", ns))
		}
	}
	run(time.Minute, nil, "ip", "link", "del", tp.root)
}

// run runs a command with a deadline and the environment variables env
// added to the test's, and returns its combined output.
func run(timeout time.Duration, env []string, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}
