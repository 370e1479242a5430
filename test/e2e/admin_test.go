package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"
)

// adminProxy starts a proxy whose cluster "backend" has one healthy host
// (a named upstream) and one unhealthy one, max_connections 7, and sends
// three requests through it.
func adminProxy(t *testing.T) (*Proxy, *named, string) {
	t.Helper()
	us := startNamed(t, 1, nil)
	down := freePort(t)
	p := StartProxy(t, httpBootstrap("{cluster: backend}", "", clusterYAML("backend",
		"circuit_breakers: {thresholds: [{max_connections: 7}]}",
		loc{zone: "z1", eps: []ep{{addr: us[0].addr, weight: 3}, {addr: down, health: "UNHEALTHY"}}})))
	c := Client()
	for range 3 {
		if code, _, _ := Get(t, c, p.URL("front")+"/x"); code != 200 {
			t.Fatalf("status %d", code)
		}
	}
	// The connection manager counts a stream after its last byte went out.
	p.WaitStat("http.front.downstream_rq_2xx", 3)
	return p, us[0], down
}

// lines returns body's lines as a set.
func lines(body string) map[string]bool {
	out := map[string]bool{}
	for _, l := range strings.Split(body, "\n") {
		out[l] = true
	}
	return out
}

func TestAdminEndpoints(t *testing.T) {
	p, up, down := adminProxy(t)
	admin := p.AdminURL()
	c := Client()
	listenerPrefix := strings.ReplaceAll(p.Addr("front"), ":", "_")

	t.Run("ready", func(t *testing.T) {
		if code, body, _ := Get(t, c, admin+"/ready"); code != 200 || body != "LIVE\n" {
			t.Errorf("/ready: %d %q, want 200 \"LIVE\\n\"", code, body)
		}
	})

	t.Run("server_info", func(t *testing.T) {
		code, body, h := Get(t, c, admin+"/server_info")
		var info struct {
			Version            string `json:"version"`
			State              string `json:"state"`
			UptimeCurrentEpoch string `json:"uptime_current_epoch"`
			CommandLineOptions struct {
				DrainTime string `json:"drain_time"`
			} `json:"command_line_options"`
		}
		if code != 200 || !strings.HasPrefix(h.Get("content-type"), "application/json") || json.Unmarshal([]byte(body), &info) != nil {
			t.Fatalf("/server_info: %d %s %q", code, h.Get("content-type"), body)
		}
		if info.State != "LIVE" || !strings.Contains(info.Version, "weft-proxy") || info.UptimeCurrentEpoch == "" || info.CommandLineOptions.DrainTime != "5s" {
			t.Errorf("/server_info: %+v", info)
		}
	})

	t.Run("stats", func(t *testing.T) {
		code, body, _ := Get(t, c, admin+"/stats")
		if code != 200 {
			t.Fatalf("/stats: %d", code)
		}
		got := lines(body)
		for _, want := range []string{
			"cluster.backend.upstream_rq_total: 3",
			"cluster.backend.upstream_rq_200: 3",
			"cluster.backend.upstream_rq_2xx: 3",
			"cluster.backend.upstream_cx_total: 1",
			"cluster.backend.membership_total: 2",
			"cluster.backend.membership_healthy: 1",
			"cluster.backend.circuit_breakers.default.remaining_cx: 6",
			"http.front.downstream_rq_total: 3",
			"http.front.downstream_rq_2xx: 3",
			"listener." + listenerPrefix + ".downstream_cx_total: 1",
			"server.live: 1",
		} {
			if !got[want] {
				t.Errorf("/stats lacks the line %q", want)
			}
		}
		// filter is a regular expression over names.
		_, body, _ = Get(t, c, admin+"/stats?filter=^cluster%5C.backend%5C.upstream_rq_total$")
		if body != "cluster.backend.upstream_rq_total: 3\n" {
			t.Errorf("/stats?filter: %q", body)
		}
	})

	t.Run("prometheus", func(t *testing.T) {
		code, body, _ := Get(t, c, admin+"/stats/prometheus")
		if code != 200 {
			t.Fatalf("/stats/prometheus: %d", code)
		}
		if !lines(body)["# TYPE envoy_cluster_upstream_rq_total counter"] {
			t.Errorf("/stats/prometheus lacks # TYPE envoy_cluster_upstream_rq_total counter")
		}
		// Label order is not significant to Prometheus; Envoy prints the
		// response code labels first, weft the scope's (a cosmetic
		// difference of the stats package).
		for _, want := range []struct {
			sample string
			value  string
		}{
			{`envoy_cluster_upstream_rq_total{envoy_cluster_name="backend"}`, "3"},
			{`envoy_cluster_upstream_rq{envoy_response_code="200",envoy_cluster_name="backend"}`, "3"},
			{`envoy_http_downstream_rq_xx{envoy_response_code_class="2",envoy_http_conn_manager_prefix="front"}`, "3"},
			{`envoy_listener_downstream_cx_total{envoy_listener_address="` + listenerPrefix + `"}`, "1"},
			{`envoy_cluster_membership_healthy{envoy_cluster_name="backend"}`, "1"},
		} {
			if got, ok := promValue(body, want.sample); !ok || got != want.value {
				t.Errorf("/stats/prometheus: %s = %q (found %v), want %s", want.sample, got, ok, want.value)
			}
		}
	})

	t.Run("clusters", func(t *testing.T) {
		code, body, _ := Get(t, c, admin+"/clusters")
		if code != 200 {
			t.Fatalf("/clusters: %d", code)
		}
		got := lines(body)
		for _, want := range []string{
			"backend::observability_name::backend",
			"backend::default_priority::max_connections::7",
			"backend::default_priority::max_requests::1024",
			"backend::" + up.addr + "::rq_total::3",
			"backend::" + up.addr + "::rq_success::3",
			"backend::" + up.addr + "::cx_active::1",
			"backend::" + up.addr + "::health_flags::healthy",
			"backend::" + up.addr + "::weight::3",
			"backend::" + up.addr + "::zone::z1",
			"backend::" + down + "::health_flags::/failed_eds_health",
			"backend::" + down + "::rq_total::0",
		} {
			if !got[want] {
				t.Errorf("/clusters lacks the line %q\n%s", want, body)
			}
		}
		_, body, _ = Get(t, c, admin+"/clusters?format=json")
		var js struct {
			ClusterStatuses []struct {
				Name         string `json:"name"`
				HostStatuses []struct {
					Address struct {
						SocketAddress struct {
							Address   string `json:"address"`
							PortValue int    `json:"port_value"`
						} `json:"socket_address"`
					} `json:"address"`
					HealthStatus struct {
						EdsHealthStatus string `json:"eds_health_status"`
					} `json:"health_status"`
				} `json:"host_statuses"`
			} `json:"cluster_statuses"`
		}
		if err := json.Unmarshal([]byte(body), &js); err != nil || len(js.ClusterStatuses) != 1 || len(js.ClusterStatuses[0].HostStatuses) != 2 {
			t.Fatalf("/clusters?format=json: %v\n%s", err, body)
		}
		hs := js.ClusterStatuses[0].HostStatuses[1]
		if a := fmt.Sprintf("%s:%d", hs.Address.SocketAddress.Address, hs.Address.SocketAddress.PortValue); a != down || hs.HealthStatus.EdsHealthStatus != "UNHEALTHY" {
			t.Errorf("second host %s %q, want %s UNHEALTHY", a, hs.HealthStatus.EdsHealthStatus, down)
		}
	})

	t.Run("config_dump", func(t *testing.T) {
		code, body, _ := Get(t, c, admin+"/config_dump")
		var dump struct {
			Configs []map[string]json.RawMessage `json:"configs"`
		}
		if code != 200 || json.Unmarshal([]byte(body), &dump) != nil {
			t.Fatalf("/config_dump: %d %q", code, body)
		}
		var types []string
		for _, cfg := range dump.Configs {
			var ty string
			json.Unmarshal(cfg["@type"], &ty)
			types = append(types, strings.TrimPrefix(ty, "type.googleapis.com/envoy.admin.v3."))
		}
		want := []string{"BootstrapConfigDump", "ClustersConfigDump", "ListenersConfigDump", "RoutesConfigDump", "SecretsConfigDump"}
		if strings.Join(types, ",") != strings.Join(want, ",") {
			t.Fatalf("config types %v, want %v in Envoy's order", types, want)
		}
		for i, needle := range []string{`"front"`, `"backend"`, `"front"`, `"virtual_hosts"`} {
			if !strings.Contains(string(mustJSON(dump.Configs[i])), needle) {
				t.Errorf("%s lacks %s", types[i], needle)
			}
		}
		var clusters struct {
			StaticClusters []struct {
				Cluster struct {
					Type string `json:"@type"`
					Name string `json:"name"`
				} `json:"cluster"`
				LastUpdated string `json:"last_updated"`
			} `json:"static_clusters"`
		}
		json.Unmarshal(mustJSON(dump.Configs[1]), &clusters)
		if len(clusters.StaticClusters) != 1 || clusters.StaticClusters[0].Cluster.Name != "backend" ||
			clusters.StaticClusters[0].Cluster.Type != "type.googleapis.com/envoy.config.cluster.v3.Cluster" || clusters.StaticClusters[0].LastUpdated == "" {
			t.Errorf("static_clusters %+v", clusters.StaticClusters)
		}
	})

	t.Run("admin_only_on_admin_address", func(t *testing.T) {
		// The listener does not serve admin paths: they go to the upstream.
		hits := up.hits.Load()
		if code, body, _ := Get(t, c, p.URL("front")+"/stats"); code != 200 || body != up.name || up.hits.Load() != hits+1 {
			t.Errorf("GET /stats on the listener: %d %q, want the upstream's answer", code, body)
		}
		// The admin is bound to 127.0.0.1 only.
		_, port := HostPort(p.Server().AdminAddr().String())
		if conn, err := net.DialTimeout("tcp", net.JoinHostPort("::1", port), time.Second); err == nil {
			conn.Close()
			t.Errorf("the admin answers on [::1]:%s; the bootstrap binds it to 127.0.0.1", port)
		}
	})
}

