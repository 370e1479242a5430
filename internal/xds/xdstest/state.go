// Package xdstest provides xDS clients that behave like Envoy, for tests
// and as a load generator: an ADS state-of-the-world client (ADS) and an
// incremental one (Delta). Both subscribe to clusters and listeners
// (wildcard), follow them to endpoints and routes by name, ACK every
// response with its version and nonce, and NACK what a Reject hook
// refuses. It also has builders for small test resources and a synthetic
// mesh (snapshot and generator) sized like weft's benchmark.
package xdstest

import (
	"context"
	"errors"
	"maps"
	"slices"
	"sync"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
)

// Type URLs, for brevity in tests.
const (
	ClusterType  = resourcev3.ClusterType
	EndpointType = resourcev3.EndpointType
	ListenerType = resourcev3.ListenerType
	RouteType    = resourcev3.RouteType
)

// Options configure a client.
type Options struct {
	// Address is the server's host:port; used when Conn is nil.
	Address string
	// Conn is a connection to share (the client does not close it); nil:
	// the client dials Address itself.
	Conn *grpc.ClientConn
	// Node is sent on the stream's first request (NodeFor builds one).
	Node *corev3.Node
	// KeepResources decodes every resource and keeps the messages
	// (State.Types[url].Resources). Without it the client reads only
	// names and references: the load-generator mode.
	KeepResources bool
	// Reject is called for each response before it is applied; an error
	// NACKs the response with the error's message and the client keeps its
	// previous resources, as Envoy does with an invalid update. Called on
	// the client's goroutine.
	Reject func(*Response) error
	// OnResponse is called for each response once it is decoded and
	// judged (Response.NACKed), before the client's state shows it and
	// before the ACK or NACK is sent; on the client's goroutine.
	OnResponse func(*Response)
}

// Response is one response as the client saw it.
type Response struct {
	TypeURL string
	// Version is version_info (SotW) or system_version_info (delta).
	Version string
	Nonce   string
	// Names are the resources in the response (for delta: added or
	// changed); Removed are delta's removed names.
	Names   []string
	Removed []string
	// Bytes is the encoded size of the response message.
	Bytes int
	// Resources are the decoded messages by name (KeepResources only).
	Resources map[string]proto.Message
	Received  time.Time
	// NACKed is set when the response is rejected.
	NACKed bool
}

// TypeState is what a client holds for one type.
type TypeState struct {
	// Version is the last accepted version.
	Version   string
	Responses int
	ACKs      int
	NACKs     int
	LastNACK  string
	Bytes     int64
	// Names maps the current resources to their version (SotW: the
	// response's version; delta: the resource's).
	Names map[string]string
	// Resources holds the messages (KeepResources only).
	Resources map[string]proto.Message
	// Requested are the names subscribed to (EDS and RDS), sorted.
	Requested []string

	refs  map[string][]string // resource name → names it refers to
	nonce string
	asked bool // the type was requested on the stream
}

// State is a client's view of its configuration.
type State struct {
	Types map[string]*TypeState
	// Err is the stream's error once it ended.
	Err error
}

// Type returns the state of a type (an empty one if nothing happened).
func (s *State) Type(url string) *TypeState {
	if ts := s.Types[url]; ts != nil {
		return ts
	}
	return &TypeState{}
}

// Synced reports whether the client has its whole configuration, the way
// Envoy finishes warming: clusters and listeners received, and every
// endpoint assignment and route configuration they name received too.
func (s *State) Synced() bool {
	for _, url := range []string{ClusterType, ListenerType} {
		if s.Type(url).ACKs == 0 {
			return false
		}
	}
	for _, url := range []string{EndpointType, RouteType} {
		ts := s.Type(url)
		for _, n := range ts.Requested {
			if _, ok := ts.Names[n]; !ok {
				return false
			}
		}
	}
	return true
}

func (s *State) typ(url string) *TypeState {
	ts := s.Types[url]
	if ts == nil {
		ts = &TypeState{Names: map[string]string{}, refs: map[string][]string{}}
		s.Types[url] = ts
	}
	return ts
}

// core is the state and waiting shared by both clients.
type core struct {
	o       Options
	conn    *grpc.ClientConn
	ownConn bool
	cancel  context.CancelFunc

	mu      sync.Mutex
	st      State
	changed chan struct{} // closed and replaced on every change
	done    chan struct{} // closed when the receive loop ends
}

