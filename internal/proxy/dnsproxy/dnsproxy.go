// Package dnsproxy is the sidecar agent's DNS proxy, as Istio's agent
// runs it on port 15053 (pkg/dns/client): it answers A and AAAA queries
// for the mesh's service hostnames from the name table weft-control sends
// (NDS, package nds) — service VIPs, auto-allocated ones included — and
// forwards every other query to the upstream resolvers of resolv.conf.
//
// Behaviour (Istio's agent's, see answer.go and table.go for details):
//   - Names of the table are answered authoritatively, TTL 30 s; a
//     Kubernetes-style entry also answers its short forms (NAME in its
//     namespace, NAME.NAMESPACE, NAME.NAMESPACE.svc); wildcard hosts match
//     their subdomains; a table name followed by the first search domain
//     of resolv.conf is answered with a CNAME to the name and its
//     addresses.
//   - A table name without an address of the asked family gets NOERROR
//     with no records, never NXDOMAIN. Names the table does not know, and
//     types other than A and AAAA, go upstream; the upstream's answer,
//     NXDOMAIN included, is returned unchanged; no upstream answering
//     gives SERVFAIL. Before the first table arrives every query gets
//     SERVFAIL (Istio's agent without respondBeforeSync).
//   - UDP and TCP on one address; a UDP client's query goes upstream over
//     UDP, a TCP client's over TCP. resolv.conf is read at start and reread
//     when it changes (checked at most once a second, when forwarding).
//
// Queries are logged at debug level only.
package dnsproxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/weftmesh/weft/internal/nds"
)

// Defaults.
const (
	// DefaultAddress is Istio's DNS proxy address.
	DefaultAddress = "127.0.0.1:15053"
	// DefaultResolvConf is where the upstream resolvers are read.
	DefaultResolvConf = "/etc/resolv.conf"
	// DefaultUpstreamTimeout bounds one upstream exchange (Istio's).
	DefaultUpstreamTimeout = 5 * time.Second
	// maxForwards bounds the UDP queries being forwarded at once; the read
	// loop waits (the socket buffers) when they are all busy.
	maxForwards = 64
	// tcpIdle is how long a TCP client connection may stay idle.
	tcpIdle = 10 * time.Second
)

// Options configure a Server.
type Options struct {
	// Address is the ip:port served over UDP and TCP (default
	// DefaultAddress; port 0 picks one free for both). Ignored when
	// PacketConn and Listener are set.
	Address string
	// PacketConn and Listener, when both set, are sockets bound by the
	// caller (for example in another network namespace); the Server owns
	// them from New on.
	PacketConn net.PacketConn
	Listener   net.Listener
	// ResolvConf is the file naming the upstream resolvers and search
	// domains (default DefaultResolvConf). When the proxy itself is the
	// nameserver of /etc/resolv.conf, point this at the original one.
	ResolvConf string
	// UpstreamPort is the port of resolv.conf's nameservers (default 53;
	// resolv.conf cannot say another, tests need one).
	UpstreamPort int
	// Namespace is the proxy's namespace, Domain its DNS domain
	// ("NAMESPACE.svc.cluster.local", the default), for short names.
	Namespace string
	Domain    string
	// UpstreamTimeout bounds each upstream exchange (default
	// DefaultUpstreamTimeout).
	UpstreamTimeout time.Duration
	// Logger gets start, stop and debug-level query events (nil:
	// slog.Default()).
	Logger *slog.Logger
}

// Server is a running DNS proxy. Its methods are safe for concurrent use.
type Server struct {
	o      Options
	log    *slog.Logger
	udp    net.PacketConn
	tcp    net.Listener
	resolv *resolvWatcher
	domain domainInfo
	table  atomic.Pointer[table]

	forwards chan struct{} // semaphore of UDP forwards
	wg       sync.WaitGroup
	closing  atomic.Bool
	mu       sync.Mutex
	conns    map[net.Conn]struct{}
}

