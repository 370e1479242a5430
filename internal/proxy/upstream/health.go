package upstream

import (
	"fmt"
	"time"

	"github.com/weftmesh/weft/internal/proxy/upstream/healthcheck"
	"github.com/weftmesh/weft/internal/proxy/upstream/outlier"
)

// Outcome is how one upstream attempt ended; see outlier.Result for the
// precise meaning of each local-origin failure.
type Outcome = outlier.Result

// Outcomes the router reports through Host.RecordOutcome.
const (
	OutcomeResponse      = outlier.Response
	OutcomeConnectFailed = outlier.ConnectFailed
	OutcomeReset         = outlier.Reset
	OutcomeTimeout       = outlier.Timeout
)

// A host is healthy, and balanced over outside panic mode, only when every
// source says so (Envoy's health flags): EDS health_status, active health
// checking (FAILED_ACTIVE_HC) and outlier detection (FAILED_OUTLIER_CHECK).
func (h *Host) healthy() bool {
	return h.Health().healthy() && !h.hcFailed.Load() && !h.outlier.Ejected()
}

// RecordOutcome reports one upstream attempt to the host's outlier
// detector; status is the response's HTTP status for OutcomeResponse. The
// router calls it once per attempt. It is lock-free and allocation-free,
// and does nothing when the cluster has no outlier_detection.
func (h *Host) RecordOutcome(o Outcome, status int) { h.outlier.Record(o, status) }

// FailedOutlierCheck reports whether outlier detection ejected the host.
func (h *Host) FailedOutlierCheck() bool { return h.outlier.Ejected() }

// FailedActiveHealthCheck reports whether active health checking marks the
// host unhealthy (also before its first check).
func (h *Host) FailedActiveHealthCheck() bool { return h.hcFailed.Load() }

// SuccessRate returns the host's outlier success rate over the last
// interval for external (local false) or local-origin results, or -1.
func (h *Host) SuccessRate(local bool) float64 { return h.outlier.SuccessRate(local) }

// initHealth reads outlier_detection and health_checks.
func (c *Cluster) initHealth() error {
	c.wake = make(chan struct{}, 1)
	c.healthDone = make(chan struct{})
	if od := c.config.GetOutlierDetection(); od != nil {
		cfg, err := outlier.ParseConfig(od)
		if err != nil {
			return err
		}
		c.detector = outlier.New(outlier.Options{Config: cfg, Scope: c.Stats.scope, Notify: c.poke})
	}
	switch hcs := c.config.GetHealthChecks(); len(hcs) {
	case 0:
	case 1:
		cfg, err := healthcheck.ParseConfig(hcs[0], c.name)
		if err != nil {
			return fmt.Errorf("health_checks[0].%w", err)
		}
		c.hc, c.hcStats = cfg, healthcheck.NewStats(c.Stats.scope)
	default:
		return fmt.Errorf("health_checks: only one health check per cluster is supported (as in Envoy)")
	}
	return nil
}

// poke wakes the cluster's health goroutine (never blocks).
func (c *Cluster) poke() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// healthLoop is the cluster's health goroutine (Envoy's main thread for
// health): it runs a health-check session per host, started and stopped
// as the host set changes, handles outlier events and the outlier interval,
// and republishes the host set, off the request path, whenever a host's
// health changed. It ends when the cluster is closed, replaced or removed,
// after its sessions have stopped.
func (c *Cluster) healthLoop() {
	defer close(c.healthDone)
	sessions := map[*Host]*healthcheck.Session{}
	defer stopSessions(sessions)
	var tick <-chan time.Time
	if c.detector != nil {
		t := time.NewTicker(c.detector.Config().Interval)
		defer t.Stop()
		tick = t.C
	}
	for {
		hosts := c.set.Load().hosts
		c.syncSessions(hosts, sessions)
		changed := false
		select {
		case <-c.stop:
			return
		case <-c.wake:
			if c.detector != nil {
				changed = c.detector.Process(monitors(hosts), time.Now())
			}
		case now := <-tick:
			changed = c.detector.Tick(monitors(hosts), now)
		}
		if c.healthDirty.Swap(false) || changed {
			c.refreshHealth()
		}
	}
}

// syncSessions starts a session for each new host and stops those of
// removed hosts.
func (c *Cluster) syncSessions(hosts []*Host, sessions map[*Host]*healthcheck.Session) {
	if c.hc == nil {
		return
	}
	live := make(map[*Host]bool, len(hosts))
	for _, h := range hosts {
		live[h] = true
		if sessions[h] == nil {
			s := healthcheck.NewSession(c.hc, c.hcTarget(h))
			sessions[h] = s
			s.Start()
		}
	}
	for h, s := range sessions {
		if !live[h] {
			s.Stop()
			delete(sessions, h)
		}
	}
}

func stopSessions(sessions map[*Host]*healthcheck.Session) {
	for _, s := range sessions {
		s.Stop()
	}
	for _, s := range sessions {
		<-s.Done()
	}
}

// hcTarget is how a session checks h and reports to the cluster.
func (c *Cluster) hcTarget(h *Host) healthcheck.Target {
	return healthcheck.Target{
		Pool:   h.popts,
		Failed: h.hcFailed.Load,
		SetFailed: func(failed bool) {
			h.hcFailed.Store(failed)
			c.healthDirty.Store(true)
			c.poke()
		},
		Passed: func() {
			if !h.hcFailed.Load() {
				h.outlier.RequestUneject()
			}
		},
		Traffic: func() bool { return c.Stats.Pool.CxTotal.Value() > 0 },
		Stats:   c.hcStats,
	}
}

// refreshHealth republishes the current hosts with their current health.
func (c *Cluster) refreshHealth() {
	c.mu.Lock()
	defer c.mu.Unlock()
	select {
	case <-c.stop:
		return
	default:
	}
	c.publish(c.set.Load().hosts)
}

func monitors(hosts []*Host) []*outlier.Monitor {
	out := make([]*outlier.Monitor, 0, len(hosts))
	for _, h := range hosts {
		if h.outlier != nil {
			out = append(out, h.outlier)
		}
	}
	return out
}
