package config

import (
	"fmt"
	"strings"
	"testing"
)

// vcase is one validation case: a spec of a kind, and the problems it must
// give, each "path: message" (a message ending in "..." is a prefix; "W "
// marks a warning). No want means valid without warnings.
type vcase struct {
	name string
	spec string
	want []string
}

// runValidation decodes and validates each case as an object of kind in
// namespace "ns" named "x" (a Gateway name must be a DNS label).
func runValidation(t *testing.T, kind Kind, cases []vcase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			apiVersion := groupOf(kind) + "/" + groupVersions[groupOf(kind)][0]
			doc := fmt.Sprintf("apiVersion: %s\nkind: %s\nmetadata: {name: x, namespace: ns}\nspec:\n%s", apiVersion, kind, indent(tc.spec))
			items, _ := decodeFile("t.yaml", []byte(doc))
			if len(items) != 1 {
				t.Fatalf("%d items", len(items))
			}
			var got []string
			for _, e := range items[0].errs {
				s := e.Path + ": " + e.Message
				if e.Warning {
					s = "W " + s
				}
				got = append(got, s)
			}
			assertLines(t, got, tc.want)
			if valid := items[0].valid(); valid == hasError(tc.want) {
				t.Errorf("object valid = %v with problems %q", valid, got)
			}
		})
	}
}

// hasError reports whether a want list holds an error (not only warnings).
func hasError(want []string) bool {
	for _, w := range want {
		if !strings.HasPrefix(w, "W ") {
			return true
		}
	}
	return false
}

// indent indents a YAML snippet by two spaces.
func indent(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i, l := range lines {
		lines[i] = "  " + l
	}
	return strings.Join(lines, "\n") + "\n"
}

// assertLines compares problem lines with wanted ones (a want ending in
// "..." is a prefix), in order.
func assertLines(t *testing.T, got, want []string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d problems, want %d:\n  %s", len(got), len(want), strings.Join(got, "\n  "))
	}
	for i, w := range want {
		ok := got[i] == w
		if p, prefix := strings.CutSuffix(w, "..."); prefix {
			ok = strings.HasPrefix(got[i], p)
		}
		if !ok {
			t.Errorf("problem %d:\n got: %s\nwant: %s", i, got[i], w)
		}
	}
}

