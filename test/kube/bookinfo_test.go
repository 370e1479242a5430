// Package kube runs the bookinfo sample application on the test API
// server (internal/kubetest) with pods that really run, to prove that what
// weft's sidecar injector writes into a pod works as it would on a real
// cluster. There is no container runtime on the test machine, so the test
// plays the missing parts itself: the ReplicaSet controller (a Pod per
// Deployment, through the API server and so through the injection
// webhook), the kubelet (a network namespace per pod on a bridge, the init
// container's `weft iptables`, the native sidecar `weft-proxy sidecar` as
// its runAsUser with the downward API, the projected service-account token
// and the root-certificate ConfigMap mounted where the pod spec says, the
// readiness probes, the pod's status) and the EndpointSlice controller.
// weft-control runs in-process in Kubernetes mode.
//
// The test needs root (namespaces, netfilter, mounts, switching user); it
// installs Debian's iptables package when it is missing.
package kube

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/weftmesh/weft/internal/netnstest"
)

// The helper process is this test binary run again with helperEnv set:
// "get" GETs urlEnv once and prints the status line and the body.
const (
	helperEnv = "WEFT_KUBE_HELPER"
	urlEnv    = "WEFT_KUBE_URL"
)

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) == "get" {
		os.Exit(get(os.Getenv(urlEnv)))
	}
	os.Exit(m.Run())
}

// get is `curl`: status code on the first line, then the body; exit status
// 0 whatever the status, 1 when there is no answer.
func get(url string) int {
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Get(url)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer resp.Body.Close()
	fmt.Println(resp.StatusCode)
	io.Copy(os.Stdout, resp.Body)
	return 0
}

