package localmesh

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"sync"
)

// Loopback is the Allocator of weft up: addresses 127.0.0.N counting up
// from a first one (skipping any where a proxy port is taken), and ports
// on 127.0.0.1 chosen by the kernel. It remembers every assignment for the
// life of the process, so that a replica keeps its address and ports when
// the manifest is edited, and never hands out a port twice. Safe for
// concurrent use.
type Loopback struct {
	mu    sync.Mutex
	next  netip.Addr
	ips   map[string]string
	ports map[string]int
	given map[int]bool
}

var _ Allocator = (*Loopback)(nil)

// NewLoopback returns an allocator whose first address is first (in
// 127.0.0.0/8).
func NewLoopback(first netip.Addr) (*Loopback, error) {
	if !first.Is4() || !first.IsLoopback() {
		return nil, fmt.Errorf("first address %s: want an IPv4 loopback address such as 127.0.0.2", first)
	}
	return &Loopback{next: first, ips: map[string]string{}, ports: map[string]int{}, given: map[int]bool{}}, nil
}

// IP implements Allocator: the next loopback address where the admin,
// outbound and metrics ports are free.
func (a *Loopback) IP(key string) (string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if ip, ok := a.ips[key]; ok {
		return ip, nil
	}
	for a.next.As4()[3] < 255 && a.next.IsLoopback() {
		ip := a.next
		a.next = a.next.Next()
		if proxyPortsFree(ip.String()) {
			a.ips[key] = ip.String()
			return ip.String(), nil
		}
	}
	return "", errors.New("no free loopback address left (127.0.0.N with ports 15000, 15001 and 15090 free)")
}

// proxyPortsFree reports whether a sidecar's ports are free on ip.
func proxyPortsFree(ip string) bool {
	for _, port := range []int{AdminPort, OutboundPort, MetricsPort} {
		l, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(port)))
		if err != nil {
			return false
		}
		l.Close()
	}
	return true
}

// Port implements Allocator: a port the kernel chose on 127.0.0.1, never
// one given before.
func (a *Loopback) Port(key string) (int, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if p, ok := a.ports[key]; ok {
		return p, nil
	}
	for range 100 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, fmt.Errorf("a free port on 127.0.0.1: %w", err)
		}
		p := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if !a.given[p] {
			a.given[p] = true
			a.ports[key] = p
			return p, nil
		}
	}
	return 0, errors.New("no new free port on 127.0.0.1")
}