func TestValidateVirtualService(t *testing.T) {
	runValidation(t, VirtualService, []vcase{
		{name: "valid weighted split", spec: `
hosts: [reviews, "*.example.com"]
http:
- match: [{uri: {regex: "^/api/v[0-9]+"}, headers: {x-user: {prefix: a}}, queryParams: {q: {exact: "1"}}, port: 8080}]
  route:
  - {destination: {host: reviews, subset: v1, port: {number: 8080}}, weight: 90}
  - {destination: {host: reviews, subset: v2}, weight: 10}
  timeout: 1.5s
  retries: {attempts: 2, perTryTimeout: 500ms, retryOn: "5xx,503,reset"}
  headers: {request: {set: {x-a: "%HOSTNAME%"}, remove: [x-b]}, response: {add: {x-c: "100%%"}}}
  corsPolicy: {allowOrigins: [{exact: "https://a.example.com"}], allowMethods: [GET, POST], maxAge: 24h}
  fault: {delay: {fixedDelay: 5s, percentage: {value: 0.5}}, abort: {httpStatus: 503, percentage: {value: 1}}}
  mirror: {host: reviews, subset: v3}
  mirrorPercentage: {value: 10}
tcp:
- match: [{port: 27017, destinationSubnets: [10.0.0.0/8]}]
  route: [{destination: {host: mongo.db.svc.cluster.local}}]
`},
		{name: "hosts required", spec: "http: [{route: [{destination: {host: a}}]}]\n", want: []string{
			"spec.hosts: at least one host is required (delegate virtual services without hosts are not supported by weft)"}},
		{name: "invalid host", spec: "hosts: [a_b.example.com, \"*\"]\nhttp: [{route: [{destination: {host: a}}]}]\n", want: []string{
			`spec.hosts[0]: domain name "a_b.example.com" is invalid (label "a_b" is not a DNS label)`,
			`spec.hosts[1]: the wildcard host "*" is only allowed in a virtual service bound to gateways (not the mesh)`}},
		{name: "wildcard host for a gateway", spec: "hosts: [\"*\"]\ngateways: [istio-system/gw]\nhttp: [{route: [{destination: {host: a}}]}]\n"},
		{name: "IP host tolerated", spec: "hosts: [10.0.0.1]\nhttp: [{route: [{destination: {host: a}}]}]\n"},
		{name: "duplicate hosts", spec: "hosts: [a.example.com, \"*.example.com\"]\nhttp: [{route: [{destination: {host: a}}]}]\n", want: []string{
			"spec.hosts[1]: duplicate hosts in virtual service: a.example.com and *.example.com"}},
		{name: "gateway references", spec: "hosts: [a]\ngateways: [mesh, gw.istio-system, bad/Name_x, /x]\nhttp: [{route: [{destination: {host: a}}]}]\n", want: []string{
			`W spec.gateways[1]: legacy gateway name format "gw.istio-system"; prefer namespace/name: "istio-system/gw"`,
			`spec.gateways[2]: invalid gateway name "Name_x"`,
			"spec.gateways[3]: the namespace and the gateway name cannot be empty"}},
		{name: "no routes", spec: "hosts: [a]\n", want: []string{"spec: http, tcp or tls must be provided in a virtual service"}},
		{name: "destination host required", spec: "hosts: [a]\nhttp: [{route: [{destination: {subset: v1}}]}]\n", want: []string{
			"spec.http[0].route[0].destination.host: destination host is required"}},
		{name: "destination required and port range", spec: "hosts: [a]\nhttp: [{route: [{weight: 100}, {destination: {host: \"*\", port: {number: 70000}}}]}]\n", want: []string{
			"spec.http[0].route[0].destination: destination is required",
			`spec.http[0].route[1].destination.host: "*" is not a valid destination host`,
			"spec.http[0].route[1].destination.port.number: port number 70000 must be in the range 1..65535"}},
		{name: "weights all zero", spec: "hosts: [a]\nhttp: [{route: [{destination: {host: a}}, {destination: {host: b}}]}]\n", want: []string{
			"spec.http[0].route: the total weight of the destinations is 0: set the weight of at least one destination"}},
		{name: "negative weight", spec: "hosts: [a]\nhttp: [{route: [{destination: {host: a}, weight: -10}, {destination: {host: b}, weight: 110}]}]\n", want: []string{
			"spec.http[0].route[0].weight: weight -10 must not be negative",
			"W spec.http[0].route: the weights sum to 110, not 100: they are used as relative proportions (weight/110)"}},
		{name: "weights not summing to 100 are a warning", spec: "hosts: [a]\nhttp: [{route: [{destination: {host: a}, weight: 1}, {destination: {host: b}, weight: 3}]}]\n", want: []string{
			"W spec.http[0].route: the weights sum to 4, not 100: they are used as relative proportions (weight/4)"}},
		{name: "single destination weight is ignored", spec: "hosts: [a]\nhttp: [{route: [{destination: {host: a}, weight: 50}]}]\n"},
		{name: "bad regex", spec: "hosts: [a]\nhttp: [{match: [{uri: {regex: \"(a\"}, headers: {x-b: {regex: \"\"}}}], route: [{destination: {host: a}}]}]\n", want: []string{
			"spec.http[0].match[0].headers[\"x-b\"].regex: a regex match must not be empty",
			"spec.http[0].match[0].uri.regex: error parsing regexp: missing closing ): `(a`; Istio uses RE2 regular expressions..."}},
		{name: "PCRE lookahead is not RE2", spec: "hosts: [a]\nhttp: [{match: [{queryParams: {id: {regex: \"^(?!admin)\"}}}], route: [{destination: {host: a}}]}]\n", want: []string{
			"spec.http[0].match[0].queryParams[\"id\"].regex: error parsing regexp: invalid or unsupported Perl syntax: `(?!`..."}},
		{name: "empty prefix", spec: "hosts: [a]\nhttp: [{match: [{uri: {prefix: \"\"}, method: {prefix: \"\"}}], route: [{destination: {host: a}}]}]\n", want: []string{
			"spec.http[0].match[0].method.prefix: a prefix match must not be empty"}},
		{name: "bad header names", spec: "hosts: [a]\nhttp: [{match: [{headers: {\"x y\": {exact: a}}, withoutHeaders: {x-z: {regex: \"*\"}}}], route: [{destination: {host: a}}]}]\n", want: []string{
			`spec.http[0].match[0].headers["x y"]: "x y" is not a valid header name`}},
		{name: "JWT claim routing needs a gateway", spec: "hosts: [a]\nhttp: [{match: [{headers: {\"@request.auth.claims.group\": {exact: a}}}], route: [{destination: {host: a}}]}]\n", want: []string{
			`spec.http[0].match[0].headers["@request.auth.claims.group"]: JWT claim based routing (@request.auth.claims.group) is only supported for gateways`}},
		{name: "durations", spec: "hosts: [a]\nhttp: [{route: [{destination: {host: a}}], timeout: 500us, retries: {attempts: 1, perTryTimeout: 1.0005s}}]\n", want: []string{
			"spec.http[0].retries.perTryTimeout: duration 1.0005s: only whole milliseconds are supported",
			"spec.http[0].timeout: duration 500µs must be at least 1ms"}},
		{name: "route, redirect and directResponse are exclusive", spec: "hosts: [a]\nhttp: [{route: [{destination: {host: a}}], redirect: {uri: /b}, directResponse: {status: 200}}]\n", want: []string{
			"spec.http[0]: an http route may have only one of route, redirect and directResponse"}},
		{name: "an action is required", spec: "hosts: [a]\nhttp: [{match: [{uri: {exact: /}}]}]\n", want: []string{
			"spec.http[0]: an http route needs one of route, redirect or directResponse"}},
		{name: "redirect with rewrite and fault", spec: "hosts: [a]\nhttp: [{redirect: {uri: /b, redirectCode: 200, scheme: ftp}, rewrite: {uri: /c}, fault: {abort: {httpStatus: 500}}}]\n", want: []string{
			"spec.http[0].fault: fault injection needs a route (not a redirect or directResponse)",
			"spec.http[0].rewrite: rewrite needs a route (not a redirect or directResponse)",
			"spec.http[0].redirect.redirectCode: 200 is not a valid redirect code: it must be 3xx",
			`spec.http[0].redirect.scheme: invalid redirect scheme "ftp": it must be http or https`}},
		{name: "empty redirect", spec: "hosts: [a]\nhttp: [{redirect: {redirectCode: 301}}]\n", want: []string{
			"spec.http[0].redirect: a redirect must specify uri, authority, scheme, port or derivePort"}},
		{name: "direct response status", spec: "hosts: [a]\nhttp: [{directResponse: {status: 700}}]\n", want: []string{
			"spec.http[0].directResponse.status: HTTP status 700 is not in the range 200..599"}},
		{name: "rewrite rules", spec: "hosts: [a]\nhttp: [{route: [{destination: {host: a}}], rewrite: {uri: /x, uriRegexRewrite: {match: \"[\", rewrite: /y}}}, {route: [{destination: {host: a}}], rewrite: {}}]\n", want: []string{
			"spec.http[0].rewrite: a rewrite may have only one of uri and uriRegexRewrite",
			"spec.http[0].rewrite.uriRegexRewrite.match: error parsing regexp: missing closing ]: `[`...",
			"spec.http[1].rewrite: a rewrite must specify uri, uriRegexRewrite or authority",
			"W spec.http[1]: this rule is never used: rule 0 before it has no match and takes all traffic"}},
		{name: "authority rewritten twice", spec: "hosts: [a]\nhttp: [{route: [{destination: {host: a}}], rewrite: {authority: b}, headers: {request: {set: {\":authority\": c}}}}]\n", want: []string{
			`spec.http[0].headers.request.set[":authority"]: the authority is set more than once: have "b", setting "c"`}},
		{name: "header operations", spec: "hosts: [a]\nhttp: [{route: [{destination: {host: a}, headers: {response: {set: {host: x}}}}], headers: {request: {add: {x-a: \"50%\"}, remove: [\":path\"]}}}]\n", want: []string{
			`spec.http[0].headers.request.add["x-a"]: header value "50%": a '%' must be written %% or open a %COMMAND% such as %HOSTNAME%`,
			`spec.http[0].headers.request.remove[0]: invalid header ":path": pseudo-headers (":" prefix) cannot be changed`,
			`spec.http[0].route[0].headers.response.set["host"]: invalid header "host": the Host header cannot be changed here`}},
		{name: "retries", spec: "hosts: [a]\nhttp: [{route: [{destination: {host: a}}], retries: {attempts: 0, retryOn: \"5xx,sometimes\"}}]\n", want: []string{
			"spec.http[0].retries.attempts: a retry policy is configured while attempts is 0 (retries disabled)",
			`spec.http[0].retries.retryOn: "sometimes" is not a valid retryOn policy`}},
		{name: "fault", spec: "hosts: [a]\nhttp: [{route: [{destination: {host: a}}], fault: {abort: {grpcStatus: NOPE, percentage: {value: 101}}, delay: {exponentialDelay: 1s}}}]\n", want: []string{
			"spec.http[0].fault.abort.percentage.value: percentage 101 is neither 0 nor in the range 0.0001..100",
			`spec.http[0].fault.abort.grpcStatus: gRPC status "NOPE" is not a status code name such as NOT_FOUND or UNAVAILABLE`,
			"spec.http[0].fault.delay.exponentialDelay: exponentialDelay is not supported"}},
		{name: "empty fault", spec: "hosts: [a]\nhttp: [{route: [{destination: {host: a}}], fault: {}}]\n", want: []string{
			"spec.http[0].fault: fault injection needs an abort and/or a delay"}},
		{name: "mirrors", spec: "hosts: [a]\nhttp: [{route: [{destination: {host: a}}], mirror: {host: b}, mirrors: [{destination: {host: c}, percentage: {value: 150}}], mirrorPercentage: {value: -1}}]\n", want: []string{
			"spec.http[0].mirrors: an http route cannot have both mirror and mirrors",
			"spec.http[0].mirrorPercentage.value: mirrorPercentage must be in the range 0..100 (it is -1)",
			"spec.http[0].mirrors[0].percentage.value: a mirror percentage must be in the range 0..100 (it is 150)"}},
		{name: "cors", spec: "hosts: [a]\nhttp: [{route: [{destination: {host: a}}], corsPolicy: {allowOrigins: [{prefix: \"\"}], allowMethods: [FETCH], allowHeaders: [\"*\", \"bad header\"], maxAge: 1.5s}}]\n", want: []string{
			"spec.http[0].corsPolicy.allowOrigins[0]: an allowed origin needs a non-empty exact, prefix or regex",
			`spec.http[0].corsPolicy.allowMethods[0]: "FETCH" is not a supported HTTP method`,
			`spec.http[0].corsPolicy.allowHeaders[1]: "bad header" is not a valid header name`,
			"spec.http[0].corsPolicy.maxAge: maxAge is accurate only to seconds"}},
		{name: "delegation is not supported", spec: "hosts: [a]\nhttp: [{delegate: {name: b, namespace: c}}]\n", want: []string{
			"spec.http[0].delegate: virtual service delegation is not supported by weft"}},
		{name: "unreachable rules", spec: "hosts: [a]\nhttp: [{match: [{uri: {prefix: /a}}], route: [{destination: {host: a}}]}, {match: [{uri: {prefix: /a}, name: dup}], route: [{destination: {host: b}}]}]\n", want: []string{
			"W spec.http[1].match[0]: this match is never used: rule 0 has the same match",
			"W spec.http[1]: this rule is never used: all its matches are used by earlier rules"}},
		{name: "tls routes", spec: "hosts: [a.example.com]\ntls:\n- match: [{sniHosts: [b.example.com], port: 0}]\n  route: [{destination: {host: a}}]\n- match: [{sniHosts: [10.0.0.1]}]\n  route: [{destination: {host: a}}]\n- match: []\n", want: []string{
			`spec.tls[0].match[0].sniHosts[0]: SNI host "b.example.com" is not a subset of any of the virtual service hosts [a.example.com]`,
			`W spec.tls[1].match[0].sniHosts[0]: an IP address ("10.0.0.1") as SNI goes against the SNI specification; most clients do not send it`,
			"spec.tls[2].match: a tls route needs at least one match",
			"spec.tls[2].route: a tls route needs a route"}},
		{name: "tcp routes", spec: "hosts: [a]\ntcp: [{match: [{destinationSubnets: [10.0.0.0/33], sourceLabels: {\"bad key!\": a}}]}]\n", want: []string{
			`spec.tcp[0].match[0].destinationSubnets[0]: "10.0.0.0/33" is not a valid CIDR block`,
			`spec.tcp[0].match[0].sourceLabels["bad key!"]: invalid label key "bad key!"`,
			"spec.tcp[0].route: a tcp route needs a route"}},
		{name: "exportTo", spec: "hosts: [a]\nexportTo: [\"*\", \".\", \"~\", \"Bad_NS\", \".\"]\nhttp: [{route: [{destination: {host: a}}]}]\n", want: []string{
			`spec.exportTo[2]: "~" (visible to no one) is only allowed in a ServiceEntry`,
			`spec.exportTo[3]: "Bad_NS" is not a namespace, "." or "*"`,
			`spec.exportTo[4]: duplicate entry "." in exportTo`,
			`spec.exportTo: exportTo cannot combine "*" (public) with other entries`,
			`spec.exportTo: exportTo cannot combine "~" (no one) with other entries`}},
	})
}

