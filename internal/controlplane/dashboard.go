package controlplane

import (
	"github.com/weftmesh/weft/internal/config"
	"github.com/weftmesh/weft/internal/dashboard"
	"github.com/weftmesh/weft/internal/model"
	"github.com/weftmesh/weft/internal/xds"
)

// dashboardSource shows the control plane's state on the dashboard.
type dashboardSource struct{ c *ControlPlane }

var _ dashboard.Source = dashboardSource{}

func (s dashboardSource) Snapshot() *model.Snapshot              { return s.c.cur.Load() }
func (s dashboardSource) Proxies() []*model.Proxy                { return s.c.xds.ConnectedProxies() }
func (s dashboardSource) SyncStatus() map[string]xds.ProxyStatus { return s.c.xds.SyncStatus() }

// Problems are the rejected objects (the store), the registry's problems
// and what translation does not apply, as weft-control logs them.
func (s dashboardSource) Problems() []*config.Error {
	out := s.c.store.Errors()
	out = append(out, s.c.files.Problems()...)
	if snap := s.c.cur.Load(); snap != nil {
		out = append(out, s.c.translator.Warnings(snap)...)
	}
	return out
}

// newDashboard builds the dashboard served on the HTTP port.
func (c *ControlPlane) newDashboard() (*dashboard.Dashboard, error) {
	o := dashboard.Options{Source: dashboardSource{c}, Scrape: c.o.Dashboard, Logger: c.log}
	return dashboard.New(o)
}
