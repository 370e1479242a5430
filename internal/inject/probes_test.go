package inject

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/weftmesh/weft/internal/proxy/agent"
)

// probePod has every kind of probe the rewrite handles, as the API server
// hands it to the webhook (defaults applied: scheme HTTP, service "").
func probePod() *corev1.Pod {
	empty, always := "", corev1.ContainerRestartPolicyAlways
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "shop", Namespace: "apps"},
		Spec: corev1.PodSpec{
			InitContainers: []corev1.Container{{
				Name: "helper", Image: "helper:1", RestartPolicy: &always,
				ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(7000)}}, TimeoutSeconds: 1},
			}},
			Containers: []corev1.Container{{
				Name:  "web",
				Image: "web:1",
				Ports: []corev1.ContainerPort{{Name: "https", ContainerPort: 8443}, {Name: "admin", ContainerPort: 9000}},
				LivenessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{
					Path: "/live", Port: intstr.FromString("https"), Host: "10.1.2.3", Scheme: corev1.URISchemeHTTPS,
					HTTPHeaders: []corev1.HTTPHeader{{Name: "X-Probe", Value: "1"}},
				}}, TimeoutSeconds: 5, PeriodSeconds: 9},
				ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromString("admin")}}, TimeoutSeconds: 1},
				StartupProbe:   &corev1.Probe{ProbeHandler: corev1.ProbeHandler{GRPC: &corev1.GRPCAction{Port: 9090, Service: &empty}}, TimeoutSeconds: 2},
			}, {
				Name:          "batch",
				Image:         "batch:1",
				LivenessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"true"}}}},
			}},
		},
	}
}

// TestProbersIstioFormat: ISTIO_KUBE_APP_PROBERS is what Istio's
// DumpAppProbers writes for the same pod (map keys sorted; each Prober
// holds the Kubernetes action with the port resolved, in Kubernetes'
// field order, then timeoutSeconds), and the agent reads it back.
func TestProbersIstioFormat(t *testing.T) {
	pod := probePod()
	if _, err := newTestInjector(t).Inject(Target{Meta: &pod.ObjectMeta, Spec: &pod.Spec}); err != nil {
		t.Fatal(err)
	}
	got, ok := env(&pod.Spec.InitContainers[1], agent.AppProbersEnv)
	want := `{"/app-health/helper/readyz":{"tcpSocket":{"port":7000},"timeoutSeconds":1},` +
		`"/app-health/web/livez":{"httpGet":{"path":"/live","port":8443,"host":"10.1.2.3","scheme":"HTTPS","httpHeaders":[{"name":"X-Probe","value":"1"}]},"timeoutSeconds":5},` +
		`"/app-health/web/readyz":{"tcpSocket":{"port":9000},"timeoutSeconds":1},` +
		`"/app-health/web/startupz":{"grpc":{"port":9090,"service":""},"timeoutSeconds":2}}`
	if !ok || got != want {
		t.Fatalf("%s =\n%s\nwant\n%s", agent.AppProbersEnv, got, want)
	}
	p, err := agent.ParseAppProbers(got)
	if err != nil {
		t.Fatalf("the agent refuses the injector's probes: %v", err)
	}
	live := p["/app-health/web/livez"].HTTPGet
	if len(p) != 4 || live.Port != 8443 || live.Host != "10.1.2.3" || live.Scheme != "HTTPS" || live.HTTPHeaders[0] != (agent.ProbeHeader{Name: "X-Probe", Value: "1"}) {
		t.Errorf("agent read %+v (livez %+v)", p, live)
	}

	web := pod.Spec.Containers[0]
	for kind, pr := range map[string]*corev1.Probe{"livez": web.LivenessProbe, "readyz": web.ReadinessProbe, "startupz": web.StartupProbe} {
		g := pr.HTTPGet
		if g == nil || g.Path != "/app-health/web/"+kind || g.Port != intstr.FromInt32(StatusPort) || g.Scheme != corev1.URISchemeHTTP || g.Host != "" ||
			pr.TCPSocket != nil || pr.GRPC != nil {
			t.Errorf("%s not rewritten to the status port: %+v", kind, pr.ProbeHandler)
		}
	}
	if h := web.LivenessProbe.HTTPGet.HTTPHeaders; len(h) != 1 || h[0].Name != "X-Probe" || web.LivenessProbe.PeriodSeconds != 9 {
		t.Errorf("liveness headers %v / timings %+v not kept", h, web.LivenessProbe)
	}
	if g := pod.Spec.InitContainers[2].ReadinessProbe.HTTPGet; g == nil || g.Path != "/app-health/helper/readyz" {
		t.Errorf("the restartable init container's probe: %+v", pod.Spec.InitContainers[2].ReadinessProbe)
	}
	if pod.Spec.Containers[1].LivenessProbe.Exec == nil {
		t.Error("exec probe rewritten")
	}
}
