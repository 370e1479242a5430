package inject

import (
	"slices"
	"strings"
	"testing"
)

// TestDNSCapture: ISTIO_META_DNS_CAPTURE from the mesh's proxyMetadata or
// the pod's proxy.istio.io/config annotation (which wins) adds
// --redirect-dns to istio-init, sets the variable on the sidecar and puts
// its DNS proxy on 127.0.0.1:15053, where the rules redirect.
func TestDNSCapture(t *testing.T) {
	tests := []struct {
		name       string
		mesh       map[string]string
		annotation string
		want       bool
		wantEnv    map[string]string
	}{
		{name: "off by default"},
		{name: "annotation", annotation: `{proxyMetadata: {ISTIO_META_DNS_CAPTURE: "true"}}`, want: true,
			wantEnv: map[string]string{"ISTIO_META_DNS_CAPTURE": "true"}},
		{name: "annotation as YAML block", annotation: "proxyMetadata:\n  ISTIO_META_DNS_CAPTURE: \"true\"\n  ISTIO_META_DNS_AUTO_ALLOCATE: \"true\"\n", want: true,
			wantEnv: map[string]string{"ISTIO_META_DNS_CAPTURE": "true", "ISTIO_META_DNS_AUTO_ALLOCATE": "true"}},
		{name: "mesh default", mesh: map[string]string{"ISTIO_META_DNS_CAPTURE": "true"}, want: true,
			wantEnv: map[string]string{"ISTIO_META_DNS_CAPTURE": "true"}},
		{name: "annotation turns the mesh default off", mesh: map[string]string{"ISTIO_META_DNS_CAPTURE": "true", "FOO": "bar"},
			annotation: `{"proxyMetadata": {"ISTIO_META_DNS_CAPTURE": "false"}}`,
			wantEnv:    map[string]string{"ISTIO_META_DNS_CAPTURE": "false", "FOO": "bar"}},
		{name: "injector's own variables win", mesh: map[string]string{"ISTIO_META_CLUSTER_ID": "other"},
			wantEnv: map[string]string{"ISTIO_META_CLUSTER_ID": "Kubernetes"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inj, err := New(Options{ProxyMetadata: tt.mesh})
			if err != nil {
				t.Fatal(err)
			}
			pod := testPod()
			if tt.annotation != "" {
				pod.Annotations = map[string]string{AnnotationProxyConfig: tt.annotation}
			}
			if _, err := inj.Inject(Target{Meta: &pod.ObjectMeta, Spec: &pod.Spec}); err != nil {
				t.Fatal(err)
			}
			initc, sidecar := pod.Spec.InitContainers[0], pod.Spec.InitContainers[1]
			if got := slices.Contains(initc.Args, "--redirect-dns"); got != tt.want {
				t.Errorf("istio-init args %v: --redirect-dns %v, want %v", initc.Args, got, tt.want)
			}
			args := strings.Join(sidecar.Args, " ")
			if got := strings.Contains(args, "--dns-address 127.0.0.1:15053"); got != tt.want {
				t.Errorf("sidecar args %q: --dns-address 127.0.0.1:15053 %v, want %v", args, got, tt.want)
			}
			for k, v := range tt.wantEnv {
				if got, ok := env(&sidecar, k); !ok || got != v {
					t.Errorf("sidecar env %s = %q (set %v), want %q", k, got, ok, v)
				}
			}
			if !tt.want && len(tt.wantEnv) == 0 {
				if _, ok := env(&sidecar, MetaDNSCapture); ok {
					t.Errorf("sidecar env has %s without DNS capture", MetaDNSCapture)
				}
			}
		})
	}
}

func TestDNSCaptureErrors(t *testing.T) {
	for _, tt := range []struct{ annotation, want string }{
		{"proxyMetadata: [1, 2]", "metadata.annotations[proxy.istio.io/config]"},
		{`{proxyMetadata: {ISTIO_META_DNS_CAPTURE: "maybe"}}`, "proxyMetadata[ISTIO_META_DNS_CAPTURE]"},
	} {
		pod := testPod()
		pod.Annotations = map[string]string{AnnotationProxyConfig: tt.annotation}
		if _, err := newTestInjector(t).Inject(Target{Meta: &pod.ObjectMeta, Spec: &pod.Spec}); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q: err = %v, want one naming %s", tt.annotation, err, tt.want)
		}
		if len(pod.Spec.InitContainers) != 0 {
			t.Errorf("%q: the pod was injected although the annotation is bad", tt.annotation)
		}
	}
}