func TestValidateDestinationRule(t *testing.T) {
	runValidation(t, DestinationRule, []vcase{
		{name: "valid", spec: `
host: reviews
trafficPolicy:
  loadBalancer: {consistentHash: {httpHeaderName: x-user, maglev: {tableSize: 65537}}}
  connectionPool: {tcp: {maxConnections: 10, tcpKeepalive: {time: 7200s}}, http: {h2UpgradePolicy: UPGRADE}}
  outlierDetection: {consecutive5xxErrors: 5, interval: 10s, baseEjectionTime: 30s, maxEjectionPercent: 50}
  tls: {mode: ISTIO_MUTUAL}
  portLevelSettings: [{port: {number: 8080}, loadBalancer: {simple: ROUND_ROBIN}}]
subsets:
- {name: v1, labels: {version: v1}}
- {name: v2, labels: {version: v2}, trafficPolicy: {loadBalancer: {consistentHash: {useSourceIp: true, ringHash: {minimumRingSize: 1024}}}}}
`},
		{name: "host required", spec: "subsets: [{name: v1}]\n", want: []string{"spec.host: host is required"}},
		{name: "subsets", spec: "host: a\nsubsets: [{name: v1}, {name: v1}, {name: V_2}, {labels: {version: \"not valid!\"}}]\n", want: []string{
			`spec.subsets[1].name: duplicate subset name "v1"`,
			`spec.subsets[2].name: invalid subset name "V_2": it must be a DNS label`,
			"spec.subsets[3].name: a subset needs a name",
			`spec.subsets[3].labels["version"]: invalid label value "not valid!"...`}},
		{name: "empty traffic policy", spec: "host: a\ntrafficPolicy: {}\n", want: []string{"spec.trafficPolicy: a traffic policy must set at least one field"}},
		{name: "consistent hash", spec: "host: a\ntrafficPolicy: {loadBalancer: {consistentHash: {httpCookie: {ttl: -1s}, maglev: {tableSize: 100}}}}\n", want: []string{
			"spec.trafficPolicy.loadBalancer.consistentHash.httpCookie.name: a hash cookie needs a name",
			"spec.trafficPolicy.loadBalancer.consistentHash.httpCookie.ttl: duration -1s must not be negative",
			"spec.trafficPolicy.loadBalancer.consistentHash.maglev.tableSize: tableSize 100 must be a prime number"}},
		{name: "consistent hash without a key", spec: "host: a\ntrafficPolicy: {loadBalancer: {consistentHash: {ringHash: {minimumRingSize: 64}}}}\n", want: []string{
			"W spec.trafficPolicy.loadBalancer.consistentHash: consistentHash without a hash key...",
		}},
		{name: "deprecated minimumRingSize with an algorithm", spec: "host: a\ntrafficPolicy: {loadBalancer: {consistentHash: {httpQueryParameterName: q, minimumRingSize: 10, maglev: {tableSize: 0}}}}\n", want: []string{
			"W spec.trafficPolicy.loadBalancer.consistentHash.minimumRingSize: minimumRingSize is deprecated: use ringHash.minimumRingSize",
			"spec.trafficPolicy.loadBalancer.consistentHash.minimumRingSize: only one of minimumRingSize and ringHash/maglev can be set",
			"spec.trafficPolicy.loadBalancer.consistentHash.maglev.tableSize: tableSize must be set for maglev"}},
		{name: "locality", spec: "host: a\ntrafficPolicy:\n  loadBalancer: {localityLbSetting: {distribute: [{from: us-west/*, to: {us-west/zone1: 80, us-east/*: 30}}]}}\n", want: []string{
			"spec.trafficPolicy.loadBalancer.localityLbSetting.distribute[0].to: the locality weights sum to 110, not 100"}},
		{name: "locality failover", spec: "host: a\ntrafficPolicy:\n  loadBalancer: {localityLbSetting: {failover: [{from: us-east, to: us-east}, {from: us-east/a, to: eu}]}}\n", want: []string{
			"W spec.trafficPolicy.loadBalancer.localityLbSetting: locality failover needs an outlierDetection policy to take effect",
			"spec.trafficPolicy.loadBalancer.localityLbSetting.failover[0]: failover must be between different regions",
			"spec.trafficPolicy.loadBalancer.localityLbSetting.failover[1]: failover names regions only (no zone or subzone)"}},
		{name: "connection pool", spec: "host: a\ntrafficPolicy: {connectionPool: {tcp: {maxConnections: -1, connectTimeout: 0s}, http: {http2MaxRequests: -5, h2UpgradePolicy: UPGRADE, useClientProtocol: true}}}\n", want: []string{
			"spec.trafficPolicy.connectionPool.http.http2MaxRequests: http2MaxRequests must not be negative",
			"spec.trafficPolicy.connectionPool.http.useClientProtocol: useClientProtocol must not be true when h2UpgradePolicy is UPGRADE",
			"spec.trafficPolicy.connectionPool.tcp.maxConnections: maxConnections must not be negative",
			"spec.trafficPolicy.connectionPool.tcp.connectTimeout: duration 0s must be at least 1ms"}},
		{name: "empty connection pool", spec: "host: a\ntrafficPolicy: {connectionPool: {}}\n", want: []string{
			"spec.trafficPolicy.connectionPool: a connection pool must set http or tcp"}},
		{name: "outlier detection", spec: "host: a\ntrafficPolicy: {outlierDetection: {consecutiveErrors: 5, consecutiveLocalOriginFailures: 3, maxEjectionPercent: 120, interval: 0.5ms}}\n", want: []string{
			"spec.trafficPolicy.outlierDetection.interval: duration 500µs must be at least 1ms",
			"W spec.trafficPolicy.outlierDetection.consecutiveErrors: consecutiveErrors is deprecated: use consecutiveGatewayErrors or consecutive5xxErrors",
			"spec.trafficPolicy.outlierDetection.consecutiveLocalOriginFailures: consecutiveLocalOriginFailures needs splitExternalLocalOriginErrors: true",
			"spec.trafficPolicy.outlierDetection.maxEjectionPercent: maxEjectionPercent 120 is not in the range 0..100"}},
		{name: "tls", spec: "host: a\ntrafficPolicy: {tls: {mode: MUTUAL}}\nsubsets: [{name: v1, trafficPolicy: {tls: {mode: SIMPLE, credentialName: c, caCertificates: /ca.pem}}}]\n", want: []string{
			"spec.trafficPolicy.tls.clientCertificate: MUTUAL TLS needs a client certificate (or credentialName)",
			"spec.trafficPolicy.tls.privateKey: MUTUAL TLS needs a private key (or credentialName)",
			"spec.subsets[0].trafficPolicy.tls.credentialName: clientCertificate, privateKey, caCertificates and caCrl cannot be set with credentialName"}},
		{name: "port level settings", spec: "host: a\ntrafficPolicy: {portLevelSettings: [{loadBalancer: {simple: RANDOM}}, {port: {number: 80}}]}\n", want: []string{
			"spec.trafficPolicy.portLevelSettings[0].port: a port traffic policy needs a port",
			"spec.trafficPolicy.portLevelSettings[1]: a port traffic policy must set at least one field"}},
		{name: "workload selector", spec: "host: a\nworkloadSelector: {matchLabels: {app: \"*\"}}\nexportTo: [\"*\"]\n", want: []string{
			`spec.workloadSelector.matchLabels["app"]: a wildcard is not supported in a selector: "app=*"`,
			"spec.exportTo: a destination rule with a workload selector cannot be exported beyond its namespace"}},
	})
}

