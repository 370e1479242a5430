package translate

// A small local stand-in for the configuration loader (internal/config) and
// the registry (internal/registry), written in parallel by other helpers:
// it reads a test input file of YAML documents into a snapshot and the
// proxies to generate for.
//
// Documents of Istio kinds (VirtualService, DestinationRule, Gateway,
// Sidecar) decode their spec with protojson into the istio.io/api types.
// Two test-only kinds describe the rest:
//
//	kind: MeshService   # a model.Service, as a registry would produce it
//	hostname: hello.default.svc.cluster.local
//	namespace: default
//	addresses: [10.96.0.10]
//	resolution: STATIC | DNS | DNS_ROUND_ROBIN | NONE
//	exportTo: ["."]
//	ports: [{name: http, number: 8080, protocol: HTTP, targetPort: 9080}]
//	endpoints: [{address: 10.0.0.1, labels: {version: v1}, locality: r/z, weight: 2,
//	             ports: {http: 9081}, workloadName: hello-1, namespace: default}]
//
//	kind: Proxy         # a proxy to generate resources for
//	id: sidecar~10.0.0.9~client.default~default.svc.cluster.local
//	labels: {app: client}
//	metadata: {GENERATOR: grpc}

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"testing"

	"go.yaml.in/yaml/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	mesh "istio.io/api/mesh/v1alpha1"
	networking "istio.io/api/networking/v1alpha3"
	security "istio.io/api/security/v1beta1"
	telemetry "istio.io/api/telemetry/v1alpha1"

	"github.com/weftmesh/weft/internal/config"
	"github.com/weftmesh/weft/internal/model"
)

// testInput is a decoded input file.
type testInput struct {
	snapshot *model.Snapshot
	proxies  []*model.Proxy
}

// testService is the YAML form of a model.Service.
type testService struct {
	Hostname     string   `json:"hostname"`
	Namespace    string   `json:"namespace"`
	Addresses    []string `json:"addresses"`
	Resolution   string   `json:"resolution"`
	MeshExternal bool     `json:"meshExternal"`
	ExportTo     []string `json:"exportTo"`
	Ports        []struct {
		Name       string `json:"name"`
		Number     uint32 `json:"number"`
		Protocol   string `json:"protocol"`
		TargetPort uint32 `json:"targetPort"`
	} `json:"ports"`
	Endpoints []struct {
		Address      string            `json:"address"`
		Ports        map[string]uint32 `json:"ports"`
		Labels       map[string]string `json:"labels"`
		Locality     string            `json:"locality"`
		Weight       uint32            `json:"weight"`
		WorkloadName string            `json:"workloadName"`
		Namespace    string            `json:"namespace"`
		// ServiceAccount and TLSMode as the registry derives them
		// (WorkloadEntry serviceAccount, label security.istio.io/tlsMode).
		ServiceAccount string `json:"serviceAccount"`
		TLSMode        string `json:"tlsMode"`
	} `json:"endpoints"`
}

// testProxy is the YAML form of a proxy's node.
type testProxy struct {
	ID       string            `json:"id"`
	Labels   map[string]string `json:"labels"`
	Metadata map[string]string `json:"metadata"`
}

// istioDoc is the envelope of an Istio resource.
type istioDoc struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name      string            `json:"name"`
		Namespace string            `json:"namespace"`
		Labels    map[string]string `json:"labels"`
		// Annotations: istio.io/dry-run on AuthorizationPolicy.
		Annotations map[string]string `json:"annotations"`
	} `json:"metadata"`
	Spec json.RawMessage `json:"spec"`
}

// loadInput reads file into a snapshot and proxies, failing the test on
// any error.
func loadInput(t testing.TB, file string) testInput {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	in, err := decodeInput(data, file)
	if err != nil {
		t.Fatal(err)
	}
	return in
}

// decodeInput decodes the YAML documents of data.
func decodeInput(data []byte, file string) (testInput, error) {
	var services []*model.Service
	var configs []*config.Object
	var proxies []*model.Proxy
	var meshCfg *mesh.MeshConfig
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for i := 0; ; i++ {
		var doc map[string]any
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return testInput{}, fmt.Errorf("%s: document %d: %v", file, i, err)
		}
		if doc == nil {
			continue
		}
		js, err := json.Marshal(doc)
		if err != nil {
			return testInput{}, fmt.Errorf("%s: document %d: %v", file, i, err)
		}
		src := config.Source{File: file, Doc: i}
		switch doc["kind"] {
		case "MeshService":
			svc, err := decodeService(js)
			if err != nil {
				return testInput{}, fmt.Errorf("%s: document %d: %v", file, i, err)
			}
			services = append(services, svc)
		case "MeshConfig": // accesslog_test.go
			m, err := decodeMeshConfig(doc, file)
			if err != nil {
				return testInput{}, fmt.Errorf("%s: document %d: %v", file, i, err)
			}
			meshCfg = m
		case "Proxy":
			p, err := decodeProxy(js)
			if err != nil {
				return testInput{}, fmt.Errorf("%s: document %d: %v", file, i, err)
			}
			proxies = append(proxies, p)
		default:
			obj, err := decodeIstio(js, src)
			if err != nil {
				return testInput{}, fmt.Errorf("%s: document %d: %v", file, i, err)
			}
			configs = append(configs, obj)
		}
	}
	snap := model.NewSnapshot(model.SnapshotOptions{Version: "test", Services: services, Configs: configs, Mesh: meshCfg})
	return testInput{snapshot: snap, proxies: proxies}, nil
}

