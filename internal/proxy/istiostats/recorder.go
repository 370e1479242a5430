package istiostats

import (
	"fmt"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"

	"github.com/weftmesh/weft/internal/proxy/stats"
)

// Options configure a Recorder.
type Options struct {
	// Stats receives the istio_* metrics (required).
	Stats *stats.Store
	// Node is the bootstrap node: its id and metadata describe the proxy's
	// own workload.
	Node *corev3.Node
}

// Recorder holds what every istio.stats filter of one proxy shares: the
// proxy's own workload, the caches of peers and services, and the series.
// It is safe for concurrent use; the server makes one.
type Recorder struct {
	store *stats.Store
	self  *Workload
	// mxID and mxValue are the metadata exchange headers this proxy sends
	// upstream (node id, encoded metadata).
	mxID, mxValue []byte

	inbound   *inboundPeers
	endpoints cowMap[*corev3.Metadata, *Workload]
	clusters  cowMap[*corev3.Metadata, *service]
	hosts     cowMap[string, *service]
	tables    [2]tables
}

// Cache bounds for what comes from configuration (endpoint and cluster
// metadata: one entry per version in use) and from requests (Host headers).
const (
	maxMetadataEntries = 8192
	maxHostEntries     = 1024
)

// New returns the recorder of a proxy.
func New(o Options) (*Recorder, error) {
	if o.Stats == nil {
		return nil, fmt.Errorf("istiostats: a stats store is required")
	}
	self := SelfFromNode(o.Node, "")
	mx, err := EncodeHeader(self)
	if err != nil {
		return nil, fmt.Errorf("istiostats: node metadata: %w", err)
	}
	rec := &Recorder{store: o.Stats, self: self, mxID: []byte(o.Node.GetId()), mxValue: mx, inbound: newInboundPeers()}
	rec.endpoints.max = maxMetadataEntries
	rec.clusters.max = maxMetadataEntries
	rec.hosts.max = maxHostEntries
	return rec, nil
}

// Self returns the proxy's own workload.
func (rec *Recorder) Self() Workload { return *rec.self }

// endpointPeer returns the destination workload an upstream host's
// metadata describes (unknownPeer without metadata).
func (rec *Recorder) endpointPeer(md *corev3.Metadata) *Workload {
	if md == nil {
		return unknownPeer
	}
	if w, ok := rec.endpoints.load()[md]; ok {
		return w
	}
	return rec.endpoints.getOrAdd(md, func() *Workload { return peerFromEndpoint(md) })
}

// Istio's clusters that name no service: the stats plugin reports their
// names as destination_service_name.
func specialCluster(name string) bool {
	switch name {
	case "BlackHoleCluster", "PassthroughCluster", "InboundPassthroughCluster",
		"InboundPassthroughClusterIpv4", "InboundPassthroughClusterIpv6":
		return true
	}
	return false
}

// serviceOf resolves destination_service and destination_service_name as
// Istio's stats plugin does: the cluster's filter_metadata.istio.services[0]
// (host, and name or the host's first label), else the Host header when
// the fallback is on, else nothing (the reporter's default). The result
// is interned: a known cluster or host costs a map lookup.
func (rec *Recorder) serviceOf(clusterName string, clusterMD *corev3.Metadata, authority []byte, hostFallback bool) *service {
	if specialCluster(clusterName) {
		return rec.hosts.getOrAdd(clusterName, func() *service { return &service{host: clusterName, name: clusterName} })
	}
	if clusterMD != nil {
		svc, ok := rec.clusters.load()[clusterMD]
		if !ok {
			svc = rec.clusters.getOrAdd(clusterMD, func() *service { return serviceFromCluster(clusterMD) })
		}
		if svc != nil {
			return svc
		}
	}
	if !hostFallback || len(authority) == 0 {
		return noService
	}
	if svc, ok := rec.hosts.load()[string(authority)]; ok {
		return svc
	}
	h := string(authority)
	return rec.hosts.getOrAdd(h, func() *service { return &service{host: h, name: h} })
}

// serviceFromCluster reads filter_metadata.istio.services[0] (nil when
// absent).
func serviceFromCluster(md *corev3.Metadata) *service {
	list := md.GetFilterMetadata()[endpointFilter].GetFields()["services"].GetListValue().GetValues()
	if len(list) == 0 {
		return nil
	}
	f := list[0].GetStructValue().GetFields()
	host := f["host"].GetStringValue()
	name := f["name"].GetStringValue()
	if name == "" {
		name, _, _ = strings.Cut(host, ".")
	}
	return &service{host: host, name: name}
}
