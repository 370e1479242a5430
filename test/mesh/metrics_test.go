package mesh

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/meshtest"
	"github.com/weftmesh/weft/internal/proxy/istiostats"
)

// metricsMesh: hello (HTTP, port 8080) with workloads hello-v1 and
// hello-v2 behind sidecars with certificates (service account hello), a
// 90/10 split between them, and a fault that aborts requests carrying
// x-fail with 503 in the client's sidecar.
func metricsMesh(v1, v2 int) string {
	s := meshtest.Service{Name: "hello", Port: 8080, Workloads: []meshtest.Workload{
		{Name: "hello-v1", Address: "127.0.61.2", Port: v1, Version: "v1", ServiceAccount: "hello", MTLS: true},
		{Name: "hello-v2", Address: "127.0.61.3", Port: v2, Version: "v2", ServiceAccount: "hello", MTLS: true},
	}}
	return s.YAML() + "---\n" + s.VirtualServiceYAML("hello",
		meshtest.Route{Header: "x-fail", AbortStatus: 503, To: []meshtest.Destination{{Subset: "v1"}}},
		meshtest.Route{To: []meshtest.Destination{{Subset: "v1", Weight: 90}, {Subset: "v2", Weight: 10}}})
}

// peerApp serves its name, and on /peer the metadata exchange headers it
// received (which its sidecar must have removed).
func peerApp(t *testing.T, name string) int {
	t.Helper()
	return meshtest.ServeHTTP(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/peer" {
			io.WriteString(w, r.Header.Get("x-envoy-peer-metadata")+"|"+r.Header.Get("x-envoy-peer-metadata-id"))
			return
		}
		io.WriteString(w, name)
	}))
}

