package mesh

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/demoapp"
)

// bookinfoDir is the sample's directory; its top-level Istio YAML is what
// `weft up -f examples/bookinfo` gives weft-control (workloads.yaml is the
// local manifest, from which this test generates what weft up does).
const bookinfoDir = "../../examples/bookinfo"

// bookinfoWorkload is one entry of examples/bookinfo/workloads.yaml.
type bookinfoWorkload struct {
	service, version, sa, portName string
	fault                          demoapp.Fault
}

var bookinfoWorkloads = []bookinfoWorkload{
	{service: "productpage", version: "v1", sa: "bookinfo-productpage", portName: "http"},
	{service: "details", version: "v1", sa: "bookinfo-details", portName: "http"},
	{service: "reviews", version: "v1", sa: "bookinfo-reviews", portName: "grpc"},
	{service: "reviews", version: "v2", sa: "bookinfo-reviews", portName: "grpc"},
	{service: "reviews", version: "v3", sa: "bookinfo-reviews", portName: "grpc"},
	{service: "ratings", version: "v1", sa: "bookinfo-ratings", portName: "http"},
	{service: "ratings", version: "v2", sa: "bookinfo-ratings", portName: "http", fault: demoapp.Fault{FailPercent: 50}},
}

// bookinfo is the sample running behind sidecars with mTLS, and its
// ingress gateway.
type bookinfo struct {
	cp      *controlPlane
	gateway string // http://127.0.0.1:PORT
}

// startBookinfo runs every workload of the manifest in process behind its
// own sidecar (127.0.0.3x, outbound HTTP proxy on 127.0.0.1), with the
// ServiceEntries and WorkloadEntries weft up would generate, the sample's
// Istio YAML (the Gateway on a free port) and an ingress gateway.
func startBookinfo(t *testing.T) *bookinfo {
	t.Helper()
	type running struct {
		w         bookinfoWorkload
		ip        string
		proxyPort int
		appPort   int
	}
	var rs []running
	for i, w := range bookinfoWorkloads {
		r := running{w: w, ip: "127.0.0." + strconv.Itoa(30+i), proxyPort: freePort(t, "127.0.0.1")}
		app, err := demoapp.Start(demoapp.Options{
			Service: w.service, Version: w.version, ListenAddr: "127.0.0.1:0",
			Proxy: "127.0.0.1:" + strconv.Itoa(r.proxyPort), Fault: w.fault,
		})
		if err != nil {
			t.Fatalf("%s-%s: %v", w.service, w.version, err)
		}
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			app.Shutdown(ctx)
		})
		r.appPort = app.Addr().(*net.TCPAddr).Port
		rs = append(rs, r)
	}
	files := map[string]string{}
	for _, name := range []string{"destination-rules.yaml", "ratings.yaml"} {
		files[name] = readBookinfo(t, name)
	}
	gwPort := freePort(t, "127.0.0.1")
	files["gateway.yaml"] = strings.Replace(readBookinfo(t, "gateway.yaml"), "number: 8080", "number: "+strconv.Itoa(gwPort), 1)
	var gen strings.Builder
	for _, svc := range []struct{ name, port, proto string }{
		{"productpage", "http", "HTTP"}, {"details", "http", "HTTP"}, {"reviews", "grpc", "GRPC"}, {"ratings", "http", "HTTP"},
	} {
		fmt.Fprintf(&gen, `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: %[1]s, namespace: default}
spec:
  hosts: [%[1]s.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 9080, name: %[2]s, protocol: %[3]s}]
  workloadSelector: {labels: {app: %[1]s}}
---
`, svc.name, svc.port, svc.proto)
	}
	for _, r := range rs {
		fmt.Fprintf(&gen, `apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: %[1]s-%[2]s, namespace: default}
spec:
  address: %[3]s
  ports: {%[4]s: %[5]d}
  labels: {app: %[1]s, version: %[2]s}
  serviceAccount: %[6]s
---
`, r.w.service, r.w.version, r.ip, r.w.portName, r.appPort, r.w.sa)
	}
	files["generated.yaml"] = gen.String()
	b := &bookinfo{cp: startControlPlaneWith(t, files, true), gateway: "http://127.0.0.1:" + strconv.Itoa(gwPort)}
	for _, r := range rs {
		sc := startSidecar(t, b.cp, sidecarOptions{
			Name: r.w.service + "-" + r.w.version, IP: r.ip, ServiceAccount: r.w.sa, ProxyPort: r.proxyPort,
			Labels: map[string]string{"app": r.w.service, "version": r.w.version},
		})
		inbound := r.ip + "_" + strconv.Itoa(r.appPort)
		waitFor(t, "inbound listener "+inbound, 10*time.Second, func() bool { return sc.srv.ListenerAddr(inbound) != nil })
	}
	gw := startSidecar(t, b.cp, sidecarOptions{
		Type: "router", Name: "ingressgateway", IP: "127.0.0.40", ServiceAccount: "ingressgateway",
		Labels: map[string]string{"istio": "ingressgateway"},
	})
	name := "127.0.0.1_" + strconv.Itoa(gwPort)
	waitFor(t, "the gateway listener "+name, 10*time.Second, func() bool { return gw.srv.ListenerAddr(name) != nil })
	return b
}

