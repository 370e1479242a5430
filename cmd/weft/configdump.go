package main

import (
	"encoding/json"
	"fmt"
	"strings"
)

// The parts of Envoy's /config_dump (and /clusters?format=json) that
// `weft proxy-config` reads, decoded from the admin's JSON (proto field
// names, as Envoy and weft-proxy print them) without the proto registry:
// any typed_config the CLI does not know stays opaque.

// configDump is admin.v3.ConfigDump: each entry an Any with "@type".
type configDump struct {
	Configs []json.RawMessage `json:"configs"`
}

// section returns the raw dump entries whose @type ends with suffix
// (e.g. "ClustersConfigDump").
func (d *configDump) section(suffix string) []json.RawMessage {
	var out []json.RawMessage
	for _, c := range d.Configs {
		var t struct {
			Type string `json:"@type"`
		}
		if json.Unmarshal(c, &t) == nil && strings.HasSuffix(t.Type, "."+suffix) {
			out = append(out, c)
		}
	}
	return out
}

// decodeSections unmarshals every entry of a section into a new T.
func decodeSections[T any](d *configDump, suffix string) ([]T, error) {
	var out []T
	for _, raw := range d.section(suffix) {
		var v T
		if err := json.Unmarshal(raw, &v); err != nil {
			return nil, fmt.Errorf("config_dump %s: %w", suffix, err)
		}
		out = append(out, v)
	}
	return out, nil
}

// metadata is core.v3.Metadata; istio.config names the Istio object a
// resource was generated from ("/apis/GROUP/VERSION/namespaces/NS/KIND/NAME").
type metadata struct {
	FilterMetadata struct {
		Istio struct {
			Config string `json:"config"`
		} `json:"istio"`
	} `json:"filter_metadata"`
}

// istioConfig is istioctl's NAME.NAMESPACE of the metadata's Istio object,
// or "-".
func (m *metadata) istioConfig() string {
	if m == nil {
		return "-"
	}
	parts := strings.Split(m.FilterMetadata.Istio.Config, "/")
	// "", apis, group, version, namespaces, NS, KIND, NAME
	if len(parts) != 8 || parts[4] != "namespaces" {
		return "-"
	}
	return parts[7] + "." + parts[5]
}

// cluster is the part of config.cluster.v3.Cluster the table shows.
type cluster struct {
	Name     string    `json:"name"`
	Type     string    `json:"type"`
	Metadata *metadata `json:"metadata"`
}

type clustersDump struct {
	StaticClusters []struct {
		Cluster json.RawMessage `json:"cluster"`
	} `json:"static_clusters"`
	DynamicActiveClusters []struct {
		Cluster json.RawMessage `json:"cluster"`
	} `json:"dynamic_active_clusters"`
}

// socketAddress is core.v3.Address's socket_address (or pipe).
type address struct {
	SocketAddress *struct {
		Address   string `json:"address"`
		PortValue uint32 `json:"port_value"`
	} `json:"socket_address"`
	Pipe *struct {
		Path string `json:"path"`
	} `json:"pipe"`
}

func (a *address) String() string {
	switch {
	case a == nil:
		return "-"
	case a.SocketAddress != nil:
		return fmt.Sprintf("%s:%d", a.SocketAddress.Address, a.SocketAddress.PortValue)
	case a.Pipe != nil:
		return "unix://" + a.Pipe.Path
	}
	return "-"
}

// listener is the part of config.listener.v3.Listener the table shows.
type listener struct {
	Name         string        `json:"name"`
	Address      *address      `json:"address"`
	FilterChains []filterChain `json:"filter_chains"`
	// DefaultFilterChain takes connections no chain matches.
	DefaultFilterChain *filterChain `json:"default_filter_chain"`
}

type filterChain struct {
	Match *struct {
		DestinationPort      *uint32  `json:"destination_port"`
		ServerNames          []string `json:"server_names"`
		TransportProtocol    string   `json:"transport_protocol"`
		ApplicationProtocols []string `json:"application_protocols"`
		PrefixRanges         []struct {
			AddressPrefix string `json:"address_prefix"`
			PrefixLen     *int   `json:"prefix_len"`
		} `json:"prefix_ranges"`
	} `json:"filter_chain_match"`
	Filters []struct {
		Name        string          `json:"name"`
		TypedConfig json.RawMessage `json:"typed_config"`
	} `json:"filters"`
}

