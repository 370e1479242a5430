//go:build !linux

package listener

import (
	"errors"
	"net"
	"net/netip"
)

// OriginalDst needs Linux netfilter (SO_ORIGINAL_DST).
func OriginalDst(net.Conn) (netip.AddrPort, error) {
	return netip.AddrPort{}, errors.New("original destination: SO_ORIGINAL_DST needs Linux")
}
