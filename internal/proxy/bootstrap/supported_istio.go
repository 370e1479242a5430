package bootstrap

import (
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/weftmesh/weft/internal/proxy/istiostats"
)

// Istio's stats filter (istio.stats, internal/proxy/istiostats), as HTTP
// filter and as network filter before tcp_proxy. Istio configures it with
// its own stats.PluginConfig, which go-control-plane has no type for, so it
// is accepted wrapped in a TypedStruct (xds.type.v3 or udpa.type.v1) whose
// type_url is stats.PluginConfig, as Envoy accepts TypedStruct for any
// extension; its value's fields are checked when the filter is built.
const (
	xdsTypedStruct  protoreflect.FullName = "xds.type.v3.TypedStruct"
	udpaTypedStruct protoreflect.FullName = "udpa.type.v1.TypedStruct"
)

func istioStatsRules() map[protoreflect.FullName]msgRule {
	typeURL := fieldRule{Check: func(v protoreflect.Value) string {
		if v.String() != istiostats.PluginConfigTypeURL {
			return "type_url " + v.String() + " is not supported in a TypedStruct (" + istiostats.PluginConfigTypeURL + " is)"
		}
		return ""
	}}
	rule := msgRule{"type_url": typeURL, "value": field()}
	return map[protoreflect.FullName]msgRule{xdsTypedStruct: rule, udpaTypedStruct: rule}
}
