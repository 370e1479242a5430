package xdstest

import (
	"fmt"
	"slices"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
)

// Delta is an incremental (delta) ADS client that behaves like Envoy: a
// wildcard subscription to clusters and listeners, named subscriptions to
// the endpoints and routes they refer to (subscribing and unsubscribing as
// they change), an ACK per response and a NACK for what Reject refuses.
type Delta struct {
	*core
	stream discoveryv3.AggregatedDiscoveryService_DeltaAggregatedResourcesClient
}

// NewDelta opens a delta ADS stream and subscribes to clusters and
// listeners. Close it when done.
func NewDelta(o Options) (*Delta, error) {
	c, ctx, err := newCore(o)
	if err != nil {
		return nil, err
	}
	stream, err := discoveryv3.NewAggregatedDiscoveryServiceClient(c.conn).DeltaAggregatedResources(ctx)
	if err != nil {
		c.abort()
		return nil, fmt.Errorf("xdstest: opening delta ADS stream to %s: %w", o.Address, err)
	}
	d := &Delta{core: c, stream: stream}
	// No names: a wildcard subscription (the protocol's legacy form, which
	// Envoy sends).
	startStream(c, stream, []*discoveryv3.DeltaDiscoveryRequest{
		{Node: o.Node, TypeUrl: ClusterType},
		{TypeUrl: ListenerType},
	}, d.handle)
	return d, nil
}

// handle applies (or rejects) one response and sends the ACK or NACK and
// any subscription change that follows from it.
func (d *Delta) handle(resp *discoveryv3.DeltaDiscoveryResponse) error {
	r := newResponse(resp.GetTypeUrl(), resp.GetSystemVersionInfo(), resp.GetNonce(), resp.GetRemovedResources(), proto.Size(resp))
	values := make([][]byte, len(resp.GetResources()))
	versions := make(map[string]string, len(resp.GetResources()))
	for i, res := range resp.GetResources() {
		values[i] = res.GetResource().GetValue()
		versions[res.GetName()] = res.GetVersion()
	}
	refs, rejectErr := d.check(r, values, func(names []string) error { return namesMatch(resp, names) })
	return respond(d.core, r, rejectErr, answer[*discoveryv3.DeltaDiscoveryRequest]{
		nack: func(_ *TypeState, err error) *discoveryv3.DeltaDiscoveryRequest {
			return &discoveryv3.DeltaDiscoveryRequest{
				TypeUrl: r.TypeURL, ResponseNonce: r.Nonce,
				ErrorDetail: &rpcstatus.Status{Code: int32(codes.InvalidArgument), Message: err.Error()},
			}
		},
		ack: func(ts *TypeState) *discoveryv3.DeltaDiscoveryRequest {
			d.apply(ts, r, versions, refs)
			return &discoveryv3.DeltaDiscoveryRequest{TypeUrl: r.TypeURL, ResponseNonce: r.Nonce}
		},
		resubscribe: d.resubscribe,
	}, d.stream.Send)
}

// namesMatch checks that each resource's name in the response wrapper is
// the name inside the resource.
func namesMatch(resp *discoveryv3.DeltaDiscoveryResponse, decoded []string) error {
	for i, res := range resp.GetResources() {
		if res.GetName() != decoded[i] {
			return fmt.Errorf("resource %q is named %q inside", res.GetName(), decoded[i])
		}
	}
	return nil
}

// apply adds, updates and removes resources. d.mu is held.
func (d *Delta) apply(ts *TypeState, r *Response, versions map[string]string, refs map[string][]string) {
	for _, n := range r.Names {
		ts.Names[n] = versions[n]
		delete(ts.refs, n)
		if rs, ok := refs[n]; ok {
			ts.refs[n] = rs
		}
		if d.o.KeepResources {
			if ts.Resources == nil {
				ts.Resources = map[string]proto.Message{}
			}
			ts.Resources[n] = r.Resources[n]
		}
	}
	for _, n := range r.Removed {
		delete(ts.Names, n)
		delete(ts.refs, n)
		delete(ts.Resources, n)
	}
}

// resubscribe returns the request that subscribes to new names of a
// dependent type and unsubscribes from the ones no longer referred to, or
// nil. d.mu is held.
func (d *Delta) resubscribe(url string, names []string) *discoveryv3.DeltaDiscoveryRequest {
	ts := d.st.typ(url)
	var add, drop []string
	for _, n := range names {
		if _, ok := slices.BinarySearch(ts.Requested, n); !ok {
			add = append(add, n)
		}
	}
	for _, n := range ts.Requested {
		if _, ok := slices.BinarySearch(names, n); !ok {
			drop = append(drop, n)
			delete(ts.Names, n)
			delete(ts.Resources, n)
		}
	}
	if len(add) == 0 && len(drop) == 0 {
		return nil
	}
	ts.Requested = names
	ts.asked = true
	return &discoveryv3.DeltaDiscoveryRequest{TypeUrl: url, ResourceNamesSubscribe: add, ResourceNamesUnsubscribe: drop}
}
