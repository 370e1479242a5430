package server

import (
	"fmt"
	"sort"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"google.golang.org/protobuf/proto"

	"github.com/weftmesh/weft/internal/proxy/upstream"
	"github.com/weftmesh/weft/internal/proxy/xdsclient"
)

// dynCluster is a cluster from CDS: the version in force (published in the
// cluster manager) and, for an EDS cluster waiting for its first
// endpoints, the warming version. Envoy's cluster warming: a new or
// updated EDS cluster is used only once its ClusterLoadAssignment arrived
// (or its eds_config initial_fetch_timeout passed), the previous version
// serving meanwhile. weft-proxy keeps the last assignment of every service
// name, so an update of a cluster whose endpoints are known takes effect
// at once.
type dynCluster struct {
	active  *resourceState
	warming *resourceState
	// edsTimedOut: the warming version's endpoints missed the eds_config
	// initial_fetch_timeout; it starts with none once its SDS secrets are
	// there (secrets have no timeout: see dynListener.routesTimedOut).
	edsTimedOut bool
	warmTimer
}

// latest returns the newest configuration received.
func (c *dynCluster) latest() proto.Message {
	if c.warming != nil {
		return c.warming.msg
	}
	return c.active.msg
}

// applyClusters applies a CDS response: removals first (state of the
// world), then additions and updates; unchanged clusters are left alone,
// as Envoy skips a cluster whose configuration did not change.
func (d *dynamic) applyClusters(u *xdsclient.Update) map[string]error {
	errs := applySotW(d.clusters, u, d.removeCluster, func(name string, msg proto.Message) error {
		return d.updateCluster(msg.(*clusterv3.Cluster), u.Version)
	})
	// Endpoints of service names no cluster uses any more are dropped (the
	// client unsubscribes them).
	used := map[string]bool{}
	for _, n := range d.edsNames() {
		used[n] = true
	}
	for n := range d.endpoints {
		if !used[n] {
			delete(d.endpoints, n)
		}
	}
	return errs
}

func (d *dynamic) isStaticCluster(name string) bool {
	for _, c := range d.s.o.Bootstrap.GetStaticResources().GetClusters() {
		if c.GetName() == name {
			return true
		}
	}
	return false
}

// updateCluster adds or updates one cluster. Errors name the cluster; the
// previous version keeps serving.
func (d *dynamic) updateCluster(cfg *clusterv3.Cluster, version string) error {
	name := cfg.GetName()
	if d.isStaticCluster(name) {
		return fmt.Errorf("cluster %q: a static cluster of the bootstrap has this name; CDS cannot replace it", name)
	}
	e := d.clusters[name]
	if e != nil && proto.Equal(e.latest(), cfg) {
		return nil
	}
	rs := &resourceState{msg: cfg, version: version, updated: time.Now()}
	if err := d.s.sds.checkRefs(upstream.TransportSecretRefs(cfg)); err != nil {
		return fmt.Errorf("cluster %q: %w", name, err)
	}
	svc := upstream.EDSServiceName(cfg)
	known := d.endpoints[svc]
	if (svc == "" || known != nil) && d.clusterSecretsReady(cfg) {
		var cla *endpointv3.ClusterLoadAssignment
		if known != nil {
			cla = known.msg.(*endpointv3.ClusterLoadAssignment)
		}
		if err := d.s.clusters.AddOrUpdateWithAssignment(cfg, cla); err != nil {
			return err
		}
		if e == nil {
			e = &dynCluster{}
			d.clusters[name] = e
		}
		e.stopTimer()
		e.warming, e.active = nil, rs
		return nil
	}
	// An EDS cluster whose endpoints are not known yet warms, and so
	// does a cluster whose SDS secrets have not arrived (until they do).
	if err := d.s.clusters.Check(cfg); err != nil {
		return err
	}
	if e == nil {
		e = &dynCluster{}
		d.clusters[name] = e
	}
	e.stopTimer()
	e.warming, e.edsTimedOut = rs, false
	if svc == "" || known != nil {
		return nil // waits for its secrets only
	}
	timeout := fetchTimeout(cfg.GetEdsClusterConfig().GetEdsConfig())
	e.timer = d.warmTimer(timeout, func() {
		if d.clusters[name] == e && e.warming == rs {
			if d.endpoints[svc] != nil {
				return // arrived; the cluster waits for its secrets
			}
			d.s.log.Warn("xds: no endpoints within initial_fetch_timeout; the cluster starts with none", "cluster", name)
			e.edsTimedOut = true
			if d.clusterSecretsReady(cfg) {
				d.promoteCluster(name, e, nil)
			}
		}
	})
	return nil
}

