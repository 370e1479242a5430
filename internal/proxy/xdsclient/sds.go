package xdsclient

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"slices"
	"sort"
	"sync"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	secretv3 "github.com/envoyproxy/go-control-plane/envoy/service/secret/v3"
	statuspb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/weftmesh/weft/internal/proxy/bootstrap"
)

// SecretType is the type URL of SDS secrets.
const SecretType = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"

// SecretOptions configure a SecretClient.
type SecretOptions struct {
	Node *corev3.Node
	// Target names the SDS server in logs (its cluster's name).
	Target string
	// Dial opens a connection to the SDS server (a Unix socket for
	// Istio's sds-grpc cluster).
	Dial func(ctx context.Context) (net.Conn, error)
	// Apply receives every response: the secrets that decoded and passed
	// validation by name, and the ones that did not. It returns the
	// secrets it could not apply; the client NACKs the response with every
	// failure's reason. Called on Run's goroutine, one response at a time.
	Apply   func(secrets map[string]*tlsv3.Secret, invalid map[string]error) map[string]error
	Backoff Backoff
	Logger  *slog.Logger
}

// SecretClient is an SDS client over one SecretDiscoveryService stream
// (Envoy's api_config_source GRPC form of sds_config): it subscribes to
// the secret names SetNames gives, ACKs and NACKs, and reconnects with
// back-off. Create it with NewSecretClient and run it with Run.
type SecretClient struct {
	o       SecretOptions
	mu      sync.Mutex
	names   []string
	changed chan struct{} // capacity 1: a pending SetNames
}

// NewSecretClient returns a client; it does nothing until Run.
func NewSecretClient(o SecretOptions) (*SecretClient, error) {
	if o.Dial == nil || o.Apply == nil {
		return nil, errors.New("xdsclient: SecretOptions.Dial and Apply are required")
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	o.Backoff = o.Backoff.withDefaults()
	return &SecretClient{o: o, changed: make(chan struct{}, 1)}, nil
}

// SetNames sets the subscription (the secrets the proxy's TLS contexts
// name). Safe to call from any goroutine.
func (c *SecretClient) SetNames(names []string) {
	names = slices.Clone(names)
	sort.Strings(names)
	names = slices.Compact(names)
	c.mu.Lock()
	same := slices.Equal(names, c.names)
	c.names = names
	c.mu.Unlock()
	if !same {
		select {
		case c.changed <- struct{}{}:
		default:
		}
	}
}

func (c *SecretClient) currentNames() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.names
}

