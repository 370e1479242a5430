package ca

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	pb "istio.io/api/security/v1alpha1"
)

// ServiceOptions configure the CSR service.
type ServiceOptions struct {
	// CA issues the certificates (required).
	CA *CA
	// Authenticator establishes the caller's identity (default: the CA's
	// bootstrap tokens, TokenAuthenticator).
	Authenticator Authenticator
	Logger        *slog.Logger
}

// Service is Istio's IstioCertificateService
// (istio.io/api/security/v1alpha1, ca.proto): CreateCertificate signs a
// CSR for the authenticated caller's own identity. It is safe for
// concurrent use.
type Service struct {
	pb.UnimplementedIstioCertificateServiceServer
	ca   *CA
	auth Authenticator
	log  *slog.Logger
}

var _ pb.IstioCertificateServiceServer = (*Service)(nil)

// NewService returns the CSR service.
func NewService(o ServiceOptions) (*Service, error) {
	if o.CA == nil {
		return nil, errors.New("ca.NewService: ServiceOptions.CA is required")
	}
	if o.Authenticator == nil {
		o.Authenticator = TokenAuthenticator{Keys: o.CA.Tokens()}
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return &Service{ca: o.CA, auth: o.Authenticator, log: o.Logger}, nil
}

// Register adds the service to g.
func (s *Service) Register(g grpc.ServiceRegistrar) {
	pb.RegisterIstioCertificateServiceServer(g, s)
}

// CreateCertificate authenticates the caller, checks that the CSR asks for
// no identity but the caller's, and signs it. The request's
// validity_duration (seconds) is honoured up to the CA's MaxTTL; 0 asks
// for MaxTTL. The response's cert_chain is the leaf, the intermediates
// and the root.
//
// Status codes: Unauthenticated (no or a bad token), PermissionDenied
// (the CSR names another identity), InvalidArgument (a malformed CSR, a
// negative validity), Unavailable (the authenticator could not decide),
// Internal (signing failed).
func (s *Service) CreateCertificate(ctx context.Context, req *pb.IstioCertificateRequest) (*pb.IstioCertificateResponse, error) {
	cert, err := s.create(ctx, req)
	if err != nil {
		st := statusOf(err)
		s.log.Info("certificate request refused", "code", st.Code().String(), "reason", st.Message())
		return nil, st.Err()
	}
	return &pb.IstioCertificateResponse{CertChain: cert.ChainPEM}, nil
}

// create does CreateCertificate's work with typed errors.
func (s *Service) create(ctx context.Context, req *pb.IstioCertificateRequest) (*Certificate, error) {
	id, err := s.auth.Authenticate(ctx)
	if err != nil {
		if _, isStatus := status.FromError(err); isStatus || errors.Is(err, ErrUnauthenticated) {
			return nil, err
		}
		return nil, status.Errorf(codes.Unavailable, "authentication could not be completed, retry later: %v", err)
	}
	if req.GetValidityDuration() < 0 {
		return nil, fmt.Errorf("%w: validity_duration %d: must not be negative", ErrBadCSR, req.GetValidityDuration())
	}
	csr, err := ParseCSR([]byte(req.GetCsr()))
	if err != nil {
		return nil, err
	}
	if err := s.checkRequested(csr.URIs, id); err != nil {
		return nil, err
	}
	ttl := time.Duration(0)
	if v := req.GetValidityDuration(); v > 0 && v < int64(s.ca.MaxTTL()/time.Second) {
		ttl = time.Duration(v) * time.Second
	}
	cert, err := s.ca.Sign(SignRequest{PublicKey: csr.PublicKey, Identity: id, TTL: ttl})
	if err != nil {
		return nil, err
	}
	s.log.Info("issued a workload certificate", "identity", cert.Leaf.URIs[0].String(), "serial", cert.Leaf.SerialNumber.String(), "not_after", cert.Leaf.NotAfter)
	return cert, nil
}

// checkRequested refuses a CSR whose URI SANs name anything but the
// caller's SPIFFE ID (DNS, IP and e-mail SANs of a CSR are ignored: the
// certificate carries the caller's identity only, as Istio's CA does).
func (s *Service) checkRequested(uris []*url.URL, caller Identity) error {
	want := caller.SPIFFEID(s.ca.TrustDomain()).String()
	for _, u := range uris {
		if u.String() != want {
			return fmt.Errorf("%w: the CSR asks for %q but the caller is authenticated as %q: a workload can only obtain a certificate for its own identity", ErrPermissionDenied, u.String(), want)
		}
	}
	return nil
}

// statusOf maps the package's typed errors to gRPC status codes: the one
// place where that happens.
func statusOf(err error) *status.Status {
	if st, ok := status.FromError(err); ok {
		return st
	}
	switch {
	case errors.Is(err, ErrUnauthenticated):
		return status.New(codes.Unauthenticated, err.Error())
	case errors.Is(err, ErrPermissionDenied):
		return status.New(codes.PermissionDenied, err.Error())
	case errors.Is(err, ErrBadCSR):
		return status.New(codes.InvalidArgument, err.Error())
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return status.FromContextError(err)
	default:
		return status.New(codes.Internal, err.Error())
	}
}
