package inject

import (
	"slices"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Probe rewriting, as Istio's injector does (pkg/kube/inject/app_probe.go;
// istio.io "Health Checking of Istio Services"): with traffic captured and
// mTLS STRICT, the kubelet's plain-text probes to the app's port would be
// refused by the sidecar, and TCP probes would always succeed against it.
// So each app container's httpGet, tcpSocket and grpc liveness, readiness
// and startup probes (of the containers and of the pod's own restartable
// init containers, as Istio's allContainers) are pointed at the agent's
// status port:
//
//	httpGet: {path: /app-health/CONTAINER/livez|readyz|startupz, port: 15020, scheme: HTTP, httpHeaders: the original's}
//
// keeping their timings and thresholds, and the original actions go to
// the sidecar in ISTIO_KUBE_APP_PROBERS, a JSON object from that path to
// {"httpGet"|"tcpSocket"|"grpc": original action (named ports resolved),
// "timeoutSeconds": N}. The JSON is byte for byte what Istio's
// DumpAppProbers writes for the same pod (its Prober holds the Kubernetes
// actions as they are, the port resolved), so either agent reads either
// injector's. `weft-proxy sidecar` serves the paths on --status-address
// (internal/proxy/agent's StartStatus) by running the original probe
// against the app from inside the pod (not captured: the agent runs as
// the capture-excluded user and probes from 127.0.0.6).
//
// One difference from Istio: the rewritten httpGet drops the original's
// host (Istio keeps it, so the kubelet would send the status probe to
// that host); the agent honours the host instead, in the JSON. Exec
// probes are left alone; a probe on a named port the container does not
// declare is left alone too (the kubelet would fail it either way).

// probe is one entry of ISTIO_KUBE_APP_PROBERS (Istio's Prober, field
// for field and in its order).
type probe struct {
	HTTPGet        *corev1.HTTPGetAction   `json:"httpGet,omitempty"`
	TCPSocket      *corev1.TCPSocketAction `json:"tcpSocket,omitempty"`
	GRPC           *corev1.GRPCAction      `json:"grpc,omitempty"`
	TimeoutSeconds int32                   `json:"timeoutSeconds,omitempty"`
}

// rewriteProbes rewrites the probes of the pod's containers and init
// containers (only restartable ones may have probes) in place, before
// the sidecar is added, and returns what the agent must serve.
func rewriteProbes(spec *corev1.PodSpec) map[string]probe {
	out := map[string]probe{}
	rewriteContainerProbes(spec.InitContainers, out)
	rewriteContainerProbes(spec.Containers, out)
	return out
}

func rewriteContainerProbes(cs []corev1.Container, out map[string]probe) {
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
				var headers []corev1.HTTPHeader
				if orig.HTTPGet != nil {
					// Kept, as Istio's rewrite keeps them: the kubelet
					// sends them and the agent passes them on.
					headers = slices.Clone(orig.HTTPGet.HTTPHeaders)
				}
				p.probe.ProbeHandler = corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{
					Path: path, Port: intstr.FromInt32(StatusPort), Scheme: corev1.URISchemeHTTP, HTTPHeaders: headers,
				}}
			}
		}
	}
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
		g.Port = port // the scheme stays as given ("" is HTTP), as Istio's
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
		g := *h.GRPC
		out.GRPC = &g
	default:
		return probe{}, false
	}
	return out, true
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
