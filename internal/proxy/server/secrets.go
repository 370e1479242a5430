package server

import (
	"context"
	"fmt"
	"net"
	"sort"
	"sync"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/proto"

	"github.com/weftmesh/weft/internal/proxy/tlsctx"
	"github.com/weftmesh/weft/internal/proxy/upstream"
	"github.com/weftmesh/weft/internal/proxy/upstream/lb"
	"github.com/weftmesh/weft/internal/proxy/xdsclient"
)

// secretManager runs one SDS stream per SDS server (a static cluster named
// by sds_config.api_config_source), subscribed to the secrets the TLS
// contexts of the listeners and clusters name, and publishes what arrives
// into the server's tlsctx.Store. As in Envoy, listeners and clusters that
// reference a missing secret warm until it arrives.
type secretManager struct {
	s *Server

	mu      sync.Mutex
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	sources map[string]*xdsclient.SecretClient // by cluster name
	// want is the last subscription, by cluster, kept until start.
	want map[string][]string
}

func newSecretManager(s *Server) *secretManager {
	return &secretManager{s: s, sources: map[string]*xdsclient.SecretClient{}, want: map[string][]string{}}
}

// checkRefs reports a reference to an SDS server that is not a static
// cluster of the bootstrap (Envoy requires one), or to ADS without
// dynamic_resources.
func (m *secretManager) checkRefs(refs []tlsctx.SecretRef) error {
	for _, r := range refs {
		name := r.Cluster()
		if name == "" {
			if m.s.o.Bootstrap.GetDynamicResources().GetAdsConfig() == nil {
				return fmt.Errorf("secret %q: sds_config ads {} needs dynamic_resources.ads_config", r.Name)
			}
			continue
		}
		if !m.s.isStaticCluster(name) {
			return fmt.Errorf("secret %q: sds_config cluster %q is not a static cluster of the bootstrap", r.Name, name)
		}
		if cl := m.s.clusters.Get(name); cl == nil || cl.Protocol() != upstream.HTTP2 {
			return fmt.Errorf("secret %q: sds_config cluster %q must speak HTTP/2 (gRPC): set typed_extension_protocol_options explicit_http_config http2_protocol_options", r.Name, name)
		}
	}
	return nil
}

