package server

import (
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"

	"github.com/weftmesh/weft/internal/proxy/tlsctx"
	"github.com/weftmesh/weft/internal/proxy/upstream"
	"github.com/weftmesh/weft/internal/proxy/xdsclient"
)

// listenerReady reports whether a warming listener may serve: its route
// configurations and its SDS secrets have all arrived.
func (d *dynamic) listenerReady(bl *builtListener) bool {
	return len(d.missingRoutes(bl)) == 0 && d.listenerSecretsReady(bl)
}

// listenerSecretsReady reports whether bl's SDS secrets have all arrived.
func (d *dynamic) listenerSecretsReady(bl *builtListener) bool {
	return len(d.s.missingSecrets(listenerSecretRefs(bl))) == 0
}

// clusterSecretsReady reports whether the SDS secrets of cfg's transport
// sockets have all arrived (a cluster warms until they have).
func (d *dynamic) clusterSecretsReady(cfg *clusterv3.Cluster) bool {
	return len(d.s.missingSecrets(upstream.TransportSecretRefs(cfg))) == 0
}

// secretRefs returns the SDS secrets of every dynamic listener and
// cluster, active or warming; the caller holds d.mu.
func (d *dynamic) secretRefs() []tlsctx.SecretRef {
	var out []tlsctx.SecretRef
	for _, e := range d.listeners {
		for _, bl := range []*builtListener{e.active, e.warming} {
			if bl != nil {
				out = append(out, listenerSecretRefs(bl)...)
			}
		}
	}
	for _, e := range d.clusters {
		for _, rs := range []*resourceState{e.active, e.warming} {
			if rs != nil {
				out = append(out, upstream.TransportSecretRefs(rs.msg.(*clusterv3.Cluster))...)
			}
		}
	}
	return out
}

// resubscribeSecrets sets the SDS subscriptions to what the static and
// dynamic resources name; the caller holds d.mu.
func (d *dynamic) resubscribeSecrets() {
	d.s.sds.subscribe(append(d.s.staticSecretRefs(), d.secretRefs()...))
}

// secretsChanged ends the warming of the listeners and clusters whose
// secrets have all arrived.
func (d *dynamic) secretsChanged() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.stopped {
		return
	}
	d.endSecretWarming()
	d.checkInitialized()
}

// endSecretWarming activates what waited for secrets; the caller holds
// d.mu.
func (d *dynamic) endSecretWarming() {
	d.activateWarm()
	for _, name := range sortedNames(d.clusters) {
		e := d.clusters[name]
		if e.warming == nil {
			continue
		}
		cfg := e.warming.msg.(*clusterv3.Cluster)
		if !d.clusterSecretsReady(cfg) {
			continue
		}
		svc := upstream.EDSServiceName(cfg)
		var cla *endpointv3.ClusterLoadAssignment
		if svc != "" {
			known := d.endpoints[svc]
			switch {
			case known != nil:
				cla = known.msg.(*endpointv3.ClusterLoadAssignment)
			case !e.edsTimedOut:
				continue // still waits for its endpoints
			}
		}
		if err := d.promoteCluster(name, e, cla); err != nil {
			d.s.log.Warn("xds: a warming cluster failed to build once its secrets arrived", "cluster", name, "err", err)
		}
	}
}

// applyADSSecrets applies secrets received over ADS (sds_config ads {}).
func (d *dynamic) applyADSSecrets(u *xdsclient.Update) map[string]error {
	secrets := make(map[string]*tlsv3.Secret, len(u.Resources))
	for n, m := range u.Resources {
		secrets[n] = m.(*tlsv3.Secret)
	}
	errs := d.s.compileSecrets(secrets)
	d.endSecretWarming()
	return errs
}

// adsSecretNames returns the secrets to request over ADS, sorted.
func (d *dynamic) adsSecretNames() []string {
	set := map[string]bool{}
	for _, r := range append(d.s.staticSecretRefs(), d.secretRefs()...) {
		if r.Cluster() == "" {
			set[r.Name] = true
		}
	}
	return sortedNames(set)
}