func TestValidateGateway(t *testing.T) {
	runValidation(t, Gateway, []vcase{
		{name: "valid", spec: `
selector: {istio: ingressgateway}
servers:
- port: {number: 443, name: https, protocol: HTTPS}
  hosts: [bookinfo.example.com, "ns1/*.example.org"]
  tls: {mode: SIMPLE, credentialName: bookinfo-cert}
- port: {number: 80, name: http, protocol: HTTP}
  hosts: ["*"]
  tls: {httpsRedirect: true}
- port: {number: 15443, name: tls, protocol: TLS}
  hosts: ["*.local"]
  tls: {mode: AUTO_PASSTHROUGH}
`},
		{name: "servers required", spec: "selector: {app: gw}\n", want: []string{"spec.servers: a gateway needs at least one server"}},
		{name: "server port", spec: "servers: [{port: {number: 0, protocol: FTP}, hosts: [a.example.com]}]\n", want: []string{
			`spec.servers[0].port.protocol: invalid protocol "FTP": use HTTP, HTTPS, HTTP2, GRPC, GRPC-WEB, TCP, TLS, MONGO, REDIS or MYSQL`,
			"spec.servers[0].port.number: port number 0 must be in the range 1..65535",
			"spec.servers[0].port.name: a server port needs a name"}},
		{name: "hosts", spec: "servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: [\"ns/short\", \"Bad_NS/a.example.com\", \"*/a*.example.com\"]}, {port: {number: 81, name: h2, protocol: HTTP}}]\n", want: []string{
			`spec.servers[0].hosts[0]: short names ("short") are not allowed here: write a fully qualified name`,
			`spec.servers[0].hosts[1]: invalid namespace "Bad_NS"`,
			`spec.servers[0].hosts[2]: domain name "a*.example.com" is invalid (label "a*" is not a DNS label)`,
			`spec.servers[0].hosts[2]: partial wildcard "a*.example.com" is not allowed`,
			"spec.servers[1].hosts: a server needs at least one host"}},
		{name: "TLS required for HTTPS", spec: "servers: [{port: {number: 443, name: https, protocol: HTTPS}, hosts: [a.example.com]}]\n", want: []string{
			"spec.servers[0].tls: a server with protocol HTTPS needs TLS settings"}},
		{name: "TLS on plain HTTP", spec: "servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: [a.example.com], tls: {mode: SIMPLE, serverCertificate: /c, privateKey: /k}}]\n", want: []string{
			"spec.servers[0].tls: a plain-text HTTP server can only have tls.httpsRedirect"}},
		{name: "TLS files", spec: "servers: [{port: {number: 443, name: https, protocol: HTTPS}, hosts: [a.example.com], tls: {mode: MUTUAL, serverCertificate: /c}}]\n", want: []string{
			"spec.servers[0].tls.privateKey: MUTUAL TLS needs a private key (or credentialName)",
			"spec.servers[0].tls.caCertificates: MUTUAL TLS needs a client CA bundle (or credentialName)"}},
		{name: "ISTIO_MUTUAL takes no files", spec: "servers: [{port: {number: 443, name: https, protocol: HTTPS}, hosts: [a.example.com], tls: {mode: ISTIO_MUTUAL, credentialName: x}}]\n", want: []string{
			"spec.servers[0].tls.credentialName: ISTIO_MUTUAL TLS cannot have credentialName"}},
		{name: "duplicate port names", spec: "servers:\n- {port: {number: 80, name: web, protocol: HTTP}, hosts: [a.example.com]}\n- {port: {number: 81, name: web, protocol: TCP}, hosts: [b.example.com], tls: {httpsRedirect: true}}\n", want: []string{
			"spec.servers[1].tls: a server with protocol TCP cannot have TLS settings",
			`spec.servers[1].port.name: server port names must be unique: "web" is used twice`,
			"W spec.servers[1].tls.httpsRedirect: httpsRedirect only applies to HTTP servers"}},
		{name: "bind", spec: "servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: [a.example.com], bind: not-an-ip}]\n", want: []string{
			`spec.servers[0].bind: "not-an-ip" is not a valid IP address`}},
	})
}

