package server

import (
	"io"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	tcpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"

	"github.com/weftmesh/weft/internal/proxy/accesslog"
	"github.com/weftmesh/weft/internal/proxy/listener"
	"github.com/weftmesh/weft/internal/proxy/stats"
	"github.com/weftmesh/weft/internal/proxy/tcpproxy"
)

// newAccessLogs returns the server's access log manager: every
// access_log of every connection manager and TCP proxy writes through it,
// so loggers of the same path share one file and one writer. Shutdown
// (closeAll) writes out what is buffered.
func newAccessLogs(o accesslog.Options, st *stats.Store) *accesslog.Manager {
	o.Stats = st
	return accesslog.NewManager(o)
}

// checkAccessLogs is the manager of Check (Envoy's --mode validate): it
// compiles formats and filters but opens no file and writes nothing.
func checkAccessLogs() *accesslog.Manager {
	return accesslog.NewManager(accesslog.Options{
		Stdout: io.Discard, Stderr: io.Discard,
		OpenFile: func(string) (io.WriteCloser, error) { return nopCloser{io.Discard}, nil },
	})
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

// tcpAccessLogs builds a tcp_proxy's access_log.
func (s *Server) tcpAccessLogs(p *tcpproxy.Proxy, cfg *tcpv3.TcpProxy) error {
	ls, err := s.alogs.Build(cfg.GetAccessLog(), "access_log")
	if err != nil {
		return err
	}
	p.SetAccessLogs(ls)
	return nil
}

// listenerAccessLogs builds a listener's access_log (connections no filter
// chain takes).
func (s *Server) listenerAccessLogs(chains *listener.Chains, cfg *listenerv3.Listener) error {
	ls, err := s.alogs.Build(cfg.GetAccessLog(), "access_log")
	chains.AccessLogs = ls
	return err
}