// subscribe sets the secrets wanted from each SDS server (every other
// subscription is dropped) and starts streams to new servers once the
// manager runs.
func (m *secretManager) subscribe(refs []tlsctx.SecretRef) {
	want := map[string][]string{}
	for _, r := range refs {
		if c := r.Cluster(); c != "" {
			want[c] = append(want[c], r.Name)
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.want = want
	if m.ctx == nil {
		return
	}
	m.applyLocked()
}

func (m *secretManager) applyLocked() {
	for cluster, names := range m.want {
		src := m.sources[cluster]
		if src == nil {
			var err error
			src, err = m.newSource(cluster)
			if err != nil {
				m.s.log.Warn("sds: cannot start the stream", "cluster", cluster, "err", err)
				continue
			}
			m.sources[cluster] = src
			m.wg.Add(1)
			go func() {
				defer m.wg.Done()
				src.Run(m.ctx)
			}()
		}
		src.SetNames(names)
	}
	for cluster, src := range m.sources {
		if _, ok := m.want[cluster]; !ok {
			src.SetNames(nil)
		}
	}
}

func (m *secretManager) newSource(cluster string) (*xdsclient.SecretClient, error) {
	return xdsclient.NewSecretClient(xdsclient.SecretOptions{
		Node:    m.s.xdsNode(),
		Target:  cluster,
		Dial:    func(ctx context.Context) (net.Conn, error) { return m.s.dialStatic(ctx, cluster) },
		Apply:   m.s.applySecrets,
		Backoff: m.s.o.XDSBackoff,
		Logger:  m.s.log,
	})
}

// start runs the streams (Start).
func (m *secretManager) start() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.ctx, m.cancel = context.WithCancel(context.Background())
	m.applyLocked()
}

// stop ends the streams; the secrets in force stay.
func (m *secretManager) stop() {
	m.mu.Lock()
	cancel := m.cancel
	m.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	m.wg.Wait()
}

// applySecrets compiles and publishes secrets from SDS (or ADS); it
// returns the ones it rejected with the reason (NACK). Listeners and
// clusters warming for a secret that arrived are activated.
func (s *Server) applySecrets(secrets map[string]*tlsv3.Secret, _ map[string]error) map[string]error {
	errs := s.compileSecrets(secrets)
	if s.dyn != nil {
		s.dyn.secretsChanged()
	}
	return errs
}

// compileSecrets compiles and publishes secrets; it returns the rejected
// ones. A rejected secret keeps its previous version.
func (s *Server) compileSecrets(secrets map[string]*tlsv3.Secret) map[string]error {
	errs := map[string]error{}
	names := make([]string, 0, len(secrets))
	for n := range secrets {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		sec, err := tlsctx.CompileSecret(secrets[n])
		if err != nil {
			errs[n] = fmt.Errorf("secret %q: %w", n, err)
			continue
		}
		s.secrets.Set(n, sec)
		s.secretDump.record(n, secrets[n])
	}
	return errs
}

// dialStatic connects to a host of a static cluster (a config source).
func (s *Server) dialStatic(ctx context.Context, cluster string) (net.Conn, error) {
	cl := s.clusters.Get(cluster)
	if cl == nil {
		return nil, fmt.Errorf("cluster %q is gone", cluster)
	}
	h := cl.Choose(&lb.Context{})
	if h == nil {
		return nil, fmt.Errorf("cluster %q has no healthy host", cluster)
	}
	return upstream.DialHost(ctx, s.o.Dial, h.Address())
}

func (s *Server) isStaticCluster(name string) bool {
	for _, c := range s.o.Bootstrap.GetStaticResources().GetClusters() {
		if c.GetName() == name {
			return true
		}
	}
	return false
}

// missingSecrets returns the names of refs not in the store.
func (s *Server) missingSecrets(refs []tlsctx.SecretRef) []string {
	var out []string
	for _, r := range refs {
		if s.secrets.Secret(r.Name) == nil {
			out = append(out, r.Name)
		}
	}
	return out
}

// listenerSecretRefs returns the SDS secrets of bl's TLS chains.
func listenerSecretRefs(bl *builtListener) []tlsctx.SecretRef {
	var out []tlsctx.SecretRef
	for _, c := range bl.built {
		if c.tls != nil {
			out = append(out, c.tls.SecretRefs()...)
		}
	}
	return out
}

// staticSecretRefs returns the SDS secrets the bootstrap's static
// listeners and clusters name.
func (s *Server) staticSecretRefs() []tlsctx.SecretRef {
	var out []tlsctx.SecretRef
	for _, bl := range s.static {
		out = append(out, listenerSecretRefs(bl)...)
	}
	for _, c := range s.o.Bootstrap.GetStaticResources().GetClusters() {
		out = append(out, upstream.TransportSecretRefs(c)...)
	}
	return out
}

// serveStatic serves the bootstrap's listeners. A listener whose TLS
// contexts name SDS secrets that have not arrived warms: it starts
// accepting once they are all present (Envoy's init manager). The
// returned channel (nil when nothing waits) is closed once every static
// listener serves.
func (s *Server) serveStatic() <-chan struct{} {
	var pending []*builtListener
	for _, bl := range s.static {
		if len(s.missingSecrets(listenerSecretRefs(bl))) == 0 {
			s.serve(bl.sock)
		} else {
			pending = append(pending, bl)
		}
	}
	if len(pending) == 0 {
		return nil
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for len(pending) > 0 {
			changed := s.secrets.Changed()
			rest := pending[:0]
			for _, bl := range pending {
				if len(s.missingSecrets(listenerSecretRefs(bl))) == 0 {
					s.serve(bl.sock)
				} else {
					rest = append(rest, bl)
				}
			}
			pending = rest
			if len(pending) == 0 {
				return
			}
			select {
			case <-changed:
			case <-s.stopCtx.Done():
				return
			}
		}
	}()
	return done
}

// xdsNode is the node sent on xDS streams: the bootstrap's, with
// user_agent_name "weft-proxy" and the version, which Envoy fills in the
// same way (so that control planes and `weft proxy-status` see what
// answers them).
func (s *Server) xdsNode() *corev3.Node {
	n, _ := proto.Clone(s.o.Bootstrap.GetNode()).(*corev3.Node)
	if n == nil {
		n = &corev3.Node{}
	}
	if n.UserAgentName == "" {
		n.UserAgentName = "weft-proxy"
	}
	if n.UserAgentVersionType == nil {
		n.UserAgentVersionType = &corev3.Node_UserAgentVersion{UserAgentVersion: Version}
	}
	return n
}
