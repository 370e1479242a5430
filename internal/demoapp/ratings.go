package demoapp

import "net/http"

// RatingsResponse is ratings' answer to GET /ratings/{id}: stars (1-5)
// per reviewer.
type RatingsResponse struct {
	ID       int            `json:"id"`
	Ratings  map[string]int `json:"ratings"`
	ServedBy string         `json:"servedBy"`
}

// ratings serves the book's ratings (static, as Istio's ratings v1). Its
// Fault (DELAY, FAIL_PERCENT) makes it slow or failing on purpose.
type ratings struct{ o *Options }

func newRatings(o *Options) *ratings { return &ratings{o: o} }

func (s *ratings) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", health)
	mux.Handle("GET /ratings/", withFault(s.o, http.HandlerFunc(s.get)))
	return mux
}

// get answers GET /ratings/{id}.
func (s *ratings) get(w http.ResponseWriter, r *http.Request) {
	id, ok := productID(r.URL.Path, "/ratings/")
	if !ok {
		writeJSON(w, http.StatusBadRequest, errorBody{Error: "please provide a numeric product id", ServedBy: s.o.servedBy()})
		return
	}
	writeJSON(w, http.StatusOK, RatingsResponse{
		ID:       id,
		Ratings:  map[string]int{"Reviewer1": 5, "Reviewer2": 4},
		ServedBy: s.o.servedBy(),
	})
}
