package istiostats

import (
	"fmt"

	udpatypev1 "github.com/cncf/xds/go/udpa/type/v1"
	xdstypev3 "github.com/cncf/xds/go/xds/type/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/weftmesh/weft/internal/proxy/httpfilter"
)

// PluginConfigTypeURL is the type of Istio's stats filter configuration
// (istio/proxy's stats.PluginConfig). go-control-plane has no Go type for
// it, so weft-proxy accepts it wrapped in a TypedStruct (xds.type.v3 or
// udpa.type.v1) with this type_url, the way Envoy accepts any extension's
// configuration as a TypedStruct; weft-control sends it so.
const PluginConfigTypeURL = "type.googleapis.com/stats.PluginConfig"

// Config is the supported part of stats.PluginConfig.
type Config struct {
	// Reporter is inferred from the listener's traffic_direction, as
	// Istio does for reporter UNSPECIFIED (SERVER_GATEWAY, the waypoint
	// reporter, is not supported).
	Reporter Reporter
	// DisableHostHeaderFallback is disable_host_header_fallback.
	DisableHostHeaderFallback bool
}

// IsConfig reports whether cfg is an istio.stats configuration: a
// TypedStruct whose type_url is PluginConfigTypeURL.
func IsConfig(cfg *anypb.Any) bool {
	url, _, err := typedStruct(cfg)
	return err == nil && url == PluginConfigTypeURL
}

// typedStruct unpacks a TypedStruct of either package.
func typedStruct(cfg *anypb.Any) (string, *structpb.Struct, error) {
	switch {
	case cfg.MessageIs(&xdstypev3.TypedStruct{}):
		var ts xdstypev3.TypedStruct
		if err := cfg.UnmarshalTo(&ts); err != nil {
			return "", nil, err
		}
		return ts.GetTypeUrl(), ts.GetValue(), nil
	case cfg.MessageIs(&udpatypev1.TypedStruct{}):
		var ts udpatypev1.TypedStruct
		if err := cfg.UnmarshalTo(&ts); err != nil {
			return "", nil, err
		}
		return ts.GetTypeUrl(), ts.GetValue(), nil
	}
	return "", nil, fmt.Errorf("type %s is not a TypedStruct", cfg.MessageName())
}

// ParseConfig reads a stats.PluginConfig in a TypedStruct for a listener
// of direction dir. Fields other than reporter (UNSPECIFIED) and
// disable_host_header_fallback are errors: metric overrides, custom
// definitions and periodic TCP reporting are not implemented.
func ParseConfig(cfg *anypb.Any, dir corev3.TrafficDirection) (Config, error) {
	url, v, err := typedStruct(cfg)
	if err != nil {
		return Config{}, err
	}
	return parseStruct(url, v, dir)
}

func parseStruct(url string, v *structpb.Struct, dir corev3.TrafficDirection) (Config, error) {
	if url != PluginConfigTypeURL {
		return Config{}, fmt.Errorf("type_url: %q is not supported (want %s)", url, PluginConfigTypeURL)
	}
	c := Config{Reporter: Source}
	if dir == corev3.TrafficDirection_INBOUND {
		c.Reporter = Destination
	}
	for name, f := range v.GetFields() {
		switch name {
		case "disable_host_header_fallback", "disableHostHeaderFallback":
			c.DisableHostHeaderFallback = f.GetBoolValue()
		case "reporter":
			if s := f.GetStringValue(); s != "" && s != "UNSPECIFIED" || f.GetNumberValue() != 0 {
				return Config{}, fmt.Errorf("value.reporter: only UNSPECIFIED (inferred from the listener direction) is supported")
			}
		default:
			return Config{}, fmt.Errorf("value.%s: not supported by weft-proxy (reporter and disable_host_header_fallback are)", name)
		}
	}
	return c, nil
}

// RegisterHTTP adds the istio.stats HTTP filter to a connection manager's
// registry, for a listener of direction dir. It takes TypedStruct
// configurations of both packages; a TypedStruct of another type_url is
// an error naming it.
func RegisterHTTP(r *httpfilter.Registry, rec *Recorder, dir corev3.TrafficDirection) {
	factory := func(url string, v *structpb.Struct) (httpfilter.Filter, error) {
		c, err := parseStruct(url, v, dir)
		if err != nil {
			return nil, err
		}
		return &HTTPFilter{rec: rec, reporter: c.Reporter, hostFallback: !c.DisableHostHeaderFallback}, nil
	}
	r.Register(&xdstypev3.TypedStruct{}, false, func(cfg proto.Message, _ httpfilter.Deps) (httpfilter.Filter, error) {
		ts := cfg.(*xdstypev3.TypedStruct)
		return factory(ts.GetTypeUrl(), ts.GetValue())
	})
	r.Register(&udpatypev1.TypedStruct{}, false, func(cfg proto.Message, _ httpfilter.Deps) (httpfilter.Filter, error) {
		ts := cfg.(*udpatypev1.TypedStruct)
		return factory(ts.GetTypeUrl(), ts.GetValue())
	})
}

// NewNetwork builds the istio.stats network filter from its configuration
// for a listener of direction dir.
func NewNetwork(cfg *anypb.Any, rec *Recorder, dir corev3.TrafficDirection) (*NetworkFilter, error) {
	c, err := ParseConfig(cfg, dir)
	if err != nil {
		return nil, err
	}
	return &NetworkFilter{rec: rec, reporter: c.Reporter}, nil
}
