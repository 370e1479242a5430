package xds

import (
	"fmt"
	"maps"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/weftmesh/weft/internal/model"
)

// proxyFromNode builds a proxy's identity from the node of its first
// request: the id in Istio's form, every string field of the metadata,
// and the LABELS struct as the workload's labels (how Istio's agent sends
// ISTIO_META_* and the pod labels). Other metadata kinds (Istio sends
// structs such as PLATFORM_METADATA) are ignored.
func proxyFromNode(n *corev3.Node) (*model.Proxy, error) {
	if n == nil {
		return nil, fmt.Errorf("the stream's first request has no node: Envoy sends it when the bootstrap sets node.id")
	}
	meta := map[string]string{}
	labels := map[string]string{}
	for k, v := range n.GetMetadata().GetFields() {
		if k == model.MetaLabels {
			if err := readLabels(v, labels); err != nil {
				return nil, fmt.Errorf("node %q: %w", n.GetId(), err)
			}
			continue
		}
		if s, ok := v.GetKind().(*structpb.Value_StringValue); ok {
			meta[k] = s.StringValue
		}
	}
	return model.ParseProxy(n.GetId(), meta, labels)
}

func readLabels(v *structpb.Value, into map[string]string) error {
	st, ok := v.GetKind().(*structpb.Value_StructValue)
	if !ok {
		return fmt.Errorf("metadata %s must be a struct of string labels (node.metadata.%s: {app: hello})", model.MetaLabels, model.MetaLabels)
	}
	for k, lv := range st.StructValue.GetFields() {
		s, ok := lv.GetKind().(*structpb.Value_StringValue)
		if !ok {
			return fmt.Errorf("metadata %s.%s must be a string (quote it in YAML)", model.MetaLabels, k)
		}
		into[k] = s.StringValue
	}
	return nil
}

// sameIdentity reports whether two proxies were built from the same node
// id and metadata, so that the same resources apply.
func sameIdentity(a, b *model.Proxy) bool {
	return a.ID == b.ID && maps.Equal(a.Metadata, b.Metadata) && maps.Equal(a.Labels, b.Labels)
}

// proxyVersion is the version a proxy reports, as Istio reads it for
// pilot_xds{version} and proxy-status: node metadata ISTIO_VERSION (Istio's
// agent sets it), else the node's user_agent_version or
// user_agent_build_version (Envoy sets the latter), else "".
func proxyVersion(n *corev3.Node, p *model.Proxy) string {
	if v := p.Metadata[model.MetaIstioVersion]; v != "" {
		return v
	}
	if v := n.GetUserAgentVersion(); v != "" {
		return v
	}
	if bv := n.GetUserAgentBuildVersion().GetVersion(); bv != nil {
		return fmt.Sprintf("%d.%d.%d", bv.GetMajorNumber(), bv.GetMinorNumber(), bv.GetPatch())
	}
	return ""
}
