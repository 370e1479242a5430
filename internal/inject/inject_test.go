package inject

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

var update = flag.Bool("update", false, "rewrite the golden files")

func newTestInjector(t *testing.T) *Injector {
	t.Helper()
	inj, err := New(Options{ProxyImage: "ghcr.io/weftmesh/weft-proxy:test"})
	if err != nil {
		t.Fatal(err)
	}
	return inj
}

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the output (go test -update rewrites it); got:\n%s", path, got)
	}
}

// TestInjectYAMLGolden: YAML in, injected YAML out (testdata/*.golden.yaml
// is what a reviewer reads); injecting the output again changes nothing.
func TestInjectYAMLGolden(t *testing.T) {
	for _, name := range []string{"deployment", "annotations", "kinds"} {
		t.Run(name, func(t *testing.T) {
			in, err := os.ReadFile(filepath.Join("testdata", name+".in.yaml"))
			if err != nil {
				t.Fatal(err)
			}
			inj := newTestInjector(t)
			var out bytes.Buffer
			if err := InjectYAML(bytes.NewReader(in), &out, inj); err != nil {
				t.Fatal(err)
			}
			golden(t, name+".golden.yaml", out.Bytes())
			var again bytes.Buffer
			if err := InjectYAML(bytes.NewReader(out.Bytes()), &again, inj); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(again.Bytes(), out.Bytes()) {
				t.Errorf("second injection changed the output (not idempotent):\n%s", again.Bytes())
			}
		})
	}
}

func TestDecide(t *testing.T) {
	proxy := []corev1.Container{{Name: ProxyContainerName}}
	tests := []struct {
		name   string
		ns     string
		labels map[string]string
		ann    map[string]string
		spec   corev1.PodSpec
		want   bool
	}{
		{name: "plain pod", ns: "apps", want: true},
		{name: "annotation false", ns: "apps", ann: map[string]string{AnnotationInject: "false"}},
		{name: "annotation no", ns: "apps", ann: map[string]string{AnnotationInject: "no"}},
		{name: "annotation true", ns: "apps", ann: map[string]string{AnnotationInject: "true"}, want: true},
		{name: "label false", ns: "apps", labels: map[string]string{LabelInject: "false"}},
		{name: "label true wins over annotation false", ns: "apps", labels: map[string]string{LabelInject: "true"}, ann: map[string]string{AnnotationInject: "false"}, want: true},
		{name: "status annotation", ns: "apps", ann: map[string]string{AnnotationStatus: "{}"}},
		{name: "native sidecar present", ns: "apps", spec: corev1.PodSpec{InitContainers: proxy}},
		{name: "classic sidecar present", ns: "apps", spec: corev1.PodSpec{Containers: proxy}},
		{name: "host network", ns: "apps", spec: corev1.PodSpec{HostNetwork: true}},
		{name: "kube-system", ns: "kube-system"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			meta := metav1.ObjectMeta{Labels: tt.labels, Annotations: tt.ann}
			d := Decide(tt.ns, &meta, &tt.spec)
			if d.Inject != tt.want {
				t.Errorf("Decide = %+v, want Inject %v", d, tt.want)
			}
			if !d.Inject && d.Reason == "" {
				t.Error("a skip must say why")
			}
		})
	}
}

func testPod() *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "apps", Labels: map[string]string{"app": "web"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name:  "web",
			Image: "example.com/web:1",
			Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}},
			LivenessProbe: &corev1.Probe{
				ProbeHandler:   corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intOrName("http")}},
				TimeoutSeconds: 3, PeriodSeconds: 7,
			},
			ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intOrName("missing")}}},
		}}},
	}
}

func env(c *corev1.Container, name string) (string, bool) {
	for _, e := range c.Env {
		if e.Name == name {
			return e.Value, true
		}
	}
	return "", false
}

