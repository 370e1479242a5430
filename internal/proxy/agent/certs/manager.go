// Package certs is the sidecar agent's certificate manager, after Istio's
// pilot-agent (pkg/istio-agent, security/pkg/nodeagent/cache): it
// generates the workload's ECDSA P-256 key in the process, asks the mesh
// CA for a certificate through Istio's IstioCertificateService
// (istio.io/api security/v1alpha1 CreateCertificate) over TLS with a
// bearer token, publishes the result, and renews it at about half its
// lifetime. When the CA cannot be reached it retries with back-off and
// the current certificate stays published.
//
// The private key is never written, logged or sent: only the CSR (which
// carries the public key) leaves the process, and the key reaches the
// proxy over the agent's SDS socket.
package certs

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
	pb "istio.io/api/security/v1alpha1"
)

// Options configure a Manager. CAAddress, RootCAs, Token, TrustDomain,
// Namespace and ServiceAccount are required; the rest have defaults.
type Options struct {
	// CAAddress is the CA's gRPC address, host:port (weft-control's
	// secure port, 15012).
	CAAddress string
	// CAServerName is the name checked in the CA's server certificate;
	// default the host of CAAddress.
	CAServerName string
	// RootCAs verify the CA's server certificate (--ca-root).
	RootCAs *x509.CertPool
	// Token authenticates the proxy to the CA.
	Token TokenSource
	// TrustDomain, Namespace and ServiceAccount form the identity
	// spiffe://TRUST-DOMAIN/ns/NAMESPACE/sa/SERVICE-ACCOUNT.
	TrustDomain, Namespace, ServiceAccount string
	// TTL is the validity asked of the CA (the CA may shorten it);
	// default 24 h, Istio's SECRET_TTL.
	TTL time.Duration
	// GraceRatio and GraceRatioJitter are Istio's
	// SECRET_GRACE_PERIOD_RATIO (default 0.5) and
	// SECRET_GRACE_PERIOD_RATIO_JITTER (default 0.01): renewal starts
	// when GraceRatio ± jitter of the lifetime is left.
	GraceRatio, GraceRatioJitter float64
	// Backoff spaces the retries after a failed request.
	Backoff Backoff
	// RequestTimeout bounds one CreateCertificate call; default 10 s.
	RequestTimeout time.Duration
	// Clock drives renewal and back-off; default the system clock.
	Clock Clock
	// Rand returns uniform numbers in [0, 1) for jitter; default
	// math/rand/v2.
	Rand func() float64
	// Logger gets issuance and failures (identity, serial, expiry and
	// gRPC codes only); default discards.
	Logger *slog.Logger
	// OnSecret is called with every new certificate, on the Manager's
	// goroutine, before the next renewal is scheduled. It must not block
	// for long.
	OnSecret func(*Secret)
	// DialOptions are added to the CA connection's (tests).
	DialOptions []grpc.DialOption
}

// Manager obtains and renews the workload certificate. Create it with
// New and run it with Run; Current and Ready may be called from any
// goroutine.
type Manager struct {
	o       Options
	id      *url.URL
	conn    *grpc.ClientConn
	client  pb.IstioCertificateServiceClient
	current atomic.Pointer[Secret]
	ready   chan struct{}
	once    sync.Once
	gen     uint64 // Run's goroutine only
}

// New checks the options and prepares the CA connection (gRPC connects
// lazily: nothing is dialled before Run).
func New(o Options) (*Manager, error) {
	if err := o.check(); err != nil {
		return nil, err
	}
	o = o.withDefaults()
	sni := o.CAServerName
	if sni == "" {
		sni, _, _ = net.SplitHostPort(o.CAAddress)
	}
	tc := &tls.Config{RootCAs: o.RootCAs, ServerName: sni, MinVersion: tls.VersionTLS12}
	opts := append([]grpc.DialOption{
		grpc.WithTransportCredentials(credentials.NewTLS(tc)),
		grpc.WithPerRPCCredentials(bearer{src: o.Token}),
	}, o.DialOptions...)
	conn, err := grpc.NewClient(o.CAAddress, opts...)
	if err != nil {
		return nil, fmt.Errorf("CA address %q: %w", o.CAAddress, err)
	}
	return &Manager{
		o: o, id: SPIFFEID(o.TrustDomain, o.Namespace, o.ServiceAccount),
		conn: conn, client: pb.NewIstioCertificateServiceClient(conn), ready: make(chan struct{}),
	}, nil
}