func readBookinfo(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(bookinfoDir, name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// product GETs /api/v1/products/0 through the gateway, as user (none when
// empty).
func (b *bookinfo) product(t *testing.T, user string) (*demoapp.ProductResponse, error) {
	t.Helper()
	req, _ := http.NewRequest("GET", b.gateway+"/api/v1/products/0", nil)
	if user != "" {
		req.Header.Set("end-user", user)
	}
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return nil, fmt.Errorf("status %d", resp.StatusCode)
	}
	var pr demoapp.ProductResponse
	return &pr, json.NewDecoder(resp.Body).Decode(&pr)
}

// reviewsBy returns which reviews version answered, and the ratings
// (stars, color, servedBy or error) of the first review.
func reviewsBy(pr *demoapp.ProductResponse) (string, *demoapp.Rating) {
	if pr.Reviews == nil {
		return "none: " + pr.ReviewsError, nil
	}
	if len(pr.Reviews.Reviews) == 0 {
		return pr.Reviews.ServedBy, nil
	}
	return pr.Reviews.ServedBy, pr.Reviews.Reviews[0].Rating
}

// TestBookinfo: the sample behind sidecars with mTLS. Through the ingress
// gateway, productpage calls details (HTTP through its sidecar) and
// reviews (gRPC through its sidecar, :authority routing), and reviews v2
// and v3 call ratings (HTTP); without a VirtualService the three reviews
// versions share the traffic. Then the request-routing task's YAML sends
// jason to reviews v2 and everyone else to v1, and the fault-abort task's
// YAML breaks ratings for jason only.
func TestBookinfo(t *testing.T) {
	b := startBookinfo(t)

	// 60 requests, three versions: a version is missed with probability
	// at most 3·(2/3)^60 ≈ 1e-10 even for a random balancer.
	seen := map[string]int{}
	for i := 0; i < 60; i++ {
		pr, err := b.product(t, "")
		if err != nil {
			t.Fatalf("request %d through the gateway: %v", i, err)
		}
		if pr.ServedBy != "productpage-v1" || pr.Details == nil || pr.Details.ServedBy != "details-v1" {
			t.Fatalf("request %d: productpage %q, details %+v (%s)", i, pr.ServedBy, pr.Details, pr.DetailsError)
		}
		by, rating := reviewsBy(pr)
		seen[by]++
		switch by {
		case "reviews-v1":
			if rating != nil {
				t.Fatalf("reviews v1 answered with a rating: %+v", rating)
			}
		case "reviews-v2", "reviews-v3":
			color := map[string]string{"reviews-v2": "black", "reviews-v3": "red"}[by]
			want := demoapp.Rating{Stars: 5, Color: color, ServedBy: "ratings-v1"}
			if rating == nil || *rating != want {
				t.Fatalf("%s: rating %+v, want %+v (reviews → ratings through the sidecar)", by, rating, want)
			}
		default:
			t.Fatalf("request %d: reviews %q", i, by)
		}
	}
	if len(seen) != 3 {
		t.Fatalf("reviews versions seen in 60 requests: %v, want v1, v2 and v3", seen)
	}

	// The HTML page names who answered.
	resp, err := http.Get(b.gateway + "/productpage")
	if err != nil {
		t.Fatal(err)
	}
	page := new(strings.Builder)
	_, _ = io.Copy(page, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(page.String(), "Served by productpage-v1 → details-v1 → reviews-v") {
		t.Fatalf("/productpage: %d\n%s", resp.StatusCode, page)
	}

	t.Run("request routing by end-user", func(t *testing.T) {
		b.cp.write("reviews-vs.yaml", readBookinfo(t, "../bookinfo-tasks/request-routing-jason.yaml"))
		waitRouted(t, b, "jason", "reviews-v2", "reviews-v1")
		for i := 0; i < 20; i++ {
			for user, want := range map[string]string{"jason": "reviews-v2", "": "reviews-v1", "alice": "reviews-v1"} {
				pr, err := b.product(t, user)
				if err != nil {
					t.Fatalf("user %q: %v", user, err)
				}
				if by, _ := reviewsBy(pr); by != want {
					t.Fatalf("user %q: reviews %q, want %q", user, by, want)
				}
			}
		}
	})

	t.Run("fault abort for jason", func(t *testing.T) {
		// weft apply replaces objects by kind/namespace/name: here the
		// files that held VirtualService reviews and ratings go.
		b.cp.remove("reviews-vs.yaml")
		b.cp.remove("ratings.yaml")
		b.cp.write("fault-abort.yaml", readBookinfo(t, "../bookinfo-tasks/fault-abort.yaml"))
		waitFor(t, "jason's ratings aborted", 10*time.Second, func() bool {
			pr, err := b.product(t, "jason")
			if err != nil {
				return false
			}
			by, r := reviewsBy(pr)
			return by == "reviews-v2" && r != nil && r.Error == "Ratings service is currently unavailable"
		})
		pr, err := b.product(t, "jason")
		if err != nil {
			t.Fatal(err)
		}
		if by, r := reviewsBy(pr); by != "reviews-v2" || r == nil || r.Error == "" {
			t.Fatalf("jason: %s %+v, want reviews-v2 without ratings", by, r)
		}
		// Others go to v1, which never calls ratings: nothing changes.
		pr, err = b.product(t, "")
		if err != nil {
			t.Fatal(err)
		}
		if by, r := reviewsBy(pr); by != "reviews-v1" || r != nil {
			t.Fatalf("anonymous: %s %+v, want reviews-v1", by, r)
		}
	})
}

// waitRouted waits until user's requests reach want, and everyone else's
// other: the new routes are in every sidecar on the path.
func waitRouted(t *testing.T, b *bookinfo, user, want, other string) {
	t.Helper()
	waitFor(t, user+" routed to "+want, 10*time.Second, func() bool {
		for i := 0; i < 5; i++ {
			pu, err1 := b.product(t, user)
			po, err2 := b.product(t, "")
			if err1 != nil || err2 != nil {
				return false
			}
			if bu, _ := reviewsBy(pu); bu != want {
				return false
			}
			if bo, _ := reviewsBy(po); bo != other {
				return false
			}
		}
		return true
	})
}