type listenersDump struct {
	StaticListeners []struct {
		Listener json.RawMessage `json:"listener"`
	} `json:"static_listeners"`
	DynamicListeners []struct {
		ActiveState *struct {
			Listener json.RawMessage `json:"listener"`
		} `json:"active_state"`
	} `json:"dynamic_listeners"`
}

// networkFilter is the part of the network filters' configurations the
// DESTINATION column reads (http_connection_manager, tcp_proxy).
type networkFilter struct {
	Type string `json:"@type"`
	RDS  *struct {
		RouteConfigName string `json:"route_config_name"`
	} `json:"rds"`
	RouteConfig      *routeConfig `json:"route_config"`
	Cluster          string       `json:"cluster"`
	WeightedClusters *struct {
		Clusters []struct {
			Name string `json:"name"`
		} `json:"clusters"`
	} `json:"weighted_clusters"`
}

// routeConfig is the part of config.route.v3.RouteConfiguration the
// table shows.
type routeConfig struct {
	Name         string `json:"name"`
	VirtualHosts []struct {
		Name    string   `json:"name"`
		Domains []string `json:"domains"`
		Routes  []struct {
			Match struct {
				Prefix    *string `json:"prefix"`
				Path      *string `json:"path"`
				SafeRegex *struct {
					Regex string `json:"regex"`
				} `json:"safe_regex"`
				PathSeparatedPrefix *string `json:"path_separated_prefix"`
			} `json:"match"`
			Metadata *metadata `json:"metadata"`
		} `json:"routes"`
	} `json:"virtual_hosts"`
}

type routesDump struct {
	StaticRouteConfigs []struct {
		RouteConfig json.RawMessage `json:"route_config"`
	} `json:"static_route_configs"`
	DynamicRouteConfigs []struct {
		RouteConfig json.RawMessage `json:"route_config"`
	} `json:"dynamic_route_configs"`
}

// secretsDump is admin.v3.SecretsConfigDump.
type secretsDump struct {
	StaticSecrets []struct {
		Name   string          `json:"name"`
		Secret json.RawMessage `json:"secret"`
	} `json:"static_secrets"`
	DynamicActiveSecrets []struct {
		Name   string          `json:"name"`
		Secret json.RawMessage `json:"secret"`
	} `json:"dynamic_active_secrets"`
	DynamicWarmingSecrets []struct {
		Name   string          `json:"name"`
		Secret json.RawMessage `json:"secret"`
	} `json:"dynamic_warming_secrets"`
}

// secret is the part of extensions.transport_sockets.tls.v3.Secret the
// table reads: certificates only (never the private key).
type secret struct {
	Name           string `json:"name"`
	TLSCertificate *struct {
		CertificateChain *dataSource `json:"certificate_chain"`
	} `json:"tls_certificate"`
	ValidationContext *struct {
		TrustedCA *dataSource `json:"trusted_ca"`
	} `json:"validation_context"`
}

// dataSource is core.v3.DataSource (inline_bytes is base64 in JSON).
type dataSource struct {
	InlineBytes  []byte `json:"inline_bytes"`
	InlineString string `json:"inline_string"`
	Filename     string `json:"filename"`
}

func (d *dataSource) bytes() []byte {
	if d == nil {
		return nil
	}
	if len(d.InlineBytes) > 0 {
		return d.InlineBytes
	}
	return []byte(d.InlineString)
}

// adminClusters is admin.v3.Clusters (/clusters?format=json).
type adminClusters struct {
	ClusterStatuses []struct {
		Name         string `json:"name"`
		HostStatuses []struct {
			Address      *address `json:"address"`
			HealthStatus struct {
				EDSHealthStatus         string `json:"eds_health_status"`
				FailedActiveHealthCheck bool   `json:"failed_active_health_check"`
				FailedOutlierCheck      bool   `json:"failed_outlier_check"`
				PendingDynamicRemoval   bool   `json:"pending_dynamic_removal"`
			} `json:"health_status"`
		} `json:"host_statuses"`
	} `json:"cluster_statuses"`
}
