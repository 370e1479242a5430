package demoapp

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"
)

// The reviews gRPC API, without generated code: one unary method whose
// request and response are google.protobuf.Struct holding the JSON form
// of ReviewsRequest and ReviewsResponse. In proto terms:
//
//	service weft.demo.bookinfo.Reviews {
//	  rpc GetReviews(google.protobuf.Struct) returns (google.protobuf.Struct);
//	}
const (
	reviewsService     = "weft.demo.bookinfo.Reviews"
	getReviewsMethod   = "/" + reviewsService + "/GetReviews"
	ratingsUnavailable = "Ratings service is currently unavailable"
)

// ReviewsRequest asks for the reviews of a product.
type ReviewsRequest struct {
	ProductID int `json:"productId"`
}

// ReviewsResponse is reviews' answer: v1 without ratings, v2 with black
// stars, v3 with red stars.
type ReviewsResponse struct {
	ID       int      `json:"id"`
	Reviews  []Review `json:"reviews"`
	ServedBy string   `json:"servedBy"`
}

// Review is one reviewer's text and, from reviews v2 and v3, rating.
type Review struct {
	Reviewer string  `json:"reviewer"`
	Text     string  `json:"text"`
	Rating   *Rating `json:"rating,omitempty"`
}

// Rating is a review's stars, or the reason they are missing.
type Rating struct {
	Stars    int    `json:"stars,omitempty"`
	Color    string `json:"color,omitempty"`
	Error    string `json:"error,omitempty"`
	ServedBy string `json:"servedBy,omitempty"`
}

// reviewsAPI is the server interface of the hand-written descriptor.
type reviewsAPI interface {
	GetReviews(context.Context, *structpb.Struct) (*structpb.Struct, error)
}

// reviewsServiceDesc registers reviewsAPI with a grpc.Server.
var reviewsServiceDesc = grpc.ServiceDesc{
	ServiceName: reviewsService,
	HandlerType: (*reviewsAPI)(nil),
	Methods: []grpc.MethodDesc{{
		MethodName: "GetReviews",
		Handler:    getReviewsHandler,
	}},
	Metadata: "internal/demoapp/reviews.go",
}

func getReviewsHandler(srv any, ctx context.Context, dec func(any) error, icpt grpc.UnaryServerInterceptor) (any, error) {
	in := new(structpb.Struct)
	if err := dec(in); err != nil {
		return nil, err
	}
	call := func(ctx context.Context, req any) (any, error) {
		return srv.(reviewsAPI).GetReviews(ctx, req.(*structpb.Struct))
	}
	if icpt == nil {
		return call(ctx, in)
	}
	return icpt(ctx, in, &grpc.UnaryServerInfo{Server: srv, FullMethod: getReviewsMethod}, call)
}

// toStruct converts a JSON-tagged Go value to a Struct.
func toStruct(v any) (*structpb.Struct, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	s := new(structpb.Struct)
	return s, protojson.Unmarshal(b, s)
}

// fromStruct converts a Struct to a JSON-tagged Go value.
func fromStruct(s *structpb.Struct, v any) error {
	b, err := protojson.Marshal(s)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

// reviewsServer is the reviews service; v2 and v3 call ratings.
type reviewsServer struct {
	o       *Options
	ratings *httpCaller // nil for v1
}

func newReviewsServer(o *Options) (*reviewsServer, error) {
	s := &reviewsServer{o: o}
	switch o.Version {
	case "v1":
	case "v2", "v3":
		s.ratings = newHTTPCaller(o)
	default:
		return nil, fmt.Errorf("demoapp: reviews VERSION %q: use v1 (no ratings), v2 (black stars) or v3 (red stars)", o.Version)
	}
	return s, nil
}

func (s *reviewsServer) close() {
	if s.ratings != nil {
		s.ratings.close()
	}
}

// GetReviews answers one product's reviews.
func (s *reviewsServer) GetReviews(ctx context.Context, in *structpb.Struct) (*structpb.Struct, error) {
	if s.o.Fault.apply(ctx.Done()) {
		return nil, status.Errorf(codes.Unavailable, "fault injected by %s (FAIL_PERCENT)", s.o.servedBy())
	}
	var req ReviewsRequest
	if err := fromStruct(in, &req); err != nil || req.ProductID < 0 {
		return nil, status.Errorf(codes.InvalidArgument, "want {\"productId\": N} with N >= 0")
	}
	resp := ReviewsResponse{ID: req.ProductID, ServedBy: s.o.servedBy(), Reviews: []Review{
		{Reviewer: "Reviewer1", Text: "An extremely entertaining play by Shakespeare. The slapstick humour is refreshing!"},
		{Reviewer: "Reviewer2", Text: "Absolutely fun and entertaining. The play lacks thematic depth when compared to other plays by Shakespeare."},
	}}
	if s.ratings != nil {
		s.addRatings(ctx, &resp)
	}
	return toStruct(resp)
}

// addRatings asks ratings for the stars (propagating the caller's
// headers) and sets them on each review, or the reason they are missing.
func (s *reviewsServer) addRatings(ctx context.Context, resp *ReviewsResponse) {
	h := FromGRPC(ctx)
	var rr RatingsResponse
	err := s.ratings.getJSON(ctx, s.o.RatingsAddr, "/ratings/"+strconv.Itoa(resp.ID), &h, s.o.RatingsTimeout, &rr)
	color := "black"
	if s.o.Version == "v3" {
		color = "red"
	}
	for i := range resp.Reviews {
		r := &resp.Reviews[i]
		if err != nil {
			r.Rating = &Rating{Error: ratingsUnavailable}
			continue
		}
		r.Rating = &Rating{Stars: rr.Ratings[r.Reviewer], Color: color, ServedBy: rr.ServedBy}
	}
	if err != nil {
		s.o.Logger.Warn("ratings call failed", "service", s.o.servedBy(), "ratings", s.o.RatingsAddr, "error", err)
	}
}

// reviewsClient calls reviews over gRPC.
type reviewsClient struct {
	cc *grpc.ClientConn
}

// get calls GetReviews for product id with the propagated headers.
func (c *reviewsClient) get(ctx context.Context, id int, h *Headers, out *ReviewsResponse) error {
	in, err := toStruct(ReviewsRequest{ProductID: id})
	if err != nil {
		return err
	}
	resp := new(structpb.Struct)
	if err := c.cc.Invoke(h.OutgoingGRPC(ctx), getReviewsMethod, in, resp); err != nil {
		return err
	}
	return fromStruct(resp, out)
}
