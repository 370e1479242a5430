package xdstest

import (
	"fmt"
	"maps"
	"slices"
	"time"

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
	c.mu.Lock()
	c.st.typ(ClusterType).asked = true
	c.st.typ(ListenerType).asked = true
	c.mu.Unlock()
	// Envoy sends the node on the first request of a stream.
	first := []*discoveryv3.DiscoveryRequest{
		{Node: o.Node, TypeUrl: ClusterType},
		{TypeUrl: ListenerType},
	}
	for _, req := range first {
		// A failed send means the stream ended: the receive loop reads
		// why (for example a refused node) and Wait reports it.
		if err := stream.Send(req); err != nil {
			break
		}
	}
	go a.run()
	return a, nil
}

// drain reads a cancelled stream to its end.
func (a *ADS) drain() {
	for {
		if _, err := a.stream.Recv(); err != nil {
			a.finish(err)
			return
		}
	}
}

func (a *ADS) run() {
	for {
		resp, err := a.stream.Recv()
		if err != nil {
			a.finish(err)
			return
		}
		if err := a.handle(resp); err != nil {
			a.cancel()
			a.drain()
			return
		}
	}
}

// handle applies (or rejects) one response and sends the ACK or NACK and
// any subscription change that follows from it.
func (a *ADS) handle(resp *discoveryv3.DiscoveryResponse) error {
	r := &Response{TypeURL: resp.GetTypeUrl(), Version: resp.GetVersionInfo(), Nonce: resp.GetNonce(),
		Bytes: proto.Size(resp), Received: time.Now()}
	values := make([][]byte, len(resp.GetResources()))
	for i, res := range resp.GetResources() {
		values[i] = res.GetValue()
	}
	refs, rejectErr := a.decodeAll(r, r.TypeURL, values)
	if rejectErr == nil && a.o.Reject != nil {
		rejectErr = a.o.Reject(r)
	}
	r.NACKed = rejectErr != nil
	if a.o.OnResponse != nil {
		a.o.OnResponse(r)
	}
	a.mu.Lock()
	ts := a.st.typ(r.TypeURL)
	ts.Responses++
	ts.Bytes += int64(r.Bytes)
	ts.nonce = r.Nonce
	var out []*discoveryv3.DiscoveryRequest
	if rejectErr != nil {
		ts.NACKs++
		ts.LastNACK = rejectErr.Error()
		out = append(out, &discoveryv3.DiscoveryRequest{
			TypeUrl: r.TypeURL, VersionInfo: ts.Version, ResponseNonce: r.Nonce, ResourceNames: ts.Requested,
			ErrorDetail: &rpcstatus.Status{Code: int32(codes.InvalidArgument), Message: rejectErr.Error()},
		})
	} else {
		a.apply(ts, r, refs)
		out = append(out, &discoveryv3.DiscoveryRequest{
			TypeUrl: r.TypeURL, VersionInfo: r.Version, ResponseNonce: r.Nonce, ResourceNames: ts.Requested,
		})
		if dep, ok := dependent(r.TypeURL); ok {
			if req := a.resubscribe(dep, follow(ts)); req != nil {
				out = append(out, req)
			}
		}
	}
	a.notify()
	a.mu.Unlock()
	for _, req := range out {
		if err := a.stream.Send(req); err != nil {
			return err
		}
	}
	return nil
}

// apply installs an accepted response: the response holds every resource
// of the type (LDS, CDS) or every requested one that exists (EDS, RDS).
func (a *ADS) apply(ts *TypeState, r *Response, refs map[string][]string) {
	ts.ACKs++
	ts.Version = r.Version
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
