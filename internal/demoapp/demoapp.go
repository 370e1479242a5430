// Package demoapp is weft's sample application, in the spirit of Istio's
// bookinfo: four services, one of them in three versions, that call each
// other through the local sidecar so that routing, canary, fault, timeout,
// circuit-breaking and security tasks are visible with curl.
//
//	productpage (HTTP) ──HTTP──▶ details (HTTP)
//	      │
//	      └──gRPC──▶ reviews v1 | v2 | v3 ──HTTP──▶ ratings (HTTP)   (v2 and v3 only)
//
// Every response names the service and version that produced it
// ("servedBy": "reviews-v2"), and every outgoing call carries the trace
// headers of the incoming request (x-request-id, traceparent, tracestate,
// x-b3-*, b3) and the end-user header, as Istio requires of applications.
//
// The reviews service is gRPC without generated code: a hand-written
// grpc.ServiceDesc (service weft.demo.bookinfo.Reviews, unary method
// GetReviews) whose messages are google.protobuf.Struct, so the wire is
// standard gRPC with the proto codec (content-type application/grpc) and
// no protoc is needed. reviews.go documents the message fields.
//
// The package is run by `weft demo-app NAME` (cmd/weft); OptionsFromEnv
// reads the environment contract that `weft up` sets.
package demoapp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"google.golang.org/grpc"
)

// Service names: the roles `weft demo-app NAME` accepts.
const (
	ProductPage = "productpage"
	Details     = "details"
	Reviews     = "reviews"
	Ratings     = "ratings"
)

// Services lists the roles in the order of a request's path.
var Services = []string{ProductPage, Details, Reviews, Ratings}

// Options configure one service. Zero values take the documented
// defaults (see withDefaults).
type Options struct {
	// Service is the role: productpage, details, reviews or ratings.
	Service string
	// Version is reported in every response ("v1" when empty). For
	// reviews it selects the behaviour: v1 shows no ratings, v2 black
	// stars, v3 red stars.
	Version string
	// Namespace of the mesh services called ("default" when empty).
	Namespace string
	// ListenAddr is where the service listens (127.0.0.1:9080 when empty;
	// port 0 picks a free port, see App.Addr).
	ListenAddr string
	// Proxy, host:port, is the local sidecar's outbound HTTP proxy. When
	// set, HTTP calls go through it as an HTTP proxy and gRPC calls dial
	// it (h2c, prior knowledge) with :authority set to the service's
	// host:port; when empty, calls go to the addresses below directly.
	Proxy string
	// DetailsAddr, ReviewsAddr and RatingsAddr are the host:port of the
	// services called (SERVICE.NAMESPACE.svc.cluster.local:9080 when
	// empty): the Host / :authority the sidecar routes on.
	DetailsAddr, ReviewsAddr, RatingsAddr string
	// CallTimeout bounds productpage's calls to details and reviews (3s,
	// as Istio's productpage); RatingsTimeout bounds reviews' call to
	// ratings (10s, as Istio's reviews).
	CallTimeout, RatingsTimeout time.Duration
	// Fault makes the service itself slow or failing (any service; meant
	// for ratings).
	Fault Fault
	// Logger receives one line per failed upstream call (discarded when
	// nil).
	Logger *slog.Logger
}

// servicePort is the mesh port every bookinfo service uses, as in Istio.
const servicePort = "9080"

// withDefaults returns o with every zero field at its default, or an
// error naming the field to fix.
func (o Options) withDefaults() (Options, error) {
	switch o.Service {
	case ProductPage, Details, Reviews, Ratings:
	default:
		return o, fmt.Errorf("demoapp: unknown service %q: use one of %v", o.Service, Services)
	}
	if o.Version == "" {
		o.Version = "v1"
	}
	if o.Namespace == "" {
		o.Namespace = "default"
	}
	if o.ListenAddr == "" {
		o.ListenAddr = "127.0.0.1:" + servicePort
	}
	host := func(svc string) string { return svc + "." + o.Namespace + ".svc.cluster.local:" + servicePort }
	if o.DetailsAddr == "" {
		o.DetailsAddr = host(Details)
	}
	if o.ReviewsAddr == "" {
		o.ReviewsAddr = host(Reviews)
	}
	if o.RatingsAddr == "" {
		o.RatingsAddr = host(Ratings)
	}
	if o.CallTimeout <= 0 {
		o.CallTimeout = 3 * time.Second
	}
	if o.RatingsTimeout <= 0 {
		o.RatingsTimeout = 10 * time.Second
	}
	if err := o.Fault.validate(); err != nil {
		return o, err
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o, nil
}

// servedBy is the name reported in responses: SERVICE-VERSION.
func (o *Options) servedBy() string { return o.Service + "-" + o.Version }

// App is one running service.
type App struct {
	opts  Options
	lis   net.Listener
	http  *http.Server // productpage, details, ratings
	grpc  *grpc.Server // reviews
	done  chan error
	close func() // releases the upstream clients
}

// Start listens on o.ListenAddr and serves the service until Shutdown.
// The error names what to fix (an unknown service, a busy port).
func Start(o Options) (*App, error) {
	o, err := o.withDefaults()
	if err != nil {
		return nil, err
	}
	lis, err := net.Listen("tcp", o.ListenAddr)
	if err != nil {
		return nil, fmt.Errorf("demoapp %s: listen on %s: %w (set PORT to a free port)", o.Service, o.ListenAddr, err)
	}
	a := &App{opts: o, lis: lis, done: make(chan error, 1), close: func() {}}
	if err := a.build(); err != nil {
		lis.Close()
		return nil, err
	}
	go a.serve()
	return a, nil
}

// build creates the server for the service and its upstream clients.
func (a *App) build() error {
	o := &a.opts
	switch o.Service {
	case Reviews:
		rs, err := newReviewsServer(o)
		if err != nil {
			return err
		}
		a.grpc = grpc.NewServer()
		a.grpc.RegisterService(&reviewsServiceDesc, rs)
		a.close = rs.close
		return nil
	case ProductPage:
		pp, err := newProductPage(o)
		if err != nil {
			return err
		}
		a.http = newHTTPServer(pp.routes())
		a.close = pp.close
	case Details:
		a.http = newHTTPServer(newDetails(o).routes())
	case Ratings:
		a.http = newHTTPServer(newRatings(o).routes())
	}
	return nil
}

func newHTTPServer(h http.Handler) *http.Server {
	return &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
}

func (a *App) serve() {
	var err error
	if a.grpc != nil {
		err = a.grpc.Serve(a.lis)
	} else {
		err = a.http.Serve(a.lis)
	}
	if errors.Is(err, http.ErrServerClosed) || errors.Is(err, grpc.ErrServerStopped) {
		err = nil
	}
	a.done <- err
}

// Addr is the address the service listens on.
func (a *App) Addr() net.Addr { return a.lis.Addr() }

// Done yields, once, the serve error (nil after Shutdown) when the
// server has stopped.
func (a *App) Done() <-chan error { return a.done }

// Shutdown stops accepting, lets requests in flight finish until ctx
// ends, then closes everything.
func (a *App) Shutdown(ctx context.Context) error {
	defer a.close()
	if a.grpc != nil {
		stopped := make(chan struct{})
		go func() { a.grpc.GracefulStop(); close(stopped) }()
		select {
		case <-stopped:
		case <-ctx.Done():
			a.grpc.Stop()
		}
		return nil
	}
	return a.http.Shutdown(ctx)
}