// decodeService reads a MeshService document.
func decodeService(js []byte) (*model.Service, error) {
	var ts testService
	if err := strictJSON(js, &ts, "kind"); err != nil {
		return nil, err
	}
	svc := &model.Service{
		Hostname: ts.Hostname, Namespace: ts.Namespace, Addresses: ts.Addresses,
		MeshExternal: ts.MeshExternal, ExportTo: ts.ExportTo,
		Source: config.Key{Kind: config.ServiceEntry, Namespace: ts.Namespace, Name: ts.Hostname},
	}
	if svc.Namespace == "" {
		svc.Namespace = "default"
	}
	switch ts.Resolution {
	case "", "STATIC":
		svc.Resolution = model.ClientSideLB
	case "DNS":
		svc.Resolution = model.DNS
	case "DNS_ROUND_ROBIN":
		svc.Resolution = model.DNSRoundRobin
	case "NONE":
		svc.Resolution = model.Passthrough
	default:
		return nil, fmt.Errorf("resolution %q: want STATIC, DNS, DNS_ROUND_ROBIN or NONE", ts.Resolution)
	}
	for _, p := range ts.Ports {
		svc.Ports = append(svc.Ports, model.Port{
			Name: p.Name, Number: p.Number, TargetPort: p.TargetPort,
			Protocol: model.ParseProtocol(p.Protocol, p.Name),
		})
	}
	for _, e := range ts.Endpoints {
		ns := e.Namespace
		if ns == "" {
			ns = svc.Namespace
		}
		svc.Endpoints = append(svc.Endpoints, &model.Endpoint{
			Address: e.Address, Ports: e.Ports, Labels: e.Labels, Locality: e.Locality,
			Weight: e.Weight, WorkloadName: e.WorkloadName, Namespace: ns, Source: svc.Source,
			ServiceAccount: e.ServiceAccount, TLSMode: e.TLSMode,
		})
	}
	return svc, nil
}

// decodeProxy reads a Proxy document.
func decodeProxy(js []byte) (*model.Proxy, error) {
	var tp testProxy
	if err := strictJSON(js, &tp, "kind"); err != nil {
		return nil, err
	}
	if tp.Metadata == nil {
		tp.Metadata = map[string]string{}
	}
	return model.ParseProxy(tp.ID, tp.Metadata, tp.Labels)
}

// decodeIstio reads an Istio resource.
func decodeIstio(js []byte, src config.Source) (*config.Object, error) {
	var d istioDoc
	if err := strictJSON(js, &d); err != nil {
		return nil, err
	}
	var spec proto.Message
	switch config.Kind(d.Kind) {
	case config.VirtualService:
		spec = &networking.VirtualService{}
	case config.DestinationRule:
		spec = &networking.DestinationRule{}
	case config.Gateway:
		spec = &networking.Gateway{}
	case config.Sidecar:
		spec = &networking.Sidecar{}
	case config.PeerAuthentication:
		spec = &security.PeerAuthentication{}
	case config.AuthorizationPolicy:
		spec = &security.AuthorizationPolicy{}
	case config.RequestAuthentication:
		spec = &security.RequestAuthentication{}
	case config.LocalRateLimit:
		spec = config.NewLocalRateLimitSpec()
	case config.Telemetry:
		spec = &telemetry.Telemetry{}
	default:
		return nil, fmt.Errorf("kind %q is not supported by the test decoder", d.Kind)
	}
	if err := protojson.Unmarshal(d.Spec, spec); err != nil {
		return nil, fmt.Errorf("%s %s: spec: %v", d.Kind, d.Metadata.Name, err)
	}
	ns := d.Metadata.Namespace
	if ns == "" {
		ns = "default"
	}
	return &config.Object{
		Meta: config.Meta{
			Kind: config.Kind(d.Kind), APIVersion: d.APIVersion,
			Name: d.Metadata.Name, Namespace: ns, Labels: d.Metadata.Labels,
			Annotations: d.Metadata.Annotations,
		},
		Spec: spec, Source: src, Version: "1",
	}, nil
}

// strictJSON decodes js into v rejecting unknown fields, except the
// ignored top-level ones.
func strictJSON(js []byte, v any, ignore ...string) error {
	if len(ignore) > 0 {
		var m map[string]json.RawMessage
		if err := json.Unmarshal(js, &m); err != nil {
			return err
		}
		for _, k := range ignore {
			delete(m, k)
		}
		var err error
		if js, err = json.Marshal(m); err != nil {
			return err
		}
	}
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

// mustJSON marshals a decoded YAML value back (JSON is YAML).
func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}