// TestIstioStandardMetrics: a known load from sleep to hello through mTLS
// sidecars — 100 requests split 90/10 by weight (the split observed by the
// client is the reference), 10 aborted with 503 by a fault in sleep's
// sidecar, and 5 whose application forges the metadata exchange headers —
// gives exactly those numbers in Istio's standard queries over both sides'
// :15090/stats/prometheus, with the caller's SPIFFE identity from the
// certificate and connection_security_policy mutual_tls.
func TestIstioStandardMetrics(t *testing.T) {
	v1, v2 := peerApp(t, "v1"), peerApp(t, "v2")
	cp := startControlPlaneWith(t, map[string]string{"hello.yaml": metricsMesh(v1, v2)}, true)
	side := func(name, ip, sa string, labels map[string]string) *sidecar {
		return startSidecar(t, cp, sidecarOptions{Name: name, IP: ip, ServiceAccount: sa, Labels: labels,
			MetricsAddress: ip + ":15090"})
	}
	side("hello-v1", "127.0.61.2", "hello", map[string]string{"app": "hello", "version": "v1"})
	side("hello-v2", "127.0.61.3", "hello", map[string]string{"app": "hello", "version": "v2"})
	sleep := side("sleep", "127.0.61.4", "sleep", map[string]string{"app": "sleep", "version": "v1"})
	c := sleep.client()
	const url = "http://hello.default.svc.cluster.local:8080"

	waitFor(t, "sleep reaches hello over mTLS", 10*time.Second, func() bool {
		code, _, err := get(c, url+"/peer")
		return err == nil && code == 200
	})
	// The application never sees the metadata exchange headers, not even
	// forged ones its caller's application sent.
	if _, body, _ := get(c, url+"/peer", "x-envoy-peer-metadata", "Zm9yZ2Vk", "x-envoy-peer-metadata-id", "forged"); body != "|" {
		t.Fatalf("the server application received metadata exchange headers %q, want none", body)
	}
	base := settled(t)

	forgedPeer := forged(t)
	want := map[string]float64{}
	for i := 0; i < 100; i++ {
		var hdr []string
		if i < 5 {
			hdr = []string{"x-envoy-peer-metadata", forgedPeer, "x-envoy-peer-metadata-id", "sidecar~1.2.3.4~evil.default~default.svc.cluster.local"}
		}
		code, body, err := get(c, url+"/", hdr...)
		if err != nil || code != 200 {
			t.Fatalf("request %d: %d %q %v", i, code, body, err)
		}
		want["hello-"+body+",200"]++
	}
	for i := 0; i < 10; i++ {
		if code, _, err := get(c, url+"/", "x-fail", "yes"); err != nil || code != 503 {
			t.Fatalf("aborted request %d: %d %v, want 503", i, code, err)
		}
	}
	t.Logf("observed split: %v", want)
	got := settled(t).minus(base)

	// sum by (destination_workload, response_code) (istio_requests_total{reporter="destination"})
	dst := got.sum("istio_requests_total", map[string]string{"reporter": "destination"}, "destination_workload", "response_code")
	assertSums(t, "destination requests", dst, want)
	// The same from the source side, with the aborted requests (no
	// upstream host: destination_workload unknown, flag FI).
	src := got.sum("istio_requests_total", map[string]string{"reporter": "source"}, "destination_workload", "response_code", "response_flags")
	wantSrc := map[string]float64{"unknown,503,FI": 10}
	for k, v := range want {
		wantSrc[k+",-"] = v
	}
	assertSums(t, "source requests", src, wantSrc)
	// Who called: the principal from sleep's certificate, the rest from
	// the verified metadata exchange (the forged headers were replaced by
	// sleep's sidecar), over mutual TLS.
	who := got.sum("istio_requests_total", map[string]string{"reporter": "destination"},
		"source_principal", "source_workload", "source_workload_namespace", "source_app", "source_version",
		"source_canonical_service", "source_canonical_revision", "connection_security_policy", "destination_service_namespace", "request_protocol")
	assertSums(t, "destination sources", who, map[string]float64{
		"spiffe://cluster.local/ns/default/sa/sleep,sleep,default,sleep,v1,sleep,v1,mutual_tls,default,http": 100,
	})
	// The source side labels its destinations from EDS and cluster
	// metadata.
	dsts := got.sum("istio_requests_total", map[string]string{"reporter": "source", "response_code": "200"},
		"destination_app", "destination_version", "destination_canonical_service", "destination_canonical_revision",
		"destination_service", "destination_service_name", "destination_service_namespace", "source_workload")
	assertSums(t, "source destinations", dsts, map[string]float64{
		"hello,v1,hello,v1,hello.default.svc.cluster.local,hello,default,sleep": want["hello-v1,200"],
		"hello,v2,hello,v2,hello.default.svc.cluster.local,hello,default,sleep": want["hello-v2,200"],
	})
	// Both reporters: the principals from the certificates of the mTLS
	// connection (the source side's from its upstream handshake), and the
	// service's FQDN (the destination side's from its inbound cluster's
	// istio.services, not the Host header with its port).
	ids := got.sum("istio_requests_total", map[string]string{"response_code": "200"},
		"reporter", "source_principal", "destination_principal", "destination_service")
	const principals = "spiffe://cluster.local/ns/default/sa/sleep,spiffe://cluster.local/ns/default/sa/hello,hello.default.svc.cluster.local"
	assertSums(t, "principals and service", ids, map[string]float64{"source," + principals: 100, "destination," + principals: 100})
	// Histograms: one observation per request, every bucket line present.
	for _, h := range []string{"istio_request_duration_milliseconds", "istio_request_bytes", "istio_response_bytes"} {
		n := got.sum(h+"_count", map[string]string{"reporter": "destination"})[""]
		inf := got.sum(h+"_bucket", map[string]string{"reporter": "destination", "le": "+Inf"})[""]
		if n != 100 || inf != 100 {
			t.Errorf("%s: _count %v, +Inf bucket %v, want 100", h, n, inf)
		}
	}
	if resp := got.sum("istio_response_bytes_sum", map[string]string{"reporter": "destination"})[""]; resp != 200 {
		t.Errorf("istio_response_bytes_sum = %v, want 200 (100 two-byte bodies)", resp)
	}
}

