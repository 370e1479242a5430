package demoapp

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"
)

// start runs a service on a free loopback port until the test ends.
func start(t *testing.T, o Options) *App {
	t.Helper()
	o.ListenAddr = "127.0.0.1:0"
	a, err := Start(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := a.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := <-a.Done(); err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return a
}

// getJSONFrom GETs url with headers and decodes the answer.
func getJSONFrom(t *testing.T, url string, hdr http.Header, out any) int {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		t.Fatalf("GET %s: %d, decoding: %v", url, resp.StatusCode, err)
	}
	return resp.StatusCode
}

func TestDetailsAndRatings(t *testing.T) {
	d := start(t, Options{Service: Details})
	r := start(t, Options{Service: Ratings, Version: "v2"})
	var dr DetailsResponse
	if code := getJSONFrom(t, "http://"+d.Addr().String()+"/details/0", nil, &dr); code != 200 || dr.ServedBy != "details-v1" || dr.Author != "William Shakespeare" {
		t.Fatalf("details: %d %+v", code, dr)
	}
	var rr RatingsResponse
	if code := getJSONFrom(t, "http://"+r.Addr().String()+"/ratings/0", nil, &rr); code != 200 || rr.ServedBy != "ratings-v2" || rr.Ratings["Reviewer1"] != 5 {
		t.Fatalf("ratings: %d %+v", code, rr)
	}
	for _, url := range []string{"http://" + d.Addr().String() + "/details/x", "http://" + r.Addr().String() + "/ratings/-1"} {
		var e errorBody
		if code := getJSONFrom(t, url, nil, &e); code != 400 || e.Error == "" {
			t.Errorf("%s: %d %+v, want 400", url, code, e)
		}
	}
}

func TestFault(t *testing.T) {
	for _, tc := range []struct {
		name     string
		fault    Fault
		wantCode int
		minTime  time.Duration
	}{
		{name: "none", wantCode: 200},
		{name: "fail", fault: Fault{FailPercent: 100}, wantCode: 500},
		{name: "fail 503", fault: Fault{FailPercent: 100, FailStatus: 503}, wantCode: 503},
		{name: "delay", fault: Fault{Delay: 100 * time.Millisecond}, wantCode: 200, minTime: 100 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := start(t, Options{Service: Ratings, Fault: tc.fault})
			began := time.Now()
			var body map[string]any
			code := getJSONFrom(t, "http://"+r.Addr().String()+"/ratings/0", nil, &body)
			if code != tc.wantCode || body["servedBy"] != "ratings-v1" {
				t.Fatalf("%d %v, want %d from ratings-v1", code, body, tc.wantCode)
			}
			if took := time.Since(began); took < tc.minTime {
				t.Fatalf("answered in %v, want at least %v", took, tc.minTime)
			}
		})
	}
}

// recordingProxy is the sidecar's outbound HTTP proxy in miniature: it
// records each request (absolute URL, headers) and answers it with the
// handler of the service the URL names.
type recordingProxy struct {
	mu       sync.Mutex
	requests []*http.Request
	backends map[string]http.Handler // host:port → service
}

func (p *recordingProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	p.requests = append(p.requests, r.Clone(context.Background()))
	p.mu.Unlock()
	if h := p.backends[r.URL.Host]; h != nil && r.URL.IsAbs() {
		h.ServeHTTP(w, r)
		return
	}
	http.Error(w, "no route to "+r.URL.String(), http.StatusNotFound)
}

func (p *recordingProxy) last() *http.Request {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.requests) == 0 {
		return nil
	}
	return p.requests[len(p.requests)-1]
}

// callReviews calls a reviews server directly, with metadata.
func callReviews(t *testing.T, addr string, md metadata.MD) (*ReviewsResponse, error) {
	t.Helper()
	cc, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	var out ReviewsResponse
	ctx, cancel := context.WithTimeout(metadata.NewOutgoingContext(context.Background(), md), 5*time.Second)
	defer cancel()
	err = (&reviewsClient{cc: cc}).get(ctx, 0, new(Headers), &out)
	return &out, err
}