func TestValidateGatewayName(t *testing.T) {
	doc := "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: a.b}\nspec:\n  servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: [a.example.com]}]\n"
	items, _ := decodeFile("t.yaml", []byte(doc))
	if len(items) != 1 || len(items[0].errs) != 1 || items[0].errs[0].Error() != `t.yaml:3 (document 0): Gateway default/a.b: metadata.name: invalid gateway name "a.b": it must be a DNS label (no dots)` {
		t.Fatalf("errors = %v", items[0].errs)
	}
}

func TestValidateServiceEntry(t *testing.T) {
	runValidation(t, ServiceEntry, []vcase{
		{name: "valid STATIC", spec: "hosts: [a.example.com]\naddresses: [240.0.0.1, 10.1.0.0/16]\nports: [{number: 80, name: http, protocol: HTTP, targetPort: 8080}]\nresolution: STATIC\nendpoints: [{address: 10.0.0.1, ports: {http: 9080}}, {address: \"unix:///var/run/a.sock\"}]\n"},
		{name: "valid DNS", spec: "hosts: [api.example.com]\nports: [{number: 443, name: tls, protocol: TLS}]\nresolution: DNS\nlocation: MESH_EXTERNAL\n"},
		{name: "hosts", spec: "hosts: [\"*\", \"a*.example.com\"]\nresolution: NONE\n", want: []string{
			`spec.hosts[0]: "*" is not a valid service entry host`,
			`spec.hosts[1]: domain name "a*.example.com" is invalid (label "a*" is not a DNS label)`,
			`W spec.hosts[1]: partial wildcard "a*.example.com" is not allowed`}},
		{name: "no hosts", spec: "resolution: NONE\n", want: []string{"spec.hosts: a service entry needs at least one host"}},
		{name: "ports", spec: "hosts: [a.example.com]\nports: [{number: 80, name: http, protocol: HTTP}, {number: 80, name: http, protocol: SCTP}, {number: 0, name: Bad_Name}]\nresolution: NONE\n", want: []string{
			`spec.ports[1].name: port name "http" is already defined`,
			"spec.ports[1].number: port 80 is already defined",
			`spec.ports[1].protocol: unsupported protocol "SCTP"...`,
			`spec.ports[2].name: invalid port name "Bad_Name": it must be a DNS label`,
			"spec.ports[2].number: port number 0 must be in the range 1..65535"}},
		{name: "CIDR needs NONE or STATIC", spec: "hosts: [a.example.com]\naddresses: [10.0.0.0/8, \"300.1.1.1\"]\nresolution: DNS\n", want: []string{
			`spec.addresses[1]: "300.1.1.1" is not a valid IP address`,
			"spec.addresses: CIDR addresses are allowed only with resolution NONE or STATIC"}},
		{name: "STATIC needs IP endpoints", spec: "hosts: [a.example.com]\nports: [{number: 80, name: http, protocol: HTTP}]\nresolution: STATIC\nendpoints: [{address: db.example.com, ports: {grpc: 90}}]\n", want: []string{
			`spec.endpoints[0].address: endpoint address "db.example.com" is not an IP address (resolution STATIC needs IP addresses)`,
			`spec.endpoints[0].ports["grpc"]: endpoint port "grpc" is not a port name of the service entry`}},
		{name: "STATIC without endpoints", spec: "hosts: [a.example.com]\nresolution: STATIC\n", want: []string{
			"W spec.endpoints: resolution STATIC with neither endpoints nor a workloadSelector: the service has no endpoints"}},
		{name: "STATIC with a workload selector", spec: "hosts: [a.example.com]\nresolution: STATIC\nworkloadSelector: {labels: {app: a}}\n"},
		{name: "selector and endpoints", spec: "hosts: [a.example.com]\nresolution: STATIC\nworkloadSelector: {labels: {app: a}}\nendpoints: [{address: 10.0.0.1}]\n", want: []string{
			"spec.workloadSelector: only one of workloadSelector and endpoints may be set"}},
		{name: "DNS needs FQDN hosts without endpoints", spec: "hosts: [\"*.example.com\"]\nresolution: DNS\nworkloadSelector: {labels: {app: a}}\n", want: []string{
			`spec.hosts[0]: with resolution DNS and no endpoints, hosts are resolved: "*.example.com" must be a fully qualified name`,
			"W spec.workloadSelector: workloadSelector has no effect with resolution DNS"}},
		{name: "DNS endpoints", spec: "hosts: [a.example.com]\nresolution: DNS_ROUND_ROBIN\nendpoints: [{address: \"bad host\"}, {address: 10.0.0.1}]\n", want: []string{
			"spec.endpoints: resolution DNS_ROUND_ROBIN takes 0 or 1 endpoint",
			`spec.endpoints[0].address: endpoint address "bad host" is not a valid domain name or IP address`}},
		{name: "NONE takes no endpoints", spec: "hosts: [a.example.com]\nresolution: NONE\nendpoints: [{address: 10.0.0.1}]\n", want: []string{
			"spec.endpoints: resolution NONE takes no endpoints"}},
		{name: "several hosts need HTTP or TLS", spec: "hosts: [a.example.com, b.example.com]\nports: [{number: 5432, name: pg, protocol: TCP}]\nresolution: DNS\n", want: []string{
			"spec.ports[0].protocol: several hosts need HTTP or TLS ports (plain TCP cannot tell the hosts apart) unless resolution is NONE"}},
		{name: "exportTo none", spec: "hosts: [a.example.com]\nresolution: NONE\nexportTo: [\"~\"]\n"},
	})
}

