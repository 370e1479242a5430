package demoapp

import (
	"context"
	"html/template"
	"net/http"
	"strconv"
	"strings"
)

// Messages shown when a call fails, as Istio's productpage words them.
const (
	detailsUnavailable = "Sorry, product details are currently unavailable for this book."
	reviewsUnavailable = "Sorry, product reviews are currently unavailable for this book."
)

// ProductResponse is productpage's answer to GET /api/v1/products/{id}:
// the product with what details and reviews said (or why they could not).
type ProductResponse struct {
	ID              int              `json:"id"`
	Title           string           `json:"title"`
	DescriptionHTML string           `json:"descriptionHtml"`
	ServedBy        string           `json:"servedBy"`
	User            string           `json:"user,omitempty"`
	Details         *DetailsResponse `json:"details,omitempty"`
	DetailsError    string           `json:"detailsError,omitempty"`
	Reviews         *ReviewsResponse `json:"reviews,omitempty"`
	ReviewsError    string           `json:"reviewsError,omitempty"`
}

// productPage is the front end: an HTML page and a JSON API.
type productPage struct {
	o       *Options
	details *httpCaller
	reviews *reviewsClient
}

func newProductPage(o *Options) (*productPage, error) {
	cc, err := dialReviews(o)
	if err != nil {
		return nil, err
	}
	return &productPage{o: o, details: newHTTPCaller(o), reviews: &reviewsClient{cc: cc}}, nil
}

func (p *productPage) close() {
	p.details.close()
	_ = p.reviews.cc.Close()
}

func (p *productPage) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", health)
	mux.HandleFunc("GET /{$}", p.index)
	mux.HandleFunc("POST /login", p.login)
	mux.HandleFunc("GET /logout", p.logout)
	mux.HandleFunc("GET /api/v1/products", p.list)
	mux.HandleFunc("GET /api/v1/products/{id}", p.api)
	mux.HandleFunc("GET /productpage", p.page)
	return withFault(p.o, mux)
}

// user is the signed-in user: the end-user header (curl -H 'end-user:
// jason'), else the user cookie set by /login.
func user(r *http.Request) string {
	if u := r.Header.Get("end-user"); u != "" {
		return u
	}
	if c, err := r.Cookie("user"); err == nil {
		return c.Value
	}
	return ""
}

// product gathers product id's details and reviews, propagating the
// request's trace headers and its user to both calls.
func (p *productPage) product(ctx context.Context, r *http.Request, id int) *ProductResponse {
	h := FromHTTP(r.Header)
	h.SetUser(user(r))
	pr := &ProductResponse{
		ID: id, Title: "The Comedy of Errors", ServedBy: p.o.servedBy(), User: h.User(),
		DescriptionHTML: `<a href="https://en.wikipedia.org/wiki/The_Comedy_of_Errors">Wikipedia Summary</a>: ` +
			`The Comedy of Errors is one of <b>William Shakespeare's</b> early plays. It is his shortest and one of his most farcical comedies.`,
	}
	var d DetailsResponse
	if err := p.details.getJSON(ctx, p.o.DetailsAddr, "/details/"+strconv.Itoa(id), &h, p.o.CallTimeout, &d); err != nil {
		pr.DetailsError = detailsUnavailable
		p.o.Logger.Warn("details call failed", "details", p.o.DetailsAddr, "error", err)
	} else {
		pr.Details = &d
	}
	var rv ReviewsResponse
	rctx, cancel := context.WithTimeout(ctx, p.o.CallTimeout)
	defer cancel()
	if err := p.reviews.get(rctx, id, &h, &rv); err != nil {
		pr.ReviewsError = reviewsUnavailable
		p.o.Logger.Warn("reviews call failed", "reviews", p.o.ReviewsAddr, "error", err)
	} else {
		pr.Reviews = &rv
	}
	return pr
}

// api answers GET /api/v1/products/{id}.
func (p *productPage) api(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.Atoi(r.PathValue("id"))
	if err != nil || id < 0 {
		writeJSON(w, http.StatusBadRequest, errorBody{Error: "please provide a numeric product id", ServedBy: p.o.servedBy()})
		return
	}
	writeJSON(w, http.StatusOK, p.product(r.Context(), r, id))
}

// list answers GET /api/v1/products.
func (p *productPage) list(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, []map[string]any{{"id": 0, "title": "The Comedy of Errors"}})
}

func (p *productPage) index(w http.ResponseWriter, r *http.Request) {
	http.Redirect(w, r, "/productpage", http.StatusFound)
}

// login signs a user in (form field username), as bookinfo's Sign in.
func (p *productPage) login(w http.ResponseWriter, r *http.Request) {
	u := strings.TrimSpace(r.FormValue("username"))
	http.SetCookie(w, &http.Cookie{Name: "user", Value: u, Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode})
	http.Redirect(w, r, "/productpage", http.StatusSeeOther)
}

func (p *productPage) logout(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{Name: "user", Value: "", Path: "/", MaxAge: -1})
	http.Redirect(w, r, "/productpage", http.StatusSeeOther)
}

// page answers GET /productpage with the HTML page of product 0.
func (p *productPage) page(w http.ResponseWriter, r *http.Request) {
	pr := p.product(r.Context(), r, 0)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_ = pageTemplate.Execute(w, pageData{ProductResponse: pr, Description: template.HTML(pr.DescriptionHTML)})
}
