package kube

import (
	"cmp"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/weftmesh/weft/internal/config"
	"github.com/weftmesh/weft/internal/model"
	"github.com/weftmesh/weft/internal/registry"
)

// Kinds of the Kubernetes objects services and endpoints come from
// (model.Service.Source, model.Endpoint.Source).
const (
	KindService       config.Kind = "Service"
	KindPod           config.Kind = "Pod"
	KindEndpointSlice config.Kind = "EndpointSlice"
)

// AnnotationExportTo is Istio's Service annotation restricting which
// namespaces see the service: a comma-separated list of "*", ".", "~" or
// namespace names (networking.istio.io/exportTo).
const AnnotationExportTo = "networking.istio.io/exportTo"

// Objects are the Kubernetes objects Build reads: every Service and
// EndpointSlice, and lookups for Pods and Namespaces (nil when the object
// is not known, or not yet: the endpoint is then built without it).
// Build does not modify them.
type Objects struct {
	Services  []*corev1.Service
	Slices    []*discoveryv1.EndpointSlice
	Pod       func(namespace, name string) *corev1.Pod
	Namespace func(name string) *corev1.Namespace
}

// Build is the Kubernetes registry as a pure function: one model.Service
// per Service, as Istio's Kubernetes controller converts them
// (pilot/pkg/serviceregistry/kube/conversion.go ConvertService and the
// EndpointSlice controller):
//
//   - Hostname NAME.NAMESPACE.svc.DOMAIN_SUFFIX; Addresses the ClusterIPs.
//   - Type ExternalName: resolution DNS, mesh-external, one endpoint, the
//     external name, on every port (Istio's behaviour before its
//     ExternalName alias mode).
//   - Headless (clusterIP None): resolution Passthrough, no address, the
//     ready endpoints still listed (Istio does the same).
//   - Otherwise resolution ClientSideLB (EDS) with the ready endpoints of
//     the EndpointSlices labelled kubernetes.io/service-name=NAME:
//     conditions.ready unset counts as ready (the API's rule); with
//     spec.publishNotReadyAddresses every endpoint counts. FQDN slices are
//     ignored (Istio too). An address two slices both list is kept once.
//   - Ports: TCP ports only (UDP and SCTP are not proxied); the protocol
//     follows Istio's protocol selection (Protocol).
//   - Endpoint attributes from the Pod of targetRef: labels (with Istio's
//     topology labels added), service account, security.istio.io/tlsMode
//     ("disabled" when absent, as Istio's PodTLSMode), workload name,
//     network (pod label topology.istio.io/network, else the namespace's),
//     locality (pod label istio-locality "region.zone.subzone").
//   - exportTo from the annotation networking.istio.io/exportTo.
//
// The result is sorted by hostname then namespace; endpoints by address,
// then port. It does not depend on the order of the inputs.
func Build(objs Objects, o Options) []*model.Service {
	o = o.withDefaults()
	bySvc := slicesByService(objs.Slices)
	out := make([]*model.Service, 0, len(objs.Services))
	for _, s := range objs.Services {
		if s == nil {
			continue
		}
		if svc := convertService(s, bySvc[nsName{s.Namespace, s.Name}], objs, o); svc != nil {
			out = append(out, svc)
		}
	}
	slices.SortFunc(out, func(a, b *model.Service) int {
		return cmp.Or(cmp.Compare(a.Hostname, b.Hostname), cmp.Compare(a.Namespace, b.Namespace))
	})
	return out
}

type nsName struct{ namespace, name string }

// slicesByService groups the IP slices by their service, each group
// sorted by slice name (so duplicates resolve the same way every time).
func slicesByService(in []*discoveryv1.EndpointSlice) map[nsName][]*discoveryv1.EndpointSlice {
	out := map[nsName][]*discoveryv1.EndpointSlice{}
	for _, sl := range in {
		if sl == nil || sl.AddressType == discoveryv1.AddressTypeFQDN {
			continue
		}
		svc := sl.Labels[discoveryv1.LabelServiceName]
		if svc == "" {
			continue
		}
		k := nsName{sl.Namespace, svc}
		out[k] = append(out[k], sl)
	}
	for _, group := range out {
		slices.SortFunc(group, func(a, b *discoveryv1.EndpointSlice) int { return cmp.Compare(a.Name, b.Name) })
	}
	return out
}

// Hostname is a Service's name in the mesh: NAME.NAMESPACE.svc.SUFFIX.
func Hostname(name, namespace, domainSuffix string) string {
	return name + "." + namespace + ".svc." + domainSuffix
}

