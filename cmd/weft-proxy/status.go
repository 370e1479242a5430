package main

import (
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"

	"github.com/weftmesh/weft/internal/proxy/agent"
)

// statusOptions are the settings of the agent's status server (Istio's
// pilot-agent status port 15020).
type statusOptions struct {
	address string // --status-address; metricsAuto: --ip with port 15020
	// probersJSON is ISTIO_KUBE_APP_PROBERS as the injector wrote it;
	// probers its decoded form (checkStatus).
	probersJSON string
	probers     agent.AppProbers
	// localhost is Istio's REWRITE_PROBE_LEGACY_LOCALHOST_DESTINATION:
	// app probes without a host go to localhost rather than the pod IP.
	localhost bool
}

// legacyLocalhostEnv is Istio's switch for probing localhost.
const legacyLocalhostEnv = "REWRITE_PROBE_LEGACY_LOCALHOST_DESTINATION"

// fromEnv reads the app probes and the legacy switch. The variable is
// read once, at start, as Istio's agent does.
func (s *statusOptions) fromEnv(env map[string]string) {
	s.probersJSON = env[agent.AppProbersEnv]
	s.localhost, _ = strconv.ParseBool(env[legacyLocalhostEnv])
}

// checkStatus resolves --status-address's default and decodes the app
// probes: a broken ISTIO_KUBE_APP_PROBERS stops the sidecar at start
// with the variable and the position named, rather than failing every
// probe later.
func (o *sidecarOptions) checkStatus() error {
	s := &o.status
	if s.address == metricsAuto {
		s.address = net.JoinHostPort(o.ip, strconv.Itoa(agent.StatusPort))
	}
	if s.address == "" {
		return nil
	}
	if _, err := netip.ParseAddrPort(s.address); err != nil {
		return fmt.Errorf("--status-address %q: want ip:port, or empty for none", s.address)
	}
	p, err := agent.ParseAppProbers(s.probersJSON)
	if err != nil {
		return err
	}
	s.probers = p
	return nil
}

// startStatus starts the status server. It runs after the process has
// switched to the capture-excluded user (--uid), so probes leave as the
// proxy's own traffic.
func startStatus(o *sidecarOptions, log *slog.Logger) (*agent.Status, error) {
	ip, _ := netip.ParseAddr(o.ip) // checked
	st, err := agent.StartStatus(agent.StatusOptions{
		Address:              o.status.address,
		PodIP:                ip,
		LocalhostDestination: o.status.localhost,
		Probers:              o.status.probers,
		AdminAddress:         o.adminAddress,
		Logger:               log.With("component", "status"),
	})
	if err != nil {
		return nil, fmt.Errorf("%w (--status-address= turns the status server off)", err)
	}
	return st, nil
}