// TestBookinfoOnKubernetes: bookinfo's Deployments and a sleep client,
// created through the API server in a namespace labelled
// istio-injection=enabled, come back with weft's native sidecar and init
// container; run as a kubelet would run them, each sidecar gets its
// certificate with its projected token (TokenReview) and becomes ready on
// 15021; productpage answers the client by its Service name over mTLS with
// reviews and ratings in the page; a VirtualService applied to the cluster
// sends every reviews call to v2.
func TestBookinfoOnKubernetes(t *testing.T) {
	if os.Geteuid() != 0 {
		// As test/capture: pods need network and mount namespaces,
		// netfilter rules and switching users.
		t.Skip("running pods needs root (network and mount namespaces, netfilter rules, switching the proxy's user): run go test as root")
	}
	netnstest.EnsureTools(t, netnstest.IPTables)
	start := time.Now()
	bin := netnstest.BuildCommands(t, "../../cmd/weft", "../../cmd/weft-proxy")
	t.Logf("binaries built in %v", time.Since(start).Round(time.Millisecond))
	start = time.Now()
	defer func() { t.Logf("test ran %v after the build", time.Since(start).Round(time.Millisecond)) }()

	net := netnstest.New(t, netnstest.Options{Prefix: "wk", Subnet: 214})
	m := startMesh(t, net.HostIP(), bin)
	ctx := context.Background()
	sample := loadManifests(t, "testdata/bookinfo.yaml", "testdata/sleep.yaml")
	sample.apply(ctx, t, m.client, namespace)

	kl := newKubelet(t, m, net, bin)
	pods := replicaSetController(ctx, t, m.client, sample)
	for _, p := range pods {
		assertInjected(t, p)
	}
	running := make([]*runningPod, 0, len(pods))
	for _, p := range pods {
		running = append(running, kl.start(ctx, p))
	}
	// The chart's ingress gateway (weft install put its Deployment in
	// istio-system), run as its pod spec says.
	gwd, err := m.client.AppsV1().Deployments("istio-system").Get(ctx, "istio-ingressgateway", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("the chart's ingress gateway: %v", err)
	}
	gwPods := replicaSetController(ctx, t, m.client, &app{deployments: []*appsv1.Deployment{gwd}})
	gateway := kl.start(ctx, gwPods[0])
	running = append(running, gateway)
	for _, rp := range running {
		kl.waitReady(ctx, rp)
	}
	endpointSliceController(ctx, t, m.client, namespace, sample.services)

	sleep := podOf(t, running, "sleep")
	t.Run("productpage over mTLS", func(t *testing.T) {
		seen := map[string]bool{}
		waitFor(t, "productpage pages from reviews v1, v2 and v3, with ratings", 45*time.Second, func() (bool, string) {
			status, body := sleep.get(t, "http://productpage:9080/productpage")
			if status == 200 {
				if v := servedBy(body); v != "" && (v == "reviews-v1" || strings.Contains(body, "stars")) {
					seen[v] = true
				}
			}
			return len(seen) == 3, fmt.Sprintf("status %d, reviews versions seen %v", status, seen)
		})
		pp := podOf(t, running, "productpage")
		metrics := httpGet(t, "http://"+pp.ip+":15090/stats/prometheus")
		want := regexp.MustCompile(`istio_requests_total\{[^}]*reporter="destination"[^}]*\}`)
		var found bool
		for _, series := range want.FindAllString(metrics, -1) {
			if strings.Contains(series, `source_principal="spiffe://cluster.local/ns/bookinfo/sa/sleep"`) &&
				strings.Contains(series, `destination_principal="spiffe://cluster.local/ns/bookinfo/sa/bookinfo-productpage"`) &&
				strings.Contains(series, `connection_security_policy="mutual_tls"`) {
				found = true
			}
		}
		if found {
			t.Logf("productpage's sidecar: %s", want.FindString(metrics))
		} else {
			t.Errorf("productpage's sidecar reports no mutual_tls request from sa/sleep to sa/bookinfo-productpage:\n%s", strings.Join(want.FindAllString(metrics, -1), "\n"))
		}
	})
	t.Run("certificates through projected tokens", func(t *testing.T) {
		issued := m.issued()
		t.Logf("the CA issued certificates for %v", keys(issued))
		for _, p := range running {
			id := "spiffe://cluster.local/ns/" + p.pod.Namespace + "/sa/" + p.pod.Spec.ServiceAccountName
			if !issued[id] {
				t.Errorf("pod %s: the CA issued no certificate for %s (issued: %v)", p.pod.Name, id, issued)
			}
		}
	})
	t.Run("readiness endpoints", func(t *testing.T) {
		for _, p := range running {
			httpGet(t, "http://"+p.ip+":15021/healthz/ready") // fails the test unless 200
		}
	})
	t.Run("ingress gateway", func(t *testing.T) {
		applyIstio(ctx, t, m, namespace, bookinfoGateway)
		url := "http://" + gateway.ip + ":8080/productpage"
		waitFor(t, "productpage through the ingress gateway", 30*time.Second, func() (bool, string) {
			resp, err := (&http.Client{Timeout: 5 * time.Second}).Get(url)
			if err != nil {
				return false, err.Error()
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			return resp.StatusCode == 200 && servedBy(string(b)) != "", fmt.Sprintf("status %d", resp.StatusCode)
		})
		if !m.issued()["spiffe://cluster.local/ns/istio-system/sa/istio-ingressgateway"] {
			t.Errorf("the gateway got no certificate for its service account: %v", keys(m.issued()))
		}
	})
	t.Run("VirtualService reviews to v2", func(t *testing.T) {
		applyIstio(ctx, t, m, namespace, reviewsV2)
		// Then ten pages in a row all from reviews v2 with black
		// stars: with v1, v2 and v3 equally likely, the odds of that
		// by chance are (1/3)^10.
		waitFor(t, "ten pages in a row from reviews-v2", 30*time.Second, func() (bool, string) {
			for i := range 10 {
				status, body := sleep.get(t, "http://productpage:9080/productpage")
				if v := servedBy(body); status != 200 || v != "reviews-v2" || !strings.Contains(body, "black stars") {
					return false, fmt.Sprintf("page %d: status %d from %q", i, status, v)
				}
			}
			return true, ""
		})
	})
}

// namespace is where bookinfo runs.
const namespace = "bookinfo"

// reviewsV2 is Istio's samples/bookinfo/networking/virtual-service-reviews-v2.yaml
// with the subsets of destination-rule-all.yaml it needs.
const reviewsV2 = `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
  - {name: v3, labels: {version: v3}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews, subset: v2}
`

// bookinfoGateway is Istio's samples/bookinfo/networking/bookinfo-gateway.yaml.
const bookinfoGateway = `apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: bookinfo-gateway}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 8080, name: http, protocol: HTTP}
    hosts: ["*"]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: bookinfo}
spec:
  hosts: ["*"]
  gateways: [bookinfo-gateway]
  http:
  - match:
    - uri: {exact: /productpage}
    - uri: {prefix: /static}
    - uri: {exact: /login}
    - uri: {exact: /logout}
    - uri: {prefix: /api/v1/products}
    route:
    - destination: {host: productpage, port: {number: 9080}}
`

var servedByRE = regexp.MustCompile(`Reviews served by (reviews-v[0-9])`)

// servedBy is the reviews instance named in a productpage page.
func servedBy(body string) string {
	if m := servedByRE.FindStringSubmatch(body); m != nil {
		return m[1]
	}
	return ""
}

// waitFor polls cond until it holds or the deadline passes; cond's text
// says what it saw last.
func waitFor(t *testing.T, what string, d time.Duration, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		ok, last := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v; last: %s", what, d, last)
		}
		time.Sleep(200 * time.Millisecond) // polling interval, not synchronisation
	}
}

// httpGet GETs url from the test process (the root namespace) and returns
// the body of a 200.
func httpGet(t *testing.T, url string) string {
	t.Helper()
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get(url)
	if err != nil {
		t.Errorf("GET %s: %v", url, err)
		return ""
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	io.Copy(&b, resp.Body)
	if resp.StatusCode != 200 {
		t.Errorf("GET %s: status %d: %s", url, resp.StatusCode, b.String())
	}
	return b.String()
}