func convertService(s *corev1.Service, sl []*discoveryv1.EndpointSlice, objs Objects, o Options) *model.Service {
	svc := &model.Service{
		Hostname:  Hostname(s.Name, s.Namespace, o.DomainSuffix),
		Namespace: s.Namespace,
		Ports:     convertPorts(s.Spec.Ports),
		ExportTo:  exportTo(s.Annotations[AnnotationExportTo]),
		Source:    config.Key{Kind: KindService, Namespace: s.Namespace, Name: s.Name},
	}
	switch {
	case s.Spec.Type == corev1.ServiceTypeExternalName:
		if s.Spec.ExternalName == "" {
			return nil // the API server rejects this; nothing to route to
		}
		svc.Resolution = model.DNS
		svc.MeshExternal = true
		svc.Endpoints = []*model.Endpoint{externalNameEndpoint(s, svc.Ports, o)}
		return svc
	case s.Spec.ClusterIP == corev1.ClusterIPNone:
		svc.Resolution = model.Passthrough
	default:
		svc.Resolution = model.ClientSideLB
		svc.Addresses = clusterIPs(s)
	}
	svc.Endpoints = endpoints(s, sl, svc.Ports, objs, o)
	return svc
}

// clusterIPs returns spec.clusterIPs (dual stack), else spec.clusterIP.
func clusterIPs(s *corev1.Service) []string {
	var out []string
	for _, ip := range s.Spec.ClusterIPs {
		if ip != "" && ip != corev1.ClusterIPNone {
			out = append(out, ip)
		}
	}
	if len(out) == 0 && s.Spec.ClusterIP != "" && s.Spec.ClusterIP != corev1.ClusterIPNone {
		out = append(out, s.Spec.ClusterIP)
	}
	return out
}

func convertPorts(in []corev1.ServicePort) []model.Port {
	out := make([]model.Port, 0, len(in))
	for _, p := range in {
		if p.Protocol != "" && p.Protocol != corev1.ProtocolTCP {
			continue
		}
		mp := model.Port{Name: p.Name, Number: uint32(p.Port), Protocol: Protocol(p.Port, p.Name, p.AppProtocol)}
		if p.TargetPort.IntVal > 0 {
			mp.TargetPort = uint32(p.TargetPort.IntVal)
		}
		out = append(out, mp)
	}
	return out
}

// exportTo parses the exportTo annotation; nil (every namespace, Istio's
// default with no mesh-wide defaultServiceExportTo) when absent.
func exportTo(v string) []string {
	if strings.TrimSpace(v) == "" {
		return nil
	}
	var out []string
	for _, e := range strings.Split(v, ",") {
		if e = strings.TrimSpace(e); e != "" {
			out = append(out, e)
		}
	}
	return out
}

func externalNameEndpoint(s *corev1.Service, ports []model.Port, o Options) *model.Endpoint {
	pm := make(map[string]uint32, len(ports))
	for _, p := range ports {
		pm[p.Name] = p.Number
	}
	return &model.Endpoint{
		Address:   s.Spec.ExternalName,
		Ports:     pm,
		Labels:    map[string]string{registry.LabelTopologyCluster: o.ClusterID},
		TLSMode:   registry.TLSModeDisabled,
		Namespace: s.Namespace,
		Source:    config.Key{Kind: KindService, Namespace: s.Namespace, Name: s.Name},
	}
}

// endpoints builds the service's endpoints from its slices.
func endpoints(s *corev1.Service, sl []*discoveryv1.EndpointSlice, ports []model.Port, objs Objects, o Options) []*model.Endpoint {
	seen := map[string]bool{}
	var out []*model.Endpoint
	for _, slice := range sl {
		pm := slicePorts(slice, ports)
		if len(pm) == 0 {
			continue // the slice serves none of the service's ports
		}
		for i := range slice.Endpoints {
			ep := &slice.Endpoints[i]
			if len(ep.Addresses) == 0 || !(s.Spec.PublishNotReadyAddresses || ready(ep)) {
				continue
			}
			e := buildEndpoint(slice, ep, pm, objs, o)
			k := e.Address + "|" + portsKey(e, ports)
			if seen[k] {
				continue
			}
			seen[k] = true
			out = append(out, e)
		}
	}
	slices.SortStableFunc(out, func(a, b *model.Endpoint) int {
		if c := cmp.Compare(a.Address, b.Address); c != 0 {
			return c
		}
		return cmp.Compare(portsKey(a, ports), portsKey(b, ports))
	})
	return out
}

// ready is the EndpointSlice rule: an unset condition counts as ready.
func ready(ep *discoveryv1.Endpoint) bool {
	return ep.Conditions.Ready == nil || *ep.Conditions.Ready
}

