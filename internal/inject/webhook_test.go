package inject

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
)

// review posts an AdmissionReview for obj (kind Pod unless kind is set)
// to the handler and returns the response.
func review(t *testing.T, h http.Handler, kind string, obj any) *admissionv1.AdmissionResponse {
	t.Helper()
	raw, err := json.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	req := admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{
			UID: types.UID("uid-1"), Kind: metav1.GroupVersionKind{Version: "v1", Kind: kind},
			Namespace: "apps", Operation: admissionv1.Create, Object: runtime.RawExtension{Raw: raw},
		},
	}
	body, _ := json.Marshal(req)
	rec := httptest.NewRecorder()
	r := httptest.NewRequest(http.MethodPost, WebhookPath, bytes.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	h.ServeHTTP(rec, r)
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	var out admissionv1.AdmissionReview
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil || out.Response == nil {
		t.Fatalf("response %s: %v", rec.Body, err)
	}
	if out.Response.UID != "uid-1" || out.Kind != "AdmissionReview" {
		t.Errorf("response UID %q kind %q: must echo the request's", out.Response.UID, out.Kind)
	}
	return out.Response
}

// applyPatch applies the patch's add and remove operations (all jsonPatch
// emits) to doc; the end-to-end test has the API server apply it for real.
func applyPatch(t *testing.T, doc []byte, patch []byte) []byte {
	t.Helper()
	var m map[string]any
	var ops []patchOp
	if err := json.Unmarshal(doc, &m); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(patch, &ops); err != nil {
		t.Fatal(err)
	}
	for _, op := range ops {
		parts := strings.Split(strings.TrimPrefix(op.Path, "/"), "/")
		parent := m
		for _, p := range parts[:len(parts)-1] {
			parent = parent[strings.NewReplacer("~1", "/", "~0", "~").Replace(p)].(map[string]any)
		}
		key := strings.NewReplacer("~1", "/", "~0", "~").Replace(parts[len(parts)-1])
		switch op.Op {
		case "add":
			parent[key] = op.Value
		case "remove":
			delete(parent, key)
		default:
			t.Fatalf("unexpected op %q", op.Op)
		}
	}
	out, _ := json.Marshal(m)
	return out
}

// TestWebhookPatch: the patch turns the pod into what Inject makes of it.
func TestWebhookPatch(t *testing.T) {
	inj := newTestInjector(t)
	pod := testPod()
	pod.Labels["a/b~c"] = "escaped" // a key that needs JSON-pointer escaping
	resp := review(t, Handler(inj, nil), "Pod", pod)
	if !resp.Allowed || resp.PatchType == nil || *resp.PatchType != admissionv1.PatchTypeJSONPatch {
		t.Fatalf("response %+v: want allowed with a JSON patch", resp)
	}
	orig, _ := json.Marshal(pod)
	patched := applyPatch(t, orig, resp.Patch)
	want := pod.DeepCopy()
	if _, err := inj.Inject(Target{Namespace: "apps", Meta: &want.ObjectMeta, Spec: &want.Spec}); err != nil {
		t.Fatal(err)
	}
	var got corev1.Pod
	if err := json.Unmarshal(patched, &got); err != nil {
		t.Fatal(err)
	}
	gb, _ := json.Marshal(&got)
	wb, _ := json.Marshal(want)
	if !bytes.Equal(gb, wb) {
		t.Errorf("patched pod\n%s\nwant\n%s", gb, wb)
	}
}

func TestWebhookNoPatch(t *testing.T) {
	h := Handler(newTestInjector(t), nil)
	opted := testPod()
	opted.Annotations = map[string]string{AnnotationInject: "false"}
	for name, c := range map[string]struct {
		kind string
		obj  any
	}{
		"opted out":    {"Pod", opted},
		"not a pod":    {"Service", &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "web"}}},
		"host network": {"Pod", &corev1.Pod{Spec: corev1.PodSpec{HostNetwork: true, Containers: []corev1.Container{{Name: "x"}}}}},
	} {
		resp := review(t, h, c.kind, c.obj)
		if !resp.Allowed || resp.Patch != nil {
			t.Errorf("%s: %+v, want allowed without a patch", name, resp)
		}
	}
}

func TestWebhookDenies(t *testing.T) {
	pod := testPod()
	pod.Annotations = map[string]string{AnnotationExcludeOutboundPorts: "http"}
	resp := review(t, Handler(newTestInjector(t), nil), "Pod", pod)
	if resp.Allowed || resp.Result == nil || !strings.Contains(resp.Result.Message, AnnotationExcludeOutboundPorts) {
		t.Errorf("response %+v: want a refusal naming the annotation", resp)
	}
}

func TestWebhookBadRequests(t *testing.T) {
	h := Handler(newTestInjector(t), nil)
	tests := []struct {
		name, method, ctype, body string
		want                      int
	}{
		{"GET", http.MethodGet, "application/json", "", http.StatusMethodNotAllowed},
		{"content type", http.MethodPost, "text/plain", "{}", http.StatusUnsupportedMediaType},
		{"not JSON", http.MethodPost, "application/json", "{", http.StatusBadRequest},
		{"no request", http.MethodPost, "application/json", `{"kind":"AdmissionReview"}`, http.StatusBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			r := httptest.NewRequest(tt.method, WebhookPath, strings.NewReader(tt.body))
			r.Header.Set("Content-Type", tt.ctype)
			h.ServeHTTP(rec, r)
			if rec.Code != tt.want {
				t.Errorf("status %d, want %d", rec.Code, tt.want)
			}
		})
	}
}
