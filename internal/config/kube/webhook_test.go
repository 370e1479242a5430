package kube

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
)

const (
	validVS = `{"apiVersion":"networking.istio.io/v1","kind":"VirtualService","metadata":{"name":"reviews"},
	  "spec":{"hosts":["reviews"],"http":[{"route":[{"destination":{"host":"reviews"}}]}]}}`
	invalidVS = `{"apiVersion":"networking.istio.io/v1","kind":"VirtualService","metadata":{"name":"reviews"},
	  "spec":{"hosts":["reviews"],"http":[{"route":[{"destination":{"host":"reviews"},"weight":-1}]}]}}`
	unknownFieldVS = `{"apiVersion":"networking.istio.io/v1alpha3","kind":"VirtualService","metadata":{"name":"typo","namespace":"shop"},
	  "spec":{"hosts":["reviews"],"htp":[]}}`
)

// request is an admission request for a VirtualService.
func request(op admissionv1.Operation, kind, object string) *admissionv1.AdmissionRequest {
	return &admissionv1.AdmissionRequest{
		UID:       types.UID("uid-1"),
		Kind:      metav1.GroupVersionKind{Group: "networking.istio.io", Version: "v1", Kind: kind},
		Namespace: "shop", Name: "reviews", Operation: op,
		Object: runtime.RawExtension{Raw: []byte(object)},
	}
}

// TestReview: valid objects are allowed, invalid ones denied with every
// error and its field path; other operations and kinds are allowed.
func TestReview(t *testing.T) {
	tests := []struct {
		name    string
		req     *admissionv1.AdmissionRequest
		allowed bool
		want    []string // substrings of the denial
	}{
		{"valid create", request(admissionv1.Create, "VirtualService", validVS), true, nil},
		{"invalid create", request(admissionv1.Create, "VirtualService", invalidVS), false,
			[]string{"weft: invalid VirtualService shop/reviews: ", "spec.http[0].route[0].weight: "}},
		{"invalid update", request(admissionv1.Update, "VirtualService", invalidVS), false, []string{"spec.http[0].route[0].weight: "}},
		{"unknown field", request(admissionv1.Create, "VirtualService", unknownFieldVS), false, []string{"spec.htp: unknown field", "did you mean http?"}},
		{"delete", request(admissionv1.Delete, "VirtualService", invalidVS), true, nil},
		{"kind weft does not read", request(admissionv1.Create, "EnvoyFilter", `{"spec":{}}`), true, nil},
		{"not JSON", request(admissionv1.Create, "VirtualService", `[1]`), false, []string{"not a JSON object"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := Review(tt.req)
			if resp.UID != tt.req.UID || resp.Allowed != tt.allowed {
				t.Fatalf("uid %q allowed %v (%v), want %q %v", resp.UID, resp.Allowed, resp.Result, tt.req.UID, tt.allowed)
			}
			if tt.allowed {
				return
			}
			if resp.Result == nil || resp.Result.Code != http.StatusUnprocessableEntity {
				t.Fatalf("result %+v, want code 422", resp.Result)
			}
			for _, w := range tt.want {
				if !strings.Contains(resp.Result.Message, w) {
					t.Errorf("message %q, want %q in it", resp.Result.Message, w)
				}
			}
		})
	}
}

// TestReviewNamespace: an object without metadata.namespace is checked in
// the request's namespace (a DNS-1123 label), not "default".
func TestReviewNamespace(t *testing.T) {
	req := request(admissionv1.Create, "VirtualService", invalidVS)
	req.Namespace = "Bad_NS"
	resp := Review(req)
	if resp.Allowed || !strings.Contains(resp.Result.Message, `invalid namespace "Bad_NS"`) {
		t.Fatalf("allowed %v, result %+v; want a namespace error", resp.Allowed, resp.Result)
	}
}

// TestWebhookHTTP: the handler answers an AdmissionReview with one, and
// refuses other methods and bodies.
func TestWebhookHTTP(t *testing.T) {
	srv := httptest.NewServer(Webhook{})
	defer srv.Close()
	review := admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request:  request(admissionv1.Create, "VirtualService", invalidVS),
	}
	body, _ := json.Marshal(review)
	resp, err := http.Post(srv.URL, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out admissionv1.AdmissionReview
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	if out.Kind != "AdmissionReview" || out.Response == nil || out.Response.Allowed || out.Response.UID != "uid-1" {
		t.Fatalf("review %+v", out)
	}
	for _, tt := range []struct {
		method, body string
		want         int
	}{
		{http.MethodGet, "", http.StatusMethodNotAllowed},
		{http.MethodPost, "{}", http.StatusBadRequest},
		{http.MethodPost, "not json", http.StatusBadRequest},
	} {
		req, _ := http.NewRequest(tt.method, srv.URL, strings.NewReader(tt.body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tt.want {
			t.Errorf("%s %q: status %d, want %d", tt.method, tt.body, resp.StatusCode, tt.want)
		}
	}
}

// FuzzReview: any object body gets an answer for its request (no panic),
// and an allowed create of a kind weft reads decoded without errors.
func FuzzReview(f *testing.F) {
	for _, seed := range []string{validVS, invalidVS, unknownFieldVS, `{}`, `null`, `{"metadata":7}`, `{"spec":{"http":[{"timeout":"1m"}]}}`} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, object string) {
		req := request(admissionv1.Create, "VirtualService", object)
		resp := Review(req)
		if resp.UID != req.UID {
			t.Fatalf("uid %q, want %q", resp.UID, req.UID)
		}
		if !resp.Allowed && (resp.Result == nil || resp.Result.Message == "") {
			t.Fatalf("denied without a message: %+v", resp)
		}
	})
}