func newCore(o Options) (*core, context.Context, error) {
	if o.Node == nil {
		return nil, nil, errors.New("xdstest: Options.Node is required")
	}
	c := &core{o: o, conn: o.Conn, changed: make(chan struct{}), done: make(chan struct{}),
		st: State{Types: map[string]*TypeState{}}}
	if c.conn == nil {
		conn, err := Dial(o.Address)
		if err != nil {
			return nil, nil, err
		}
		c.conn, c.ownConn = conn, true
	}
	ctx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	return c, ctx, nil
}

// Dial connects to an xDS server without TLS, with no limit on the size
// of the responses (a mesh's route configuration exceeds gRPC's 4 MiB
// default).
func Dial(address string) (*grpc.ClientConn, error) {
	return grpc.NewClient(address,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(1<<30)),
		grpc.WithSharedWriteBuffer(true))
}

// abort releases what newCore acquired, for a client that failed to
// start.
func (c *core) abort() {
	c.cancel()
	if c.ownConn {
		_ = c.conn.Close()
	}
}

// notify wakes waiters; c.mu is held.
func (c *core) notify() {
	close(c.changed)
	c.changed = make(chan struct{})
}

// finish records the stream's end.
func (c *core) finish(err error) {
	c.mu.Lock()
	c.st.Err = err
	c.notify()
	c.mu.Unlock()
	close(c.done)
}

// Wait blocks until cond holds (called under the client's lock, with
// state it must not keep), the stream ends, or ctx is done.
func (c *core) Wait(ctx context.Context, cond func(*State) bool) error {
	for {
		c.mu.Lock()
		ok, err, ch := cond(&c.st), c.st.Err, c.changed
		c.mu.Unlock()
		if ok {
			return nil
		}
		if err != nil {
			return err
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// WaitSynced waits until State.Synced.
func (c *core) WaitSynced(ctx context.Context) error {
	return c.Wait(ctx, (*State).Synced)
}

// Read calls f with the state under the client's lock; f must not keep
// it.
func (c *core) Read(f func(*State)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	f(&c.st)
}

// Err returns the stream's error once it ended, else nil.
func (c *core) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.st.Err
}

// Close ends the stream and waits for the client's goroutine.
func (c *core) Close() error {
	c.cancel()
	<-c.done
	if c.ownConn {
		return c.conn.Close()
	}
	return nil
}

// decodeAll decodes a response's resources into r.
func (c *core) decodeAll(r *Response, typeURL string, values [][]byte) (map[string][]string, error) {
	refs := make(map[string][]string, len(values))
	if c.o.KeepResources {
		r.Resources = make(map[string]proto.Message, len(values))
	}
	r.Names = make([]string, 0, len(values))
	for _, v := range values {
		d, err := decode(typeURL, v, c.o.KeepResources)
		if err != nil {
			return nil, err
		}
		r.Names = append(r.Names, d.name)
		if d.refs != nil {
			refs[d.name] = d.refs
		}
		if d.msg != nil {
			r.Resources[d.name] = d.msg
		}
	}
	return refs, nil
}

// follow returns the names the resources of ts refer to, sorted and
// unique.
func follow(ts *TypeState) []string {
	set := map[string]struct{}{}
	for _, refs := range ts.refs {
		for _, r := range refs {
			set[r] = struct{}{}
		}
	}
	return slices.Sorted(maps.Keys(set))
}

// dependent is the type a type's references name.
func dependent(url string) (string, bool) {
	switch url {
	case ClusterType:
		return EndpointType, true
	case ListenerType:
		return RouteType, true
	}
	return "", false
}

// NodeFor returns a node as Istio's agent sends it: the id, the string
// metadata fields, and the labels under LABELS.
func NodeFor(id string, labels, meta map[string]string) *corev3.Node {
	fields := map[string]*structpb.Value{}
	for k, v := range meta {
		fields[k] = structpb.NewStringValue(v)
	}
	if len(labels) > 0 {
		lf := map[string]*structpb.Value{}
		for k, v := range labels {
			lf[k] = structpb.NewStringValue(v)
		}
		fields["LABELS"] = structpb.NewStructValue(&structpb.Struct{Fields: lf})
	}
	return &corev3.Node{Id: id, Cluster: "weft", Metadata: &structpb.Struct{Fields: fields}}
}
