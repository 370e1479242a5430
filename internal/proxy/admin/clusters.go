package admin

import (
	"bytes"
	"encoding/json"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"

	adminv3 "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

var clustersParams = []param{
	{"format", "File format to use; One of (text, json)"},
}

// handleClusters serves GET /clusters: Envoy's text lines by default, the
// Clusters proto as JSON with format=json (any other format is text, as in
// Envoy's ClustersHandler).
func (a *Admin) handleClusters(q url.Values) *response {
	cs := a.opts.Clusters()
	if cs == nil {
		cs = &adminv3.Clusters{}
	}
	if first(q, "format") == "json" {
		return jsonResponse(cs, false)
	}
	return plain(http.StatusOK, appendClustersText(nil, cs))
}

// jsonResponse prints m as Envoy's MessageUtil::getJsonStringFromMessage
// does with pretty printing: proto field names, Anys resolved from the
// global registry, and default-valued scalars when defaults is set
// (Envoy's always_print_primitive_fields). protojson's own multi-line
// output varies its spacing from build to build on purpose, so the compact
// form is re-indented with encoding/json for a stable body.
func jsonResponse(m proto.Message, defaults bool) *response {
	compact, err := protojson.MarshalOptions{UseProtoNames: true, EmitDefaultValues: defaults}.Marshal(m)
	if err != nil {
		return text(http.StatusInternalServerError, "cannot print "+string(m.ProtoReflect().Descriptor().FullName())+" as JSON: "+err.Error()+"\n")
	}
	var buf bytes.Buffer
	buf.Grow(len(compact) * 2)
	if err := json.Indent(&buf, compact, "", "  "); err != nil {
		return text(http.StatusInternalServerError, "cannot indent JSON: "+err.Error()+"\n")
	}
	buf.WriteByte('\n')
	return &response{code: http.StatusOK, contentType: contentJSON, body: buf.Bytes()}
}

// Envoy's circuit-breaker defaults (cluster.proto Thresholds), printed when
// a status carries no thresholds for a priority.
const (
	defaultMaxConnections     = 1024
	defaultMaxPendingRequests = 1024
	defaultMaxRequests        = 1024
	defaultMaxRetries         = 3
)

// appendClustersText renders Envoy's /clusters text (ClustersHandler::
// writeClustersAsText), one "cluster::...::value" line each:
//
//	backend::observability_name::backend
//	backend::default_priority::max_connections::1024   (and the other three, then high_priority)
//	backend::added_via_api::false
//	backend::eds_service_name::x                       (only when set)
//	backend::10.0.0.1:80::cx_active::0                 (host stats, by name)
//	backend::10.0.0.1:80::hostname::
//	backend::10.0.0.1:80::health_flags::healthy
//	backend::10.0.0.1:80::weight::1
//	backend::10.0.0.1:80::region::   (then zone, sub_zone)
//	backend::10.0.0.1:80::canary::false
//	backend::10.0.0.1:80::priority::0
//	backend::10.0.0.1:80::success_rate::-1
//	backend::10.0.0.1:80::local_origin_success_rate::-1
//
// The cluster-level outlier lines Envoy prints for clusters with an
// outlier detector (success-rate averages and ejection thresholds) are
// absent: the status proto weft fills carries none. HostStatus has no canary field,
// so canary is always false.
func appendClustersText(b []byte, cs *adminv3.Clusters) []byte {
	for _, c := range cs.GetClusterStatuses() {
		name := c.GetName()
		obs := c.GetObservabilityName()
		if obs == "" {
			obs = name // Envoy's observability name defaults to the cluster name.
		}
		b = clusterLine(b, name, "observability_name", obs)
		b = appendThresholds(b, name, "default", thresholdsFor(c, corev3.RoutingPriority_DEFAULT))
		b = appendThresholds(b, name, "high", thresholdsFor(c, corev3.RoutingPriority_HIGH))
		b = clusterLine(b, name, "added_via_api", strconv.FormatBool(c.GetAddedViaApi()))
		if eds := c.GetEdsServiceName(); eds != "" {
			b = clusterLine(b, name, "eds_service_name", eds)
		}
		for _, h := range c.GetHostStatuses() {
			b = appendHostText(b, name, h)
		}
	}
	return b
}

func clusterLine(b []byte, parts ...string) []byte {
	for i, p := range parts {
		if i > 0 {
			b = append(b, "::"...)
		}
		b = appendLineSafe(b, p)
	}
	return append(b, '\n')
}

// appendLineSafe appends s with ASCII control characters replaced by '_',
// so a name from configuration cannot split an output line.
func appendLineSafe(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == 0x7f {
			b = append(b, '_')
		} else {
			b = append(b, c)
		}
	}
	return b
}

func thresholdsFor(c *adminv3.ClusterStatus, p corev3.RoutingPriority) *clusterv3.CircuitBreakers_Thresholds {
	for _, t := range c.GetCircuitBreakers().GetThresholds() {
		if t.GetPriority() == p {
			return t
		}
	}
	return nil
}

