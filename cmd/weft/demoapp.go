package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/weftmesh/weft/internal/demoapp"
)

// newDemoAppCommand builds the hidden `weft demo-app NAME`: one service of
// the bookinfo sample application (internal/demoapp), as `weft up -f
// examples/bookinfo` runs it.
func newDemoAppCommand(s streams) *cobra.Command {
	var delay, failPercent, failStatus string
	cmd := &cobra.Command{
		Use:       "demo-app productpage|details|reviews|ratings",
		Short:     "Run one service of the bookinfo sample application",
		Hidden:    true,
		ValidArgs: demoapp.Services,
		Long: `Demo-app runs one service of the bookinfo sample application (examples/bookinfo)
on 127.0.0.1 until SIGINT or SIGTERM. weft up starts it with this environment:

  PORT_<PORTNAME>, PORT  port to listen on (9080)
  WEFT_PROXY             the sidecar's outbound HTTP proxy, host:port; calls go
                         through it (HTTP as a proxy, gRPC with :authority set)
  VERSION                v1, v2 or v3 (reviews: no ratings, black, red stars)
  POD_NAMESPACE          namespace of the services called (default)
  DELAY, FAIL_PERCENT, FAIL_STATUS   make the service slow or failing
  DETAILS_ADDR, REVIEWS_ADDR, RATINGS_ADDR   host:port of the services called`,
		Example: `  PORT=9081 weft demo-app ratings --delay 2s
  WEFT_PROXY=127.0.0.1:15001 VERSION=v2 PORT_GRPC=9082 weft demo-app reviews
  RATINGS_ADDR=127.0.0.1:9081 VERSION=v3 PORT=9082 weft demo-app reviews   # no mesh`,
		Args: cobra.MatchAll(cobra.ExactArgs(1), cobra.OnlyValidArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			o, err := demoapp.OptionsFromEnv(args[0], os.Getenv)
			if err != nil {
				return err
			}
			f := cmd.Flags()
			if f.Changed("delay") || f.Changed("fail-percent") || f.Changed("fail-status") {
				if o.Fault, err = demoapp.FaultFromStrings(delay, failPercent, failStatus); err != nil {
					return err
				}
			}
			return runDemoApp(cmd.Context(), s, o)
		},
	}
	cmd.Flags().StringVar(&delay, "delay", os.Getenv("DELAY"), "delay every response by this duration, such as 2s (env DELAY)")
	cmd.Flags().StringVar(&failPercent, "fail-percent", os.Getenv("FAIL_PERCENT"), "fail this percentage of requests, 0-100 (env FAIL_PERCENT)")
	cmd.Flags().StringVar(&failStatus, "fail-status", os.Getenv("FAIL_STATUS"), "HTTP status of a failure, 400-599 (env FAIL_STATUS; 500)")
	return cmd
}

// runDemoApp serves until ctx ends or a signal arrives.
func runDemoApp(ctx context.Context, s streams, o demoapp.Options) error {
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	o.Logger = slog.New(slog.NewTextHandler(s.err, nil))
	app, err := demoapp.Start(o)
	if err != nil {
		return err
	}
	version := o.Version
	if version == "" {
		version = "v1"
	}
	fmt.Fprintf(s.err, "%s-%s listening on %s\n", o.Service, version, app.Addr())
	select {
	case err := <-app.Done():
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return app.Shutdown(sctx)
}