// settled scrapes the three sidecars once the server sidecars have
// recorded every request the client's sidecar has: a sidecar records a
// stream after its last byte is sent, so the client may see a response
// before the server's sidecar has counted it.
func settled(t *testing.T) series {
	t.Helper()
	var s series
	waitFor(t, "the destination side to record every request", 5*time.Second, func() bool {
		s = scrapeAll(t, "127.0.61.2:15090", "127.0.61.3:15090", "127.0.61.4:15090")
		ok := map[string]string{"response_code": "200"}
		ok["reporter"] = "source"
		src := s.sum("istio_requests_total", ok)[""]
		ok["reporter"] = "destination"
		return src == s.sum("istio_requests_total", ok)[""]
	})
	return s
}

// forged is a metadata exchange value an application forged: it claims
// workload "evil" of namespace default, service account sleep.
func forged(t *testing.T) string {
	v, err := istiostats.EncodeHeader(&istiostats.Workload{Name: "evil", Namespace: "default", ServiceAccount: "sleep", App: "evil"})
	if err != nil {
		t.Fatal(err)
	}
	return string(v)
}

func assertSums(t *testing.T, what string, got, want map[string]float64) {
	t.Helper()
	for k, v := range want {
		if v == 0 {
			delete(want, k)
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("%s: got %v, want %v", what, got, want)
	}
}

// series is a scrape: one sample per series (name and labels).
type series []sample

type sample struct {
	name   string
	labels map[string]string
	value  float64
}

// scrapeAll GETs /stats/prometheus from each address and returns the
// istio_* samples.
func scrapeAll(t *testing.T, addrs ...string) series {
	t.Helper()
	var out series
	for _, a := range addrs {
		resp, err := http.Get("http://" + a + "/stats/prometheus")
		if err != nil {
			t.Fatalf("scrape %s: %v", a, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("scrape %s: %d %s", a, resp.StatusCode, b)
		}
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, "istio_") {
				out = append(out, parseSample(t, line))
			}
		}
	}
	return out
}

// parseSample parses `name{k="v",...} value` of the text format.
func parseSample(t *testing.T, line string) sample {
	t.Helper()
	s := sample{labels: map[string]string{}}
	i := strings.IndexAny(line, "{ ")
	s.name = line[:i]
	rest := line[i:]
	if rest[0] == '{' {
		rest = rest[1:]
		for rest[0] != '}' {
			eq := strings.IndexByte(rest, '=')
			key := rest[:eq]
			rest = rest[eq+2:]
			var v strings.Builder
			for rest[0] != '"' {
				if rest[0] == '\\' {
					rest = rest[1:]
				}
				v.WriteByte(rest[0])
				rest = rest[1:]
			}
			s.labels[key] = v.String()
			rest = strings.TrimPrefix(rest[1:], ",")
		}
		rest = rest[1:]
	}
	v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
	if err != nil {
		t.Fatalf("sample %q: %v", line, err)
	}
	s.value = v
	return s
}

// key identifies a sample's series.
func (s sample) key() string { return s.name + fmt.Sprint(s.labels) }

// minus subtracts base's values from the same series (counters since
// base).
func (ss series) minus(base series) series {
	before := map[string]float64{}
	for _, s := range base {
		before[s.key()] += s.value
	}
	out := make(series, 0, len(ss))
	for _, s := range ss {
		s.value -= before[s.key()]
		out = append(out, s)
	}
	return out
}

// sum is PromQL's sum by (by...) (name{match}): the keys are the by
// labels' values joined with commas ("" without by); zero sums are left
// out.
func (ss series) sum(name string, match map[string]string, by ...string) map[string]float64 {
	out := map[string]float64{}
next:
	for _, s := range ss {
		if s.name != name {
			continue
		}
		for k, v := range match {
			if s.labels[k] != v {
				continue next
			}
		}
		vals := make([]string, len(by))
		for i, b := range by {
			vals[i] = s.labels[b]
		}
		out[strings.Join(vals, ",")] += s.value
	}
	for k, v := range out {
		if v == 0 {
			delete(out, k)
		}
	}
	return out
}
