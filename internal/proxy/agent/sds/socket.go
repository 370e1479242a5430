package sds

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
)

// maxSocketPath is sun_path's limit on Linux less the terminating NUL.
const maxSocketPath = 107

// listenUnix creates the socket at path, in a directory only this user
// can enter (created 0700 if missing; an existing one must be ours and
// without group or other permissions), removing a stale socket left by
// a previous run, and sets the socket's mode to 0600.
func listenUnix(path string) (net.Listener, error) {
	if path == "" {
		return nil, errors.New("sds socket path: empty")
	}
	if len(path) > maxSocketPath {
		return nil, fmt.Errorf("sds socket path %q: %d bytes, a Unix socket path holds at most %d: choose a shorter one", path, len(path), maxSocketPath)
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("sds socket directory %s: %w", dir, err)
	}
	if err := checkPrivateDir(dir); err != nil {
		return nil, err
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode().Type() != fs.ModeSocket {
			return nil, fmt.Errorf("sds socket path %s: exists and is not a socket; remove it or choose another path", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("sds socket path %s: removing the stale socket: %w", path, err)
		}
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("sds socket %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("sds socket %s: %w", path, err)
	}
	return ln, nil
}

// checkPrivateDir refuses a directory that is a symbolic link, that
// another user owns, or that the group or others may use: anyone who
// can reach the socket gets the workload's key.
func checkPrivateDir(dir string) error {
	fi, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("sds socket directory %s: %w", dir, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("sds socket directory %s: not a directory (a symbolic link is refused)", dir)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return fmt.Errorf("sds socket directory %s: mode %04o lets other users in; use a directory of mode 0700 (the default under the runtime directory is one)", dir, perm)
	}
	if err := checkOwner(fi); err != nil {
		return fmt.Errorf("sds socket directory %s: %w", dir, err)
	}
	return nil
}
