package xdsclient

import (
	"strings"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

func mustAny(t *testing.T, m proto.Message) *anypb.Any {
	t.Helper()
	a, err := anypb.New(m)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestDecode(t *testing.T) {
	static := &clusterv3.Cluster{Name: "a", ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC}}
	wrapped := mustAny(t, &discoveryv3.Resource{Resource: mustAny(t, &clusterv3.Cluster{Name: "w"})})
	unknown := mustAny(t, &clusterv3.Cluster{Name: "u"})
	unknown.Value = protowire.AppendTag(unknown.Value, 9999, protowire.VarintType)
	unknown.Value = protowire.AppendVarint(unknown.Value, 1)
	for _, tc := range []struct {
		name      string
		resources []*anypb.Any
		valid     []string
		invalid   map[string]string // name → substring of the error
	}{
		{name: "valid", resources: []*anypb.Any{mustAny(t, static)}, valid: []string{"a"}},
		{name: "wrapped_in_resource", resources: []*anypb.Any{wrapped}, valid: []string{"w"}},
		{name: "wrong_type", resources: []*anypb.Any{mustAny(t, &listenerv3.Listener{Name: "l"})},
			invalid: map[string]string{"resources[0]": "resource of type type.googleapis.com/envoy.config.listener.v3.Listener in a"}},
		{name: "no_name", resources: []*anypb.Any{mustAny(t, &clusterv3.Cluster{})},
			invalid: map[string]string{"resources[0]": "name: required"}},
		{name: "duplicate", resources: []*anypb.Any{mustAny(t, static), mustAny(t, static)},
			invalid: map[string]string{"a": `cluster "a": duplicate resource name`}},
		{name: "unsupported_field", resources: []*anypb.Any{mustAny(t, &clusterv3.Cluster{Name: "b", LbPolicy: clusterv3.Cluster_LOAD_BALANCING_POLICY_CONFIG})},
			invalid: map[string]string{"b": `cluster "b".lb_policy: LOAD_BALANCING_POLICY_CONFIG is not supported`}},
		{name: "unknown_fields", resources: []*anypb.Any{unknown},
			invalid: map[string]string{"u": "unknown to weft-proxy's Envoy API version"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u := decode(&discoveryv3.DiscoveryResponse{TypeUrl: ClusterType, VersionInfo: "7", Resources: tc.resources})
			if u.Version != "7" || u.TypeURL != ClusterType {
				t.Errorf("version %q type %q", u.Version, u.TypeURL)
			}
			if len(u.Resources) != len(tc.valid) {
				t.Errorf("valid resources: %d, want %v", len(u.Resources), tc.valid)
			}
			for _, n := range tc.valid {
				if u.Resources[n] == nil {
					t.Errorf("resource %q missing", n)
				}
			}
			if len(u.Invalid) != len(tc.invalid) {
				t.Errorf("invalid: %v, want %v", u.Invalid, tc.invalid)
			}
			for n, sub := range tc.invalid {
				if err := u.Invalid[n]; err == nil || !strings.Contains(err.Error(), sub) {
					t.Errorf("invalid[%q] = %v, want %q", n, err, sub)
				}
			}
		})
	}
}

func TestErrorDetailSorted(t *testing.T) {
	got := errorDetail(map[string]error{"b": errString("second"), "a": errString("first")})
	if got != "first\nsecond" {
		t.Errorf("errorDetail = %q", got)
	}
}

type errString string

func (e errString) Error() string { return string(e) }