// TestProbeRewrite: the HTTP probe on a named port moves to 15020 with its
// timings kept, the original (port resolved) goes to
// ISTIO_KUBE_APP_PROBERS; a probe on an undeclared named port is kept.
func TestProbeRewrite(t *testing.T) {
	pod := testPod()
	if _, err := newTestInjector(t).Inject(Target{Meta: &pod.ObjectMeta, Spec: &pod.Spec}); err != nil {
		t.Fatal(err)
	}
	live := pod.Spec.Containers[0].LivenessProbe
	if g := live.HTTPGet; g == nil || g.Path != "/app-health/web/livez" || g.Port.IntVal != StatusPort || g.Scheme != corev1.URISchemeHTTP {
		t.Errorf("liveness probe not rewritten: %+v", live.ProbeHandler)
	}
	if live.PeriodSeconds != 7 || live.TimeoutSeconds != 3 {
		t.Errorf("timings lost: %+v", live)
	}
	if r := pod.Spec.Containers[0].ReadinessProbe; r.TCPSocket == nil || r.TCPSocket.Port.StrVal != "missing" {
		t.Errorf("probe on an undeclared port changed: %+v", r.ProbeHandler)
	}
	sidecar := pod.Spec.InitContainers[1]
	got, ok := env(&sidecar, "ISTIO_KUBE_APP_PROBERS")
	want := `{"/app-health/web/livez":{"httpGet":{"path":"/healthz","port":8080},"timeoutSeconds":3}}`
	if !ok || got != want {
		t.Errorf("ISTIO_KUBE_APP_PROBERS = %s, want %s", got, want)
	}
}

// TestProbeRewriteOff: the pod annotation and Options.NoProbeRewrite keep
// the probes.
func TestProbeRewriteOff(t *testing.T) {
	off, err := New(Options{NoProbeRewrite: true})
	if err != nil {
		t.Fatal(err)
	}
	annotated := testPod()
	annotated.Annotations = map[string]string{AnnotationRewriteProbes: "false"}
	for name, c := range map[string]struct {
		inj *Injector
		pod *corev1.Pod
	}{"annotation": {newTestInjector(t), annotated}, "option": {off, testPod()}} {
		if _, err := c.inj.Inject(Target{Meta: &c.pod.ObjectMeta, Spec: &c.pod.Spec}); err != nil {
			t.Fatal(err)
		}
		if g := c.pod.Spec.Containers[0].LivenessProbe.HTTPGet; g.Path != "/healthz" {
			t.Errorf("%s: probe rewritten: %+v", name, g)
		}
		if _, ok := env(&c.pod.Spec.InitContainers[1], "ISTIO_KUBE_APP_PROBERS"); ok {
			t.Errorf("%s: ISTIO_KUBE_APP_PROBERS set", name)
		}
	}
}

// TestInjectErrors: bad annotations refuse the pod with the field named
// and leave it unchanged.
func TestInjectErrors(t *testing.T) {
	tests := []struct{ key, value, want string }{
		{AnnotationExcludeOutboundPorts, "5432,http", "traffic.sidecar.istio.io/excludeOutboundPorts"},
		{AnnotationExcludeOutboundIPRanges, "10.0.0.0/33", "traffic.sidecar.istio.io/excludeOutboundIPRanges"},
		{AnnotationInterceptionMode, "TPROXY", "REDIRECT only"},
	}
	for _, tt := range tests {
		t.Run(tt.key, func(t *testing.T) {
			pod := testPod()
			pod.Annotations = map[string]string{tt.key: tt.value}
			before, _ := json.Marshal(pod)
			_, err := newTestInjector(t).Inject(Target{Meta: &pod.ObjectMeta, Spec: &pod.Spec})
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "metadata.annotations[") {
				t.Fatalf("error %v, want one naming %s", err, tt.want)
			}
			after, _ := json.Marshal(pod)
			if !bytes.Equal(before, after) {
				t.Error("the pod changed although injection failed")
			}
		})
	}
}

