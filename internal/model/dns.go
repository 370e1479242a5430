package model

// Node metadata of the sidecar's DNS proxy (Istio's names: the agent's
// ISTIO_META_DNS_CAPTURE and ISTIO_META_DNS_AUTO_ALLOCATE).
const (
	// MetaDNSCapture "true" says the proxy's agent runs a DNS proxy: it
	// subscribes to the name table (NDS), which weft-control builds only
	// for such proxies.
	MetaDNSCapture = "DNS_CAPTURE"
	// MetaDNSAutoAllocate "true" says the proxy resolves services without
	// addresses to their auto-allocated virtual IPs
	// (Service.AutoAllocated): its name table includes them.
	MetaDNSAutoAllocate = "DNS_AUTO_ALLOCATE"
)

// DNSCapture reports whether the proxy's agent runs a DNS proxy (node
// metadata DNS_CAPTURE "true").
func (p *Proxy) DNSCapture() bool { return p.Metadata[MetaDNSCapture] == "true" }

// DNSAutoAllocate reports whether the proxy uses auto-allocated virtual
// IPs (node metadata DNS_AUTO_ALLOCATE "true").
func (p *Proxy) DNSAutoAllocate() bool { return p.Metadata[MetaDNSAutoAllocate] == "true" }
