package agent

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"

	"github.com/weftmesh/weft/internal/proxy/agent/certs"
	"github.com/weftmesh/weft/internal/proxy/agent/sds"
)

// SecurityOptions configure the agent's certificate handling: the
// certificate manager and the SDS server that hands its certificates to
// the proxy.
type SecurityOptions struct {
	// Certs configure the certificate manager; OnSecret is set by
	// StartSecurity (any value given is called after the SDS update).
	Certs certs.Options
	// SDSSocket is the Unix socket of the SDS server (the path that
	// Options.SDSSocket puts into the bootstrap's sds-grpc cluster).
	SDSSocket string
	// Logger is shared by both; default discards.
	Logger *slog.Logger
}

// Security is the running certificate manager and SDS server, in
// process, as Istio's pilot-agent runs them next to Envoy. Start it
// before the proxy and stop it after.
type Security struct {
	sds    *sds.Server
	mgr    *certs.Manager
	cancel context.CancelFunc
	done   chan struct{}
}

// StartSecurity opens the SDS socket and starts obtaining the workload
// certificate in the background: every certificate, the first and each
// renewal, becomes a new SDS version (named after its generation) of
// `default` and `ROOTCA`. It returns once the socket is listening; it
// does not wait for the CA (SDS requests wait for the first certificate).
func StartSecurity(o SecurityOptions) (*Security, error) {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	srv, err := sds.Listen(sds.Options{SocketPath: o.SDSSocket, Logger: log})
	if err != nil {
		return nil, err
	}
	co := o.Certs
	next := co.OnSecret
	co.OnSecret = func(s *certs.Secret) {
		if err := srv.Update(sds.Secrets{Version: strconv.FormatUint(s.Generation, 10), ChainPEM: s.ChainPEM, KeyPEM: s.KeyPEM, RootPEM: s.RootPEM}); err != nil {
			log.Error("sds update", "certificate", s, "err", err)
		}
		if next != nil {
			next(s)
		}
	}
	if co.Logger == nil {
		co.Logger = log
	}
	mgr, err := certs.New(co)
	if err != nil {
		srv.Close()
		return nil, fmt.Errorf("certificate manager: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Security{sds: srv, mgr: mgr, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		mgr.Run(ctx)
	}()
	return s, nil
}

// Manager is the certificate manager (Current, Ready, Identity).
func (s *Security) Manager() *certs.Manager { return s.mgr }

// SDS is the SDS server.
func (s *Security) SDS() *sds.Server { return s.sds }

// Stop ends renewal, closes the SDS streams and removes the socket. Call
// it after the proxy has stopped; further calls do nothing.
func (s *Security) Stop() {
	s.cancel()
	<-s.done
	s.sds.Close()
}
