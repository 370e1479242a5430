// Package httpfilter defines what an HTTP filter sees of a request (Stream)
// and the contract between the HTTP connection manager and its filters.
//
// The connection manager decodes a request's headers, picks its route, then
// runs the listener's http_filters in order on the stream's own goroutine.
// Each filter may read and change the request, wrap the ResponseWriter to see
// or change the response, or answer the request itself. The last filter is
// always the router, which forwards the request upstream and streams the
// response back. Because every stream has its own goroutine, a filter may
// block (for example to wait for an external authorization service); it
// must then respect the stream's deadlines.
package httpfilter

import (
	"fmt"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/weftmesh/weft/internal/proxy/router"
)

var _ router.FilterConfigParser = (*Registry)(nil)

// Status says whether the chain continues after a filter.
type Status uint8

const (
	// Continue passes the stream to the next filter.
	Continue Status = iota
	// Stop ends the chain: the filter has sent (or is sending) the
	// response itself.
	Stop
)

// Filter is one HTTP filter instance configured for a listener. The same
// instance serves every stream concurrently, so it keeps per-stream state
// in the Stream, not in itself.
type Filter interface {
	// DecodeHeaders runs once the request headers are complete and the
	// route is chosen (s.Route may be nil when no route matched and the
	// filter runs before the connection manager's 404). It returns Stop
	// after writing a response through s (SendLocalReply or s.W), Continue
	// otherwise.
	DecodeHeaders(s *Stream) Status
}

// StreamObserver is implemented by filters that record a stream once it is
// complete, as Envoy's filters that add themselves as access log handlers
// do (the istio.stats filter). The connection manager calls OnStreamDone
// for every stream of its chain, also for streams answered before the
// filter ran (no route, a local reply), on the stream's goroutine, after
// the response is complete and s.Info is final. It must not keep s.
type StreamObserver interface {
	OnStreamDone(s *Stream)
}

// Factory builds a filter from its typed configuration.
type Factory func(cfg proto.Message, deps Deps) (Filter, error)

// Deps are what filters may use from the proxy; the server provides them.
type Deps any

// Registry maps a filter configuration's type to its factory. The server
// builds one at start-up; it holds no global state.
type Registry struct {
	byType map[string]registration
}

type registration struct {
	newConfig func() proto.Message
	factory   Factory
	terminal  bool
	// perRoute parses the type's per-route configuration (nil: the type
	// is not accepted in typed_per_filter_config).
	perRoute PerRouteFactory
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{byType: map[string]registration{}} }

// Register adds the factory for configurations of msg's type. terminal marks
// the router (a chain must end with a terminal filter and have no other).
func (r *Registry) Register(msg proto.Message, terminal bool, f Factory) {
	name := string(msg.ProtoReflect().Descriptor().FullName())
	reg := r.byType[name]
	reg.newConfig = func() proto.Message { return msg.ProtoReflect().New().Interface() }
	reg.factory, reg.terminal = f, terminal
	r.byType[name] = reg
}

// Build unpacks cfg and builds the filter. It reports whether the filter is
// terminal.
func (r *Registry) Build(cfg *anypb.Any, deps Deps) (Filter, bool, error) {
	name := string(cfg.MessageName())
	reg, ok := r.byType[name]
	if !ok || reg.factory == nil {
		return nil, false, fmt.Errorf("HTTP filter type %s is not supported by weft-proxy", name)
	}
	msg := reg.newConfig()
	if err := cfg.UnmarshalTo(msg); err != nil {
		return nil, false, fmt.Errorf("decode %s: %w", name, err)
	}
	f, err := reg.factory(msg, deps)
	if err != nil {
		return nil, false, fmt.Errorf("%s: %w", name, err)
	}
	return f, reg.terminal, nil
}

// PerRouteFactory parses a per-route configuration (typed_per_filter_config)
// into the value filters find in Stream.FilterConfig. It runs when a route
// table is compiled; the value it returns must be safe for concurrent use.
type PerRouteFactory func(cfg proto.Message) (any, error)

// RegisterPerRoute accepts configurations of msg's type in
// typed_per_filter_config and parses them with f. The type need not be a
// filter type registered with Register (Envoy filters may have a distinct
// per-route message).
func (r *Registry) RegisterPerRoute(msg proto.Message, f PerRouteFactory) {
	name := string(msg.ProtoReflect().Descriptor().FullName())
	reg := r.byType[name]
	if reg.newConfig == nil {
		reg.newConfig = func() proto.Message { return msg.ProtoReflect().New().Interface() }
	}
	reg.perRoute = f
	r.byType[name] = reg
}

// ParsePerRouteConfig implements router.FilterConfigParser: it unpacks cfg
// and parses it with the factory RegisterPerRoute gave for its type. known
// is false when no factory takes the type.
func (r *Registry) ParsePerRouteConfig(cfg *anypb.Any) (parsed any, known bool, err error) {
	name := string(cfg.MessageName())
	reg, ok := r.byType[name]
	if !ok || reg.perRoute == nil {
		return nil, false, nil
	}
	msg := reg.newConfig()
	if err := cfg.UnmarshalTo(msg); err != nil {
		return nil, true, fmt.Errorf("decode %s: %w", name, err)
	}
	v, err := reg.perRoute(msg)
	if err != nil {
		return nil, true, fmt.Errorf("%s: %w", name, err)
	}
	return v, true, nil
}

// Clone returns a registry with the same registrations, to which more can
// be added without changing r (the server adds per-connection-manager
// filters, such as RBAC with its stats scope, to a clone).
func (r *Registry) Clone() *Registry {
	c := &Registry{byType: make(map[string]registration, len(r.byType)+1)}
	for k, v := range r.byType {
		c.byType[k] = v
	}
	return c
}