// TestReviewsVersions: v1 has no ratings, v2 black and v3 red stars from
// ratings, called through the proxy at the service's mesh host with the
// caller's trace headers; a failing ratings leaves a message instead.
func TestReviewsVersions(t *testing.T) {
	ratingsOpts := &Options{Service: Ratings, Version: "v1"}
	proxy := &recordingProxy{backends: map[string]http.Handler{
		"ratings.default.svc.cluster.local:9080": newRatings(ratingsOpts).routes(),
	}}
	ps := httptest.NewServer(proxy)
	defer ps.Close()
	proxyAddr := strings.TrimPrefix(ps.URL, "http://")
	md := metadata.Pairs("x-request-id", "rid-7", "traceparent", traceIn["traceparent"], "end-user", "jason", "cookie", "secret")
	for _, tc := range []struct {
		version string
		want    *Rating
	}{
		{"v1", nil},
		{"v2", &Rating{Stars: 5, Color: "black", ServedBy: "ratings-v1"}},
		{"v3", &Rating{Stars: 5, Color: "red", ServedBy: "ratings-v1"}},
	} {
		t.Run(tc.version, func(t *testing.T) {
			before := proxy.last()
			rv := start(t, Options{Service: Reviews, Version: tc.version, Proxy: proxyAddr})
			got, err := callReviews(t, rv.Addr().String(), md)
			if err != nil {
				t.Fatal(err)
			}
			if got.ServedBy != "reviews-"+tc.version || len(got.Reviews) != 2 {
				t.Fatalf("%+v", got)
			}
			if r := got.Reviews[0].Rating; (r == nil) != (tc.want == nil) || (r != nil && *r != *tc.want) {
				t.Fatalf("rating %+v, want %+v", r, tc.want)
			}
			req := proxy.last()
			if tc.want == nil {
				if req != before {
					t.Fatalf("reviews v1 called ratings: %v", req.URL)
				}
				return
			}
			if req == before || req.URL.String() != "http://ratings.default.svc.cluster.local:9080/ratings/0" {
				t.Fatalf("ratings call %v, want the absolute URL of ratings' mesh host", req)
			}
			if req.Header.Get("x-request-id") != "rid-7" || req.Header.Get("traceparent") != traceIn["traceparent"] ||
				req.Header.Get("end-user") != "jason" || req.Header.Get("cookie") != "" {
				t.Fatalf("ratings call headers %v: want x-request-id, traceparent and end-user propagated, cookie not", req.Header)
			}
		})
	}

	t.Run("ratings unavailable", func(t *testing.T) {
		rv := start(t, Options{Service: Reviews, Version: "v2", Proxy: proxyAddr, RatingsAddr: "nowhere:9080"})
		got, err := callReviews(t, rv.Addr().String(), nil)
		if err != nil {
			t.Fatal(err)
		}
		if r := got.Reviews[1].Rating; r == nil || r.Error != ratingsUnavailable {
			t.Fatalf("rating %+v, want %q", r, ratingsUnavailable)
		}
	})

	t.Run("own fault", func(t *testing.T) {
		rv := start(t, Options{Service: Reviews, Fault: Fault{FailPercent: 100}})
		if _, err := callReviews(t, rv.Addr().String(), nil); status.Code(err) != codes.Unavailable {
			t.Fatalf("error %v, want UNAVAILABLE", err)
		}
	})
}

// fakeReviews records the metadata of the calls it answers.
type fakeReviews struct {
	mu sync.Mutex
	md metadata.MD
}

func (f *fakeReviews) GetReviews(ctx context.Context, in *structpb.Struct) (*structpb.Struct, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	f.mu.Lock()
	f.md = md
	f.mu.Unlock()
	return toStruct(ReviewsResponse{ID: int(in.Fields["productId"].GetNumberValue()), ServedBy: "reviews-fake",
		Reviews: []Review{{Reviewer: "Reviewer1", Text: "x", Rating: &Rating{Stars: 3, Color: "red"}}}})
}

func (f *fakeReviews) last() metadata.MD {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.md
}