// Run keeps a stream to the SDS server until ctx ends, reconnecting after a
// back-off; the secrets already applied stay in force meanwhile.
func (c *SecretClient) Run(ctx context.Context) error {
	failures := 0
	for {
		progressed, err := c.attempt(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if progressed {
			failures = 0
		}
		wait := c.o.Backoff.next(failures)
		failures++
		c.o.Logger.Warn("sds: stream ended; keeping the secrets in force", "target", c.o.Target, "err", err, "retry_in", wait.Round(time.Millisecond))
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

type sdsStream struct {
	c       *SecretClient
	stream  grpc.BidiStreamingClient[discoveryv3.DiscoveryRequest, discoveryv3.DiscoveryResponse]
	version string
	nonce   string
	names   []string
}

func (c *SecretClient) attempt(ctx context.Context) (bool, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cc, err := grpc.NewClient("passthrough:///sds",
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return c.o.Dial(ctx) }),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(math.MaxInt32)),
	)
	if err != nil {
		return false, fmt.Errorf("SDS server %s: %w", c.o.Target, err)
	}
	defer cc.Close()
	st, err := secretv3.NewSecretDiscoveryServiceClient(cc).StreamSecrets(ctx)
	if err != nil {
		return false, fmt.Errorf("SDS server %s: opening the stream: %w", c.o.Target, err)
	}
	s := &sdsStream{c: c, stream: st}
	in := make(chan received, 1)
	go func() {
		for {
			resp, err := st.Recv()
			select {
			case in <- received{resp, err}:
			case <-ctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()
	progressed := false
	if err := s.subscribe(); err != nil {
		return false, err
	}
	for {
		select {
		case <-ctx.Done():
			return progressed, ctx.Err()
		case <-c.changed:
			if err := s.subscribe(); err != nil {
				return progressed, err
			}
		case r := <-in:
			if r.err != nil {
				if errors.Is(r.err, io.EOF) {
					r.err = errors.New("the SDS server closed the stream")
				}
				return progressed, r.err
			}
			progressed = true
			if err := s.handle(r.resp); err != nil {
				return progressed, err
			}
		}
	}
}

// subscribe sends the current names when they differ from the stream's
// subscription (nothing is requested before there is a name: an empty
// request would be a wildcard).
func (s *sdsStream) subscribe() error {
	names := s.c.currentNames()
	if len(names) == 0 && s.names == nil || s.names != nil && slices.Equal(names, s.names) {
		return nil
	}
	s.names = names
	return s.send(nil)
}

func (s *sdsStream) send(nack *statuspb.Status) error {
	err := s.stream.Send(&discoveryv3.DiscoveryRequest{
		Node:          s.c.o.Node,
		TypeUrl:       SecretType,
		VersionInfo:   s.version,
		ResourceNames: s.names,
		ResponseNonce: s.nonce,
		ErrorDetail:   nack,
	})
	if err != nil {
		return fmt.Errorf("sending the SDS request: %w", err)
	}
	return nil
}

// handle decodes and applies one response, then ACKs or NACKs it.
func (s *sdsStream) handle(resp *discoveryv3.DiscoveryResponse) error {
	secrets, invalid := DecodeSecrets(resp)
	errs := s.c.o.Apply(secrets, invalid)
	for n, e := range invalid {
		if errs == nil {
			errs = map[string]error{}
		}
		errs[n] = e
	}
	s.nonce = resp.GetNonce()
	if len(errs) == 0 {
		s.version = resp.GetVersionInfo()
		return s.send(nil)
	}
	detail := errorDetail(errs)
	s.c.o.Logger.Warn("sds: rejected secrets; the previous ones stay in force", "target", s.c.o.Target, "errors", detail)
	return s.send(&statuspb.Status{Code: int32(codes.InvalidArgument), Message: detail})
}

// DecodeSecrets decodes the secrets of an SDS response, each validated
// against the supported subset (bootstrap.ValidateResource); the ones
// that fail are returned in invalid with the reason.
func DecodeSecrets(resp *discoveryv3.DiscoveryResponse) (map[string]*tlsv3.Secret, map[string]error) {
	out := map[string]*tlsv3.Secret{}
	invalid := map[string]error{}
	for i, a := range resp.GetResources() {
		if a.GetTypeUrl() == resourceWrapperType {
			var r discoveryv3.Resource
			if err := a.UnmarshalTo(&r); err != nil {
				invalid[fmt.Sprintf("resources[%d]", i)] = fmt.Errorf("secret resources[%d]: cannot decode the resource wrapper: %w", i, err)
				continue
			}
			a = r.GetResource()
		}
		var sec tlsv3.Secret
		if a.GetTypeUrl() != SecretType {
			invalid[fmt.Sprintf("resources[%d]", i)] = fmt.Errorf("secret resources[%d]: resource of type %s in an SDS response", i, a.GetTypeUrl())
			continue
		}
		if err := a.UnmarshalTo(&sec); err != nil || sec.GetName() == "" {
			invalid[fmt.Sprintf("resources[%d]", i)] = fmt.Errorf("secret resources[%d]: cannot decode, or no name: %v", i, err)
			continue
		}
		path := fmt.Sprintf("secret %q", sec.GetName())
		if err := bootstrap.ValidateResource(&sec, path); err != nil {
			invalid[sec.GetName()] = err
			continue
		}
		out[sec.GetName()] = &sec
	}
	return out, invalid
}
