package sds

import (
	"context"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	secretv3 "github.com/envoyproxy/go-control-plane/envoy/service/secret/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

const wait = 10 * time.Second

func secrets(v string) Secrets {
	return Secrets{Version: v, ChainPEM: []byte("chain-" + v), KeyPEM: []byte("key-" + v), RootPEM: []byte("root-" + v)}
}

func listen(t *testing.T) *Server {
	t.Helper()
	s, err := Listen(Options{SocketPath: filepath.Join(t.TempDir(), "run", "sds.sock")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

func client(t *testing.T, s *Server) secretv3.SecretDiscoveryServiceClient {
	t.Helper()
	conn, err := grpc.NewClient("unix://"+s.Path(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return secretv3.NewSecretDiscoveryServiceClient(conn)
}

// stream is one StreamSecrets subscription, as Envoy opens one per
// secret.
type stream struct {
	t     *testing.T
	s     secretv3.SecretDiscoveryService_StreamSecretsClient
	name  string
	resps chan *discoveryv3.DiscoveryResponse
}

func subscribe(t *testing.T, c secretv3.SecretDiscoveryServiceClient, name string) *stream {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	s, err := c.StreamSecrets(ctx)
	if err != nil {
		t.Fatal(err)
	}
	st := &stream{t: t, s: s, name: name, resps: make(chan *discoveryv3.DiscoveryResponse, 8)}
	go func() {
		for {
			r, err := s.Recv()
			if err != nil {
				close(st.resps)
				return
			}
			st.resps <- r
		}
	}()
	st.send("", "", nil)
	return st
}

func (st *stream) send(version, nonce string, nack *status.Status) {
	st.t.Helper()
	if err := st.s.Send(&discoveryv3.DiscoveryRequest{
		Node: &corev3.Node{Id: "sidecar~127.0.0.1~a.default~default.svc.cluster.local"}, TypeUrl: resource.SecretType,
		ResourceNames: []string{st.name}, VersionInfo: version, ResponseNonce: nonce, ErrorDetail: nack,
	}); err != nil {
		st.t.Fatal(err)
	}
}

// recv waits for a response and decodes its one secret.
func (st *stream) recv() (*discoveryv3.DiscoveryResponse, *tlsv3.Secret) {
	st.t.Helper()
	select {
	case r, ok := <-st.resps:
		if !ok {
			st.t.Fatal("stream closed")
		}
		if len(r.GetResources()) != 1 || r.GetTypeUrl() != resource.SecretType {
			st.t.Fatalf("response with %d resources of %s, want one secret", len(r.GetResources()), r.GetTypeUrl())
		}
		sec := &tlsv3.Secret{}
		if err := r.GetResources()[0].UnmarshalTo(sec); err != nil {
			st.t.Fatal(err)
		}
		if sec.GetName() != st.name {
			st.t.Fatalf("got secret %q on the %q stream", sec.GetName(), st.name)
		}
		return r, sec
	case <-time.After(wait):
		st.t.Fatalf("no %s response within %v", st.name, wait)
		return nil, nil
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond) // polling a counter under a deadline
	}
}

// TestStreamSecrets: a gRPC client subscribes to default and ROOTCA on
// two streams (as Envoy does), gets them inline once the first
// certificate is in, ACKs; a rotation pushes a new version on both; a
// NACK is counted and the next version still arrives.
func TestStreamSecrets(t *testing.T) {
	s := listen(t)
	c := client(t, s)
	def := subscribe(t, c, WorkloadSecret)
	root := subscribe(t, c, RootSecret)
	if err := s.Update(secrets("1")); err != nil {
		t.Fatal(err)
	}
	r, sec := def.recv()
	tc := sec.GetTlsCertificate()
	if r.GetVersionInfo() != "1" || string(tc.GetCertificateChain().GetInlineBytes()) != "chain-1" || string(tc.GetPrivateKey().GetInlineBytes()) != "key-1" {
		t.Errorf("default v%s: %v", r.GetVersionInfo(), tc)
	}
	def.send(r.GetVersionInfo(), r.GetNonce(), nil)
	rr, rsec := root.recv()
	if rr.GetVersionInfo() != "1" || string(rsec.GetValidationContext().GetTrustedCa().GetInlineBytes()) != "root-1" {
		t.Errorf("ROOTCA v%s: %v", rr.GetVersionInfo(), rsec.GetValidationContext())
	}
	root.send(rr.GetVersionInfo(), rr.GetNonce(), nil)
	waitFor(t, "two ACKs", func() bool { return s.ACKs() == 2 })

	// Rotation: both streams get version 2.
	if err := s.Update(secrets("2")); err != nil {
		t.Fatal(err)
	}
	r2, sec2 := def.recv()
	if r2.GetVersionInfo() != "2" || string(sec2.GetTlsCertificate().GetPrivateKey().GetInlineBytes()) != "key-2" || r2.GetNonce() == r.GetNonce() {
		t.Errorf("rotated default: version %s nonce %s", r2.GetVersionInfo(), r2.GetNonce())
	}
	rr2, _ := root.recv()
	if rr2.GetVersionInfo() != "2" {
		t.Errorf("rotated ROOTCA version %s", rr2.GetVersionInfo())
	}
	root.send("2", rr2.GetNonce(), nil)

	// NACK of version 2 on the default stream: counted, nothing resent.
	def.send("1", r2.GetNonce(), &status.Status{Code: 3, Message: "bad key"})
	waitFor(t, "the NACK", func() bool { return s.NACKs() == 1 })
	if s.ACKs() != 3 {
		t.Errorf("ACKs %d, want 3", s.ACKs())
	}
	// A stale nonce (the first response's) is ignored: no ACK counted.
	def.send("1", r.GetNonce(), nil)
	if err := s.Update(secrets("3")); err != nil {
		t.Fatal(err)
	}
	if r3, _ := def.recv(); r3.GetVersionInfo() != "3" {
		t.Errorf("after the NACK: version %s, want 3 (the NACKed version must not be resent)", r3.GetVersionInfo())
	}
	if s.ACKs() != 3 {
		t.Errorf("ACKs %d after a stale nonce, want 3", s.ACKs())
	}
}

// TestUnknownTypeAndNames: another type is refused; a stream that asks
// only for an unknown secret gets nothing, and asking for ROOTCA on it
// then answers.
func TestUnknownTypeAndNames(t *testing.T) {
	s := listen(t)
	if err := s.Update(secrets("7")); err != nil {
		t.Fatal(err)
	}
	c := client(t, s)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	bad, err := c.StreamSecrets(ctx)
	if err != nil {
		t.Fatal(err)
	}
	bad.Send(&discoveryv3.DiscoveryRequest{TypeUrl: resource.ClusterType, ResourceNames: []string{"x"}})
	if _, err := bad.Recv(); err == nil || !strings.Contains(err.Error(), "SDS server") {
		t.Errorf("a cluster request on SDS: %v", err)
	}
	st := subscribe(t, c, "nope")
	st.name = RootSecret
	st.send("", "", nil)
	if r, sec := st.recv(); r.GetVersionInfo() != "7" || string(sec.GetValidationContext().GetTrustedCa().GetInlineBytes()) != "root-7" {
		t.Errorf("ROOTCA after an unknown name: version %s", r.GetVersionInfo())
	}
}

// TestSocketPermissions: the socket is 0600 in a 0700 directory created
// for it; a directory open to others, a path that is not a socket and a
// path too long for sun_path are refused; a stale socket is replaced;
// Close removes the socket.
func TestSocketPermissions(t *testing.T) {
	s := listen(t)
	fi, err := os.Lstat(s.Path())
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Type() != fs.ModeSocket || fi.Mode().Perm() != 0o600 {
		t.Errorf("socket mode %v, want a socket of mode 0600", fi.Mode())
	}
	di, _ := os.Stat(filepath.Dir(s.Path()))
	if di.Mode().Perm() != 0o700 {
		t.Errorf("directory mode %v, want 0700", di.Mode().Perm())
	}
	s.Close()
	if _, err := os.Lstat(s.Path()); !os.IsNotExist(err) {
		t.Errorf("socket left after Close: %v", err)
	}

	base := t.TempDir()
	open := filepath.Join(base, "open")
	os.Mkdir(open, 0o755)
	os.Chmod(open, 0o755) // whatever the umask
	file := filepath.Join(base, "priv", "file")
	os.Mkdir(filepath.Dir(file), 0o700)
	os.WriteFile(file, nil, 0o600)
	for _, tc := range []struct{ name, path, want string }{
		{"dir_open_to_others", filepath.Join(open, "sds.sock"), "lets other users in"},
		{"not_a_socket", file, "not a socket"},
		{"too_long", filepath.Join(base, strings.Repeat("x", 120)), "at most 107"},
		{"empty", "", "empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Listen(Options{SocketPath: tc.path}); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Listen(%q) = %v, want an error containing %q", tc.path, err, tc.want)
			}
		})
	}

	stale := filepath.Join(base, "priv", "stale.sock")
	ln, err := net.Listen("unix", stale)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	s2, err := Listen(Options{SocketPath: stale})
	if err != nil {
		t.Fatalf("a stale socket was not replaced: %v", err)
	}
	s2.Close()
}
