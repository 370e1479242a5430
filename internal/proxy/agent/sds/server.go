// Package sds is the sidecar agent's SDS server, after Istio's
// (security/pkg/nodeagent/sds): Envoy's SecretDiscoveryService v3,
// state of the world (StreamSecrets), on a Unix socket, serving the
// workload certificate as the secret `default` and the trust bundle as
// `ROOTCA`. The proxy reaches it through the bootstrap cluster
// `sds-grpc`.
//
// The server is written by hand rather than on go-control-plane's
// snapshot cache: that cache answers a NACK (whose version_info is the
// last accepted version) by resending the rejected version at once, a
// loop with a proxy that rejects it again, and this server needs only
// one snapshot shared by every stream. Here each stream sends a version
// once: after a NACK nothing is resent until the next Update (Envoy
// keeps the secret it had, as with Istio's agent). Delta and Fetch are
// not served (Envoy uses the state-of-the-world stream for
// api_type GRPC).
package sds

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	secretv3 "github.com/envoyproxy/go-control-plane/envoy/service/secret/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/anypb"
)

// Secret names, as Istio's.
const (
	// WorkloadSecret is the certificate chain and key (tls_certificate).
	WorkloadSecret = "default"
	// RootSecret is the trust bundle (validation_context.trusted_ca).
	RootSecret = "ROOTCA"
)

// Options configure a Server.
type Options struct {
	// SocketPath is the Unix socket to listen on. Its directory is
	// created with mode 0700 if missing and must be accessible to this
	// user only; the socket gets mode 0600.
	SocketPath string
	// Logger gets ACKs (debug), NACKs (warn) and stream errors; never
	// secret contents. Default discards.
	Logger *slog.Logger
}

// Secrets are the PEM contents of one version.
type Secrets struct {
	// Version names this set (it becomes the SDS version_info); it must
	// change with the contents.
	Version string
	// ChainPEM and KeyPEM become `default`, RootPEM `ROOTCA`.
	ChainPEM, KeyPEM, RootPEM []byte
}

// Server serves SDS on a Unix socket. Update may be called from any
// goroutine; Close once.
type Server struct {
	secretv3.UnimplementedSecretDiscoveryServiceServer

	path    string
	log     *slog.Logger
	grpc    *grpc.Server
	nacks   atomic.Uint64
	acks    atomic.Uint64
	streams atomic.Int64 // stream ids, for logs
	done    chan struct{}
	close   sync.Once

	mu      sync.Mutex
	cur     *snapshot     // nil before the first Update
	changed chan struct{} // closed and replaced by Update
}

// snapshot is one immutable version of the secrets, marshalled once for
// every stream.
type snapshot struct {
	version string
	res     map[string]*anypb.Any
}

// Listen prepares the socket and starts serving. Requests wait until the
// first Update (Envoy keeps the listeners that need the secrets warming
// meanwhile, as with Istio's agent).
func Listen(o Options) (*Server, error) {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ln, err := listenUnix(o.SocketPath)
	if err != nil {
		return nil, err
	}
	s := &Server{path: o.SocketPath, log: log, done: make(chan struct{}), changed: make(chan struct{})}
	s.grpc = grpc.NewServer()
	secretv3.RegisterSecretDiscoveryServiceServer(s.grpc, s)
	go func() {
		defer close(s.done)
		if err := s.grpc.Serve(ln); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			log.Error("sds server stopped", "socket", s.path, "err", err)
		}
	}()
	return s, nil
}

// Path is the socket's path.
func (s *Server) Path() string { return s.path }

// NACKs counts the requests that rejected a version.
func (s *Server) NACKs() uint64 { return s.nacks.Load() }

// ACKs counts the requests that accepted a version.
func (s *Server) ACKs() uint64 { return s.acks.Load() }

// Update publishes a new version of both secrets; every stream gets the
// secrets it subscribed to in that version.
func (s *Server) Update(sec Secrets) error {
	if sec.Version == "" {
		return errors.New("sds update: empty version")
	}
	snap := &snapshot{version: sec.Version, res: map[string]*anypb.Any{}}
	for _, r := range []*tlsv3.Secret{workloadSecret(sec), rootSecret(sec)} {
		a, err := anypb.New(r)
		if err != nil {
			return fmt.Errorf("sds update %s: secret %s: %w", sec.Version, r.GetName(), err)
		}
		snap.res[r.GetName()] = a
	}
	s.mu.Lock()
	s.cur = snap
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
	return nil
}

func (s *Server) current() (*snapshot, <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cur, s.changed
}

