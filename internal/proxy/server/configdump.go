package server

import (
	adminv3 "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/weftmesh/weft/internal/proxy/xdsclient"
)

// configDump is /config_dump: the bootstrap, then clusters, (in dynamic
// mode) endpoints, listeners, route configurations and secrets, each a typed
// config as Envoy prints them. Resources from xDS appear as Envoy's
// dynamic_* entries with the version_info of the response that brought
// them, when they last changed, and the last rejected update as
// error_state. Endpoints are always included in dynamic mode (Envoy needs
// ?include_eds).
func (s *Server) configDump() *adminv3.ConfigDump {
	ts := timestamppb.New(s.configured)
	d := &adminv3.ConfigDump{}
	d.Configs = append(d.Configs, mustAny(&adminv3.BootstrapConfigDump{Bootstrap: s.o.Bootstrap, LastUpdated: ts}))
	ld := &adminv3.ListenersConfigDump{}
	rd := &adminv3.RoutesConfigDump{}
	for _, bl := range s.static {
		ld.StaticListeners = append(ld.StaticListeners, &adminv3.ListenersConfigDump_StaticListener{Listener: mustAny(bl.cfg), LastUpdated: ts})
		for _, rc := range inlineRoutes(bl.cfg) {
			rd.StaticRouteConfigs = append(rd.StaticRouteConfigs, &adminv3.RoutesConfigDump_StaticRouteConfig{RouteConfig: mustAny(rc), LastUpdated: ts})
		}
	}
	cd := &adminv3.ClustersConfigDump{}
	for _, c := range s.clusters.Clusters() {
		if s.dyn != nil && !s.dyn.isStaticCluster(c.Name()) {
			continue
		}
		cd.StaticClusters = append(cd.StaticClusters, &adminv3.ClustersConfigDump_StaticCluster{Cluster: mustAny(c.Config()), LastUpdated: timestamppb.New(c.LastUpdated())})
	}
	if s.dyn == nil {
		d.Configs = append(d.Configs, mustAny(cd), mustAny(ld), mustAny(rd), mustAny(s.secretDump.dump()))
		return d
	}
	ed := &adminv3.EndpointsConfigDump{}
	s.dyn.dump(cd, ed, ld, rd)
	d.Configs = append(d.Configs, mustAny(cd), mustAny(ed), mustAny(ld), mustAny(rd), mustAny(s.secretDump.dump()))
	return d
}

// dump adds the dynamic resources to the dumps.
func (d *dynamic) dump(cd *adminv3.ClustersConfigDump, ed *adminv3.EndpointsConfigDump, ld *adminv3.ListenersConfigDump, rd *adminv3.RoutesConfigDump) {
	d.mu.Lock()
	defer d.mu.Unlock()
	cd.VersionInfo = d.versions[xdsclient.ClusterType]
	ld.VersionInfo = d.versions[xdsclient.ListenerType]
	for _, name := range sortedNames(d.clusters) {
		e := d.clusters[name]
		fail := d.errorState(xdsclient.ClusterType, name)
		if e.active != nil {
			cd.DynamicActiveClusters = append(cd.DynamicActiveClusters, &adminv3.ClustersConfigDump_DynamicCluster{
				VersionInfo: e.active.version, Cluster: mustAny(e.active.msg), LastUpdated: timestamppb.New(e.active.updated),
				ErrorState: fail, ClientStatus: clientStatus(fail),
			})
		}
		if e.warming != nil {
			cd.DynamicWarmingClusters = append(cd.DynamicWarmingClusters, &adminv3.ClustersConfigDump_DynamicCluster{
				VersionInfo: e.warming.version, Cluster: mustAny(e.warming.msg), LastUpdated: timestamppb.New(e.warming.updated),
				ErrorState: fail, ClientStatus: clientStatus(fail),
			})
		}
	}
	for _, name := range sortedNames(d.endpoints) {
		rs := d.endpoints[name]
		fail := d.errorState(xdsclient.EndpointType, name)
		ed.DynamicEndpointConfigs = append(ed.DynamicEndpointConfigs, &adminv3.EndpointsConfigDump_DynamicEndpointConfig{
			VersionInfo: rs.version, EndpointConfig: mustAny(rs.msg), LastUpdated: timestamppb.New(rs.updated),
			ErrorState: fail, ClientStatus: clientStatus(fail),
		})
	}
	for _, name := range sortedNames(d.listeners) {
		ld.DynamicListeners = append(ld.DynamicListeners, d.listenerDump(name))
	}
	for _, name := range sortedNames(d.routes) {
		rs := d.routes[name]
		fail := d.errorState(xdsclient.RouteType, name)
		rd.DynamicRouteConfigs = append(rd.DynamicRouteConfigs, &adminv3.RoutesConfigDump_DynamicRouteConfig{
			VersionInfo: rs.version, RouteConfig: mustAny(rs.msg), LastUpdated: timestamppb.New(rs.updated),
			ErrorState: fail, ClientStatus: clientStatus(fail),
		})
	}
	// Inline route configurations of dynamic listeners are static ones,
	// as Envoy lists them.
	for _, name := range sortedNames(d.listeners) {
		if e := d.listeners[name]; e.active != nil {
			for _, rc := range inlineRoutes(e.active.cfg) {
				rd.StaticRouteConfigs = append(rd.StaticRouteConfigs, &adminv3.RoutesConfigDump_StaticRouteConfig{
					RouteConfig: mustAny(rc), LastUpdated: timestamppb.New(e.activeState.updated),
				})
			}
		}
	}
}

// listenerDump is one dynamic listener's entry.
func (d *dynamic) listenerDump(name string) *adminv3.ListenersConfigDump_DynamicListener {
	e := d.listeners[name]
	fail := d.errorState(xdsclient.ListenerType, name)
	out := &adminv3.ListenersConfigDump_DynamicListener{Name: name, ErrorState: fail, ClientStatus: clientStatus(fail)}
	state := func(bl *builtListener, rs *resourceState) *adminv3.ListenersConfigDump_DynamicListenerState {
		return &adminv3.ListenersConfigDump_DynamicListenerState{
			VersionInfo: rs.version, Listener: mustAny(bl.cfg), LastUpdated: timestamppb.New(rs.updated),
		}
	}
	if e.active != nil {
		out.ActiveState = state(e.active, e.activeState)
	}
	if e.warming != nil {
		out.WarmingState = state(e.warming, e.warmingState)
	}
	return out
}

// errorState is a resource's last rejected update, or nil.
func (d *dynamic) errorState(typeURL, name string) *adminv3.UpdateFailureState {
	f := d.failures[typeURL][name]
	if f == nil {
		return nil
	}
	out := &adminv3.UpdateFailureState{LastUpdateAttempt: timestamppb.New(f.when), Details: f.details, VersionInfo: f.version}
	if f.msg != nil {
		out.FailedConfiguration = mustAny(f.msg)
	}
	return out
}

// clientStatus is ACKED, or NACKED after a rejected update.
func clientStatus(fail *adminv3.UpdateFailureState) adminv3.ClientResourceStatus {
	if fail != nil {
		return adminv3.ClientResourceStatus_NACKED
	}
	return adminv3.ClientResourceStatus_ACKED
}