// TestProductPage: details through the HTTP proxy, reviews over gRPC
// dialled at the proxy address with :authority = reviews' mesh host, both
// with the caller's trace headers and user; the page and the JSON say
// who answered; a failing call leaves Istio's message.
func TestProductPage(t *testing.T) {
	detailsOpts := &Options{Service: Details, Version: "v1"}
	fake := &fakeReviews{}
	gs := grpc.NewServer()
	gs.RegisterService(&reviewsServiceDesc, fake)
	proxy := &recordingProxy{backends: map[string]http.Handler{
		"details.default.svc.cluster.local:9080": newDetails(detailsOpts).routes(),
	}}
	// One listener for both, as weft-proxy's outbound HTTP listener: h2c
	// prior knowledge (gRPC) and HTTP/1.1 proxy requests.
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: h2cOrHTTP1(gs, proxy)}
	hs.Protocols = new(http.Protocols)
	hs.Protocols.SetHTTP1(true)
	hs.Protocols.SetUnencryptedHTTP2(true)
	go hs.Serve(lis)
	defer hs.Close()

	pp := start(t, Options{Service: ProductPage, Proxy: lis.Addr().String()})
	base := "http://" + pp.Addr().String()
	hdr := http.Header{"X-Request-Id": {"rid-9"}, "B3": {traceIn["b3"]}, "End-User": {"jason"}}
	var pr ProductResponse
	if code := getJSONFrom(t, base+"/api/v1/products/0", hdr, &pr); code != 200 {
		t.Fatalf("status %d", code)
	}
	if pr.ServedBy != "productpage-v1" || pr.User != "jason" || pr.Details == nil || pr.Details.ServedBy != "details-v1" ||
		pr.Reviews == nil || pr.Reviews.ServedBy != "reviews-fake" {
		t.Fatalf("product: %+v", pr)
	}
	if d := proxy.last(); d == nil || d.URL.String() != "http://details.default.svc.cluster.local:9080/details/0" ||
		d.Header.Get("x-request-id") != "rid-9" || d.Header.Get("b3") != traceIn["b3"] || d.Header.Get("end-user") != "jason" {
		t.Fatalf("details call: %v", d)
	}
	md := fake.last()
	if got := md.Get(":authority"); len(got) != 1 || got[0] != "reviews.default.svc.cluster.local:9080" {
		t.Errorf(":authority %v, want reviews.default.svc.cluster.local:9080", got)
	}
	if md.Get("x-request-id")[0] != "rid-9" || md.Get("b3")[0] != traceIn["b3"] || md.Get("end-user")[0] != "jason" {
		t.Errorf("reviews metadata %v: want x-request-id, b3 and end-user", md)
	}

	// The HTML page, for a user signed in with the cookie.
	req, _ := http.NewRequest("GET", base+"/productpage", nil)
	req.AddCookie(&http.Cookie{Name: "user", Value: "alice"})
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{"signed in as <b>alice</b>", "Details served by details-v1", "red stars: ★★★☆☆",
		"Reviews served by reviews-fake", "Served by productpage-v1 → details-v1 → reviews-fake"} {
		if !strings.Contains(string(page), want) {
			t.Errorf("page lacks %q:\n%s", want, page)
		}
	}
	if md := fake.last(); md.Get("end-user")[0] != "alice" {
		t.Errorf("reviews end-user %v, want alice (from the cookie)", md.Get("end-user"))
	}

	t.Run("upstreams down", func(t *testing.T) {
		pp := start(t, Options{Service: ProductPage, DetailsAddr: "127.0.0.1:1", ReviewsAddr: "127.0.0.1:1", CallTimeout: time.Second})
		var pr ProductResponse
		if code := getJSONFrom(t, "http://"+pp.Addr().String()+"/api/v1/products/0", nil, &pr); code != 200 ||
			pr.Details != nil || pr.DetailsError != detailsUnavailable || pr.Reviews != nil || pr.ReviewsError != reviewsUnavailable {
			t.Fatalf("%d %+v", code, pr)
		}
	})

	t.Run("login", func(t *testing.T) {
		c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		resp, err := c.PostForm(base+"/login", map[string][]string{"username": {"jason"}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusSeeOther || len(resp.Cookies()) != 1 || resp.Cookies()[0].Value != "jason" {
			t.Fatalf("login: %d %v", resp.StatusCode, resp.Cookies())
		}
	})
}

// h2cOrHTTP1 sends gRPC (HTTP/2) to gs and the rest to h.
func h2cOrHTTP1(gs *grpc.Server, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor == 2 && strings.HasPrefix(r.Header.Get("Content-Type"), "application/grpc") {
			gs.ServeHTTP(w, r)
			return
		}
		h.ServeHTTP(w, r)
	})
}