// Close stops the streams and the listener (which removes the socket).
func (s *Server) Close() {
	s.close.Do(func() {
		s.grpc.Stop()
		<-s.done
		os.Remove(s.path) // in case the listener did not unlink it
	})
}

func inline(b []byte) *corev3.DataSource {
	return &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: b}}
}

func workloadSecret(s Secrets) *tlsv3.Secret {
	return &tlsv3.Secret{Name: WorkloadSecret, Type: &tlsv3.Secret_TlsCertificate{TlsCertificate: &tlsv3.TlsCertificate{
		CertificateChain: inline(s.ChainPEM), PrivateKey: inline(s.KeyPEM),
	}}}
}

func rootSecret(s Secrets) *tlsv3.Secret {
	return &tlsv3.Secret{Name: RootSecret, Type: &tlsv3.Secret_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
		TrustedCa: inline(s.RootPEM),
	}}}
}

// streamState is one stream's view: what it subscribed to and what it
// was sent. Only the stream's handler goroutine touches it.
type streamState struct {
	id        int64
	names     []string // nil: nothing asked yet; empty: wildcard
	asked     bool
	sent      string // version last sent for names
	nonce     int
	lastNonce string
}

// StreamSecrets serves one state-of-the-world SDS stream, following
// Envoy's xDS protocol ("ACK/NACK and resource type instance version"):
// the first request subscribes; a request with the last response's nonce
// ACKs it, or NACKs it with error_detail; a request with a stale nonce is
// ignored; a change of resource names is answered with the current
// version. Every version is sent once per subscription.
func (s *Server) StreamSecrets(stream secretv3.SecretDiscoveryService_StreamSecretsServer) error {
	st := &streamState{id: s.streams.Add(1)}
	reqs := make(chan *discoveryv3.DiscoveryRequest)
	errc := make(chan error, 1)
	ctx := stream.Context()
	go func() {
		for {
			req, err := stream.Recv()
			if err != nil {
				errc <- err
				return
			}
			select {
			case reqs <- req:
			case <-ctx.Done():
				return
			}
		}
	}()
	for {
		cur, changed := s.current()
		if err := s.maybeSend(stream, st, cur); err != nil {
			return err
		}
		select {
		case req := <-reqs:
			if err := s.handle(st, req); err != nil {
				return err
			}
		case <-changed:
		case err := <-errc:
			return err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// handle applies one request to the stream's state.
func (s *Server) handle(st *streamState, req *discoveryv3.DiscoveryRequest) error {
	if t := req.GetTypeUrl(); t != "" && t != resource.SecretType {
		return status.Errorf(codes.InvalidArgument, "type_url %q: this is the SDS server, want %s", t, resource.SecretType)
	}
	if n := req.GetResponseNonce(); n != "" {
		if n != st.lastNonce {
			return nil // stale: a newer response is on its way
		}
		if req.GetErrorDetail() != nil {
			s.nacks.Add(1)
			s.log.Warn("sds NACK: the proxy rejected the secrets and keeps its previous ones", "stream", st.id,
				"resources", req.GetResourceNames(), "version", st.sent, "reason", req.GetErrorDetail().GetMessage())
		} else {
			s.acks.Add(1)
			s.log.Debug("sds ACK", "stream", st.id, "resources", req.GetResourceNames(), "version", req.GetVersionInfo())
		}
	}
	names := slices.Clone(req.GetResourceNames())
	slices.Sort(names)
	if !st.asked || !slices.Equal(names, st.names) {
		st.asked, st.names, st.sent = true, names, ""
	}
	return nil
}

// maybeSend sends the current version if the stream has subscribed and
// has not been sent it.
func (s *Server) maybeSend(stream secretv3.SecretDiscoveryService_StreamSecretsServer, st *streamState, cur *snapshot) error {
	if cur == nil || !st.asked || st.sent == cur.version {
		return nil
	}
	resp := &discoveryv3.DiscoveryResponse{VersionInfo: cur.version, TypeUrl: resource.SecretType}
	if len(st.names) == 0 {
		for _, name := range []string{RootSecret, WorkloadSecret} {
			resp.Resources = append(resp.Resources, cur.res[name])
		}
	}
	for _, name := range st.names {
		if a, ok := cur.res[name]; ok {
			resp.Resources = append(resp.Resources, a)
		}
	}
	st.sent = cur.version
	if len(resp.Resources) == 0 {
		return nil // only unknown names: nothing to say
	}
	st.nonce++
	st.lastNonce = strconv.Itoa(st.nonce)
	resp.Nonce = st.lastNonce
	return stream.Send(resp)
}
