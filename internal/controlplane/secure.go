package controlplane

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"

	"github.com/weftmesh/weft/internal/ca"
	"github.com/weftmesh/weft/internal/xds"
)

// DefaultSecureAddress is where weft-control serves the CA and ADS over
// TLS: Istio's istiod port 15012.
const DefaultSecureAddress = "127.0.0.1:15012"

// servingOptions returns the SANs of the secure port's certificate
// (SECURITY.md): weft's own name, localhost, and istiod's in-cluster name
// so that an Istio agent configured for istiod accepts it, and 127.0.0.1;
// also weft-control's Service name in its namespace on Kubernetes, which
// injected sidecars and the chart's gateway dial
// (weft-control.NAMESPACE.svc:15012).
func servingOptions(namespace string) ca.ServingOptions {
	svc := "weft-control." + namespace + ".svc"
	return ca.ServingOptions{
		DNSNames:    []string{"weft-control", "localhost", "istiod." + namespace + ".svc", svc, svc + ".cluster.local"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
	}
}

// renewRetry is how long the secure server waits before retrying a
// failed renewal of its certificate.
const renewRetry = time.Minute

// secureServer serves Istio's IstioCertificateService and ADS on one
// gRPC server over TLS, with a certificate issued by the mesh CA and
// renewed at half its lifetime (Istio's default SECRET_GRACE_PERIOD_RATIO
// of 0.5). Clients verify it with the mesh root; a client certificate
// issued by the mesh CA is verified when given (as istiod's 15012 does),
// not required: CSR callers authenticate with bootstrap tokens.
type secureServer struct {
	ca   *ca.CA
	log  *slog.Logger
	ln   net.Listener
	grpc *grpc.Server
	cert atomic.Pointer[tls.Certificate]

	// renewMu serialises renewals (the renewal loop, and tests).
	renewMu sync.Mutex
	// issued is when the current certificate was issued (Unix ns): its
	// NotBefore is backdated for clock skew, so renewal counts from here.
	issued atomic.Int64
	names  ca.ServingOptions // the certificate's SANs
}

// newSecureServer issues the serving certificate (for names), binds
// address and registers the CA service (authenticating callers with auth;
// nil: the bootstrap tokens) and xdsServer on a TLS gRPC server.
func newSecureServer(address string, authority *ca.CA, auth ca.Authenticator, xdsServer *xds.Server, names ca.ServingOptions, log *slog.Logger) (*secureServer, error) {
	s := &secureServer{ca: authority, names: names, log: log}
	if err := s.renew(); err != nil {
		return nil, err
	}
	svc, err := ca.NewService(ca.ServiceOptions{CA: authority, Authenticator: auth, Logger: log})
	if err != nil {
		return nil, err
	}
	tlsConf := &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return s.cert.Load(), nil },
		ClientAuth:     tls.VerifyClientCertIfGiven,
		ClientCAs:      authority.Roots(),
	}
	s.grpc = grpc.NewServer(
		grpc.Creds(credentials.NewTLS(tlsConf)),
		// The plain xDS port's keepalive (Istio's defaults).
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
		grpc.SharedWriteBuffer(true),
	)
	svc.Register(s.grpc)
	xdsServer.Register(s.grpc)
	if s.ln, err = net.Listen("tcp", address); err != nil {
		return nil, fmt.Errorf("secure address %s: %w", address, err)
	}
	return s, nil
}

// serve runs the gRPC server and the renewal loop until stop.
func (s *secureServer) serve(ctx context.Context) error {
	go s.renewLoop(ctx)
	if err := s.grpc.Serve(s.ln); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
		return fmt.Errorf("secure port %s: %w", s.ln.Addr(), err)
	}
	return nil
}

// stop closes every connection and stops serve.
func (s *secureServer) stop() { s.grpc.Stop() }

// renew issues a new serving certificate and serves it to new
// handshakes; established connections keep theirs.
func (s *secureServer) renew() error {
	s.renewMu.Lock()
	defer s.renewMu.Unlock()
	c, err := s.ca.IssueServing(s.names)
	if err != nil {
		return fmt.Errorf("secure port certificate: %w", err)
	}
	s.cert.Store(c)
	s.issued.Store(time.Now().UnixNano())
	s.log.Info("secure port certificate issued", "serial", c.Leaf.SerialNumber.String(), "not_after", c.Leaf.NotAfter)
	return nil
}

// renewLoop renews the certificate at half its lifetime until ctx ends.
func (s *secureServer) renewLoop(ctx context.Context) {
	t := time.NewTimer(renewalDelay(s.cert.Load().Leaf, time.Unix(0, s.issued.Load()), time.Now()))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		next := renewRetry
		if err := s.renew(); err != nil {
			s.log.Error("renewing the secure port certificate failed, retrying", "err", err, "retry_in", renewRetry)
		} else {
			next = renewalDelay(s.cert.Load().Leaf, time.Unix(0, s.issued.Load()), time.Now())
		}
		t.Reset(next)
	}
}

// renewalDelay is the time from now until half of leaf's lifetime, counted
// from when it was issued, has passed (0 when that is past). The lifetime
// is not counted from NotBefore, which the CA backdates by a minute for
// clock skew: with a 10-second certificate that would put the half-way
// point in the past and renew without pause.
func renewalDelay(leaf *x509.Certificate, issued, now time.Time) time.Duration {
	at := issued.Add(leaf.NotAfter.Sub(issued) / 2)
	return max(at.Sub(now), 0)
}
