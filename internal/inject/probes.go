package inject

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Probe rewriting, as Istio's injector does (pkg/kube/inject/app_probe.go;
// istio.io "Health Checking of Istio Services"): with traffic captured and
// mTLS STRICT, the kubelet's plain-text probes to the app's port would be
// refused by the sidecar, and TCP probes would always succeed against it.
// So each app container's httpGet, tcpSocket and grpc liveness, readiness
// and startup probes are pointed at the agent's status port:
//
//	httpGet: {path: /app-health/CONTAINER/livez|readyz|startupz, port: 15020, scheme: HTTP}
//
// keeping their timings and thresholds, and the original actions go to
// the sidecar in ISTIO_KUBE_APP_PROBERS, a JSON object from that path to
// {"httpGet"|"tcpSocket"|"grpc": original action (named ports resolved),
// "timeoutSeconds": N}. The agent answers a path by running the original
// probe against the app from inside the pod (not captured: the agent runs
// as the capture-excluded user). Exec probes are left alone; a probe on a
// named port the container does not declare is left alone too.
//
// NOTE: the agent side (serving 15020 in weft-proxy) is not written yet;
// until it is, set Options.NoProbeRewrite or annotate pods with
// sidecar.istio.io/rewriteAppHTTPProbers: "false".

// probe is one entry of ISTIO_KUBE_APP_PROBERS (Istio's Prober shape).
type probe struct {
	HTTPGet        *corev1.HTTPGetAction   `json:"httpGet,omitempty"`
	TCPSocket      *corev1.TCPSocketAction `json:"tcpSocket,omitempty"`
	GRPC           *grpcProbe              `json:"grpc,omitempty"`
	TimeoutSeconds int32                   `json:"timeoutSeconds,omitempty"`
}

// rewriteProbes rewrites the containers' probes in place and returns
// what the agent must serve.
func rewriteProbes(cs []corev1.Container) map[string]probe {
	out := map[string]probe{}
	for j := range cs {
		c := &cs[j]
		for _, p := range []struct {
			probe *corev1.Probe
			kind  string
		}{{c.LivenessProbe, "livez"}, {c.ReadinessProbe, "readyz"}, {c.StartupProbe, "startupz"}} {
			if p.probe == nil {
				continue
			}
			path := "/app-health/" + c.Name + "/" + p.kind
			if orig, ok := original(p.probe, c.Ports); ok {
				out[path] = orig
				p.probe.ProbeHandler = corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{
					Path: path, Port: intstr.FromInt32(StatusPort), Scheme: corev1.URISchemeHTTP,
				}}
			}
		}
	}
	return out
}

// original copies a probe's action with its port resolved to a number;
// false for exec probes and unresolvable named ports.
func original(p *corev1.Probe, ports []corev1.ContainerPort) (probe, bool) {
	out := probe{TimeoutSeconds: p.TimeoutSeconds}
	switch h := p.ProbeHandler; {
	case h.HTTPGet != nil:
		g := *h.HTTPGet
		port, ok := resolvePort(g.Port, ports)
		if !ok {
			return probe{}, false
		}
		g.Port = port
		if g.Scheme == "" {
			g.Scheme = corev1.URISchemeHTTP
		}
		out.HTTPGet = &g
	case h.TCPSocket != nil:
		s := *h.TCPSocket
		port, ok := resolvePort(s.Port, ports)
		if !ok {
			return probe{}, false
		}
		s.Port = port
		out.TCPSocket = &s
	case h.GRPC != nil:
		out.GRPC = &grpcProbe{Port: h.GRPC.Port, Service: h.GRPC.Service}
	default:
		return probe{}, false
	}
	return out, true
}

// grpcProbe is corev1.GRPCAction without a null service in the JSON.
type grpcProbe struct {
	Port    int32   `json:"port"`
	Service *string `json:"service,omitempty"`
}

func resolvePort(p intstr.IntOrString, ports []corev1.ContainerPort) (intstr.IntOrString, bool) {
	if p.Type == intstr.Int {
		return p, p.IntVal > 0
	}
	for _, cp := range ports {
		if cp.Name == p.StrVal {
			return intstr.FromInt32(cp.ContainerPort), true
		}
	}
	return p, false
}
