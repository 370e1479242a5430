package xds

import (
	"strings"
	"testing"
	"unsafe"
)

// TestInterner: equal names from different requests share one copy, until
// a reset starts a new table.
func TestInterner(t *testing.T) {
	in := newInterner()
	same := func(a, b string) bool { return unsafe.StringData(a) == unsafe.StringData(b) }
	first := []string{strings.Clone("outbound|8080||a"), strings.Clone("outbound|8080||b")}
	second := []string{strings.Clone("outbound|8080||b"), strings.Clone("outbound|8080||a")}
	in.names(first)
	in.names(second)
	if !same(first[0], second[1]) || !same(first[1], second[0]) {
		t.Fatal("equal names are not shared")
	}
	in.reset()
	third := []string{strings.Clone("outbound|8080||a")}
	in.names(third)
	if same(third[0], first[0]) || third[0] != first[0] {
		t.Fatal("after reset: the old table is still used, or the name changed")
	}
}