func appendThresholds(b []byte, cluster, prio string, t *clusterv3.CircuitBreakers_Thresholds) []byte {
	p := prio + "_priority"
	b = clusterLine(b, cluster, p, "max_connections", u32Or(t.GetMaxConnections(), defaultMaxConnections))
	b = clusterLine(b, cluster, p, "max_pending_requests", u32Or(t.GetMaxPendingRequests(), defaultMaxPendingRequests))
	b = clusterLine(b, cluster, p, "max_requests", u32Or(t.GetMaxRequests(), defaultMaxRequests))
	return clusterLine(b, cluster, p, "max_retries", u32Or(t.GetMaxRetries(), defaultMaxRetries))
}

// u32Or prints v, or def when v is unset.
func u32Or(v *wrapperspb.UInt32Value, def uint32) string {
	if v == nil {
		return strconv.FormatUint(uint64(def), 10)
	}
	return strconv.FormatUint(uint64(v.GetValue()), 10)
}

func appendHostText(b []byte, cluster string, h *adminv3.HostStatus) []byte {
	addr := hostAddress(h.GetAddress())
	// Envoy merges counters and gauges into one map and prints it by name.
	stats := slices.Clone(h.GetStats())
	slices.SortStableFunc(stats, func(x, y *adminv3.SimpleMetric) int {
		switch {
		case x.GetName() < y.GetName():
			return -1
		case x.GetName() > y.GetName():
			return 1
		}
		return 0
	})
	for i, s := range stats {
		if i > 0 && stats[i-1].GetName() == s.GetName() {
			continue // a map keeps one value per name
		}
		b = clusterLine(b, cluster, addr, s.GetName(), strconv.FormatUint(s.GetValue(), 10))
	}
	loc := h.GetLocality()
	b = clusterLine(b, cluster, addr, "hostname", h.GetHostname())
	b = clusterLine(b, cluster, addr, "health_flags", healthFlags(h.GetHealthStatus()))
	b = clusterLine(b, cluster, addr, "weight", strconv.FormatUint(uint64(h.GetWeight()), 10))
	b = clusterLine(b, cluster, addr, "region", loc.GetRegion())
	b = clusterLine(b, cluster, addr, "zone", loc.GetZone())
	b = clusterLine(b, cluster, addr, "sub_zone", loc.GetSubZone())
	b = clusterLine(b, cluster, addr, "canary", "false")
	b = clusterLine(b, cluster, addr, "priority", strconv.FormatUint(uint64(h.GetPriority()), 10))
	b = clusterLine(b, cluster, addr, "success_rate", successRate(h.GetSuccessRate()))
	return clusterLine(b, cluster, addr, "local_origin_success_rate", successRate(h.GetLocalOriginSuccessRate()))
}

// successRate prints an outlier success rate, -1 when unknown (Envoy's
// detector returns -1 without enough samples, and the proto omits it).
func successRate(p *typev3.Percent) string {
	if p == nil {
		return "-1"
	}
	return strconv.FormatFloat(p.GetValue(), 'f', -1, 64)
}

// hostAddress prints an address as Envoy's Address::asString: "ip:port",
// "[ipv6]:port", or a pipe's path.
func hostAddress(a *corev3.Address) string {
	if sa := a.GetSocketAddress(); sa != nil {
		return net.JoinHostPort(sa.GetAddress(), strconv.FormatUint(uint64(sa.GetPortValue()), 10))
	}
	if p := a.GetPipe(); p != nil {
		return p.GetPath()
	}
	if ia := a.GetEnvoyInternalAddress(); ia != nil {
		return "envoy://" + ia.GetServerListenerName() + "/" + ia.GetEndpointId()
	}
	return "unknown"
}

// healthFlags is Envoy's HostUtility::healthFlagsToString, rebuilt from
// the HostHealthStatus proto: "healthy", or each set flag as "/name" in
// Envoy's flag order.
func healthFlags(hs *adminv3.HostHealthStatus) string {
	var s string
	add := func(set bool, name string) {
		if set {
			s += "/" + name
		}
	}
	eds := hs.GetEdsHealthStatus()
	add(hs.GetFailedActiveHealthCheck(), "failed_active_hc")
	add(hs.GetFailedOutlierCheck(), "failed_outlier_check")
	add(eds == corev3.HealthStatus_UNHEALTHY || eds == corev3.HealthStatus_TIMEOUT, "failed_eds_health")
	add(hs.GetFailedActiveDegradedCheck(), "degraded_active_hc")
	add(eds == corev3.HealthStatus_DEGRADED, "degraded_eds_health")
	add(hs.GetPendingDynamicRemoval(), "pending_dynamic_removal")
	add(hs.GetPendingActiveHc(), "pending_active_hc")
	add(hs.GetExcludedViaImmediateHcFail(), "excluded_via_immediate_hc_fail")
	add(hs.GetActiveHcTimeout(), "active_hc_timeout")
	add(eds == corev3.HealthStatus_DRAINING, "eds_status_draining")
	if s == "" {
		return "healthy"
	}
	return s
}
