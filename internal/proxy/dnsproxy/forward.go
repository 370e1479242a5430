package dnsproxy

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"time"
)

// forward sends the query as received to the upstream resolvers, in the
// order resolv.conf lists them, and returns the first answer as received
// (the client's id, flags and EDNS pass through unchanged). overTCP says
// how the client asked: a TCP client's query goes upstream over TCP, a UDP
// client's over UDP (a truncated upstream answer is returned truncated, so
// that the client retries over TCP, as it would without the proxy).
// Istio's agent forwards the same way, one server after the other.
func (s *Server) forward(query []byte, overTCP bool) ([]byte, error) {
	rc := s.resolv.get()
	if len(rc.servers) == 0 {
		return nil, errors.New("no nameserver in " + s.o.ResolvConf)
	}
	var errs []error
	for _, server := range rc.servers {
		var resp []byte
		var err error
		if overTCP {
			resp, err = exchangeTCP(server, query, s.o.UpstreamTimeout)
		} else {
			resp, err = exchangeUDP(server, query, s.o.UpstreamTimeout)
		}
		if err == nil {
			return resp, nil
		}
		errs = append(errs, err)
	}
	return nil, errors.Join(errs...)
}

// maxMessage is the largest DNS message (TCP's length prefix bound).
const maxMessage = 65535

// exchangeUDP sends query from a new socket (a fresh source port per
// query: no confusion between clients that picked the same id) and waits
// for the answer with the query's id.
func exchangeUDP(server string, query []byte, timeout time.Duration) ([]byte, error) {
	c, err := net.DialTimeout("udp", server, timeout)
	if err != nil {
		return nil, fmt.Errorf("upstream %s: %w", server, err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(timeout))
	if _, err := c.Write(query); err != nil {
		return nil, fmt.Errorf("upstream %s: %w", server, err)
	}
	buf := make([]byte, maxMessage)
	for {
		n, err := c.Read(buf)
		if err != nil {
			return nil, fmt.Errorf("upstream %s: %w", server, err)
		}
		if n >= 2 && buf[0] == query[0] && buf[1] == query[1] {
			return buf[:n], nil
		}
		// A stray datagram (another id): keep waiting until the deadline.
	}
}

// exchangeTCP sends query over a new TCP connection (RFC 1035 4.2.2: a
// two-byte length, then the message).
func exchangeTCP(server string, query []byte, timeout time.Duration) ([]byte, error) {
	c, err := net.DialTimeout("tcp", server, timeout)
	if err != nil {
		return nil, fmt.Errorf("upstream %s: %w", server, err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(timeout))
	if err := writeTCPMessage(c, query); err != nil {
		return nil, fmt.Errorf("upstream %s: %w", server, err)
	}
	resp, err := readTCPMessage(c)
	if err != nil {
		return nil, fmt.Errorf("upstream %s: %w", server, err)
	}
	return resp, nil
}

// readTCPMessage reads one length-prefixed message.
func readTCPMessage(r io.Reader) ([]byte, error) {
	var l [2]byte
	if _, err := io.ReadFull(r, l[:]); err != nil {
		return nil, err
	}
	msg := make([]byte, binary.BigEndian.Uint16(l[:]))
	if _, err := io.ReadFull(r, msg); err != nil {
		return nil, err
	}
	return msg, nil
}

// writeTCPMessage writes one length-prefixed message in one write.
func writeTCPMessage(w io.Writer, msg []byte) error {
	if len(msg) > maxMessage {
		return fmt.Errorf("message of %d bytes is over DNS's %d", len(msg), maxMessage)
	}
	buf := make([]byte, 2+len(msg))
	binary.BigEndian.PutUint16(buf, uint16(len(msg)))
	copy(buf[2:], msg)
	_, err := w.Write(buf)
	return err
}
