package bootstrap

import (
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/original_dst/v3" // Any type

	"google.golang.org/protobuf/reflect/protoreflect"
)

// Transparent capture (internal/proxy/listener/handoff.go,
// internal/proxy/upstream/origdst.go): Envoy's listener use_original_dst
// and original_dst listener filter, bind_to_port false listeners that
// receive the connections handed over, ORIGINAL_DST clusters
// (CLUSTER_PROVIDED, cleanup_interval) and upstream_bind_config's source
// address, as Istio's capture-mode sidecars use them.
const originalDstType protoreflect.FullName = "envoy.extensions.filters.listener.original_dst.v3.OriginalDst"

// addCaptureRules extends the listener and cluster entries of rules.
func addCaptureRules(rules map[protoreflect.FullName]msgRule) {
	rules["envoy.config.listener.v3.Listener"]["use_original_dst"] = field()
	lf := rules["envoy.config.listener.v3.ListenerFilter"]
	lf["typed_config"] = anyOf(append(lf["typed_config"].Types, originalDstType)...)
	// OriginalDst's traffic_direction only matters on Windows.
	rules[originalDstType] = msgRule{}
	cl := rules["envoy.config.cluster.v3.Cluster"]
	cl["type"] = enumOf(append(cl["type"].Enums, "ORIGINAL_DST")...)
	cl["lb_policy"] = enumOf(append(cl["lb_policy"].Enums, "CLUSTER_PROVIDED")...)
	cl["cleanup_interval"] = field()
	cl["upstream_bind_config"] = field()
	rules["envoy.config.core.v3.BindConfig"] = fields("source_address")
}
