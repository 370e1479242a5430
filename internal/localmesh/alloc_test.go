package localmesh

import (
	"net"
	"net/netip"
	"testing"
)

// TestLoopback: an address whose proxy port is taken is skipped; keys keep
// their address and port; ports are never handed out twice.
func TestLoopback(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.201:15001")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	a, err := NewLoopback(netip.MustParseAddr("127.0.0.201"))
	if err != nil {
		t.Fatal(err)
	}
	ip, err := a.IP("default/a")
	if err != nil || ip != "127.0.0.202" {
		t.Fatalf("IP = %s, %v; want 127.0.0.202 (201 is busy)", ip, err)
	}
	if again, _ := a.IP("default/a"); again != ip {
		t.Errorf("same key: %s then %s", ip, again)
	}
	seen := map[int]bool{}
	for _, k := range []string{"a/http", "b/http", "c/http", "d/http"} {
		p, err := a.Port(k)
		if err != nil || seen[p] {
			t.Fatalf("Port(%s) = %d, %v (seen before: %v)", k, p, err, seen[p])
		}
		seen[p] = true
		if again, _ := a.Port(k); again != p {
			t.Errorf("same key %s: %d then %d", k, p, again)
		}
	}
	if _, err := NewLoopback(netip.MustParseAddr("10.0.0.1")); err == nil {
		t.Error("NewLoopback(10.0.0.1): no error")
	}
}
