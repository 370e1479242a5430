package config

import (
	"slices"
	"testing"
)

// crossBase is a registry and rules the cross-object cases refer to.
const crossBase = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews}
spec:
  hosts: [reviews.default.svc.cluster.local]
  ports: [{number: 9080, name: http, protocol: HTTP}, {number: 9443, name: grpc, protocol: GRPC}]
  resolution: STATIC
  workloadSelector: {labels: {app: reviews}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ext, namespace: egress}
spec:
  hosts: ["*.example.com"]
  ports: [{number: 443, name: tls, protocol: TLS}]
  resolution: NONE
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: all-ext, namespace: egress}
spec:
  host: "*.example.com"
  subsets: [{name: eu, labels: {region: eu}}]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw, namespace: istio-system}
spec:
  servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ["*/*"]}]
---
`

// TestCrossCheck: subsets must exist (error); hosts, ports and gateways
// should (warnings).
func TestCrossCheck(t *testing.T) {
	for _, tc := range []struct {
		name     string
		vs       string // the spec of VirtualService default/vs
		want     []string
		rejected bool
	}{
		{name: "all defined", vs: `hosts: [reviews]
gateways: [mesh, istio-system/gw]
http:
- match: [{uri: {prefix: /v}}]
  route:
  - {destination: {host: reviews, subset: v1, port: {number: 9080}}, weight: 50}
  - {destination: {host: reviews.default.svc.cluster.local, subset: v2, port: {number: 9080}}, weight: 50}
- route: [{destination: {host: api.example.com, subset: eu}}]
`},
		{name: "undefined subset", vs: `hosts: [reviews]
http:
- route:
  - {destination: {host: reviews, subset: v3, port: {number: 9080}}}
  mirror: {host: reviews, subset: v9, port: {number: 9080}}
`, rejected: true, want: []string{
			`spec.http[0].route[0].destination.subset: subset "v3" is not defined by the DestinationRule for host reviews.default.svc.cluster.local (default/reviews defines: v1, v2)`,
			`spec.http[0].mirror.subset: subset "v9" is not defined by the DestinationRule for host reviews.default.svc.cluster.local (default/reviews defines: v1, v2)`,
		}},
		{name: "no DestinationRule for the host", vs: `hosts: [ratings]
tcp: [{route: [{destination: {host: ratings, subset: v1}}]}]
`, rejected: true, want: []string{
			`spec.tcp[0].route[0].destination.subset: subset "v1": no DestinationRule for host ratings.default.svc.cluster.local defines subsets`,
			"W spec.tcp[0].route[0].destination.host: host ratings (ratings.default.svc.cluster.local) is not defined by any ServiceEntry",
		}},
		{name: "ports", vs: `hosts: [reviews]
http:
- match: [{uri: {prefix: /v}}]
  route: [{destination: {host: reviews}}]
- route: [{destination: {host: reviews, port: {number: 80}}}]
`, want: []string{
			"W spec.http[0].route[0].destination: reviews.default.svc.cluster.local has several ports (9080, 9443): set destination.port.number",
			"W spec.http[1].route[0].destination.port.number: port 80 is not a port of reviews.default.svc.cluster.local (its ports: 9080, 9443)",
		}},
		{name: "gateways", vs: `hosts: [a.example.com]
gateways: [istio-system/missing, gw]
http: [{route: [{destination: {host: a.example.com}}]}]
`, want: []string{
			"W spec.gateways[0]: gateway istio-system/missing is not defined",
			"W spec.gateways[1]: gateway default/gw is not defined",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := loadString(t, crossBase+"apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: vs}\nspec:\n"+indent(tc.vs))
			var got []string
			for _, e := range r.Errors {
				if e.Key.Kind != VirtualService {
					t.Errorf("problem on another object: %v", e)
					continue
				}
				s := e.Path + ": " + e.Message
				if e.Warning {
					s = "W " + s
				}
				got = append(got, s)
			}
			assertLines(t, got, tc.want)
			rejected := slices.Contains(r.Rejected, Key{VirtualService, "default", "vs"})
			if rejected != tc.rejected {
				t.Errorf("rejected = %v, want %v", rejected, tc.rejected)
			}
			if len(r.Objects) != 5+boolInt(!tc.rejected) {
				t.Errorf("%d valid objects", len(r.Objects))
			}
		})
	}
}

// boolInt is 1 for true.
func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestResolveShortName follows Istio's ResolveShortnameToFQDN.
func TestResolveShortName(t *testing.T) {
	for _, tc := range []struct{ host, ns, want string }{
		{"reviews", "default", "reviews.default.svc.cluster.local"},
		{"reviews.prod", "default", "reviews.prod"},
		{"reviews.prod.svc.cluster.local", "default", "reviews.prod.svc.cluster.local"},
		{"*", "default", "*"},
		{"*.example.com", "default", "*.example.com"},
		{"", "default", ""},
	} {
		if got := ResolveShortName(tc.host, tc.ns); got != tc.want {
			t.Errorf("ResolveShortName(%q, %q) = %q, want %q", tc.host, tc.ns, got, tc.want)
		}
	}
}

// TestHostMatching follows Istio's host.Name SubsetOf and Matches.
func TestHostMatching(t *testing.T) {
	for _, tc := range []struct {
		h, pattern      string
		subset, overlap bool
	}{
		{"a.com", "a.com", true, true},
		{"b.a.com", "*.a.com", true, true},
		{"a.com", "*.a.com", false, false},
		{"*.b.a.com", "*.a.com", true, true},
		{"*.a.com", "b.a.com", false, true},
		{"anything", "*", true, true},
		{"*", "a.com", false, true},
		{"a.com", "b.com", false, false},
	} {
		if got := hostSubsetOf(tc.h, tc.pattern); got != tc.subset {
			t.Errorf("hostSubsetOf(%q, %q) = %v", tc.h, tc.pattern, got)
		}
		if got := hostMatches(tc.h, tc.pattern); got != tc.overlap {
			t.Errorf("hostMatches(%q, %q) = %v", tc.h, tc.pattern, got)
		}
	}
}

// TestCrossCheckInvalidRule: a subset defined only by an invalid
// DestinationRule does not count, and the message says why.
func TestCrossCheckInvalidRule(t *testing.T) {
	r := loadString(t, `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: r}
spec: {host: r, subsets: [{name: v1}], trafficPolicy: {}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: r}
spec: {hosts: [r], http: [{route: [{destination: {host: r, subset: v1}}]}]}
`)
	var got []string
	for _, e := range r.Errors {
		if !e.Warning {
			got = append(got, e.Key.String()+": "+e.Path+": "+e.Message)
		}
	}
	assertLines(t, got, []string{
		"DestinationRule default/r: spec.trafficPolicy: a traffic policy must set at least one field",
		`VirtualService default/r: spec.http[0].route[0].destination.subset: subset "v1" is defined only by DestinationRule default/r, which is invalid (see its errors)`,
	})
	if len(r.Objects) != 0 || len(r.Rejected) != 2 {
		t.Fatalf("objects %d, rejected %v", len(r.Objects), r.Rejected)
	}
}
