package istiostats

import (
	"encoding/binary"
	"testing"

	"google.golang.org/protobuf/types/known/structpb"

	"github.com/weftmesh/weft/internal/proxy/httpfilter"
	"github.com/weftmesh/weft/internal/proxy/stats"
	"github.com/weftmesh/weft/internal/proxy/streaminfo"
)

// grpcBody returns n gRPC messages of 3 bytes each.
func grpcBody(n int) []byte {
	var b []byte
	for range n {
		var prefix [5]byte
		binary.BigEndian.PutUint32(prefix[1:], 3)
		b = append(append(b, prefix[:]...), "abc"...)
	}
	return b
}

// grpcStream makes s a completed gRPC stream whose bodies carried reqN and
// respN messages, as the connection manager's body reader and response
// writer count them.
func grpcStream(s *httpfilter.Stream, reqN, respN int) {
	s.GRPC = true
	s.Info.RequestMessages, s.Info.ResponseMessages = streaminfo.MessageCounter{}, streaminfo.MessageCounter{}
	s.Info.RequestMessages.Start()
	s.Info.ResponseMessages.Start()
	s.Info.RequestMessages.Inspect(grpcBody(reqN))
	s.Info.ResponseMessages.Inspect(grpcBody(respN))
	s.RespTrailers.Reset()
	s.RespTrailers.Set("grpc-status", "0")
}

// metricValues sums the store's metrics of one name, and returns the tags
// of the last one.
func metricValues(st *stats.Store, name string) (total int64, series int, tags map[string]string) {
	for _, m := range st.Snapshot() {
		if m.PromName != name {
			continue
		}
		total += m.Value()
		series++
		tags = map[string]string{}
		for _, t := range m.Tags {
			tags[t.Name] = t.Value
		}
	}
	return total, series, tags
}

// TestGRPCMessages: gRPC streams add the messages counted on their bodies
// to istio_request_messages_total and istio_response_messages_total, on
// both reporters, with request_protocol grpc and the grpc status; HTTP
// streams have no message series (Istio reports them for gRPC only).
func TestGRPCMessages(t *testing.T) {
	for _, r := range []Reporter{Source, Destination} {
		t.Run(r.String(), func(t *testing.T) {
			rec, st := recorder(t)
			f := &HTTPFilter{rec: rec, reporter: r, hostFallback: true}
			s := stream(t, nil, endpointMD())
			run(f, s, nil) // plain HTTP: no message series
			if _, n, _ := metricValues(st, RequestMessagesTotal); n != 0 {
				t.Fatalf("%d istio_request_messages_total series after an HTTP stream, want 0", n)
			}
			grpcStream(s, 3, 7)
			run(f, s, nil)
			grpcStream(s, 1, 2)
			run(f, s, nil)
			req, n, tags := metricValues(st, RequestMessagesTotal)
			resp, _, _ := metricValues(st, ResponseMessagesTotal)
			if req != 4 || resp != 9 || n != 1 {
				t.Errorf("request messages %d, response messages %d in %d series; want 4, 9 in 1", req, resp, n)
			}
			if tags["request_protocol"] != "grpc" || tags["grpc_response_status"] != "0" || tags["reporter"] != r.String() {
				t.Errorf("labels %v", tags)
			}
			if allocs := testing.AllocsPerRun(50, func() { run(f, s, nil) }); allocs != 0 {
				t.Errorf("%v allocations per gRPC stream, want 0", allocs)
			}
		})
	}
}

// TestSourcePrincipals: on the source reporter, source_principal is the
// certificate this proxy presented upstream and destination_principal the
// upstream's certificate; without TLS, source_principal is unknown and
// destination_principal falls back to the endpoint's metadata.
func TestSourcePrincipals(t *testing.T) {
	const (
		self     = "spiffe://cluster.local/ns/default/sa/sleep"
		upstream = "spiffe://cluster.local/ns/default/sa/hello"
		endpoint = "spiffe://cluster.local/ns/default/sa/from-eds"
	)
	md := endpointMD()
	md.FilterMetadata["istio"].Fields["principal"] = structpb.NewStringValue(endpoint)
	for _, tc := range []struct {
		name          string
		local, remote string
		wantSrc       string
		wantDst       string
	}{
		{"mTLS upstream", self, upstream, self, upstream},
		{"plaintext upstream", "", "", unknown, endpoint},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec, st := recorder(t)
			f := &HTTPFilter{rec: rec, reporter: Source, hostFallback: true}
			s := stream(t, nil, md)
			s.Info.UpstreamLocalPrincipal, s.Info.UpstreamPeerPrincipal = tc.local, tc.remote
			run(f, s, nil)
			_, _, tags := metricValues(st, RequestsTotal)
			if tags["source_principal"] != tc.wantSrc || tags["destination_principal"] != tc.wantDst {
				t.Errorf("source_principal %q, destination_principal %q; want %q, %q",
					tags["source_principal"], tags["destination_principal"], tc.wantSrc, tc.wantDst)
			}
		})
	}
}
