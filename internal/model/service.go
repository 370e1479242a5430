// Package model is weft-control's immutable view of the mesh at one moment:
// the services and endpoints the registries know (ServiceEntry and
// WorkloadEntry in file mode; Kubernetes Services and EndpointSlices later),
// the validated Istio configuration, and the indexes translation needs. A
// Snapshot never changes after it is built; a change in the configuration
// or the registry builds a new one.
//
// model imports no xDS types: translation (internal/translate) turns a
// Snapshot and a Proxy into Envoy resources.
package model

import (
	"strings"

	"github.com/weftmesh/weft/internal/config"
)

// Protocol is a port's application protocol, as Istio names it.
type Protocol string

// Istio's protocols.
const (
	HTTP    Protocol = "HTTP"
	HTTP2   Protocol = "HTTP2"
	GRPC    Protocol = "GRPC"
	HTTPS   Protocol = "HTTPS"
	TLS     Protocol = "TLS"
	TCP     Protocol = "TCP"
	Mongo   Protocol = "MONGO"
	Redis   Protocol = "REDIS"
	MySQL   Protocol = "MYSQL"
	Unknown Protocol = "UNKNOWN"
)

// IsHTTP reports whether traffic on the port is HTTP (1.1, 2 or gRPC).
func (p Protocol) IsHTTP() bool { return p == HTTP || p == HTTP2 || p == GRPC }

// IsHTTP2 reports whether the port speaks HTTP/2 to its endpoints.
func (p Protocol) IsHTTP2() bool { return p == HTTP2 || p == GRPC }

// ParseProtocol applies Istio's protocol selection: the explicit protocol,
// else the port name's prefix ("http-web", "grpc"), else TCP.
func ParseProtocol(protocol, portName string) Protocol {
	if protocol != "" {
		return normalize(protocol)
	}
	name := strings.ToLower(portName)
	if i := strings.IndexByte(name, '-'); i >= 0 {
		name = name[:i]
	}
	switch p := normalize(name); p {
	case HTTP, HTTP2, GRPC, HTTPS, TLS, TCP, Mongo, Redis, MySQL:
		return p
	}
	return TCP
}

func normalize(s string) Protocol {
	switch strings.ToUpper(s) {
	case "HTTP":
		return HTTP
	case "HTTP2":
		return HTTP2
	case "GRPC", "GRPC-WEB":
		return GRPC
	case "HTTPS":
		return HTTPS
	case "TLS":
		return TLS
	case "TCP":
		return TCP
	case "MONGO":
		return Mongo
	case "REDIS":
		return Redis
	case "MYSQL":
		return MySQL
	}
	return Unknown
}

// Resolution is how a service's endpoints are found (ServiceEntry
// resolution).
type Resolution uint8

// Resolutions.
const (
	// ClientSideLB: endpoints are IPs the control plane sends (EDS).
	ClientSideLB Resolution = iota
	// DNS: endpoints are names each proxy resolves (STRICT_DNS clusters).
	DNS
	// DNSRoundRobin: one name, the first address (LOGICAL_DNS).
	DNSRoundRobin
	// Passthrough: traffic goes to the address the client asked for
	// (resolution NONE: ORIGINAL_DST).
	Passthrough
)

// Port is one port of a service.
type Port struct {
	Name     string
	Number   uint32
	Protocol Protocol
	// TargetPort is the endpoints' port when the service says one
	// (ServiceEntry ports[].targetPort); 0: the same as Number, unless an
	// endpoint maps the port name itself.
	TargetPort uint32
}

// Service is a mesh service.
type Service struct {
	// Hostname is the service's name: an FQDN such as
	// "hello.default.svc.cluster.local" or "api.example.com", or a wildcard
	// ("*.example.com") for ServiceEntries.
	Hostname  string
	Namespace string
	// Addresses are the service's virtual IPs as declared (ServiceEntry
	// addresses; may be empty, may hold CIDRs).
	Addresses []string
	// AutoAllocated are the virtual IPs weft-control allocated because the
	// service declares none (Istio's ServiceEntry auto-allocation): one
	// IPv4 address in 240.240.0.0/16, then one IPv6 address in
	// 2001:2::/48, both derived from a hash of namespace/hostname (see
	// registry.AllocateAddresses). Empty when Addresses is set, for
	// wildcard hosts and for resolution NONE. Use VirtualAddresses to get
	// the addresses a client reaches the service on.
	AutoAllocated []string
	Ports         []Port
	Resolution    Resolution
	// MeshExternal is ServiceEntry location MESH_EXTERNAL.
	MeshExternal bool
	// ExportTo lists the namespaces that see the service: "*" (all, the
	// default), "." (its own), "~" (none) or names.
	ExportTo []string
	// Endpoints are the service's instances (sorted by address, port).
	Endpoints []*Endpoint
	// Source is the object that declared the service.
	Source config.Key
}

// VirtualAddresses returns the addresses clients reach the service on:
// Addresses when the service declares some, else AutoAllocated (nil when
// it has neither). The slice is shared: do not modify it.
func (s *Service) VirtualAddresses() []string {
	if len(s.Addresses) > 0 {
		return s.Addresses
	}
	return s.AutoAllocated
}

// PortByNumber returns the service port numbered n.
func (s *Service) PortByNumber(n uint32) (Port, bool) {
	for _, p := range s.Ports {
		if p.Number == n {
			return p, true
		}
	}
	return Port{}, false
}

// VisibleTo reports whether proxies in namespace ns may see the service.
func (s *Service) VisibleTo(ns string) bool {
	if len(s.ExportTo) == 0 {
		return true
	}
	for _, e := range s.ExportTo {
		switch e {
		case "*":
			return true
		case ".":
			if ns == s.Namespace {
				return true
			}
		case "~":
		default:
			if e == ns {
				return true
			}
		}
	}
	return false
}

// Endpoint is one instance of a service.
type Endpoint struct {
	// Address is an IP, or a DNS name for DNS resolution.
	Address string
	// Ports maps a service port name to the endpoint's port; a missing
	// name means the service port's TargetPort, else its Number.
	Ports map[string]uint32
	// Labels are the workload's labels (subsets select on them).
	Labels         map[string]string
	Network        string
	Locality       string // "region/zone/subzone"
	Weight         uint32 // 0: default (1)
	ServiceAccount string
	// TLSMode is "istio" when the workload runs a sidecar that accepts
	// mTLS (label security.istio.io/tlsMode).
	TLSMode      string
	WorkloadName string
	Namespace    string
	// Source is the WorkloadEntry (or the ServiceEntry for inline
	// endpoints) the endpoint came from.
	Source config.Key
}

// PortFor returns the endpoint's port for a service port.
func (e *Endpoint) PortFor(p Port) uint32 {
	if n, ok := e.Ports[p.Name]; ok && n != 0 {
		return n
	}
	if p.TargetPort != 0 {
		return p.TargetPort
	}
	return p.Number
}

// MatchesLabels reports whether the endpoint carries every label of sel.
func (e *Endpoint) MatchesLabels(sel map[string]string) bool {
	for k, v := range sel {
		if e.Labels[k] != v {
			return false
		}
	}
	return true
}
