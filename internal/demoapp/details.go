package demoapp

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
)

// writeJSON writes v as a JSON response with status code.
func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ") // read with curl, not only with jq
	_ = enc.Encode(v)
}

// errorBody is the JSON of an HTTP service's error response.
type errorBody struct {
	Error    string `json:"error"`
	ServedBy string `json:"servedBy"`
}

// productID parses the id that ends path after prefix ("/details/0").
func productID(path, prefix string) (int, bool) {
	rest, ok := strings.CutPrefix(path, prefix)
	if !ok {
		return 0, false
	}
	id, err := strconv.Atoi(rest)
	return id, err == nil && id >= 0
}

// withFault wraps an HTTP handler with the service's own fault and the
// x-served-by response header.
func withFault(o *Options, h http.Handler) http.Handler {
	served := o.servedBy()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("x-served-by", served)
		if o.Fault.apply(r.Context().Done()) {
			writeJSON(w, o.Fault.status(), errorBody{Error: "fault injected by " + served + " (FAIL_PERCENT)", ServedBy: served})
			return
		}
		h.ServeHTTP(w, r)
	})
}

// health answers liveness probes.
func health(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// DetailsResponse is details' answer to GET /details/{id}.
type DetailsResponse struct {
	ID        int    `json:"id"`
	Author    string `json:"author"`
	Year      int    `json:"year"`
	Type      string `json:"type"`
	Pages     int    `json:"pages"`
	Publisher string `json:"publisher"`
	Language  string `json:"language"`
	ISBN10    string `json:"ISBN-10"`
	ISBN13    string `json:"ISBN-13"`
	ServedBy  string `json:"servedBy"`
}

// details serves the book's details (static, as Istio's details v1).
type details struct{ o *Options }

func newDetails(o *Options) *details { return &details{o: o} }

func (d *details) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", health)
	mux.Handle("GET /details/", withFault(d.o, http.HandlerFunc(d.get)))
	return mux
}

// get answers GET /details/{id}.
func (d *details) get(w http.ResponseWriter, r *http.Request) {
	id, ok := productID(r.URL.Path, "/details/")
	if !ok {
		writeJSON(w, http.StatusBadRequest, errorBody{Error: "please provide a numeric product id", ServedBy: d.o.servedBy()})
		return
	}
	writeJSON(w, http.StatusOK, DetailsResponse{
		ID: id, Author: "William Shakespeare", Year: 1595, Type: "paperback", Pages: 200,
		Publisher: "PublisherA", Language: "English", ISBN10: "1234567890", ISBN13: "123-1234567890",
		ServedBy: d.o.servedBy(),
	})
}
