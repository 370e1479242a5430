package xdstest

import (
	"fmt"
	"maps"
	"slices"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
)

// ADS is a state-of-the-world ADS client that behaves like Envoy: it asks
// for all clusters and listeners (wildcard), then for the endpoints of
// its EDS clusters and the route configurations its listeners name; it
// ACKs each response with the response's version and nonce and the names
// it subscribes to, and NACKs with the last accepted version.
type ADS struct {
	*core
	stream discoveryv3.AggregatedDiscoveryService_StreamAggregatedResourcesClient
}

// NewADS opens an ADS stream and sends the initial CDS and LDS requests.
// Close it when done.
func NewADS(o Options) (*ADS, error) {
	c, ctx, err := newCore(o)
	if err != nil {
		return nil, err
	}
	stream, err := discoveryv3.NewAggregatedDiscoveryServiceClient(c.conn).StreamAggregatedResources(ctx)
	if err != nil {
		c.abort()
		return nil, fmt.Errorf("xdstest: opening ADS stream to %s: %w", o.Address, err)
	}
	a := &ADS{core: c, stream: stream}
	// Envoy sends the node on the first request of a stream.
	startStream(c, stream, []*discoveryv3.DiscoveryRequest{
		{Node: o.Node, TypeUrl: ClusterType},
		{TypeUrl: ListenerType},
	}, a.handle)
	return a, nil
}

// handle applies (or rejects) one response and sends the ACK or NACK and
// any subscription change that follows from it.
func (a *ADS) handle(resp *discoveryv3.DiscoveryResponse) error {
	r := newResponse(resp.GetTypeUrl(), resp.GetVersionInfo(), resp.GetNonce(), nil, proto.Size(resp))
	values := make([][]byte, len(resp.GetResources()))
	for i, res := range resp.GetResources() {
		values[i] = res.GetValue()
	}
	refs, rejectErr := a.check(r, values, nil)
	return respond(a.core, r, rejectErr, answer[*discoveryv3.DiscoveryRequest]{
		// A NACK carries the last accepted version.
		nack: func(ts *TypeState, err error) *discoveryv3.DiscoveryRequest {
			return &discoveryv3.DiscoveryRequest{
				TypeUrl: r.TypeURL, VersionInfo: ts.Version, ResponseNonce: r.Nonce, ResourceNames: ts.Requested,
				ErrorDetail: &rpcstatus.Status{Code: int32(codes.InvalidArgument), Message: err.Error()},
			}
		},
		ack: func(ts *TypeState) *discoveryv3.DiscoveryRequest {
			a.apply(ts, r, refs)
			return &discoveryv3.DiscoveryRequest{
				TypeUrl: r.TypeURL, VersionInfo: r.Version, ResponseNonce: r.Nonce, ResourceNames: ts.Requested,
			}
		},
		resubscribe: a.resubscribe,
	}, a.stream.Send)
}

// apply installs an accepted response: the response holds every resource
// of the type (LDS, CDS) or every requested one that exists (EDS, RDS).
// a.mu is held.
func (a *ADS) apply(ts *TypeState, r *Response, refs map[string][]string) {
	ts.Names = make(map[string]string, len(r.Names))
	for _, n := range r.Names {
		ts.Names[n] = r.Version
	}
	ts.refs = refs
	if a.o.KeepResources {
		ts.Resources = r.Resources
	}
}

// resubscribe returns the request that changes the names of a dependent
// type, or nil if they did not change. a.mu is held.
func (a *ADS) resubscribe(url string, names []string) *discoveryv3.DiscoveryRequest {
	ts := a.st.typ(url)
	if slices.Equal(ts.Requested, names) && (ts.asked || len(names) == 0) {
		return nil
	}
	ts.Requested = names
	ts.asked = true
	for n := range maps.Keys(ts.Names) {
		if _, ok := slices.BinarySearch(names, n); !ok {
			delete(ts.Names, n)
			delete(ts.Resources, n)
		}
	}
	return &discoveryv3.DiscoveryRequest{TypeUrl: url, VersionInfo: ts.Version, ResponseNonce: ts.nonce, ResourceNames: names}
}
