package registry

import (
	"testing"
)

// Each case is Istio YAML in, the rendered services (see render) and the
// problems out.
var fromConfigCases = []struct {
	name    string
	yaml    string
	opts    FileOptions
	want    string
	wantErr []wantErr
}{
	{
		name: "static: hosts, addresses, ports, inline endpoints, location, exportTo",
		yaml: `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: api, namespace: shop}
spec:
  hosts: [api.shop.internal, api-alias.shop.internal]
  addresses: [10.1.0.1, 10.2.0.0/16, 10.3.0.7/32, "2001:db8::1/128"]
  location: MESH_INTERNAL
  resolution: STATIC
  exportTo: [".", "billing"]
  ports:
  - {name: http-web, number: 80}
  - {name: grpc, number: 9090, targetPort: 19090}
  - {name: metrics, number: 9100, protocol: http}
  - {name: db, number: 5432}
  endpoints:
  - address: 10.0.0.2
    ports: {http-web: 8080}
    labels: {version: v2, security.istio.io/tlsMode: istio}
    network: net-a
    locality: eu/west-1/a
    weight: 3
  - address: 10.0.0.1
    serviceAccount: api-sa
    labels: {version: v1}
`,
		want: `
			api-alias.shop.internal shop STATIC internal addrs=10.1.0.1,10.2.0.0/16,10.3.0.7,2001:db8::1 exportTo=.,billing src=ServiceEntry shop/api
			  port http-web/80 HTTP
			  port grpc/9090 GRPC ->19090
			  port metrics/9100 HTTP
			  port db/5432 TCP
			  ep 10.0.0.1 ports=db:5432,grpc:19090,http-web:80,metrics:9100 labels=version=v1 tls=istio sa=api-sa ns=shop src=ServiceEntry shop/api
			  ep 10.0.0.2 ports=db:5432,grpc:19090,http-web:8080,metrics:9100 labels=security.istio.io/tlsMode=istio,topology.istio.io/network=net-a,topology.istio.io/subzone=a,topology.kubernetes.io/region=eu,topology.kubernetes.io/zone=west-1,version=v2 tls=istio net=net-a loc=eu/west-1/a w=3 ns=shop src=ServiceEntry shop/api
			api.shop.internal shop STATIC internal addrs=10.1.0.1,10.2.0.0/16,10.3.0.7,2001:db8::1 exportTo=.,billing src=ServiceEntry shop/api
			  port http-web/80 HTTP
			  port grpc/9090 GRPC ->19090
			  port metrics/9100 HTTP
			  port db/5432 TCP
			  ep 10.0.0.1 ports=db:5432,grpc:19090,http-web:80,metrics:9100 labels=version=v1 tls=istio sa=api-sa ns=shop src=ServiceEntry shop/api
			  ep 10.0.0.2 ports=db:5432,grpc:19090,http-web:8080,metrics:9100 labels=security.istio.io/tlsMode=istio,topology.istio.io/network=net-a,topology.istio.io/subzone=a,topology.kubernetes.io/region=eu,topology.kubernetes.io/zone=west-1,version=v2 tls=istio net=net-a loc=eu/west-1/a w=3 ns=shop src=ServiceEntry shop/api
		`,
	},
	{
		name: "resolutions: NONE passthrough, DNS_ROUND_ROBIN; location defaults to MESH_EXTERNAL",
		yaml: `
kind: ServiceEntry
metadata: {name: egress}
spec:
  hosts: ["*.googleapis.com"]
  ports: [{name: tls, number: 443, protocol: TLS, targetPort: 8443}]
---
kind: ServiceEntry
metadata: {name: rr}
spec:
  hosts: [rr.example.com]
  resolution: DNS_ROUND_ROBIN
  ports: [{name: https, number: 443}]
  endpoints: [{address: lb.example.com}]
`,
		want: `
			*.googleapis.com default NONE external src=ServiceEntry default/egress
			  port tls/443 TLS ->8443
			rr.example.com default DNS_ROUND_ROBIN external src=ServiceEntry default/rr
			  port https/443 HTTPS
			  ep lb.example.com ports=https:443 tls=disabled ns=default src=ServiceEntry default/rr
		`,
	},
	{
		name: "DNS without endpoints or selector: each host is its own endpoint, on the target port",
		yaml: `
kind: ServiceEntry
metadata: {name: ext}
spec:
  hosts: [a.example.com, b.example.com]
  resolution: DNS
  ports:
  - {name: http, number: 80, targetPort: 8080}
  - {name: tcp-raw, number: 7000}
`,
		want: `
			a.example.com default DNS external src=ServiceEntry default/ext
			  port http/80 HTTP ->8080
			  port tcp-raw/7000 TCP
			  ep a.example.com ports=http:8080,tcp-raw:7000 tls=disabled ns=default src=ServiceEntry default/ext
			b.example.com default DNS external src=ServiceEntry default/ext
			  port http/80 HTTP ->8080
			  port tcp-raw/7000 TCP
			  ep b.example.com ports=http:8080,tcp-raw:7000 tls=disabled ns=default src=ServiceEntry default/ext
		`,
	},
	{
		name: "DNS with a selector that selects nothing has no endpoints (no host fallback)",
		yaml: `
kind: ServiceEntry
metadata: {name: vm}
spec:
  hosts: [vm.example.com]
  resolution: DNS
  ports: [{name: http, number: 80}]
  workloadSelector: {labels: {app: nobody}}
`,
		want: `
			vm.example.com default DNS external src=ServiceEntry default/vm
			  port http/80 HTTP
		`,
	},
	{
		name: "workloadSelector: same namespace only, label subset, metadata labels win, ports, locality label, names, TLS",
		yaml: `
kind: ServiceEntry
metadata: {name: vms, namespace: prod}
spec:
  hosts: [vms.prod.internal]
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
  - {name: http, number: 80, targetPort: 8080}
  - {name: admin, number: 9000}
  workloadSelector: {labels: {app: vms}}
---
kind: WorkloadEntry
metadata: {name: vm-b, namespace: prod, labels: {version: v2}}
spec:
  address: 10.0.0.20
  labels: {app: vms, version: v1, istio-locality: us.east-1.c}
  ports: {http: 18080}
  serviceAccount: vm-sa
  network: vpc-1
  weight: 5
---
kind: WorkloadEntry
metadata: {name: vm-a, namespace: prod, annotations: {istio.io/autoRegistrationGroup: vm-group}}
spec:
  address: 10.0.0.10
  labels: {app: vms, security.istio.io/tlsMode: disabled}
  serviceAccount: vm-sa
---
kind: WorkloadEntry
metadata: {name: vm-c, namespace: prod}
spec:
  address: 10.0.0.30
  labels: {app: vms, service.istio.io/workload-name: legacy, topology.istio.io/network: labelled-net}
  network: vpc-2
  locality: ap/south
---
kind: WorkloadEntry
metadata: {name: other-app, namespace: prod}
spec:
  address: 10.0.0.40
  labels: {app: other}
---
kind: WorkloadEntry
metadata: {name: vm-elsewhere, namespace: dev}
spec:
  address: 10.0.0.50
  labels: {app: vms}
`,
		want: `
			vms.prod.internal prod STATIC internal src=ServiceEntry prod/vms
			  port http/80 HTTP ->8080
			  port admin/9000 TCP
			  ep 10.0.0.10 ports=admin:9000,http:8080 labels=app=vms,security.istio.io/tlsMode=disabled tls=disabled sa=vm-sa wl=vm-group ns=prod src=WorkloadEntry prod/vm-a
			  ep 10.0.0.20 ports=admin:9000,http:18080 labels=app=vms,istio-locality=us.east-1.c,topology.istio.io/network=vpc-1,topology.istio.io/subzone=c,topology.kubernetes.io/region=us,topology.kubernetes.io/zone=east-1,version=v2 tls=istio sa=vm-sa net=vpc-1 loc=us/east-1/c w=5 wl=vm-b ns=prod src=WorkloadEntry prod/vm-b
			  ep 10.0.0.30 ports=admin:9000,http:8080 labels=app=vms,service.istio.io/workload-name=legacy,topology.istio.io/network=labelled-net,topology.kubernetes.io/region=ap,topology.kubernetes.io/zone=south tls=disabled net=vpc-2 loc=ap/south wl=legacy ns=prod src=WorkloadEntry prod/vm-c
		`,
	},
	{
		name: "a WorkloadEntry with a hostname address serves DNS ServiceEntries only",
		yaml: `
kind: ServiceEntry
metadata: {name: static}
spec:
  hosts: [static.example.com]
  resolution: STATIC
  ports: [{name: http, number: 80}]
  workloadSelector: {labels: {app: db}}
---
kind: ServiceEntry
metadata: {name: dns}
spec:
  hosts: [dns.example.com]
  resolution: DNS
  ports: [{name: http, number: 80}]
  workloadSelector: {labels: {app: db}}
---
kind: WorkloadEntry
metadata: {name: db-host}
spec:
  address: db.internal.example.com
  labels: {app: db}
---
kind: WorkloadEntry
metadata: {name: db-ip}
spec:
  address: 192.168.1.1
  labels: {app: db}
`,
		want: `
			dns.example.com default DNS external src=ServiceEntry default/dns
			  port http/80 HTTP
			  ep 192.168.1.1 ports=http:80 labels=app=db tls=disabled wl=db-ip ns=default src=WorkloadEntry default/db-ip
			  ep db.internal.example.com ports=http:80 labels=app=db tls=disabled wl=db-host ns=default src=WorkloadEntry default/db-host
			static.example.com default STATIC external src=ServiceEntry default/static
			  port http/80 HTTP
			  ep 192.168.1.1 ports=http:80 labels=app=db tls=disabled wl=db-ip ns=default src=WorkloadEntry default/db-ip
		`,
		wantErr: []wantErr{
			{"WorkloadEntry default/db-host", "spec.address", true, "ServiceEntry default/static (resolution STATIC) selects it and ignores it"},
		},
	},
	{
		name: "an empty selector selects nothing; health-checked entries are not endpoints; selector beats inline endpoints",
		yaml: `
kind: ServiceEntry
metadata: {name: empty}
spec:
  hosts: [empty.example.com]
  resolution: STATIC
  ports: [{name: http, number: 80}]
  workloadSelector: {}
---
kind: ServiceEntry
metadata: {name: both}
spec:
  hosts: [both.example.com]
  resolution: STATIC
  ports: [{name: http, number: 80}]
  workloadSelector: {labels: {app: web}}
  endpoints: [{address: 10.9.9.9}]
---
kind: WorkloadEntry
metadata: {name: web-1}
spec: {address: 10.0.0.1, labels: {app: web}}
---
kind: WorkloadEntry
metadata: {name: web-2, annotations: {proxy.istio.io/health-checks-enabled: "true"}}
spec: {address: 10.0.0.2, labels: {app: web}}
`,
		want: `
			both.example.com default STATIC external src=ServiceEntry default/both
			  port http/80 HTTP
			  ep 10.0.0.1 ports=http:80 labels=app=web tls=disabled wl=web-1 ns=default src=WorkloadEntry default/web-1
			empty.example.com default STATIC external src=ServiceEntry default/empty
			  port http/80 HTTP
		`,
		wantErr: []wantErr{
			{"ServiceEntry default/both", "spec.endpoints", true, "endpoints are ignored when workloadSelector is set"},
			{"ServiceEntry default/empty", "spec.workloadSelector.labels", true, "selects no WorkloadEntry"},
			{"WorkloadEntry default/web-2", "metadata.annotations", true, "treats the entry as unhealthy"},
		},
	},
	{
		name: "endpoints sorted by address then port; unix socket endpoints have no port; cluster label",
		opts: FileOptions{ClusterID: "c1"},
		yaml: `
kind: ServiceEntry
metadata: {name: s}
spec:
  hosts: [s.example.com]
  resolution: STATIC
  ports: [{name: http, number: 80}]
  endpoints:
  - {address: 10.0.0.9}
  - {address: "unix:///var/run/s.sock"}
  - {address: 10.0.0.1, ports: {http: 9001}}
  - {address: 10.0.0.1, ports: {http: 9000}}
`,
		want: `
			s.example.com default STATIC external src=ServiceEntry default/s
			  port http/80 HTTP
			  ep 10.0.0.1 ports=http:9000 labels=topology.istio.io/cluster=c1 tls=disabled ns=default src=ServiceEntry default/s
			  ep 10.0.0.1 ports=http:9001 labels=topology.istio.io/cluster=c1 tls=disabled ns=default src=ServiceEntry default/s
			  ep 10.0.0.9 ports=http:80 labels=topology.istio.io/cluster=c1 tls=disabled ns=default src=ServiceEntry default/s
			  ep unix:///var/run/s.sock ports= labels=topology.istio.io/cluster=c1 tls=disabled ns=default src=ServiceEntry default/s
		`,
	},
	{
		name: "one host in two namespaces: two services, no conflict",
		yaml: `
kind: ServiceEntry
metadata: {name: a, namespace: ns1}
spec: {hosts: [x.example.com], ports: [{name: http, number: 80}]}
---
kind: ServiceEntry
metadata: {name: a, namespace: ns2}
spec: {hosts: [x.example.com], ports: [{name: http, number: 8080}]}
`,
		want: `
			x.example.com ns1 NONE external src=ServiceEntry ns1/a
			  port http/80 HTTP
			x.example.com ns2 NONE external src=ServiceEntry ns2/a
			  port http/8080 HTTP
		`,
	},
	{
		name: "duplicate host, same ports: the first by name wins, endpoints merge",
		yaml: `
kind: ServiceEntry
metadata: {name: b-second}
spec:
  hosts: [dup.example.com]
  resolution: STATIC
  ports: [{name: http, number: 80}]
  endpoints: [{address: 10.0.0.2}, {address: 10.0.0.1}]
---
kind: ServiceEntry
metadata: {name: a-first}
spec:
  hosts: [dup.example.com]
  resolution: STATIC
  ports: [{name: http, number: 80}]
  endpoints: [{address: 10.0.0.3}]
`,
		want: `
			dup.example.com default STATIC external src=ServiceEntry default/a-first
			  port http/80 HTTP
			  ep 10.0.0.1 ports=http:80 tls=disabled ns=default src=ServiceEntry default/b-second
			  ep 10.0.0.2 ports=http:80 tls=disabled ns=default src=ServiceEntry default/b-second
			  ep 10.0.0.3 ports=http:80 tls=disabled ns=default src=ServiceEntry default/a-first
		`,
		wantErr: []wantErr{
			{"ServiceEntry default/b-second", "spec.hosts[0]", true, `also declared by ServiceEntry default/a-first, which takes precedence (weft orders the ServiceEntries of a namespace by name, where Istio uses creation time); the ports are the same`},
		},
	},
	{
		name: "duplicate host, agreeing attributes, other ports: new port numbers are added",
		yaml: `
kind: ServiceEntry
metadata: {name: a}
spec:
  hosts: [dup.example.com]
  resolution: STATIC
  ports: [{name: http, number: 80}]
  endpoints: [{address: 10.0.0.1}]
---
kind: ServiceEntry
metadata: {name: b}
spec:
  hosts: [other.example.com, dup.example.com]
  resolution: STATIC
  ports: [{name: http, number: 80, targetPort: 8080}, {name: grpc, number: 90}]
  endpoints: [{address: 10.0.0.2}]
`,
		want: `
			dup.example.com default STATIC external src=ServiceEntry default/a
			  port http/80 HTTP
			  port grpc/90 GRPC
			  ep 10.0.0.1 ports=http:80 tls=disabled ns=default src=ServiceEntry default/a
			  ep 10.0.0.2 ports=grpc:90,http:8080 tls=disabled ns=default src=ServiceEntry default/b
			other.example.com default STATIC external src=ServiceEntry default/b
			  port http/80 HTTP ->8080
			  port grpc/90 GRPC
			  ep 10.0.0.2 ports=grpc:90,http:8080 tls=disabled ns=default src=ServiceEntry default/b
		`,
		wantErr: []wantErr{
			{"ServiceEntry default/b", "spec.hosts[1]", true, "the services merge: ports grpc/90 are added"},
		},
	},
	{
		name: "duplicate host, different resolution: the later is ignored but its endpoints join on shared port names, at their own port",
		yaml: `
kind: ServiceEntry
metadata: {name: a}
spec:
  hosts: [dup.example.com]
  resolution: DNS
  ports: [{name: http, number: 80}]
  endpoints: [{address: a.backend.example.com}]
---
kind: ServiceEntry
metadata: {name: b}
spec:
  hosts: [dup.example.com]
  resolution: STATIC
  ports: [{name: http, number: 8000, targetPort: 8001}, {name: tcp, number: 9000}]
  endpoints: [{address: 10.0.0.2}]
---
kind: ServiceEntry
metadata: {name: c}
spec:
  hosts: [dup.example.com]
  resolution: STATIC
  ports: [{name: other, number: 7000}]
  endpoints: [{address: 10.0.0.3}]
`,
		want: `
			dup.example.com default DNS external src=ServiceEntry default/a
			  port http/80 HTTP
			  ep 10.0.0.2 ports=http:8001,tcp:9000 tls=disabled ns=default src=ServiceEntry default/b
			  ep a.backend.example.com ports=http:80 tls=disabled ns=default src=ServiceEntry default/a
		`,
		wantErr: []wantErr{
			{"ServiceEntry default/b", "spec.hosts[0]", true, "this declaration is ignored (resolution STATIC differs from DNS"},
			{"ServiceEntry default/c", "spec.hosts[0]", true, "this declaration is ignored (resolution STATIC differs from DNS"},
		},
	},
	{
		name: "duplicate host, different exportTo or labels: ignored",
		yaml: `
kind: ServiceEntry
metadata: {name: a, labels: {team: x}}
spec: {hosts: [dup.example.com], ports: [{name: http, number: 80}]}
---
kind: ServiceEntry
metadata: {name: b}
spec: {hosts: [dup.example.com], ports: [{name: http, number: 81}]}
---
kind: ServiceEntry
metadata: {name: c, labels: {team: x}}
spec: {hosts: [dup.example.com], exportTo: ["."], ports: [{name: http, number: 82}]}
`,
		want: `
			dup.example.com default NONE external src=ServiceEntry default/a
			  port http/80 HTTP
		`,
		wantErr: []wantErr{
			{"ServiceEntry default/b", "spec.hosts[0]", true, "metadata labels {} differ from {team=x}"},
			{"ServiceEntry default/c", "spec.hosts[0]", true, "exportTo [.] differs from []"},
		},
	},
	{
		name: "rejected: DYNAMIC_DNS, wildcard DNS host without endpoints, wrong spec type; a repeated host is a warning",
		yaml: `
kind: ServiceEntry
metadata: {name: dyn}
spec: {hosts: ["*.dyn.example.com"], resolution: DYNAMIC_DNS, ports: [{name: http, number: 80}]}
---
kind: ServiceEntry
metadata: {name: wild}
spec: {hosts: [ok.example.com, "*.wild.example.com"], resolution: DNS, ports: [{name: http, number: 80}]}
---
kind: ServiceEntry
metadata: {name: twice}
spec: {hosts: [t.example.com, t.example.com], ports: [{name: tcp, number: 1}]}
`,
		want: `
			t.example.com default NONE external src=ServiceEntry default/twice
			  port tcp/1 TCP
		`,
		wantErr: []wantErr{
			{"ServiceEntry default/dyn", "spec.resolution", false, "DYNAMIC_DNS is not supported"},
			{"ServiceEntry default/twice", "spec.hosts[1]", true, "listed twice"},
			{"ServiceEntry default/wild", "spec.hosts[1]", false, "wildcard host"},
		},
	},
	{
		name: "other kinds are ignored",
		yaml: `
kind: VirtualService
metadata: {name: vs}
spec: {hosts: [x]}
`,
		want: "",
	},
}

func TestFromConfig(t *testing.T) {
	for _, tc := range fromConfigCases {
		t.Run(tc.name, func(t *testing.T) {
			svcs, errs := FromConfig(objects(t, tc.yaml), tc.opts)
			want := ""
			if tc.want != "" {
				want = dedent(tc.want)
			}
			if got := render(svcs); got != want {
				t.Errorf("services:\n--- got\n%s--- want\n%s", got, want)
			}
			checkErrors(t, errs, tc.wantErr)
		})
	}
}
