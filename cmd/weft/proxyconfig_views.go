package main

import (
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

// view is one kind's output: a table, and the raw resources -o json and
// -o yaml print.
type view struct {
	header []string
	rows   [][]string
	raw    []json.RawMessage
	// empty is printed instead of an empty table, when set.
	empty string
}

// clusterFilter is istioctl's cluster filters (zero: no filter).
type clusterFilter struct {
	fqdn, subset, direction string
	port                    int
}

// buildView reads and tabulates kind.
func buildView(src *proxySource, kind string, f clusterFilter) (*view, error) {
	if kind == "endpoints" {
		b, err := src.clusters()
		if err != nil {
			return nil, err
		}
		return endpointsView(b)
	}
	d, _, err := src.configDump()
	if err != nil {
		return nil, err
	}
	switch kind {
	case "clusters":
		return clustersView(d, f)
	case "listeners":
		return listenersView(d)
	case "routes":
		return routesView(d)
	case "secrets":
		return secretsView(d, time.Now())
	}
	return nil, fmt.Errorf("unknown kind %q", kind)
}

// clusterName is Istio's cluster name split: DIRECTION|PORT|SUBSET|FQDN.
type clusterName struct {
	direction, subset, fqdn string
	port                    int
}

// parseClusterName reads Istio's "outbound|8080|v1|hello.default.svc.cluster.local";
// other names (xds-grpc, BlackHoleCluster) are an FQDN alone.
func parseClusterName(name string) clusterName {
	parts := strings.Split(name, "|")
	if len(parts) != 4 {
		return clusterName{fqdn: name}
	}
	port, err := strconv.Atoi(parts[1])
	if err != nil {
		return clusterName{fqdn: name}
	}
	return clusterName{direction: parts[0], port: port, subset: parts[2], fqdn: parts[3]}
}

func (f clusterFilter) keep(n clusterName) bool {
	return (f.fqdn == "" || f.fqdn == n.fqdn) && (f.port == 0 || f.port == n.port) &&
		(f.subset == "" || f.subset == n.subset) && (f.direction == "" || f.direction == n.direction)
}

// clustersView is istioctl's clusters table, sorted by FQDN, port,
// subset and direction.
func clustersView(d *configDump, f clusterFilter) (*view, error) {
	dumps, err := decodeSections[clustersDump](d, "ClustersConfigDump")
	if err != nil {
		return nil, err
	}
	var raws []json.RawMessage
	for _, cd := range dumps {
		for _, c := range cd.StaticClusters {
			raws = append(raws, c.Cluster)
		}
		for _, c := range cd.DynamicActiveClusters {
			raws = append(raws, c.Cluster)
		}
	}
	type entry struct {
		n   clusterName
		c   cluster
		raw json.RawMessage
	}
	var entries []entry
	for _, raw := range raws {
		var c cluster
		if err := json.Unmarshal(raw, &c); err != nil {
			return nil, fmt.Errorf("config_dump cluster: %w", err)
		}
		n := parseClusterName(c.Name)
		if f.keep(n) {
			entries = append(entries, entry{n, c, raw})
		}
	}
	sort.SliceStable(entries, func(i, j int) bool {
		a, b := entries[i].n, entries[j].n
		if a.fqdn != b.fqdn {
			return a.fqdn < b.fqdn
		}
		if a.port != b.port {
			return a.port < b.port
		}
		if a.subset != b.subset {
			return a.subset < b.subset
		}
		return a.direction < b.direction
	})
	v := &view{header: []string{"SERVICE FQDN", "PORT", "SUBSET", "DIRECTION", "TYPE", "DESTINATION RULE"}}
	for _, e := range entries {
		port := "-"
		if e.n.port != 0 || e.n.direction != "" {
			port = strconv.Itoa(e.n.port)
		}
		typ := e.c.Type
		if typ == "" {
			typ = "STATIC" // the enum's default, omitted from JSON
		}
		v.rows = append(v.rows, []string{e.n.fqdn, port, orDash(e.n.subset), orDash(e.n.direction), typ, e.c.Metadata.istioConfig()})
		v.raw = append(v.raw, e.raw)
	}
	return v, nil
}

// listenersView is istioctl's listeners table: one row per filter chain.
func listenersView(d *configDump) (*view, error) {
	dumps, err := decodeSections[listenersDump](d, "ListenersConfigDump")
	if err != nil {
		return nil, err
	}
	var raws []json.RawMessage
	for _, ld := range dumps {
		for _, l := range ld.StaticListeners {
			raws = append(raws, l.Listener)
		}
		for _, l := range ld.DynamicListeners {
			if l.ActiveState != nil {
				raws = append(raws, l.ActiveState.Listener)
			}
		}
	}
	v := &view{header: []string{"ADDRESSES", "PORT", "MATCH", "DESTINATION"}}
	for _, raw := range raws {
		var l listener
		if err := json.Unmarshal(raw, &l); err != nil {
			return nil, fmt.Errorf("config_dump listener: %w", err)
		}
		ip, port := "-", "-"
		if sa := l.Address; sa != nil && sa.SocketAddress != nil {
			ip, port = sa.SocketAddress.Address, strconv.Itoa(int(sa.SocketAddress.PortValue))
		}
		chains := l.FilterChains
		if l.DefaultFilterChain != nil {
			chains = append(chains, *l.DefaultFilterChain)
		}
		for _, fc := range chains {
			v.rows = append(v.rows, []string{ip, port, chainMatch(&fc), chainDestination(&fc)})
		}
		v.raw = append(v.raw, raw)
	}
	return v, nil
}

// chainMatch describes a filter chain's match as istioctl does ("ALL"
// when it matches everything).
func chainMatch(fc *filterChain) string {
	m := fc.Match
	if m == nil {
		return "ALL"
	}
	var parts []string
	if m.DestinationPort != nil {
		parts = append(parts, "Port: "+strconv.Itoa(int(*m.DestinationPort)))
	}
	for _, r := range m.PrefixRanges {
		s := r.AddressPrefix
		if r.PrefixLen != nil {
			s += "/" + strconv.Itoa(*r.PrefixLen)
		}
		parts = append(parts, "Addr: "+s)
	}
	if len(m.ServerNames) > 0 {
		parts = append(parts, "SNI: "+strings.Join(m.ServerNames, ","))
	}
	if m.TransportProtocol != "" {
		parts = append(parts, "Trans: "+m.TransportProtocol)
	}
	if len(m.ApplicationProtocols) > 0 {
		parts = append(parts, "App: "+strings.Join(m.ApplicationProtocols, ","))
	}
	if len(parts) == 0 {
		return "ALL"
	}
	return strings.Join(parts, "; ")
}

// chainDestination is where a chain sends traffic: an RDS route, an
// inline route, or a TCP cluster.
func chainDestination(fc *filterChain) string {
	for _, f := range fc.Filters {
		var nf networkFilter
		if len(f.TypedConfig) == 0 || json.Unmarshal(f.TypedConfig, &nf) != nil {
			continue
		}
		switch {
		case nf.RDS != nil:
			return "Route: " + nf.RDS.RouteConfigName
		case nf.RouteConfig != nil:
			return "Inline Route: " + orDash(nf.RouteConfig.Name)
		case nf.Cluster != "":
			return "Cluster: " + nf.Cluster
		case nf.WeightedClusters != nil:
			var names []string
			for _, c := range nf.WeightedClusters.Clusters {
				names = append(names, c.Name)
			}
			return "Clusters: " + strings.Join(names, ", ")
		}
	}
	return "-"
}

// routesView is istioctl's routes table: one row per route of every
// virtual host, sorted by route configuration name.
func routesView(d *configDump) (*view, error) {
	dumps, err := decodeSections[routesDump](d, "RoutesConfigDump")
	if err != nil {
		return nil, err
	}
	var raws []json.RawMessage
	for _, rd := range dumps {
		for _, r := range rd.StaticRouteConfigs {
			raws = append(raws, r.RouteConfig)
		}
		for _, r := range rd.DynamicRouteConfigs {
			raws = append(raws, r.RouteConfig)
		}
	}
	v := &view{header: []string{"NAME", "VHOST NAME", "DOMAINS", "MATCH", "VIRTUAL SERVICE"}}
	for _, raw := range raws {
		var rc routeConfig
		if err := json.Unmarshal(raw, &rc); err != nil {
			return nil, fmt.Errorf("config_dump route configuration: %w", err)
		}
		for _, vh := range rc.VirtualHosts {
			for _, r := range vh.Routes {
				v.rows = append(v.rows, []string{orDash(rc.Name), vh.Name, domains(vh.Domains), routeMatch(r.Match.Prefix, r.Match.Path, r.Match.PathSeparatedPrefix, r.Match.SafeRegex), r.Metadata.istioConfig()})
			}
		}
		v.raw = append(v.raw, raw)
	}
	sort.SliceStable(v.rows, func(i, j int) bool { return v.rows[i][0] < v.rows[j][0] })
	return v, nil
}

// domains shows the first domain and how many more, as istioctl does.
func domains(ds []string) string {
	switch len(ds) {
	case 0:
		return "-"
	case 1:
		return ds[0]
	}
	return fmt.Sprintf("%s + %d more...", ds[0], len(ds)-1)
}

// routeMatch is istioctl's path match: PREFIX* for a prefix, the path,
// or the regex.
func routeMatch(prefix, path, sepPrefix *string, regex *struct {
	Regex string `json:"regex"`
}) string {
	switch {
	case prefix != nil:
		return *prefix + "*"
	case path != nil:
		return *path
	case sepPrefix != nil:
		return *sepPrefix + "/*"
	case regex != nil:
		return regex.Regex
	}
	return "/*" // prefix "" is omitted from JSON: every path
}

// endpointsView is istioctl's endpoints table from /clusters?format=json,
// sorted by cluster and endpoint.
func endpointsView(b []byte) (*view, error) {
	var cs adminClusters
	if err := json.Unmarshal(b, &cs); err != nil {
		return nil, fmt.Errorf("/clusters?format=json: %w", err)
	}
	var rawDoc struct {
		ClusterStatuses []json.RawMessage `json:"cluster_statuses"`
	}
	_ = json.Unmarshal(b, &rawDoc)
	v := &view{header: []string{"ENDPOINT", "STATUS", "OUTLIER CHECK", "CLUSTER"}, raw: rawDoc.ClusterStatuses}
	for _, c := range cs.ClusterStatuses {
		for _, h := range c.HostStatuses {
			hs := h.HealthStatus
			st := "HEALTHY"
			switch {
			case hs.FailedActiveHealthCheck:
				st = "UNHEALTHY"
			case hs.EDSHealthStatus != "" && hs.EDSHealthStatus != "HEALTHY":
				st = hs.EDSHealthStatus
			}
			outlier := "OK"
			if hs.FailedOutlierCheck {
				outlier = "FAILED"
			}
			v.rows = append(v.rows, []string{h.Address.String(), st, outlier, c.Name})
		}
	}
	sort.SliceStable(v.rows, func(i, j int) bool {
		if v.rows[i][3] != v.rows[j][3] {
			return v.rows[i][3] < v.rows[j][3]
		}
		return v.rows[i][0] < v.rows[j][0]
	})
	return v, nil
}

// secretsView is istioctl's secrets table from the dump's
// SecretsConfigDump: one row per certificate chain and trust bundle. Only
// certificates are read; key material is never decoded or printed.
func secretsView(d *configDump, now time.Time) (*view, error) {
	dumps, err := decodeSections[secretsDump](d, "SecretsConfigDump")
	if err != nil {
		return nil, err
	}
	v := &view{header: []string{"RESOURCE NAME", "TYPE", "STATUS", "VALID CERT", "SERIAL NUMBER", "NOT AFTER", "NOT BEFORE"},
		empty: "No secrets: the proxy's /config_dump has no SecretsConfigDump."}
	for _, sd := range dumps {
		add := func(name, status string, raw json.RawMessage) error {
			var s secret
			if err := json.Unmarshal(raw, &s); err != nil {
				return fmt.Errorf("config_dump secret %s: %w", name, err)
			}
			if name == "" {
				name = s.Name
			}
			if s.TLSCertificate != nil {
				v.rows = append(v.rows, certRow(name, "Cert Chain", status, s.TLSCertificate.CertificateChain.bytes(), now))
			}
			if s.ValidationContext != nil {
				v.rows = append(v.rows, certRow(name, "CA", status, s.ValidationContext.TrustedCA.bytes(), now))
			}
			return nil
		}
		for _, s := range sd.StaticSecrets {
			if err := add(s.Name, "ACTIVE", s.Secret); err != nil {
				return nil, err
			}
		}
		for _, s := range sd.DynamicActiveSecrets {
			if err := add(s.Name, "ACTIVE", s.Secret); err != nil {
				return nil, err
			}
		}
		for _, s := range sd.DynamicWarmingSecrets {
			if err := add(s.Name, "WARMING", s.Secret); err != nil {
				return nil, err
			}
		}
	}
	v.raw = d.section("SecretsConfigDump")
	return v, nil
}

// certRow describes the first certificate of a PEM bundle.
func certRow(name, typ, status string, pemBytes []byte, now time.Time) []string {
	block, _ := pem.Decode(pemBytes)
	if block == nil || block.Type != "CERTIFICATE" {
		return []string{name, typ, status, "false", "-", "-", "-"}
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return []string{name, typ, status, "false", "-", "-", "-"}
	}
	valid := !now.Before(c.NotBefore) && !now.After(c.NotAfter)
	return []string{name, typ, status, strconv.FormatBool(valid), c.SerialNumber.Text(16),
		c.NotAfter.UTC().Format(time.RFC3339), c.NotBefore.UTC().Format(time.RFC3339)}
}

// redactJSON replaces key material in a JSON document (private_key,
// password, and any other secret fields the proxy did not redact itself)
// with "[redacted]", as Envoy's admin does: raw output never shows it.
func redactJSON(b []byte) []byte {
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return b
	}
	out, err := json.Marshal(redactValue(v))
	if err != nil {
		return b
	}
	return out
}

// secretFields are the JSON fields of Envoy's TLS and generic secrets
// that hold key material.
var secretFields = map[string]bool{"private_key": true, "password": true, "generic_secret": true,
	"session_ticket_keys": true, "hmac_secret": true, "private_key_provider": true}

func redactValue(v any) any {
	switch t := v.(type) {
	case map[string]any:
		for k, x := range t {
			if secretFields[k] {
				t[k] = "[redacted]"
				continue
			}
			t[k] = redactValue(x)
		}
	case []any:
		for i := range t {
			t[i] = redactValue(t[i])
		}
	}
	return v
}
