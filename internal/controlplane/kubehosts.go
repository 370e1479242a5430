package controlplane

import (
	"maps"
	"slices"

	networking "istio.io/api/networking/v1alpha3"
)

// The cluster's Services for the configuration's cross-object checks
// (config.Platform.Hosts): a VirtualService or DestinationRule naming a
// host under .svc.<domain> that no Service (nor ServiceEntry) defines is
// reported in its status, as Istio's analyzer reports a referenced host
// that is not found (IST0101). The answers come from the Kubernetes
// registry; until its caches synced they are "cannot say".

// kubeHosts is the hostnames of the cluster's Services and their ports.
type kubeHosts map[string][]*networking.ServicePort

// platformHosts answers config.Platform.Hosts from the last registry
// rebuild (safe for concurrent use: the map is replaced, never changed).
func (c *ControlPlane) platformHosts(host string) ([]*networking.ServicePort, bool, bool) {
	m := c.kube.hosts.Load()
	if m == nil {
		return nil, false, false
	}
	ports, found := (*m)[host]
	return ports, found, true
}

// refreshKubeHosts rebuilds the host table from the Kubernetes registry
// and, when it changed, asks the Kubernetes configuration source to check
// the objects again (not on every endpoint change: only a Service added,
// removed or with other ports changes the table).
func (c *ControlPlane) refreshKubeHosts() {
	next := kubeHosts{}
	for _, svc := range c.kube.registry.Services() {
		ports := make([]*networking.ServicePort, len(svc.Ports))
		for i, p := range svc.Ports {
			ports[i] = &networking.ServicePort{Number: p.Number, Name: p.Name, Protocol: string(p.Protocol)}
		}
		next[svc.Hostname] = ports
	}
	if prev := c.kube.hosts.Load(); prev != nil && maps.EqualFunc(*prev, next, samePorts) {
		return
	}
	c.kube.hosts.Store(&next)
	if c.kubeConfig != nil {
		c.kubeConfig.Recheck()
	}
}

// samePorts reports whether two port lists have the same numbers and
// names in order.
func samePorts(a, b []*networking.ServicePort) bool {
	return slices.EqualFunc(a, b, func(x, y *networking.ServicePort) bool {
		return x.GetNumber() == y.GetNumber() && x.GetName() == y.GetName() && x.GetProtocol() == y.GetProtocol()
	})
}