func TestValidateWorkloadEntry(t *testing.T) {
	runValidation(t, WorkloadEntry, []vcase{
		{name: "valid IP", spec: "address: 10.0.0.1\nports: {http: 8080}\nlabels: {app: a, version: v1}\nserviceAccount: a\n"},
		{name: "valid hostname", spec: "address: vm1.example.com\n"},
		{name: "address required", spec: "labels: {app: a}\n", want: []string{"spec.address: address is required"}},
		{name: "network without address", spec: "network: n1\n", want: []string{`W spec.address: address is unset, with network "n1"`}},
		{name: "bad address and ports", spec: "address: \"not valid\"\nports: {http: 70000, Bad_Name: 80}\nlabels: {\"a/b/c\": x}\n", want: []string{
			`spec.address: address "not valid" is not a valid domain name or IP address`,
			`spec.ports["Bad_Name"]: invalid port name "Bad_Name": it must be a DNS label`,
			`spec.ports["http"]: port number 70000 must be in the range 1..65535`,
			`spec.labels["a/b/c"]: invalid label key "a/b/c"`}},
		{name: "unix socket takes no ports", spec: "address: unix://relative\nports: {http: 80}\n", want: []string{
			`spec.address: "relative" is not an absolute path to a file`,
			"spec.ports: a unix socket endpoint takes no ports"}},
	})
}