// promoteCluster makes a warming cluster active with cla's endpoints (nil:
// none).
func (d *dynamic) promoteCluster(name string, e *dynCluster, cla *endpointv3.ClusterLoadAssignment) error {
	cfg := e.warming.msg.(*clusterv3.Cluster)
	if err := d.s.clusters.AddOrUpdateWithAssignment(cfg, cla); err != nil {
		return err
	}
	e.stopTimer()
	e.active, e.warming = e.warming, nil
	e.active.updated = time.Now()
	return nil
}

// removeCluster removes a cluster; its connection pools drain.
func (d *dynamic) removeCluster(name string) {
	e := d.clusters[name]
	e.stopTimer()
	if e.active != nil {
		d.s.clusters.Remove(name)
	}
	delete(d.clusters, name)
}

// edsNames returns the service names of the EDS clusters, active or
// warming, sorted.
func (d *dynamic) edsNames() []string {
	set := map[string]bool{}
	for _, e := range d.clusters {
		for _, rs := range []*resourceState{e.active, e.warming} {
			if rs == nil {
				continue
			}
			if n := upstream.EDSServiceName(rs.msg.(*clusterv3.Cluster)); n != "" {
				set[n] = true
			}
		}
	}
	out := make([]string, 0, len(set))
	for n := range set {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// applyEndpoints applies an EDS response: each assignment updates the host
// sets of the clusters with that service name in place (unchanged hosts
// keep their connections and requests) and ends the warming of the
// clusters waiting for it.
func (d *dynamic) applyEndpoints(u *xdsclient.Update) map[string]error {
	errs := map[string]error{}
	for _, svc := range sortedNames(u.Resources) {
		cla := u.Resources[svc].(*endpointv3.ClusterLoadAssignment)
		if cur := d.endpoints[svc]; cur != nil && proto.Equal(cur.msg, cla) {
			continue
		}
		if err := d.assign(svc, cla); err != nil {
			errs[svc] = fmt.Errorf("%s: %w", xdsclient.ResourcePath(xdsclient.EndpointType, svc), err)
			continue
		}
		d.endpoints[svc] = &resourceState{msg: cla, version: u.Version, updated: time.Now()}
	}
	return errs
}

// assign gives cla to the clusters of service name svc.
func (d *dynamic) assign(svc string, cla *endpointv3.ClusterLoadAssignment) error {
	for _, name := range sortedNames(d.clusters) {
		e := d.clusters[name]
		if e.active == nil || upstream.EDSServiceName(e.active.msg.(*clusterv3.Cluster)) != svc {
			continue
		}
		if c := d.s.clusters.Get(name); c != nil {
			if err := c.UpdateAssignment(cla); err != nil {
				return err
			}
		}
	}
	for _, name := range sortedNames(d.clusters) {
		e := d.clusters[name]
		if e.warming == nil || upstream.EDSServiceName(e.warming.msg.(*clusterv3.Cluster)) != svc ||
			!d.clusterSecretsReady(e.warming.msg.(*clusterv3.Cluster)) {
			continue
		}
		if err := d.promoteCluster(name, e, cla); err != nil {
			return err
		}
	}
	return nil
}

// clusterExists reports whether a cluster is known, active or warming
// (validate_clusters of route configurations).
func (d *dynamic) clusterExists(name string) bool {
	if d.s.clusters.Get(name) != nil {
		return true
	}
	e := d.clusters[name]
	return e != nil && e.warming != nil
}
