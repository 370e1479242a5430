package localmesh

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	meshv1alpha1 "istio.io/api/mesh/v1alpha1"

	"github.com/weftmesh/weft/internal/ca"
	"github.com/weftmesh/weft/internal/config"
	"github.com/weftmesh/weft/internal/controlplane"
)

// Options configure Run.
type Options struct {
	// Dir is the mesh's directory: Istio YAML and Workloads (required).
	// Dir/mesh.yaml, when present, is Istio's mesh configuration.
	Dir string
	// StateDir is where `weft apply` finds this mesh (default
	// DefaultStateDir()).
	StateDir string
	// weft-control's addresses (defaults: Istio's, as weft-control) and
	// CA directory (default ca.DefaultDir()).
	XDSAddress, SecureAddress, HTTPAddress string
	CADir                                  string
	// FirstIP is the first loopback address handed out: the gateway's,
	// then one per replica (default 127.0.0.2).
	FirstIP netip.Addr
	// Grace is how long a command has between SIGTERM and SIGKILL
	// (default 5 s).
	Grace time.Duration
	// Self is the weft binary, run for the command "weft" (default
	// os.Executable()).
	Self string
	// Out receives the commands' output (prefixed with their names) and
	// weft up's messages; default os.Stdout.
	Out io.Writer
	// OnReady is called once with the status, when everything runs
	// (default: Status.WriteTable on Out).
	OnReady func(*Status)
	// Logger receives the components' logs (default: warnings and errors
	// on stderr).
	Logger *slog.Logger
}

// Defaults.
const (
	DefaultGrace = 5 * time.Second
	// proxyDrain bounds a proxy's drain when it stops.
	proxyDrain = time.Second
	// readyTimeout bounds the wait for a proxy's first configuration.
	readyTimeout = 15 * time.Second
)

// DefaultFirstIP is the gateway's address; replicas follow.
var DefaultFirstIP = netip.MustParseAddr("127.0.0.2")

func (o *Options) defaults() error {
	if o.Dir == "" {
		return errors.New("a directory is required (-f DIR)")
	}
	abs, err := filepath.Abs(o.Dir)
	if err != nil {
		return err
	}
	o.Dir = abs
	if info, err := os.Stat(o.Dir); err != nil || !info.IsDir() {
		return fmt.Errorf("%s is not a directory: give the directory of your Istio YAML and Workloads with -f", o.Dir)
	}
	if o.StateDir == "" {
		o.StateDir = DefaultStateDir()
	}
	if o.XDSAddress == "" {
		o.XDSAddress = controlplane.DefaultXDSAddress
	}
	if o.SecureAddress == "" {
		o.SecureAddress = controlplane.DefaultSecureAddress
	}
	if o.HTTPAddress == "" {
		o.HTTPAddress = controlplane.DefaultHTTPAddress
	}
	if o.CADir == "" {
		if o.CADir, err = ca.DefaultDir(); err != nil {
			return fmt.Errorf("the CA needs a directory: pass --ca-dir (%w)", err)
		}
	}
	if !o.FirstIP.IsValid() {
		o.FirstIP = DefaultFirstIP
	}
	if o.Grace <= 0 {
		o.Grace = DefaultGrace
	}
	if o.Self == "" {
		if o.Self, err = os.Executable(); err != nil {
			return fmt.Errorf("finding the weft binary: %w", err)
		}
	}
	if o.Out == nil {
		o.Out = os.Stdout
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	return nil
}

// meshConfig reads Dir/mesh.yaml (nil: Istio's defaults).
func meshConfig(dir string) (*meshv1alpha1.MeshConfig, error) {
	path := filepath.Join(dir, config.MeshConfigFile)
	if _, err := os.Stat(path); err != nil {
		return nil, nil //nolint:nilerr // no mesh.yaml: the defaults
	}
	m, problems := config.LoadMeshConfig(path)
	if m == nil {
		return nil, fmt.Errorf("%s: %v", path, errors.Join(errorsOf(problems)...))
	}
	return m, nil
}

func errorsOf(ps []*config.Error) []error {
	out := make([]error, len(ps))
	for i, p := range ps {
		out[i] = p
	}
	return out
}

// Run runs the mesh until ctx ends (SIGINT or SIGTERM in `weft up`), then
// stops everything: the commands get SIGTERM, then SIGKILL after
// Options.Grace; the proxies drain; weft-control stops. It returns nil
// after a clean stop, or the error that kept the mesh from starting.
func Run(ctx context.Context, o Options) error {
	if err := o.defaults(); err != nil {
		return err
	}
	mesh, err := meshConfig(o.Dir)
	if err != nil {
		return err
	}
	if err := prepareState(o.StateDir); err != nil {
		return err
	}
	alloc, err := NewLoopback(o.FirstIP)
	if err != nil {
		return err
	}
	cp, err := controlplane.New(controlplane.Options{
		ConfigDir: o.Dir, XDSAddress: o.XDSAddress, HTTPAddress: o.HTTPAddress, SecureAddress: o.SecureAddress,
		CA: ca.Options{Dir: o.CADir}, Mesh: mesh, Logger: o.Logger,
	})
	if err != nil {
		return fmt.Errorf("weft-control: %w", err)
	}
	u := &up{o: o, cp: cp, alloc: alloc, mesh: mesh, changes: make(chan struct{}, 1), running: map[string]*running{},
		out: &syncWriter{w: o.Out}, spawn: newSpawner()}
	defer u.spawn.close()
	cpCtx, stopCP := context.WithCancel(context.Background())
	cpDone := make(chan error, 1)
	go func() { cpDone <- cp.Run(cpCtx) }()
	defer func() {
		stopCP()
		if err := <-cpDone; err != nil {
			o.Logger.Error("weft-control", "err", err)
		}
	}()
	if err := u.watch(cpCtx); err != nil {
		return err
	}
	defer u.stopAll()
	if err := u.start(ctx); err != nil {
		return err
	}
	defer removeState(o.StateDir)
	u.loop(ctx)
	return nil
}
