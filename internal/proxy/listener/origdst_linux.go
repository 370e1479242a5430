package listener

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"syscall"
	"unsafe"
)

// soOriginalDst is SO_ORIGINAL_DST (linux/netfilter_ipv4.h) and
// IP6T_SO_ORIGINAL_DST (linux/netfilter_ipv6/ip6_tables.h): both 80.
const soOriginalDst = 80

// OriginalDst returns the destination a connection had before netfilter
// redirected it (iptables/nftables REDIRECT), read with getsockopt
// SO_ORIGINAL_DST (IPv4) or IP6T_SO_ORIGINAL_DST (IPv6), as Envoy's
// original_dst listener filter does. It fails for a connection that
// conntrack does not know.
func OriginalDst(nc net.Conn) (netip.AddrPort, error) {
	tc, ok := nc.(*net.TCPConn)
	if !ok {
		return netip.AddrPort{}, errors.New("original destination: not a TCP connection")
	}
	local := addrPort(tc.LocalAddr())
	rc, err := tc.SyscallConn()
	if err != nil {
		return netip.AddrPort{}, err
	}
	var ap netip.AddrPort
	var serr error
	err = rc.Control(func(fd uintptr) {
		if local.Addr().Is4() {
			ap, serr = getOrigDst(fd, syscall.SOL_IP, syscall.SizeofSockaddrInet4)
		} else {
			ap, serr = getOrigDst(fd, syscall.SOL_IPV6, syscall.SizeofSockaddrInet6)
		}
	})
	if err == nil {
		err = serr
	}
	return ap, err
}

// getOrigDst reads a sockaddr_in or sockaddr_in6 with getsockopt.
func getOrigDst(fd uintptr, level, size int) (netip.AddrPort, error) {
	var buf [syscall.SizeofSockaddrInet6]byte
	l := uint32(size)
	_, _, errno := syscall.Syscall6(syscall.SYS_GETSOCKOPT, fd, uintptr(level), soOriginalDst,
		uintptr(unsafe.Pointer(&buf[0])), uintptr(unsafe.Pointer(&l)), 0)
	if errno != 0 {
		return netip.AddrPort{}, errno
	}
	// struct sockaddr_in{,6}: family (host order), port (network order),
	// then the address (IPv6: after the 4-byte flow info).
	port := binary.BigEndian.Uint16(buf[2:4])
	if size == syscall.SizeofSockaddrInet4 {
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte(buf[4:8])), port), nil
	}
	return netip.AddrPortFrom(netip.AddrFrom16([16]byte(buf[8:24])).Unmap(), port), nil
}
