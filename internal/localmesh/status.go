package localmesh

import (
	"fmt"
	"io"
	"net"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"

	networking "istio.io/api/networking/v1alpha3"

	"github.com/weftmesh/weft/internal/config"
)

// Status is what runs where, as weft up prints it once everything is up.
type Status struct {
	// Dir is the mesh's directory.
	Dir       string           `json:"dir"`
	Workloads []WorkloadStatus `json:"workloads"`
	Gateway   GatewayStatus    `json:"gateway"`
	// Try are requests to try through the gateway.
	Try []Request `json:"try"`
	// Dashboard is weft-control's dashboard URL.
	Dashboard string `json:"dashboard"`
	// XDS and CA are weft-control's xDS (plain) and CA (TLS) addresses.
	XDS string `json:"xds"`
	CA  string `json:"ca"`
	// StateDir is where `weft apply` finds this mesh.
	StateDir string `json:"stateDir"`
}

// WorkloadStatus is one replica.
type WorkloadStatus struct {
	Name      string `json:"name"`
	Namespace string `json:"namespace"`
	Service   string `json:"service,omitempty"`
	// IP is the sidecar's address; Ports maps a port name to the app's
	// port on 127.0.0.1.
	IP    string         `json:"ip"`
	Ports map[string]int `json:"ports,omitempty"`
	// Proxy is the sidecar's outbound HTTP proxy (the app's WEFT_PROXY);
	// Admin its admin URL.
	Proxy string `json:"proxy"`
	Admin string `json:"admin"`
	// PID is the command's process (0: not running).
	PID int `json:"pid"`
}

// GatewayStatus is the ingress gateway.
type GatewayStatus struct {
	IP    string `json:"ip"`
	Admin string `json:"admin"`
	// Listeners are the addresses it listens on (from the Gateways).
	Listeners []string `json:"listeners"`
}

// Request is a URL to try, with the Host header it needs ("" for any).
type Request struct {
	URL  string `json:"url"`
	Host string `json:"host,omitempty"`
}

// Curl is the request as a curl command.
func (r Request) Curl() string {
	if r.Host != "" {
		return fmt.Sprintf("curl -H 'Host: %s' %s", r.Host, r.URL)
	}
	return "curl " + r.URL
}

// WriteTable writes the status for a terminal.
func (s *Status) WriteTable(w io.Writer) {
	fmt.Fprintf(w, "weft up: the mesh of %s is running. Ctrl-C stops it.\n\n", s.Dir)
	tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
	fmt.Fprintln(tw, "WORKLOAD\tNAMESPACE\tIP\tAPP PORTS\tSIDECAR ADMIN\tPID")
	for _, wl := range s.Workloads {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\n", wl.Name, wl.Namespace, wl.IP, portList(wl.Ports), wl.Admin, wl.PID)
	}
	fmt.Fprintf(tw, "ingress gateway\tistio-system\t%s\t%s\t%s\t-\n", s.Gateway.IP, strings.Join(s.Gateway.Listeners, ","), s.Gateway.Admin)
	tw.Flush()
	if len(s.Try) > 0 {
		fmt.Fprintln(w, "\nTry, through the ingress gateway:")
		for _, r := range s.Try {
			fmt.Fprintln(w, "  "+r.Curl())
		}
	} else {
		fmt.Fprintln(w, "\nNo Gateway selects the ingress gateway (selector istio: ingressgateway): add a Gateway and a VirtualService to reach the mesh from outside.")
	}
	fmt.Fprintf(w, "\nDashboard: %s\n", s.Dashboard)
	fmt.Fprintf(w, "Edit the Istio YAML in %s and it applies live; `weft apply -f FILE` adds to it until weft up stops.\n", s.Dir)
}

// portList writes name=port pairs, sorted.
func portList(ports map[string]int) string {
	if len(ports) == 0 {
		return "-"
	}
	names := make([]string, 0, len(ports))
	for n := range ports {
		names = append(names, n)
	}
	sort.Strings(names)
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = n + "=" + strconv.Itoa(ports[n])
	}
	return strings.Join(parts, ",")
}

// gatewayLabels are the ingress gateway's labels (Istio's).
var gatewayLabels = map[string]string{"istio": "ingressgateway", "app": "istio-ingressgateway", tlsModeLabel: "istio"}

// tryRequests lists requests to try through the gateway's HTTP listeners:
// for each VirtualService bound to a Gateway that selects the ingress
// gateway, the path of each HTTP route's first URI match ("/" without
// one), with the VirtualService's host unless it is a wildcard.
func tryRequests(objs []*config.Object, listeners []string) []Request {
	ports := map[uint32]string{} // port → host:port to reach it
	for _, l := range listeners {
		ap, err := netip.ParseAddrPort(l)
		if err != nil {
			continue
		}
		host := ap.Addr().String()
		if ap.Addr().IsUnspecified() {
			host = "127.0.0.1"
		}
		ports[uint32(ap.Port())] = net.JoinHostPort(host, strconv.Itoa(int(ap.Port())))
	}
	gateways := map[string][]uint32{} // "ns/name" → its HTTP ports
	for _, obj := range objs {
		if gw, ok := obj.Spec.(*networking.Gateway); ok && selects(gw.GetSelector(), gatewayLabels) {
			for _, srv := range gw.GetServers() {
				gateways[obj.Namespace+"/"+obj.Name] = append(gateways[obj.Namespace+"/"+obj.Name], srv.GetPort().GetNumber())
			}
		}
	}
	var out []Request
	seen := map[Request]bool{}
	for _, obj := range objs {
		vs, ok := obj.Spec.(*networking.VirtualService)
		if !ok {
			continue
		}
		host := ""
		if h := vs.GetHosts(); len(h) > 0 && !strings.Contains(h[0], "*") {
			host = h[0]
		}
		for _, g := range vs.GetGateways() {
			if !strings.Contains(g, "/") {
				g = obj.Namespace + "/" + g
			}
			for _, port := range gateways[g] {
				addr, ok := ports[port]
				if !ok {
					continue
				}
				for _, path := range routePaths(vs) {
					r := Request{URL: "http://" + addr + path, Host: host}
					if !seen[r] {
						seen[r] = true
						out = append(out, r)
					}
				}
			}
		}
	}
	return out
}

// routePaths returns the path of each HTTP route's first URI match.
func routePaths(vs *networking.VirtualService) []string {
	var out []string
	for _, r := range vs.GetHttp() {
		path := "/"
		if m := r.GetMatch(); len(m) > 0 && m[0].GetUri() != nil {
			switch u := m[0].GetUri(); {
			case u.GetExact() != "":
				path = u.GetExact()
			case u.GetPrefix() != "":
				path = u.GetPrefix()
			default:
				continue // a regex: no URL to suggest
			}
		}
		if !contains(out, path) {
			out = append(out, path)
		}
	}
	return out
}

// selects reports whether a Gateway selector matches labels.
func selects(selector, labels map[string]string) bool {
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
