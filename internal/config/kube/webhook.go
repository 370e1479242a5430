package kube

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"

	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/weftmesh/weft/internal/config"
)

// WebhookPath is where Webhook is served (Istio's istiod serves its
// validation webhook on /validate).
const WebhookPath = "/validate"

// maxReviewBytes bounds an AdmissionReview body (the API server limits
// objects to about 3 MiB; the review holds the object twice on update).
const maxReviewBytes = 8 << 20

// Webhook is the validating admission webhook for the kinds of Resources:
// it decodes the object of a CREATE or UPDATE with internal/config's
// decoder and object-local validation (Istio's webhook checks each object
// alone too; the cross-object checks stay in the status), and denies an
// invalid object with every error and its field path, so that `kubectl
// apply` prints them. Warnings are returned as admission warnings, which
// kubectl prints without rejecting. Other operations and kinds weft does
// not read are allowed. It is safe for concurrent use.
type Webhook struct{}

var _ http.Handler = Webhook{}

// ServeHTTP answers one admission.k8s.io/v1 AdmissionReview.
func (Webhook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "POST an admission.k8s.io/v1 AdmissionReview", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxReviewBytes+1))
	if err != nil || len(body) > maxReviewBytes {
		http.Error(w, "cannot read the AdmissionReview (at most 8 MiB)", http.StatusBadRequest)
		return
	}
	var review admissionv1.AdmissionReview
	if err := json.Unmarshal(body, &review); err != nil || review.Request == nil {
		http.Error(w, "the body is not an admission.k8s.io/v1 AdmissionReview with a request", http.StatusBadRequest)
		return
	}
	resp := Review(review.Request)
	out := admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Response: resp,
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(out)
}

// Review decides one admission request (see Webhook).
func Review(req *admissionv1.AdmissionRequest) *admissionv1.AdmissionResponse {
	resp := &admissionv1.AdmissionResponse{UID: req.UID, Allowed: true}
	if req.Operation != admissionv1.Create && req.Operation != admissionv1.Update {
		return resp
	}
	if _, ours := ResourceOf(config.Kind(req.Kind.Kind)); !ours {
		return resp
	}
	dec := json.NewDecoder(bytes.NewReader(req.Object.Raw))
	dec.UseNumber()
	var content map[string]any
	if err := dec.Decode(&content); err != nil || content == nil {
		return deny(resp, fmt.Sprintf("the object is not a JSON object: %v", err))
	}
	// A namespaced object's namespace may come only in the request.
	if md, ok := content["metadata"].(map[string]any); ok && req.Namespace != "" {
		if _, set := md["namespace"]; !set {
			md["namespace"] = req.Namespace
		}
	}
	obj, problems := config.DecodeObject(content, config.Source{File: "admission", Doc: -1})
	var errs []string
	for _, p := range problems {
		msg := p.Message
		if p.Path != "" {
			msg = p.Path + ": " + msg
		}
		if p.Warning {
			resp.Warnings = append(resp.Warnings, msg)
		} else {
			errs = append(errs, msg)
		}
	}
	if obj == nil {
		key := config.Key{Kind: config.Kind(req.Kind.Kind), Namespace: req.Namespace, Name: req.Name}
		return deny(resp, fmt.Sprintf("weft: invalid %s: %s", key, strings.Join(errs, "; ")))
	}
	return resp
}

// deny rejects with a message (HTTP 422 in the Status, as the API server
// reports invalid objects).
func deny(resp *admissionv1.AdmissionResponse, msg string) *admissionv1.AdmissionResponse {
	resp.Allowed = false
	resp.Result = &metav1.Status{Status: metav1.StatusFailure, Code: http.StatusUnprocessableEntity, Reason: metav1.StatusReasonInvalid, Message: msg}
	return resp
}
