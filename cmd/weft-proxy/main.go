// Command weft-proxy is weft's data plane: an Envoy-compatible proxy that
// reads an Envoy v3 bootstrap (-c FILE, YAML or JSON) and serves its
// listeners, clusters and admin interface, static or from a control plane
// over ADS (dynamic_resources). Flags follow Envoy's names.
//
//	weft-proxy -c examples/front-proxy.yaml
//	weft-proxy --mode validate -c bootstrap.yaml
//	weft-proxy sidecar --name app-1 --namespace default --ip 10.0.0.5 --labels app=web
//	weft-proxy sidecar --name app-1 --print-bootstrap
//
// The sidecar subcommand builds the bootstrap of a mesh proxy from flags
// and environment, the way Istio's agent does, and runs it.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"

	"github.com/weftmesh/weft/internal/proxy/bootstrap"
	"github.com/weftmesh/weft/internal/proxy/server"
)

// options are the command-line flags, named as Envoy's.
type options struct {
	configPath  string
	configYAML  string
	mode        string
	logLevel    string
	drainTimeS  int
	concurrency int
	version     bool
	cpuProfile  string
}

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("weft-proxy", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.configPath, "c", "", "path to an Envoy v3 bootstrap file (YAML or JSON)")
	fs.StringVar(&o.configPath, "config-path", "", "same as -c")
	fs.StringVar(&o.configYAML, "config-yaml", "", "bootstrap as a YAML string (applied instead of -c when -c is empty)")
	fs.StringVar(&o.mode, "mode", "serve", "serve, or validate: check the configuration and exit 0 (valid) or 1")
	fs.StringVar(&o.logLevel, "l", "info", "log level: trace, debug, info, warning, error, critical, off")
	fs.StringVar(&o.logLevel, "log-level", "info", "same as -l")
	fs.IntVar(&o.drainTimeS, "drain-time-s", 600, "seconds to drain connections on shutdown (SIGTERM, /quitquitquit)")
	fs.IntVar(&o.concurrency, "concurrency", 0, "worker threads (GOMAXPROCS); 0 keeps Go's default (the CPUs available)")
	fs.BoolVar(&o.version, "version", false, "print the version and exit")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write a Go CPU profile (pprof) of the whole run to this file")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	if o.mode != "serve" && o.mode != "validate" {
		return nil, fmt.Errorf("--mode %q: must be serve or validate", o.mode)
	}
	if o.drainTimeS < 0 {
		return nil, fmt.Errorf("--drain-time-s %d: must be 0 or more seconds", o.drainTimeS)
	}
	if o.concurrency < 0 {
		return nil, fmt.Errorf("--concurrency %d: must be 0 (the CPUs available) or more", o.concurrency)
	}
	if !o.version && o.configPath == "" && o.configYAML == "" {
		return nil, errors.New("a bootstrap is required: -c FILE or --config-yaml")
	}
	return o, nil
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "sidecar" {
		return runSidecar(args[1:], os.Environ(), stdout, stderr)
	}
	o, err := parseFlags(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(stderr, "weft-proxy:", err)
		return 1
	}
	if o.version {
		fmt.Fprintln(stdout, "weft-proxy", server.Version)
		return 0
	}
	log, err := newLogger(o.logLevel, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "weft-proxy:", err)
		return 1
	}
	b, source, err := loadBootstrap(o)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	if o.concurrency > 0 {
		runtime.GOMAXPROCS(o.concurrency)
	}
	sopts := server.Options{
		Bootstrap:   b,
		ConfigPath:  o.configPath,
		DrainTime:   drainTime(o.drainTimeS),
		Concurrency: runtime.GOMAXPROCS(0),
		LogLevel:    o.logLevel,
		Logger:      log,
	}
	if o.mode == "validate" {
		if err := server.Check(sopts); err != nil {
			fmt.Fprintf(stderr, "%s: %v\n", source, err)
			return 1
		}
		fmt.Fprintf(stdout, "configuration '%s' OK\n", source)
		return 0
	}
	if o.cpuProfile != "" {
		stop, err := startCPUProfile(o.cpuProfile)
		if err != nil {
			fmt.Fprintln(stderr, "weft-proxy: --cpuprofile:", err)
			return 1
		}
		defer stop()
	}
	return serve(sopts, log, stderr)
}

// startCPUProfile profiles the process until stop is called (after the
// drain), for measuring the proxy under real load.
func startCPUProfile(path string) (stop func(), err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}

// drainTime converts --drain-time-s to server.Options.DrainTime, where
// zero selects the default and a negative value means no wait: 0 s is
// passed as -1 so that in-flight requests are cut at once.
func drainTime(seconds int) time.Duration {
	if seconds == 0 {
		return -1
	}
	return time.Duration(seconds) * time.Second
}

func loadBootstrap(o *options) (*bootstrapv3.Bootstrap, string, error) {
	if o.configPath != "" {
		b, err := bootstrap.LoadAndValidate(o.configPath)
		return b, o.configPath, err
	}
	b, err := bootstrap.ParseAndValidate([]byte(o.configYAML), "--config-yaml")
	return b, "--config-yaml", err
}

func serve(o server.Options, log *slog.Logger, stderr io.Writer) int {
	srv, err := server.New(o)
	if err != nil {
		fmt.Fprintln(stderr, "weft-proxy:", err)
		return 1
	}
	srv.Start()
	// Start-up garbage (YAML and protobuf decoding, validation) is done
	// with: give its memory back to the OS now rather than letting the
	// scavenger do it over minutes.
	debug.FreeOSMemory()
	for _, a := range srv.ListenerAddrs() {
		log.Info("listening", "listener", a.Name, "address", a.Addr.String())
	}
	if a := srv.AdminAddr(); a != nil {
		log.Info("admin", "address", a.String())
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	select {
	case s := <-sig:
		log.Info("draining", "signal", s.String(), "drain_time", max(o.DrainTime, 0))
	case <-srv.Done():
		log.Info("draining", "reason", "/quitquitquit", "drain_time", max(o.DrainTime, 0))
	}
	go func() {
		// A second signal skips the drain.
		<-sig
		log.Warn("second signal: exiting without waiting for the drain")
		os.Exit(1)
	}()
	if err := srv.Shutdown(context.Background()); err != nil {
		log.Warn("shutdown", "err", err)
	}
	log.Info("exited")
	return 0
}

func newLogger(level string, w io.Writer) (*slog.Logger, error) {
	var l slog.Level
	switch strings.ToLower(level) {
	case "trace", "debug":
		l = slog.LevelDebug
	case "info":
		l = slog.LevelInfo
	case "warning", "warn":
		l = slog.LevelWarn
	case "error", "critical":
		l = slog.LevelError
	case "off":
		l = slog.Level(100)
	default:
		return nil, fmt.Errorf("-l %q: use trace, debug, info, warning, error, critical or off", level)
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l})), nil
}
