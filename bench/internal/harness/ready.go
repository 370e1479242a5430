package harness

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/weftmesh/weft/bench/internal/supervise"
)

// pollInterval is how often readiness is re-checked until the deadline.
const pollInterval = 20 * time.Millisecond

// probe performs one readiness check; nil means ready.
type probe func(ctx context.Context) error

// waitReady polls p until it succeeds, the deadline passes, ctx ends, or
// proc (if not nil) exits. The error names what was waited for and the last
// probe error.
func waitReady(ctx context.Context, what string, timeout time.Duration, proc *supervise.Proc, p probe) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var done <-chan struct{}
	if proc != nil {
		done = proc.Done()
	}
	ticker := time.NewTicker(pollInterval)
	defer ticker.Stop()
	var last error
	for {
		attempt, cancelAttempt := context.WithTimeout(ctx, time.Second)
		last = p(attempt)
		cancelAttempt()
		if last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not ready within %s: %v (last probe: %w)", what, timeout, ctx.Err(), last)
		case <-done:
			return fmt.Errorf("%s exited while waiting for it to be ready (%v); see %s", what, proc.ExitErr(), proc.Spec.LogPath)
		case <-ticker.C:
		}
	}
}

// httpProbe GETs url and wants status 200 and, if wantLen >= 0, a body of
// wantLen bytes.
func httpProbe(url string, wantLen int) probe {
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	return func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			return fmt.Errorf("GET %s: body: %w", url, err)
		}
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET %s: status %d", url, resp.StatusCode)
		}
		if wantLen >= 0 && len(body) != wantLen {
			return fmt.Errorf("GET %s: body of %d bytes, want %d", url, len(body), wantLen)
		}
		return nil
	}
}

// grpcProbe makes a gRPC health check over h2c to addr (through a proxy it
// reaches the upstream's health service) and wants SERVING.
func grpcProbe(addr string) probe {
	return func(ctx context.Context) error {
		conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return fmt.Errorf("grpc client %s: %w", addr, err)
		}
		defer conn.Close()
		resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
		if err != nil {
			return fmt.Errorf("grpc health check %s: %w", addr, err)
		}
		if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			return fmt.Errorf("grpc health check %s: %s", addr, resp.GetStatus())
		}
		return nil
	}
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func hostPort(port int) string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
}
