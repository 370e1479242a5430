package netnstest

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
)

// BuildCommands builds the main packages (paths as `go build` takes them,
// relative to the test's directory) into a temporary directory that every
// user may read and run from (processes in the namespaces run as the
// proxy's UID too), removed at the test's end, and returns it.
func BuildCommands(t *testing.T, pkgs ...string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "weft-netns-bin-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	gobin := filepath.Join(runtime.GOROOT(), "bin", "go")
	if p, err := exec.LookPath("go"); err == nil {
		gobin = p
	}
	cmd := exec.Command(gobin, append([]string{"build", "-o", dir}, pkgs...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %v: %v\n%s", pkgs, err, out)
	}
	return dir
}
