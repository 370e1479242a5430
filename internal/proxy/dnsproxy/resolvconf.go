package dnsproxy

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// resolvConf is what the proxy takes from resolv.conf: the upstream
// resolvers (host:port) and the search domains.
type resolvConf struct {
	servers []string
	search  []string
}

// parseResolvConf reads the nameserver, search and domain lines (the last
// of search and domain wins, as in glibc); other lines are ignored.
// Servers equal to exclude (the proxy's own address) are dropped, so that
// a resolv.conf pointing at the proxy cannot make it forward to itself.
func parseResolvConf(data []byte, port, exclude string) resolvConf {
	var rc resolvConf
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := sc.Text()
		if i := strings.IndexAny(line, "#;"); i >= 0 {
			line = line[:i]
		}
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		switch f[0] {
		case "nameserver":
			ip, err := netip.ParseAddr(f[1])
			if err != nil {
				continue
			}
			addr := net.JoinHostPort(ip.String(), port)
			if addr != exclude {
				rc.servers = append(rc.servers, addr)
			}
		case "search":
			rc.search = append([]string(nil), f[1:]...)
		case "domain":
			rc.search = []string{f[1]}
		}
	}
	return rc
}

// resolvWatcher holds the current resolv.conf and rereads the file when
// its modification time or size changed, checking at most once per
// checkEvery (a stat, on the forwarding path, never a goroutine).
type resolvWatcher struct {
	path    string
	port    string
	exclude string

	cur       atomic.Pointer[resolvConf]
	nextCheck atomic.Int64 // Unix nanoseconds

	mu      sync.Mutex // serialises rereads
	modTime time.Time
	size    int64
}

const checkEvery = time.Second

// newResolvWatcher reads path once. A missing file means the local
// resolver (127.0.0.1 and ::1), as glibc and Go's resolver assume, until
// the file appears; an unreadable one is an error.
func newResolvWatcher(path, port, exclude string) (*resolvWatcher, error) {
	w := &resolvWatcher{path: path, port: port, exclude: exclude}
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		rc := parseResolvConf([]byte("nameserver 127.0.0.1\nnameserver ::1\n"), port, exclude)
		w.cur.Store(&rc)
	case err != nil:
		return nil, fmt.Errorf("resolv.conf %s: %w", path, err)
	default:
		if err := w.reread(fi); err != nil {
			return nil, err
		}
	}
	w.nextCheck.Store(time.Now().Add(checkEvery).UnixNano())
	return w, nil
}

// get returns the current configuration, rereading the file first when
// the last check is over checkEvery old and the file changed. A file that
// became unreadable keeps the previous configuration.
func (w *resolvWatcher) get() *resolvConf {
	now := time.Now()
	next := w.nextCheck.Load()
	if now.UnixNano() < next || !w.nextCheck.CompareAndSwap(next, now.Add(checkEvery).UnixNano()) {
		return w.cur.Load()
	}
	if fi, err := os.Stat(w.path); err == nil {
		w.mu.Lock()
		changed := !fi.ModTime().Equal(w.modTime) || fi.Size() != w.size
		w.mu.Unlock()
		if changed {
			_ = w.reread(fi)
		}
	}
	return w.cur.Load()
}

func (w *resolvWatcher) reread(fi os.FileInfo) error {
	data, err := os.ReadFile(w.path)
	if err != nil {
		return fmt.Errorf("resolv.conf %s: %w", w.path, err)
	}
	rc := parseResolvConf(data, w.port, w.exclude)
	w.mu.Lock()
	w.modTime, w.size = fi.ModTime(), fi.Size()
	w.mu.Unlock()
	w.cur.Store(&rc)
	return nil
}
