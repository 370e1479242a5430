package install

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/weftmesh/weft/internal/config"
	"github.com/weftmesh/weft/internal/config/kube"
	"github.com/weftmesh/weft/internal/inject"
)

func render(t *testing.T, o RenderOptions) *Manifest {
	t.Helper()
	m, err := Render(o)
	if err != nil {
		t.Fatalf("Render(%+v): %v", o, err)
	}
	return m
}

// convert decodes a rendered object into its typed form.
func convert[T any](t *testing.T, u *unstructured.Unstructured) *T {
	t.Helper()
	if u == nil {
		t.Fatal("object missing from the manifest")
	}
	out := new(T)
	if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(u.Object, out, true); err != nil {
		t.Fatalf("%s: %v", describe(u), err)
	}
	return out
}

func kinds(objs []*unstructured.Unstructured) []string {
	var k []string
	for _, o := range objs {
		k = append(k, o.GetKind()+"/"+o.GetName())
	}
	return k
}

// TestRenderDefaults: the default values give every object, in apply
// order (webhooks last), the 11 CRDs first, and no caBundle (weft-control
// sets it; an empty one in the chart would be applied over it).
func TestRenderDefaults(t *testing.T) {
	m := render(t, RenderOptions{})
	want := []string{
		"ServiceAccount/istio-ingressgateway", "ServiceAccount/weft-control", "ClusterRole/weft-control", "ClusterRoleBinding/weft-control",
		"Role/weft-control", "RoleBinding/weft-control", "ConfigMap/istio", "Service/istio-ingressgateway", "Service/weft-control",
		"Deployment/istio-ingressgateway", "Deployment/weft-control", "ValidatingWebhookConfiguration/validation.weft.dev",
		"MutatingWebhookConfiguration/weft-sidecar-injector",
	}
	if got := kinds(m.Objects); !reflect.DeepEqual(got, want) {
		t.Errorf("objects %v, want %v", got, want)
	}
	if len(m.CRDs) != len(kube.Resources()) {
		t.Errorf("%d CRDs, want %d", len(m.CRDs), len(kube.Resources()))
	}
	for _, crd := range m.CRDs {
		if crd.GetKind() != "CustomResourceDefinition" {
			t.Errorf("crds/ holds %s", describe(crd))
		}
	}
	if all := m.All(); all[0].GetKind() != "CustomResourceDefinition" {
		t.Errorf("the stream starts with %s, want the CRDs", describe(all[0]))
	}
	var b strings.Builder
	if err := m.WriteYAML(&b); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(b.String(), "caBundle") {
		t.Error("the rendered chart sets a caBundle")
	}
	if n := strings.Count(b.String(), "\n---\n"); n != len(m.All())-1 {
		t.Errorf("%d separators for %d objects", n, len(m.All()))
	}
	for _, o := range m.Objects {
		ns := o.GetNamespace()
		clusterScoped := strings.HasPrefix(o.GetKind(), "Cluster") || strings.HasSuffix(o.GetKind(), "WebhookConfiguration")
		if (ns == "") != clusterScoped || (ns != "" && ns != DefaultNamespace) {
			t.Errorf("%s in namespace %q", describe(o), ns)
		}
		if o.GetLabels()["app.kubernetes.io/managed-by"] != "weft" {
			t.Errorf("%s labels %v, want app.kubernetes.io/managed-by=weft", describe(o), o.GetLabels())
		}
	}
	d := convert[appsv1.Deployment](t, m.Find("Deployment", "weft-control"))
	c := d.Spec.Template.Spec.Containers[0]
	if c.Image != "ghcr.io/weftmesh/weft:"+inject.Version || *d.Spec.Replicas != 1 {
		t.Errorf("image %s replicas %d", c.Image, *d.Spec.Replicas)
	}
	for _, arg := range []string{"--sidecar-injection", "--proxy-image=" + c.Image, "--webhook-address=:15017", "--mesh-config=/etc/istio/config/mesh", "--http-address=:15014"} {
		if !slices.Contains(c.Args, arg) {
			t.Errorf("weft-control args %v lack %s", c.Args, arg)
		}
	}
	sc := c.SecurityContext
	if sc == nil || !*sc.ReadOnlyRootFilesystem || !*sc.RunAsNonRoot || !reflect.DeepEqual(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
		t.Errorf("securityContext %+v", sc)
	}
	if c.Resources.Requests.Cpu().String() != "100m" || c.Resources.Requests.Memory().String() != "128Mi" || c.Resources.Limits.Memory().String() != "1Gi" {
		t.Errorf("resources %+v", c.Resources)
	}
	if c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet.Path != "/ready" || c.LivenessProbe == nil {
		t.Errorf("probes %+v %+v", c.ReadinessProbe, c.LivenessProbe)
	}
}