func (o *Options) check() error {
	if _, port, err := net.SplitHostPort(o.CAAddress); err != nil || port == "" {
		return fmt.Errorf("CA address %q: want host:port", o.CAAddress)
	}
	if o.RootCAs == nil {
		return errors.New("CA root certificates: required to verify the CA's server certificate")
	}
	if o.Token == nil {
		return errors.New("token: required, the CA authenticates the proxy with it")
	}
	for _, f := range []struct{ name, v string }{
		{"trust domain", o.TrustDomain}, {"namespace", o.Namespace}, {"service account", o.ServiceAccount},
	} {
		if f.v == "" || strings.ContainsAny(f.v, "/?#@: ") {
			return fmt.Errorf("%s %q: must be non-empty, without '/', '?', '#', '@', ':' or spaces (it is part of the SPIFFE id)", f.name, f.v)
		}
	}
	if o.GraceRatio < 0 || o.GraceRatio >= 1 || o.GraceRatioJitter < 0 || o.GraceRatioJitter >= 1 {
		return fmt.Errorf("grace ratio %v / jitter %v: want fractions in [0, 1)", o.GraceRatio, o.GraceRatioJitter)
	}
	return nil
}

func (o Options) withDefaults() Options {
	if o.TTL <= 0 {
		o.TTL = 24 * time.Hour
	}
	if o.GraceRatio == 0 {
		o.GraceRatio = 0.5
	}
	if o.GraceRatioJitter == 0 {
		o.GraceRatioJitter = 0.01
	}
	o.Backoff = o.Backoff.withDefaults()
	if o.RequestTimeout <= 0 {
		o.RequestTimeout = 10 * time.Second
	}
	if o.Clock == nil {
		o.Clock = realClock{}
	}
	if o.Rand == nil {
		o.Rand = defaultRand
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// Identity is the SPIFFE id the Manager asks for.
func (m *Manager) Identity() string { return m.id.String() }

// Current is the latest certificate, nil before the first.
func (m *Manager) Current() *Secret { return m.current.Load() }

// Ready is closed once the first certificate is published.
func (m *Manager) Ready() <-chan struct{} { return m.ready }

// Run obtains the first certificate, then renews it until ctx is done,
// and closes the CA connection. It returns ctx's error. Call it once.
func (m *Manager) Run(ctx context.Context) error {
	defer m.conn.Close()
	for {
		sec := m.obtain(ctx)
		if sec == nil {
			return ctx.Err()
		}
		m.publish(sec)
		delay := rotateDelay(m.o.Clock.Now(), sec.Created, sec.Expires, m.o.GraceRatio, m.o.GraceRatioJitter, m.o.Rand(), m.o.Rand() < 0.5)
		m.o.Logger.Info("workload certificate issued", "certificate", sec, "renew_in", delay.Round(time.Second))
		if !m.sleep(ctx, delay) {
			return ctx.Err()
		}
	}
}

// obtain asks the CA until it answers with a good certificate or ctx is
// done (nil). The published certificate, if any, stays meanwhile.
func (m *Manager) obtain(ctx context.Context) *Secret {
	for attempt := 1; ; attempt++ {
		sec, err := m.request(ctx)
		if err == nil {
			return sec
		}
		if ctx.Err() != nil {
			return nil
		}
		wait := m.o.Backoff.wait(attempt, m.o.Rand())
		args := []any{"identity", m.id.String(), "attempt", attempt, "retry_in", wait.Round(time.Millisecond), "err", err}
		if cur := m.Current(); cur != nil {
			args = append(args, "keeping", cur)
		}
		m.o.Logger.Warn("certificate request failed", args...)
		if !m.sleep(ctx, wait) {
			return nil
		}
	}
}

// request is one CSR round trip with a fresh key (Istio generates a key
// per request too).
func (m *Manager) request(ctx context.Context) (*Secret, error) {
	key, csr, err := newKeyAndCSR(m.id)
	if err != nil {
		return nil, err
	}
	cctx, cancel := context.WithTimeout(ctx, m.o.RequestTimeout)
	defer cancel()
	resp, err := m.client.CreateCertificate(cctx, &pb.IstioCertificateRequest{
		Csr: string(csr), ValidityDuration: int64(m.o.TTL / time.Second),
	})
	if err != nil {
		st := status.Convert(err)
		return nil, fmt.Errorf("CreateCertificate at %s: %s: %s", m.o.CAAddress, st.Code(), st.Message())
	}
	sec, err := newSecret(resp.GetCertChain(), key, m.id, m.o.Clock.Now())
	if err != nil {
		return nil, fmt.Errorf("CreateCertificate at %s answered: %w", m.o.CAAddress, err)
	}
	return sec, nil
}

func (m *Manager) publish(sec *Secret) {
	m.gen++
	sec.Generation = m.gen
	m.current.Store(sec)
	if m.o.OnSecret != nil {
		m.o.OnSecret(sec)
	}
	m.once.Do(func() { close(m.ready) })
}

// sleep waits d on the clock; false when ctx ends first.
func (m *Manager) sleep(ctx context.Context, d time.Duration) bool {
	select {
	case <-ctx.Done():
		return false
	case <-m.o.Clock.After(d):
		return true
	}
}
