package dashboard

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// chromiumPath is where Debian's chromium package installs the browser.
const chromiumPath = "/usr/bin/chromium"

// ensureChromium returns the browser's path, installing Debian's chromium
// package first when it is missing and the test runs as root (as CI
// does); otherwise it fails saying what to install.
func ensureChromium(t *testing.T) string {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err == nil {
		return chromiumPath
	}
	if os.Geteuid() != 0 {
		t.Fatalf("%s is missing: install Debian's chromium (sudo apt-get install -y chromium), or run the test as root to let it install the package", chromiumPath)
	}
	t.Logf("%s is missing: installing Debian's chromium package", chromiumPath)
	if out, err := aptGet("install", "-y", "--no-install-recommends", "chromium"); err != nil {
		// A fresh machine has no package lists yet.
		if out2, err2 := aptGet("update"); err2 != nil {
			t.Fatalf("apt-get install chromium: %v\n%s\napt-get update: %v\n%s", err, tail(out), err2, tail(out2))
		}
		if out, err = aptGet("install", "-y", "--no-install-recommends", "chromium"); err != nil {
			t.Fatalf("apt-get install -y chromium: %v\n%s", err, tail(out))
		}
	}
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Fatalf("chromium installed, but %v", err)
	}
	return chromiumPath
}

func aptGet(args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "apt-get", args...)
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	return cmd.CombinedOutput()
}

// tail is the end of a long command output.
func tail(b []byte) string {
	s := string(b)
	if len(s) > 2000 {
		s = "…" + s[len(s)-2000:]
	}
	return strings.TrimSpace(s)
}

// newBrowser starts headless chromium and returns a tab's context; the
// browser stops at the test's end.
func newBrowser(t *testing.T, path string) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.DisableGPU,
		chromedp.NoSandbox, // root in a container has no user namespace sandbox
		chromedp.Flag("hide-scrollbars", true),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx, chromedp.WithErrorf(t.Logf))
	t.Cleanup(func() { cancel(); cancelAlloc() })
	// The first action starts the browser (no timeout on it: it would stop
	// the browser at its end).
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("starting %s: %v", path, err)
	}
	return ctx
}