// slicePorts maps each service port name to the slice's port of that name
// (the endpoints' resolved target port).
func slicePorts(slice *discoveryv1.EndpointSlice, ports []model.Port) map[string]uint32 {
	out := make(map[string]uint32, len(ports))
	for _, sp := range slice.Ports {
		if sp.Port == nil || *sp.Port <= 0 || (sp.Protocol != nil && *sp.Protocol != corev1.ProtocolTCP) {
			continue
		}
		name := ""
		if sp.Name != nil {
			name = *sp.Name
		}
		for _, p := range ports {
			if p.Name == name {
				out[name] = uint32(*sp.Port)
			}
		}
	}
	return out
}

func portsKey(e *model.Endpoint, ports []model.Port) string {
	var b strings.Builder
	for _, p := range ports {
		b.WriteString(strconv.FormatUint(uint64(e.PortFor(p)), 10))
		b.WriteByte(',')
	}
	return b.String()
}

// buildEndpoint converts one slice endpoint (its first address: the API
// says the addresses are fungible) with the attributes of its Pod.
func buildEndpoint(slice *discoveryv1.EndpointSlice, ep *discoveryv1.Endpoint, pm map[string]uint32, objs Objects, o Options) *model.Endpoint {
	e := &model.Endpoint{
		Address:   ep.Addresses[0],
		Ports:     pm,
		TLSMode:   registry.TLSModeDisabled,
		Namespace: slice.Namespace,
		Source:    config.Key{Kind: KindEndpointSlice, Namespace: slice.Namespace, Name: slice.Name},
	}
	var pod *corev1.Pod
	if ref := ep.TargetRef; ref != nil && ref.Kind == "Pod" && objs.Pod != nil {
		ns := ref.Namespace
		if ns == "" {
			ns = slice.Namespace
		}
		pod = objs.Pod(ns, ref.Name)
		e.Source = config.Key{Kind: KindPod, Namespace: ns, Name: ref.Name}
		e.WorkloadName = ref.Name
	}
	var labels map[string]string
	if pod != nil {
		labels = pod.Labels
		e.ServiceAccount = pod.Spec.ServiceAccountName
		e.WorkloadName = workloadName(pod)
		if v, ok := pod.Labels[registry.LabelTLSMode]; ok {
			e.TLSMode = v
		}
		if l := pod.Labels[registry.LabelLocality]; l != "" {
			e.Locality = strings.ReplaceAll(l, ".", "/")
		}
		e.Network = pod.Labels[registry.LabelTopologyNetwork]
	}
	if e.Network == "" && objs.Namespace != nil {
		if ns := objs.Namespace(slice.Namespace); ns != nil {
			e.Network = ns.Labels[registry.LabelTopologyNetwork]
		}
	}
	e.Labels = augmentLabels(labels, o.ClusterID, e.Locality, e.Network)
	return e
}

// workloadName is the name of the workload the pod belongs to, as Istio
// derives it (kube controller's workload metadata): the label
// service.istio.io/workload-name, else the controller owner, a ReplicaSet
// of a Deployment giving the Deployment's name (the ReplicaSet's name
// without its pod-template-hash suffix), else the pod's name.
func workloadName(pod *corev1.Pod) string {
	if n := pod.Labels[registry.LabelWorkloadName]; n != "" {
		return n
	}
	owner := metav1.GetControllerOf(pod)
	if owner == nil {
		return pod.Name
	}
	if owner.Kind == "ReplicaSet" {
		if h := pod.Labels["pod-template-hash"]; h != "" {
			if n, ok := strings.CutSuffix(owner.Name, "-"+h); ok {
				return n
			}
		}
	}
	return owner.Name
}

// augmentLabels is Istio's AugmentLabels: a copy of in with the topology
// labels of the locality, cluster and network (the network label only when
// in has none).
func augmentLabels(in map[string]string, cluster, locality, network string) map[string]string {
	out := make(map[string]string, len(in)+5)
	for k, v := range in {
		out[k] = v
	}
	parts := strings.SplitN(locality, "/", 3)
	for i, key := range []string{registry.LabelTopologyRegion, registry.LabelTopologyZone, registry.LabelTopologySubzone} {
		if i < len(parts) && parts[i] != "" {
			out[key] = parts[i]
		}
	}
	if cluster != "" {
		out[registry.LabelTopologyCluster] = cluster
	}
	if network != "" && out[registry.LabelTopologyNetwork] == "" {
		out[registry.LabelTopologyNetwork] = network
	}
	return out
}
