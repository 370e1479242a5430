package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"syscall"

	"github.com/weftmesh/weft/internal/ca"
)

// captureOptions are the transparent capture settings of `weft-proxy
// sidecar`: --capture asks weft-control for Istio's capture-mode listeners
// (node metadata INTERCEPTION_MODE REDIRECT), and --uid/--gid run the
// agent and the proxy as the user and group `weft iptables` excludes from
// capture (Istio's 1337), so that the proxy's own connections are never
// redirected back to it.
type captureOptions struct {
	capture  bool
	uid, gid int
}

// interceptionModeKey is Istio's node metadata key for the capture mode.
const interceptionModeKey = "INTERCEPTION_MODE"

func (c *captureOptions) register(fs *flag.FlagSet) {
	fs.BoolVar(&c.capture, "capture", false, "traffic is captured by `weft iptables` (node metadata INTERCEPTION_MODE=REDIRECT): get Istio's listeners virtualOutbound :15001 and virtualInbound :15006")
	fs.IntVar(&c.uid, "uid", -1, "run as this user ID once the bootstrap is built (the --proxy-uid of weft iptables); needs root")
	fs.IntVar(&c.gid, "gid", -1, "run as this group ID (the --proxy-gid of weft iptables); needs root")
}

// apply sets the node metadata and checks the IDs.
func (c *captureOptions) apply(meta map[string]string) error {
	if c.capture {
		meta[interceptionModeKey] = "REDIRECT"
	}
	if (c.uid >= 0 || c.gid >= 0) && os.Geteuid() != 0 {
		return errors.New("--uid/--gid: switching user needs root (run the sidecar as root, it drops to that user)")
	}
	return nil
}

// dropPrivileges switches the whole process (every thread: Go's
// syscall.Setuid applies to all of them) to the capture user and group,
// supplementary groups cleared. Nothing to do without --uid/--gid.
func (c *captureOptions) dropPrivileges() error {
	if c.gid >= 0 {
		if err := syscall.Setgroups(nil); err != nil {
			return fmt.Errorf("--gid: setgroups: %w", err)
		}
		if err := syscall.Setgid(c.gid); err != nil {
			return fmt.Errorf("--gid %d: %w", c.gid, err)
		}
	}
	if c.uid >= 0 {
		if err := syscall.Setuid(c.uid); err != nil {
			return fmt.Errorf("--uid %d: %w", c.uid, err)
		}
	}
	return nil
}

// preloadLocalToken loads local mode's token key before the process drops
// its privileges (the CA directory is usually readable by its owner only)
// and mints from the loaded key from then on.
func (o *sidecarOptions) preloadLocalToken() error {
	if !o.localCA || (o.captureOpts.uid < 0 && o.captureOpts.gid < 0) {
		return nil
	}
	keys, err := ca.LoadTokenKey(o.caDir, nil)
	if err != nil {
		return fmt.Errorf("local mode: %w", err)
	}
	root, err := os.ReadFile(o.caRoot)
	if err != nil {
		return fmt.Errorf("local mode: %w", err)
	}
	o.caRootPEM = root
	o.token = func(context.Context) (string, error) {
		sa := o.serviceAccount
		if sa == "" {
			sa = "default"
		}
		return keys.Mint(ca.Identity{Namespace: o.namespace, ServiceAccount: sa}, localTokenTTL)
	}
	return nil
}

// switchUser loads what only the starting user may read, then drops to
// --uid/--gid, before the agent and the proxy open any connection.
func (o *sidecarOptions) switchUser() error {
	if err := o.preloadLocalToken(); err != nil {
		return err
	}
	return o.captureOpts.dropPrivileges()
}
