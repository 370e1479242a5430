package server

import (
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/proto"

	"github.com/weftmesh/weft/internal/proxy/hcm"
	"github.com/weftmesh/weft/internal/proxy/router"
	"github.com/weftmesh/weft/internal/proxy/xdsclient"
)

// applyRoutes applies an RDS response: each route configuration is
// compiled for every connection manager that names it (each with its own
// options), and only when all compile are the tables swapped in, one
// atomic store per manager. Requests in flight keep the table they
// started with. Listeners that waited for these routes then activate.
func (d *dynamic) applyRoutes(u *xdsclient.Update) map[string]error {
	errs := map[string]error{}
	for _, name := range sortedNames(u.Resources) {
		rc := u.Resources[name].(*routev3.RouteConfiguration)
		if cur := d.routes[name]; cur != nil && proto.Equal(cur.msg, rc) {
			continue
		}
		tables, err := d.compileFor(name, rc)
		if err != nil {
			errs[name] = wrapPath(xdsclient.ResourcePath(xdsclient.RouteType, name), err)
			continue
		}
		for m, t := range tables {
			m.SetRoutes(t)
		}
		d.routes[name] = &resourceState{msg: rc, version: u.Version, updated: time.Now()}
	}
	d.activateWarm()
	return errs
}

// compileFor compiles rc for every manager (of active and warming
// listeners) that takes route configuration name from RDS; with none, it
// compiles once to find the errors.
func (d *dynamic) compileFor(name string, rc *routev3.RouteConfiguration) (map[*hcm.Manager]*router.Table, error) {
	out := map[*hcm.Manager]*router.Table{}
	mgrs := d.managersFor(name)
	if len(mgrs) == 0 {
		_, err := router.Compile(rc, d.compileOptions(router.CompileOptions{}))
		return out, err
	}
	for _, m := range mgrs {
		t, err := router.Compile(rc, d.compileOptions(m.RouteCompileOptions()))
		if err != nil {
			return nil, err
		}
		out[m] = t
	}
	return out, nil
}

// compileOptions adds the cluster check of validate_clusters (false by
// default for RDS, as in Envoy).
func (d *dynamic) compileOptions(o router.CompileOptions) router.CompileOptions {
	o.ClusterExists = d.clusterExists
	return o
}

// managersFor returns the connection managers of active and warming
// listeners that take route configuration name from RDS.
func (d *dynamic) managersFor(name string) []*hcm.Manager {
	var out []*hcm.Manager
	seen := map[*hcm.Manager]bool{}
	for _, e := range d.listeners {
		for _, bl := range []*builtListener{e.active, e.warming} {
			if bl == nil {
				continue
			}
			for _, m := range bl.managers() {
				if m.RDSName() == name && !seen[m] {
					seen[m] = true
					out = append(out, m)
				}
			}
		}
	}
	return out
}

// routesFor gives a new connection manager the route configuration it
// names, when it has already arrived. It is called while a listener is
// built, with d.mu held.
func (d *dynamic) routesFor(m *hcm.Manager) error {
	rs := d.routes[m.RDSName()]
	if rs == nil {
		return nil
	}
	t, err := router.Compile(rs.msg.(*routev3.RouteConfiguration), d.compileOptions(m.RouteCompileOptions()))
	if err != nil {
		return err
	}
	m.SetRoutes(t)
	return nil
}

// pathError is an error prefixed by the resource it concerns.
type pathError struct {
	path string
	err  error
}

func (e *pathError) Error() string { return e.path + ": " + e.err.Error() }
func (e *pathError) Unwrap() error { return e.err }

func wrapPath(path string, err error) error { return &pathError{path, err} }