func mustJSON(m map[string]json.RawMessage) []byte {
	b, _ := json.Marshal(m)
	return b
}

func TestAdminAbsentWithoutAddress(t *testing.T) {
	us := startNamed(t, 1, nil)
	yaml := strings.Replace(httpBootstrap("{cluster: c}", "", clusterYAML("c", "", loc{eps: eps(us...)})),
		"admin:\n  address: {socket_address: {address: 127.0.0.1, port_value: 0}}\n", "", 1)
	p := StartProxy(t, yaml)
	if a := p.Server().AdminAddr(); a != nil {
		t.Errorf("admin bound at %v without admin.address in the bootstrap", a)
	}
	if code, _, _ := Get(t, Client(), p.URL("front")+"/"); code != 200 {
		t.Errorf("traffic without an admin: %d", code)
	}
}

// promValue finds the sample with sample's name and label set (in any
// order) in a Prometheus text body and returns its value.
func promValue(body, sample string) (string, bool) {
	name, labels := splitSample(sample)
	for _, l := range strings.Split(body, "\n") {
		if strings.HasPrefix(l, "#") {
			continue
		}
		i := strings.LastIndexByte(l, ' ')
		if i < 0 {
			continue
		}
		n, ls := splitSample(l[:i])
		if n == name && ls == labels {
			return l[i+1:], true
		}
	}
	return "", false
}

// splitSample returns a sample's name and its labels sorted and joined.
func splitSample(s string) (string, string) {
	name, rest, ok := strings.Cut(s, "{")
	if !ok {
		return s, ""
	}
	ls := strings.Split(strings.TrimSuffix(rest, "}"), ",")
	slices.Sort(ls)
	return name, strings.Join(ls, ",")
}