func TestValidateSidecar(t *testing.T) {
	runValidation(t, Sidecar, []vcase{
		{name: "valid", spec: `
workloadSelector: {labels: {app: reviews}}
ingress:
- port: {number: 9080, protocol: HTTP, name: http}
  defaultEndpoint: 127.0.0.1:8080
egress:
- port: {number: 3306, protocol: MYSQL, name: mysql}
  hosts: ["*/mysql.db.svc.cluster.local"]
- hosts: ["./*", "istio-system/*", "~/*"]
outboundTrafficPolicy: {mode: ALLOW_ANY, egressProxy: {host: egress.example.com, port: {number: 3128}}}
`},
		{name: "empty", spec: "workloadSelector: {labels: {app: a}}\n", want: []string{
			"spec: empty sidecar configuration: set egress, ingress, outboundTrafficPolicy or inboundConnectionPool"}},
		{name: "egress hosts", spec: "egress: [{hosts: [reviews, \"*/reviews\", \"bad_ns/a.example.com\"]}]\n", want: []string{
			"spec.egress[0].hosts[0]: a host must be of the form namespace/dnsName",
			`spec.egress[0].hosts[1]: short names ("reviews") are not allowed here: write a fully qualified name`,
			`spec.egress[0].hosts[2]: invalid namespace "bad_ns"`}},
		{name: "catch-all egress listener placement", spec: "egress: [{hosts: [\"*/*\"]}, {port: {number: 80, protocol: HTTP}, hosts: [\"*/*\"]}, {port: {number: 80, protocol: HTTP}}]\n", want: []string{
			"spec.egress[0]: the egress listener without a port must be the last one",
			"spec.egress[2].port.number: ports of IP-bound listeners must be unique",
			"spec.egress[2].hosts: an egress listener needs at least one host"}},
		{name: "ingress", spec: "ingress:\n- port: {number: 9080, protocol: HTTP}\n  defaultEndpoint: 10.0.0.1:8080\n- port: {number: 9080, protocol: HTTP}\n  defaultEndpoint: \"127.0.0.1:x\"\n- defaultEndpoint: unix:///a.sock\n", want: []string{
			"spec.ingress[0].defaultEndpoint: defaultEndpoint must be 127.0.0.1:PORT, 0.0.0.0:PORT, [::1]:PORT, [::]:PORT, :PORT or unix:///path",
			"spec.ingress[1].port.number: ports of IP-bound listeners must be unique",
			`spec.ingress[1].defaultEndpoint: the defaultEndpoint port "x" is not a number`,
			"spec.ingress[2].port: an ingress listener needs a port"}},
		{name: "ingress tls", spec: "ingress: [{port: {number: 9443, protocol: HTTPS, name: https}, tls: {mode: ISTIO_MUTUAL, httpsRedirect: true}}]\n", want: []string{
			"spec.ingress[0].tls.httpsRedirect: httpsRedirect is not supported in a sidecar",
			"spec.ingress[0].tls.mode: mode ISTIO_MUTUAL is not allowed in sidecar ingress TLS"}},
		{name: "egress proxy needs ALLOW_ANY", spec: "outboundTrafficPolicy: {mode: REGISTRY_ONLY, egressProxy: {host: e.example.com, port: {number: 80}}}\n", want: []string{
			"spec.outboundTrafficPolicy.egressProxy: egressProxy can only be set with mode ALLOW_ANY"}},
		{name: "egress proxy port", spec: "outboundTrafficPolicy: {mode: ALLOW_ANY, egressProxy: {host: e.example.com}}\n", want: []string{
			"spec.outboundTrafficPolicy.egressProxy.port: egressProxy needs a port"}},
		{name: "unix socket egress", spec: "egress: [{port: {number: 0, protocol: HTTP}, bind: 127.0.0.1, hosts: [\"*/*\"]}]\n", want: []string{
			"spec.egress[0].bind: a listener with port 0 needs a unix:// bind address"}},
	})
}

// TestValidateMeta: Kubernetes metadata rules apply to every kind.
func TestValidateMeta(t *testing.T) {
	doc := `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: My_Entry
  namespace: Prod
  labels: {"app": "a b"}
  annotations: {"bad key!": x}
spec: {hosts: [a.example.com], resolution: NONE}
`
	items, _ := decodeFile("t.yaml", []byte(doc))
	var got []string
	for _, e := range items[0].errs {
		got = append(got, e.Error())
	}
	assertLines(t, got, []string{
		`t.yaml:4 (document 0): ServiceEntry Prod/My_Entry: metadata.name: invalid name "My_Entry"...`,
		`t.yaml:5 (document 0): ServiceEntry Prod/My_Entry: metadata.namespace: invalid namespace "Prod"...`,
		`t.yaml:6 (document 0): ServiceEntry Prod/My_Entry: metadata.labels["app"]: invalid label value "a b"...`,
		`t.yaml:7 (document 0): ServiceEntry Prod/My_Entry: metadata.annotations["bad key!"]: invalid annotation key "bad key!"`,
	})
}