// TestRenderValues: values change what they say and nothing else breaks.
func TestRenderValues(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "values.yaml")
	if err := os.WriteFile(file, []byte("replicaCount: 3\nhub: example.com/mesh\nmeshConfig:\n  accessLogFile: /dev/stdout\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		o     RenderOptions
		check func(t *testing.T, m *Manifest)
	}{
		{"webhook url", RenderOptions{Set: []string{"webhook.url=https://127.0.0.1:1234"}}, func(t *testing.T, m *Manifest) {
			v := convert[admissionregistrationv1.ValidatingWebhookConfiguration](t, m.Find("ValidatingWebhookConfiguration", kube.ValidatingWebhookName))
			if u := v.Webhooks[0].ClientConfig.URL; u == nil || *u != "https://127.0.0.1:1234/validate" || v.Webhooks[0].ClientConfig.Service != nil {
				t.Errorf("validating clientConfig %+v", v.Webhooks[0].ClientConfig)
			}
			mw := convert[admissionregistrationv1.MutatingWebhookConfiguration](t, m.Find("MutatingWebhookConfiguration", "weft-sidecar-injector"))
			for _, w := range mw.Webhooks {
				if u := w.ClientConfig.URL; u == nil || *u != "https://127.0.0.1:1234/inject" || w.ClientConfig.Service != nil {
					t.Errorf("%s clientConfig %+v", w.Name, w.ClientConfig)
				}
			}
		}},
		{"two replicas", RenderOptions{Set: []string{"replicaCount=2"}}, func(t *testing.T, m *Manifest) {
			d := convert[appsv1.Deployment](t, m.Find("Deployment", "weft-control"))
			if *d.Spec.Replicas != 2 || m.Find("PodDisruptionBudget", "weft-control") == nil {
				t.Errorf("replicas %d, PodDisruptionBudget %v", *d.Spec.Replicas, m.Find("PodDisruptionBudget", "weft-control"))
			}
		}},
		{"no injector", RenderOptions{Set: []string{"sidecarInjector.enabled=false"}}, func(t *testing.T, m *Manifest) {
			d := convert[appsv1.Deployment](t, m.Find("Deployment", "weft-control"))
			if m.Find("MutatingWebhookConfiguration", "weft-sidecar-injector") != nil || slices.Contains(d.Spec.Template.Spec.Containers[0].Args, "--sidecar-injection") {
				t.Error("the injector is still there")
			}
			if m.Find("ValidatingWebhookConfiguration", kube.ValidatingWebhookName) == nil {
				t.Error("the validating webhook went too")
			}
		}},
		{"namespace, file then set, version", RenderOptions{Namespace: "mesh", ValueFiles: []string{file}, Set: []string{"replicaCount=4", "tag=v9"}, Version: "v1.2.3"}, func(t *testing.T, m *Manifest) {
			d := convert[appsv1.Deployment](t, m.Find("Deployment", "weft-control"))
			if *d.Spec.Replicas != 4 || d.Namespace != "mesh" || d.Spec.Template.Spec.Containers[0].Image != "example.com/mesh/weft:v9" {
				t.Errorf("replicas %d namespace %s image %s", *d.Spec.Replicas, d.Namespace, d.Spec.Template.Spec.Containers[0].Image)
			}
			if v := d.Labels["app.kubernetes.io/version"]; v != "v1.2.3" {
				t.Errorf("version label %q", v)
			}
			if mesh := m.Find("ConfigMap", "istio").Object["data"].(map[string]any)["mesh"]; mesh != "accessLogFile: /dev/stdout" {
				t.Errorf("mesh %q", mesh)
			}
			crb := convert[rbacv1.ClusterRoleBinding](t, m.Find("ClusterRoleBinding", "weft-control"))
			if crb.Subjects[0].Namespace != "mesh" {
				t.Errorf("binding subjects %+v", crb.Subjects)
			}
			v := convert[admissionregistrationv1.ValidatingWebhookConfiguration](t, m.Find("ValidatingWebhookConfiguration", kube.ValidatingWebhookName))
			if v.Webhooks[0].ClientConfig.Service.Namespace != "mesh" {
				t.Errorf("webhook service %+v", v.Webhooks[0].ClientConfig.Service)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.check(t, render(t, tc.o)) })
	}
}

// TestRenderErrors: a bad --set or values file names what is wrong.
func TestRenderErrors(t *testing.T) {
	for _, tc := range []struct {
		o    RenderOptions
		want string
	}{
		{RenderOptions{Set: []string{"replicaCount"}}, "replicaCount"},
		{RenderOptions{Set: []string{"replicas=2"}}, `no value "replicas"`},
		{RenderOptions{Set: []string{"a[x]=1"}}, "a[x]=1"},
		{RenderOptions{ValueFiles: []string{"/nonexistent/values.yaml"}}, "/nonexistent/values.yaml"},
	} {
		_, err := Render(tc.o)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Render(%+v): %v, want an error containing %q", tc.o, err, tc.want)
		}
	}
}

