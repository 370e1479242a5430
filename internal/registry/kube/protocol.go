package kube

import (
	"strings"

	"github.com/weftmesh/weft/internal/model"
)

// Protocol applies Istio's protocol selection to a Service port
// (istio.io/latest/docs/ops/configuration/traffic-management/protocol-selection,
// Istio's pkg/config/kube ConvertProtocol):
//
//   - appProtocol, when set, decides; Kubernetes' standard names map as
//     Istio maps them: kubernetes.io/h2c → HTTP2, kubernetes.io/ws → HTTP,
//     kubernetes.io/wss → HTTPS; any other value is read like a port name.
//   - else the port name's prefix before the first '-' ("http-web",
//     "grpc", "grpc-web" → GRPC), case-insensitive.
//   - anything else is TCP. Istio would sniff the protocol there
//     ("auto"); weft has no sniffing, so unnamed ports are plain TCP, the
//     behaviour Istio itself keeps for its well-known ports (25, 53, 3306,
//     27017).
func Protocol(port int32, name string, appProtocol *string) model.Protocol {
	_ = port // every unknown port is TCP in weft, well-known or not
	if appProtocol != nil && *appProtocol != "" {
		switch strings.ToLower(*appProtocol) {
		case "kubernetes.io/h2c":
			return model.HTTP2
		case "kubernetes.io/ws":
			return model.HTTP
		case "kubernetes.io/wss":
			return model.HTTPS
		}
		name = *appProtocol
	}
	p := model.ParseProtocol("", name)
	if p == model.Unknown {
		return model.TCP
	}
	return p
}
