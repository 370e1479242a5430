package inject

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// WebhookPath is where weft-control serves the injection webhook (Istio's
// istiod serves /inject).
const WebhookPath = "/inject"

// maxReviewBytes bounds an AdmissionReview body (the API server's own
// limit on a request is 3 MiB of object plus overhead).
const maxReviewBytes = 8 << 20

// Handler serves the mutating admission webhook: it reads an
// AdmissionReview v1 for a Pod CREATE and answers with the injection as a
// JSON patch (or no patch when the pod is not injected). A pod the
// injector cannot mutate (an invalid traffic annotation) is refused with
// the reason, as Istio's webhook does. Malformed requests get 400. The
// handler is safe for concurrent use; log may be nil.
func Handler(inj *Injector, log *slog.Logger) http.Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &handler{inj: inj, log: log}
}

type handler struct {
	inj *Injector
	log *slog.Logger
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "admission webhook: POST an AdmissionReview", http.StatusMethodNotAllowed)
		return
	}
	if ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); ct != "application/json" {
		http.Error(w, "admission webhook: Content-Type must be application/json", http.StatusUnsupportedMediaType)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxReviewBytes))
	if err != nil {
		http.Error(w, "admission webhook: reading the body: "+err.Error(), http.StatusBadRequest)
		return
	}
	var review admissionv1.AdmissionReview
	if err := json.Unmarshal(body, &review); err != nil || review.Request == nil {
		http.Error(w, fmt.Sprintf("admission webhook: want an AdmissionReview v1 with a request (%v)", err), http.StatusBadRequest)
		return
	}
	resp := h.review(review.Request)
	resp.UID = review.Request.UID
	out := admissionv1.AdmissionReview{TypeMeta: review.TypeMeta, Response: resp}
	if out.APIVersion == "" {
		out.APIVersion, out.Kind = "admission.k8s.io/v1", "AdmissionReview"
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(&out)
}

// review decides one request. Anything but a Pod is allowed unchanged.
func (h *handler) review(req *admissionv1.AdmissionRequest) *admissionv1.AdmissionResponse {
	allow := &admissionv1.AdmissionResponse{Allowed: true}
	if req.Kind.Group != "" || req.Kind.Kind != "Pod" || req.Operation != admissionv1.Create {
		return allow
	}
	var pod corev1.Pod
	if err := json.Unmarshal(req.Object.Raw, &pod); err != nil {
		return deny(fmt.Sprintf("weft sidecar injection: decoding the pod: %v", err))
	}
	orig, err := json.Marshal(&pod)
	if err != nil {
		return deny(err.Error())
	}
	d, err := h.inj.Inject(Target{Namespace: req.Namespace, Meta: &pod.ObjectMeta, Spec: &pod.Spec})
	name := firstNonEmpty(pod.Name, pod.GenerateName)
	if err != nil {
		h.log.Info("injection refused", "namespace", req.Namespace, "pod", name, "error", err)
		return deny("weft sidecar injection: " + err.Error())
	}
	if !d.Inject {
		h.log.Debug("not injected", "namespace", req.Namespace, "pod", name, "reason", d.Reason)
		return allow
	}
	mutated, err := json.Marshal(&pod)
	if err != nil {
		return deny(err.Error())
	}
	patch, err := jsonPatch(orig, mutated)
	if err != nil {
		return deny("weft sidecar injection: " + err.Error())
	}
	h.log.Debug("injected", "namespace", req.Namespace, "pod", name)
	pt := admissionv1.PatchTypeJSONPatch
	allow.Patch, allow.PatchType = patch, &pt
	return allow
}

func deny(msg string) *admissionv1.AdmissionResponse {
	return &admissionv1.AdmissionResponse{Result: &metav1.Status{
		Status: metav1.StatusFailure, Message: msg, Reason: metav1.StatusReasonBadRequest, Code: http.StatusBadRequest,
	}}
}