// TestInjectedPod checks the parts of an injected pod that matter to
// Kubernetes and to weft-proxy beyond the golden files' eyeballing.
func TestInjectedPod(t *testing.T) {
	pod := testPod()
	pod.Spec.InitContainers = []corev1.Container{{Name: "user-init", Image: "x"}}
	pod.Name, pod.GenerateName = "", "web-6d4cf56db6-"
	pod.OwnerReferences = []metav1.OwnerReference{{Kind: "ReplicaSet", Name: "web-6d4cf56db6"}}
	pod.Labels = nil
	if _, err := newTestInjector(t).Inject(Target{Meta: &pod.ObjectMeta, Spec: &pod.Spec}); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, c := range pod.Spec.InitContainers {
		names = append(names, c.Name)
	}
	if strings.Join(names, ",") != "istio-init,istio-proxy,user-init" {
		t.Errorf("init containers %v: want capture, then the sidecar, then the user's", names)
	}
	sidecar := pod.Spec.InitContainers[1]
	if sidecar.RestartPolicy == nil || *sidecar.RestartPolicy != corev1.ContainerRestartPolicyAlways {
		t.Error("the sidecar is not a native sidecar (restartPolicy Always)")
	}
	if sc := sidecar.SecurityContext; *sc.RunAsUser != 1337 || !*sc.RunAsNonRoot {
		t.Errorf("sidecar security context %+v", sc)
	}
	if caps := pod.Spec.InitContainers[0].SecurityContext.Capabilities.Add; len(caps) != 2 {
		t.Errorf("init capabilities %v, want NET_ADMIN and NET_RAW", caps)
	}
	if got := pod.Labels[LabelCanonicalName]; got != "web" {
		t.Errorf("canonical name %q, want the Deployment's web", got)
	}
	if got, _ := env(&sidecar, "ISTIO_META_WORKLOAD_NAME"); got != "web" {
		t.Errorf("workload name %q", got)
	}
	if got, _ := env(&sidecar, "ISTIO_METAJSON_LABELS"); !strings.Contains(got, `"security.istio.io/tlsMode":"istio"`) {
		t.Errorf("ISTIO_METAJSON_LABELS %s lacks the injected labels", got)
	}
	var st status
	if err := json.Unmarshal([]byte(pod.Annotations[AnnotationStatus]), &st); err != nil || len(st.Volumes) != 3 {
		t.Errorf("status annotation %q: %v", pod.Annotations[AnnotationStatus], err)
	}
	token := pod.Spec.Volumes[1].Projected.Sources[0].ServiceAccountToken
	if token.Audience != "istio-ca" {
		t.Errorf("token audience %q", token.Audience)
	}
}

func TestNewRejects(t *testing.T) {
	for _, o := range []Options{{DiscoveryAddress: "weft-control"}, {ProxyUID: -1}} {
		if _, err := New(o); err == nil {
			t.Errorf("New(%+v) accepted", o)
		}
	}
}

func intOrName(name string) intstr.IntOrString { return intstr.FromString(name) }

// FuzzInjectYAML: any input either fails with an error or injects, and
// injecting the output again changes nothing (no panics either way).
func FuzzInjectYAML(f *testing.F) {
	for _, name := range []string{"deployment", "annotations", "kinds"} {
		b, err := os.ReadFile(filepath.Join("testdata", name+".in.yaml"))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("kind: Deployment\nspec: {template: 3}\n"))
	f.Add([]byte("kind: List\nitems: [1, {kind: Pod}]\n"))
	inj, err := New(Options{})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		var out bytes.Buffer
		if err := InjectYAML(bytes.NewReader(in), &out, inj); err != nil {
			return
		}
		var again bytes.Buffer
		if err := InjectYAML(bytes.NewReader(out.Bytes()), &again, inj); err != nil {
			t.Fatalf("re-reading the output: %v\n%s", err, out.Bytes())
		}
		if !bytes.Equal(again.Bytes(), out.Bytes()) {
			t.Fatalf("not idempotent:\n%s\n---- became ----\n%s", out.Bytes(), again.Bytes())
		}
	})
}
