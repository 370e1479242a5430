package netnstest

import (
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// Tool is a command a test runs, named as on PATH.
type Tool string

// The netfilter tools of the capture tests.
const (
	IPTables Tool = "iptables-restore"
	NFTables Tool = "nft"
)

// Package is the Debian package that installs the tool: iptables for
// IPTables, nftables for NFTables, else the tool's own name.
func (tl Tool) Package() string {
	switch tl {
	case IPTables:
		return "iptables"
	case NFTables:
		return "nftables"
	}
	return string(tl)
}

// EnsureTools installs, with apt-get (running apt-get update and trying
// again when the first install fails), the Debian packages of the tools
// that are not on PATH. It fails the test when one is missing and the
// test does not run as root, or when apt-get fails.
func EnsureTools(t *testing.T, tools ...Tool) {
	t.Helper()
	var missing, absent []string // packages, tools
	for _, tl := range tools {
		if _, err := exec.LookPath(string(tl)); err != nil {
			missing = append(missing, tl.Package())
			absent = append(absent, string(tl))
		}
	}
	if len(missing) == 0 {
		return
	}
	if os.Geteuid() != 0 {
		t.Fatalf("%s missing: install them (Debian packages %v), or run the test as root to have it install them", strings.Join(absent, ", "), missing)
	}
	t.Logf("installing %v (apt-get)", missing)
	install := func() (string, error) {
		return aptGet(append([]string{"install", "-y", "--no-install-recommends"}, missing...)...)
	}
	if out, err := install(); err != nil {
		if out2, err2 := aptGet("update"); err2 != nil {
			t.Fatalf("apt-get install %v: %v\n%s\napt-get update: %v\n%s", missing, err, out, err2, out2)
		}
		if out, err := install(); err != nil {
			t.Fatalf("apt-get install %v: %v\n%s", missing, err, out)
		}
	}
}

func aptGet(args ...string) (string, error) {
	return run(10*time.Minute, []string{"DEBIAN_FRONTEND=noninteractive"}, "apt-get", args...)
}