// New binds the sockets and reads resolv.conf. Serve answers queries.
func New(o Options) (*Server, error) {
	if o.Address == "" {
		o.Address = DefaultAddress
	}
	if o.ResolvConf == "" {
		o.ResolvConf = DefaultResolvConf
	}
	if o.Domain == "" {
		o.Domain = o.Namespace + ".svc.cluster.local"
	}
	if o.UpstreamPort == 0 {
		o.UpstreamPort = 53
	}
	if o.UpstreamTimeout <= 0 {
		o.UpstreamTimeout = DefaultUpstreamTimeout
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	s := &Server{
		o: o, log: o.Logger, domain: newDomainInfo(o.Namespace, o.Domain),
		forwards: make(chan struct{}, maxForwards), conns: map[net.Conn]struct{}{},
	}
	if o.PacketConn != nil && o.Listener != nil {
		s.udp, s.tcp = o.PacketConn, o.Listener
	} else if err := s.bind(o.Address); err != nil {
		return nil, err
	}
	var err error
	if s.resolv, err = newResolvWatcher(o.ResolvConf, strconv.Itoa(o.UpstreamPort), s.udp.LocalAddr().String()); err != nil {
		s.udp.Close()
		s.tcp.Close()
		return nil, fmt.Errorf("DNS proxy: %w", err)
	}
	return s, nil
}

// bind listens on UDP, then on TCP with the same port (retrying a few
// times when port 0 picked a UDP port whose TCP twin is taken).
func (s *Server) bind(addr string) error {
	for range 5 {
		udp, err := net.ListenPacket("udp", addr)
		if err != nil {
			return fmt.Errorf("DNS proxy: UDP %s: %w", addr, err)
		}
		tcp, err := net.Listen("tcp", udp.LocalAddr().String())
		if err == nil {
			s.udp, s.tcp = udp, tcp
			return nil
		}
		udp.Close()
		if _, port, _ := net.SplitHostPort(addr); port != "0" {
			return fmt.Errorf("DNS proxy: TCP %s: %w", addr, err)
		}
	}
	return fmt.Errorf("DNS proxy: no port of %s free for both UDP and TCP", addr)
}

// UDPAddr and TCPAddr return the bound addresses.
func (s *Server) UDPAddr() net.Addr { return s.udp.LocalAddr() }

// TCPAddr returns the bound TCP address.
func (s *Server) TCPAddr() net.Addr { return s.tcp.Addr() }

// UpdateTable replaces the name table; queries after it returns see the
// new one. The table is not retained.
func (s *Server) UpdateTable(nt nds.Table) {
	s.table.Store(buildTable(nt, s.domain))
}

// Ready reports whether a name table has arrived.
func (s *Server) Ready() bool { return s.table.Load() != nil }

// Serve answers queries until ctx ends or Close is called; it then closes
// the sockets, waits for the queries in progress and returns nil.
func (s *Server) Serve(ctx context.Context) error {
	s.log.Info("DNS proxy serving", "udp", s.UDPAddr().String(), "tcp", s.TCPAddr().String(), "resolv_conf", s.o.ResolvConf)
	stop := context.AfterFunc(ctx, func() { _ = s.Close() })
	defer stop()
	s.wg.Add(2)
	go func() { defer s.wg.Done(); s.serveUDP() }()
	go func() { defer s.wg.Done(); s.serveTCP() }()
	s.wg.Wait()
	return nil
}

// Close stops serving: the sockets and client connections are closed.
func (s *Server) Close() error {
	if !s.closing.CompareAndSwap(false, true) {
		return nil
	}
	err := errors.Join(s.udp.Close(), s.tcp.Close())
	s.mu.Lock()
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	return err
}

// serveUDP reads datagrams; local answers are written at once, forwarded
// queries run on a bounded set of goroutines.
func (s *Server) serveUDP() {
	buf := make([]byte, maxMessage)
	for {
		n, from, err := s.udp.ReadFrom(buf)
		if err != nil {
			if s.closing.Load() {
				return
			}
			s.log.Debug("DNS proxy: UDP read", "err", err)
			continue
		}
		msg := buf[:n]
		q, ok, perr := parseQuery(msg)
		if !ok {
			continue
		}
		if resp := s.answerLocally(q, perr, false); resp != nil {
			_, _ = s.udp.WriteTo(resp, from)
			continue
		}
		s.forwards <- struct{}{}
		query := append([]byte(nil), msg...)
		s.wg.Add(1)
		go func() {
			defer func() { <-s.forwards; s.wg.Done() }()
			_, _ = s.udp.WriteTo(s.forwarded(q, query, false), from)
		}()
	}
}

// serveTCP accepts connections, a goroutine each.
func (s *Server) serveTCP() {
	for {
		c, err := s.tcp.Accept()
		if err != nil {
			if s.closing.Load() {
				return
			}
			s.log.Debug("DNS proxy: TCP accept", "err", err)
			time.Sleep(10 * time.Millisecond) // EMFILE and the like: do not spin
			continue
		}
		s.mu.Lock()
		if s.closing.Load() {
			s.mu.Unlock()
			c.Close()
			return
		}
		s.conns[c] = struct{}{}
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.serveConn(c)
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
			c.Close()
		}()
	}
}

// serveConn answers the queries of one TCP connection in order (RFC 7766
// allows several per connection).
func (s *Server) serveConn(c net.Conn) {
	for {
		_ = c.SetDeadline(time.Now().Add(tcpIdle))
		msg, err := readTCPMessage(c)
		if err != nil {
			return
		}
		q, ok, perr := parseQuery(msg)
		if !ok {
			return
		}
		resp := s.answerLocally(q, perr, true)
		if resp == nil {
			resp = s.forwarded(q, msg, true)
		}
		_ = c.SetDeadline(time.Now().Add(tcpIdle))
		if writeTCPMessage(c, resp) != nil {
			return
		}
	}
}

// answerLocally returns the answer the proxy gives itself, or nil when
// the query goes upstream.
func (s *Server) answerLocally(q query, perr error, overTCP bool) []byte {
	switch {
	case perr != nil:
		return answerError(q, dnsmessage.RCodeFormatError)
	case !q.hasQ:
		return answerError(q, dnsmessage.RCodeServerFailure)
	}
	t := s.table.Load()
	if t == nil {
		s.log.Debug("DNS proxy: query before the name table arrived", "name", q.question.Name.String())
		return answerError(q, dnsmessage.RCodeServerFailure)
	}
	res, found := resolve(t, q.question, s.resolv.get().search)
	if !found {
		return nil
	}
	maxSize := q.udpSize
	if overTCP {
		maxSize = maxMessage
	}
	resp, err := answerFound(q, res, maxSize)
	if err != nil {
		s.log.Debug("DNS proxy: building an answer", "name", q.question.Name.String(), "err", err)
		return answerError(q, dnsmessage.RCodeServerFailure)
	}
	s.log.Debug("DNS proxy: answered", "name", q.question.Name.String(), "type", q.question.Type.String())
	return resp
}

// forwarded returns the upstream's answer, or SERVFAIL.
func (s *Server) forwarded(q query, msg []byte, overTCP bool) []byte {
	resp, err := s.forward(msg, overTCP)
	if err != nil {
		s.log.Debug("DNS proxy: upstream failed", "name", q.question.Name.String(), "err", err)
		return answerError(q, dnsmessage.RCodeServerFailure)
	}
	s.log.Debug("DNS proxy: forwarded", "name", q.question.Name.String(), "type", q.question.Type.String())
	return resp
}
