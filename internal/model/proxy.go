package model

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// NodeType is the kind of proxy, the first part of an Istio node id.
type NodeType string

// Node types.
const (
	SidecarProxy NodeType = "sidecar"
	Router       NodeType = "router" // a gateway
)

// Node metadata keys weft-control reads (Istio's names; ISTIO_META_X in
// the agent's environment becomes key X).
const (
	MetaLabels         = "LABELS"
	MetaNamespace      = "NAMESPACE"
	MetaServiceAccount = "SERVICE_ACCOUNT"
	MetaWorkloadName   = "WORKLOAD_NAME"
	MetaClusterID      = "CLUSTER_ID"
	// MetaGenerator "grpc" marks a proxyless gRPC client.
	MetaGenerator = "GENERATOR"
	// MetaHTTPProxyPort is the port of the outbound HTTP proxy listener
	// (Istio's HTTP_PROXY_PORT); weft's default is 15001.
	MetaHTTPProxyPort = "HTTP_PROXY_PORT"
	// MetaHTTPProxyAddress is the address that listener binds (a weft
	// extension; default 127.0.0.1).
	MetaHTTPProxyAddress = "HTTP_PROXY_ADDRESS"
	// MetaIstioVersion is the proxy's version (Istio's ISTIO_VERSION).
	MetaIstioVersion = "ISTIO_VERSION"
	// MetaAdminAddress is the proxy's admin ip:port (a weft extension,
	// set by `weft-proxy sidecar`; `weft proxy-config` reads it).
	MetaAdminAddress = "WEFT_ADMIN_ADDRESS"
)

// Defaults for the outbound HTTP proxy listener.
const (
	DefaultHTTPProxyAddress = "127.0.0.1"
	DefaultHTTPProxyPort    = 15001
)

// Proxy is what weft-control knows of one connected proxy: the identity it
// presented in its xDS node. Translation output depends only on the
// snapshot and these fields.
type Proxy struct {
	Type NodeType
	// ID is the node id as sent.
	ID string
	// IPs are the workload's addresses (the node id's IP part).
	IPs []string
	// Name is the pod/workload part of "NAME.NAMESPACE".
	Name      string
	Namespace string
	// DNSDomain is the node id's last part, e.g. "default.svc.cluster.local".
	DNSDomain      string
	Labels         map[string]string
	ServiceAccount string
	WorkloadName   string
	ClusterID      string
	// Proxyless is set for gRPC clients using xDS directly (no proxy).
	Proxyless bool
	// HTTPProxyAddress and HTTPProxyPort place the outbound HTTP proxy
	// listener.
	HTTPProxyAddress string
	HTTPProxyPort    uint32
	// Metadata holds every string metadata field as sent.
	Metadata map[string]string
}

// IP returns the proxy's first IP, or "".
func (p *Proxy) IP() string {
	if len(p.IPs) == 0 {
		return ""
	}
	return p.IPs[0]
}

// ParseProxy builds a Proxy from an Istio-style node id
// ("sidecar~10.1.2.3~name.ns~ns.svc.cluster.local") and the node's
// metadata: string fields in meta, the LABELS struct in labels. Errors say
// what is wrong with the id.
func ParseProxy(id string, meta map[string]string, labels map[string]string) (*Proxy, error) {
	parts := strings.Split(id, "~")
	if len(parts) != 4 {
		return nil, fmt.Errorf("node id %q: want TYPE~IP~NAME.NAMESPACE~DOMAIN (Istio's form, e.g. sidecar~10.0.0.1~app-1.default~default.svc.cluster.local)", id)
	}
	p := &Proxy{ID: id, Metadata: meta, Labels: labels}
	switch NodeType(parts[0]) {
	case SidecarProxy, Router:
		p.Type = NodeType(parts[0])
	default:
		return nil, fmt.Errorf("node id %q: type %q must be sidecar or router", id, parts[0])
	}
	for _, ip := range strings.Split(parts[1], ",") {
		if _, err := netip.ParseAddr(ip); err != nil {
			return nil, fmt.Errorf("node id %q: %q is not an IP address", id, ip)
		}
		p.IPs = append(p.IPs, ip)
	}
	name, ns, ok := strings.Cut(parts[2], ".")
	if !ok || name == "" || ns == "" {
		return nil, fmt.Errorf("node id %q: %q must be NAME.NAMESPACE", id, parts[2])
	}
	p.Name, p.Namespace, p.DNSDomain = name, ns, parts[3]
	if v := meta[MetaNamespace]; v != "" && v != ns {
		return nil, fmt.Errorf("node id %q: metadata NAMESPACE %q differs from the id's namespace %q", id, v, ns)
	}
	p.ServiceAccount = meta[MetaServiceAccount]
	p.WorkloadName = meta[MetaWorkloadName]
	if p.WorkloadName == "" {
		p.WorkloadName = name
	}
	p.ClusterID = meta[MetaClusterID]
	p.Proxyless = meta[MetaGenerator] == "grpc"
	p.HTTPProxyAddress = DefaultHTTPProxyAddress
	if v := meta[MetaHTTPProxyAddress]; v != "" {
		if _, err := netip.ParseAddr(v); err != nil {
			return nil, fmt.Errorf("node metadata %s %q is not an IP address", MetaHTTPProxyAddress, v)
		}
		p.HTTPProxyAddress = v
	}
	p.HTTPProxyPort = DefaultHTTPProxyPort
	if v := meta[MetaHTTPProxyPort]; v != "" {
		n, err := strconv.ParseUint(v, 10, 16)
		if err != nil {
			return nil, fmt.Errorf("node metadata %s %q is not a port number", MetaHTTPProxyPort, v)
		}
		// 0 is allowed: the proxy binds a free port (tests, several
		// proxies on one machine).
		p.HTTPProxyPort = uint32(n)
	}
	return p, nil
}
