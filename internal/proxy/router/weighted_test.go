package router

import (
	"math"
	"math/rand/v2"
	"testing"
)

const weightedYAML = `
virtual_hosts:
- name: v
  domains: ["*"]
  routes:
  - name: split
    match: {prefix: "/"}
    route:
      weighted_clusters:
        total_weight: 100
        clusters:
        - {name: a, weight: 10}
        - {name: never, weight: 0}
        - {name: b, weight: 30, host_rewrite_literal: b.internal}
        - {name: c, weight: 60}
`

func TestWeightedClusterIntervals(t *testing.T) {
	tab := compileYAML(t, weightedYAML)
	r, _ := tab.Route(newReq("h", "/"))
	// Every residue modulo the total weight (100) selects exactly one
	// interval: [0,10) a, [10,40) b, [40,100) c; weight 0 owns none.
	counts := map[string]int{}
	for v := uint64(0); v < 100; v++ {
		counts[r.PickCluster(v+100*v).Name]++
	}
	if counts["a"] != 10 || counts["b"] != 30 || counts["c"] != 60 || counts["never"] != 0 {
		t.Fatalf("counts %v", counts)
	}
	if got := r.PickCluster(9).Name; got != "a" {
		t.Fatalf("9 -> %s", got)
	}
	if got := r.PickCluster(10).Name; got != "b" {
		t.Fatalf("10 -> %s", got)
	}
	if got := r.PickCluster(math.MaxUint64).Name; got != "b" { // 2^64-1 mod 100 = 15
		t.Fatalf("max -> %s", got)
	}
}

func TestWeightedClusterProportions(t *testing.T) {
	tab := compileYAML(t, weightedYAML)
	r, _ := tab.Route(newReq("h", "/"))
	const n = 200000
	rng := rand.New(rand.NewPCG(1, 2))
	counts := map[string]int{}
	for i := 0; i < n; i++ {
		counts[r.PickCluster(rng.Uint64()).Name]++
	}
	// Tolerance: each share within 1 percentage point of its weight. With
	// n = 200000 the standard deviation of a share is at most
	// sqrt(0.25/n) = 0.11 points, so 1 point is about 9 standard deviations.
	const tolerance = 0.01
	for name, want := range map[string]float64{"a": 0.10, "b": 0.30, "c": 0.60, "never": 0} {
		got := float64(counts[name]) / n
		if math.Abs(got-want) > tolerance {
			t.Errorf("cluster %s: share %.4f, want %.2f ± %.2f", name, got, want, tolerance)
		}
	}
	if counts["never"] != 0 {
		t.Errorf("weight-0 cluster picked %d times", counts["never"])
	}
}

func TestWeightedClusterHostRewrite(t *testing.T) {
	tab := compileYAML(t, weightedYAML)
	req := newReq("front", "/")
	r, _ := tab.Route(req)
	target := r.PickCluster(15)
	if target.Name != "b" || target.Weight != 30 || len(r.Clusters()) != 4 {
		t.Fatalf("target %+v, %d clusters", target, len(r.Clusters()))
	}
	r.FinalizeRequest(req, target, nil)
	if string(req.Authority) != "b.internal" {
		t.Fatalf("host %q, want the cluster's host_rewrite_literal", req.Authority)
	}
}

func TestNonRouteActionsHaveNoCluster(t *testing.T) {
	tab := compileYAML(t, `
virtual_hosts:
- name: v
  domains: ["*"]
  routes:
  - {name: d, match: {prefix: "/d"}, direct_response: {status: 200}}
  - {name: r, match: {prefix: "/"}, redirect: {path_redirect: "/x"}}
`)
	for _, p := range []string{"/d", "/r"} {
		r, _ := tab.Route(newReq("h", p))
		if r.PickCluster(1) != nil || r.Clusters() != nil {
			t.Errorf("%s: has a cluster", p)
		}
		if st, _ := r.RedirectLocation(newReq("h", p), nil); st == 0 {
			t.Errorf("%s: no status", p)
		}
	}
}