// TestWebhooksMatchGenerators: the chart's webhook configurations (the
// one source users install) are field by field what the Go generators
// build, which the tests of internal/inject and internal/config/kube
// use, so they cannot drift.
func TestWebhooksMatchGenerators(t *testing.T) {
	for _, ns := range []string{"", "mesh"} {
		m := render(t, RenderOptions{Namespace: ns})
		v := convert[admissionregistrationv1.ValidatingWebhookConfiguration](t, m.Find("ValidatingWebhookConfiguration", kube.ValidatingWebhookName))
		wantV := kube.ValidatingWebhookConfiguration(kube.WebhookConfigOptions{Namespace: m.Namespace})
		if v.Name != wantV.Name || !reflect.DeepEqual(v.Webhooks, wantV.Webhooks) {
			t.Errorf("namespace %q: the chart's ValidatingWebhookConfiguration differs from kube.ValidatingWebhookConfiguration:\n%+v\nwant\n%+v", ns, v.Webhooks, wantV.Webhooks)
		}
		mw := convert[admissionregistrationv1.MutatingWebhookConfiguration](t, m.Find("MutatingWebhookConfiguration", "weft-sidecar-injector"))
		wantM := inject.WebhookConfiguration(inject.WebhookOptions{ServiceNamespace: m.Namespace})
		if mw.Name != wantM.Name || !reflect.DeepEqual(mw.Webhooks, wantM.Webhooks) {
			t.Errorf("namespace %q: the chart's MutatingWebhookConfiguration differs from inject.WebhookConfiguration:\n%+v\nwant\n%+v", ns, mw.Webhooks, wantM.Webhooks)
		}
	}
}

// TestClusterRoleCoversResources: every kind weft-control reads is
// watchable and its status writable under the ClusterRole (a kind added
// to kube.Resources without RBAC would fail only on a real cluster).
func TestClusterRoleCoversResources(t *testing.T) {
	cr := convert[rbacv1.ClusterRole](t, render(t, RenderOptions{}).Find("ClusterRole", "weft-control"))
	allows := func(group, resource, verb string) bool {
		for _, r := range cr.Rules {
			if slices.Contains(r.APIGroups, group) && slices.Contains(r.Resources, resource) && slices.Contains(r.Verbs, verb) && len(r.ResourceNames) == 0 {
				return true
			}
		}
		return false
	}
	for _, r := range kube.Resources() {
		for _, verb := range []string{"get", "list", "watch"} {
			if !allows(r.Group, r.Plural, verb) {
				t.Errorf("the ClusterRole does not allow %s %s.%s", verb, r.Plural, r.Group)
			}
		}
		if !allows(r.Group, r.Plural+"/status", "update") {
			t.Errorf("the ClusterRole does not allow update %s/status.%s", r.Plural, r.Group)
		}
	}
	for _, r := range cr.Rules {
		if slices.Contains(r.Verbs, "delete") || slices.Contains(r.Verbs, "*") || slices.Contains(r.Resources, "*") || slices.Contains(r.Resources, "secrets") {
			t.Errorf("the ClusterRole grants %+v", r)
		}
	}
}

// TestChartVersion: the chart's appVersion is the default image tag of
// the injector.
func TestChartVersion(t *testing.T) {
	c, err := LoadChart()
	if err != nil {
		t.Fatal(err)
	}
	if c.Metadata.APIVersion != "v2" || c.Metadata.Version != "0.1.0" || c.Metadata.AppVersion != inject.Version {
		t.Errorf("Chart.yaml %+v", c.Metadata)
	}
}

// TestRenderSetString: --set-string keeps "true" a string, so that Istio's
// string-valued mesh settings (defaultConfig.proxyMetadata, DNS capture)
// reach weft-control as it parses them; --set would make it a boolean,
// which the mesh configuration refuses.
func TestRenderSetString(t *testing.T) {
	meshOf := func(o RenderOptions) []*config.Error {
		cm := render(t, o).Find("ConfigMap", "istio")
		text, _, _ := unstructured.NestedString(cm.Object, "data", "mesh")
		m, problems := config.ParseMeshConfig("mesh", []byte(text))
		if m != nil && len(problems) == 0 && m.GetDefaultConfig().GetProxyMetadata()["ISTIO_META_DNS_CAPTURE"] != "true" {
			t.Errorf("proxyMetadata %v, want ISTIO_META_DNS_CAPTURE \"true\"", m.GetDefaultConfig().GetProxyMetadata())
		}
		return problems
	}
	if p := meshOf(RenderOptions{SetString: []string{"meshConfig.defaultConfig.proxyMetadata.ISTIO_META_DNS_CAPTURE=true"}}); len(p) != 0 {
		t.Errorf("--set-string: mesh configuration problems %v", p)
	}
	if p := meshOf(RenderOptions{Set: []string{"meshConfig.defaultConfig.proxyMetadata.ISTIO_META_DNS_CAPTURE=true"}}); len(p) == 0 {
		t.Error("--set of a boolean into proxyMetadata: no problem reported, want the mesh configuration to refuse it")
	}
	if _, err := Render(RenderOptions{SetString: []string{"nosuch=1"}}); err == nil || !strings.Contains(err.Error(), `--set-string nosuch=1: the chart has no value "nosuch"`) {
		t.Errorf("unknown key: %v", err)
	}
}
