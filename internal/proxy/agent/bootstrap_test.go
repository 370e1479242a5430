package agent

import (
	"testing"

	"github.com/weftmesh/weft/internal/model"
	"github.com/weftmesh/weft/internal/proxy/bootstrap"
)

// TestMetadataKeys: the agent writes the metadata keys weft-control reads
// (the agent does not import internal/model, to keep weft-proxy small).
func TestMetadataKeys(t *testing.T) {
	for ours, theirs := range map[string]string{
		metaLabels: model.MetaLabels, metaNamespace: model.MetaNamespace, metaServiceAccount: model.MetaServiceAccount,
		metaWorkloadName: model.MetaWorkloadName, metaHTTPProxyPort: model.MetaHTTPProxyPort, metaHTTPProxyAddress: model.MetaHTTPProxyAddress,
	} {
		if ours != theirs {
			t.Errorf("metadata key %q, weft-control reads %q", ours, theirs)
		}
	}
}

// TestBootstrapIsValidAndParses: the bootstrap passes weft-proxy's own
// validation and its node parses as weft-control parses it.
func TestBootstrapIsValidAndParses(t *testing.T) {
	o := &Options{DiscoveryAddress: "127.0.0.1:15010", Type: "sidecar", IP: "10.0.0.7", Name: "web-1", Namespace: "shop",
		Labels: map[string]string{"app": "web", "version": "v2"}, ServiceAccount: "web", AdminAddress: "127.0.0.1:15000", HTTPProxyPort: "15001"}
	y, err := BootstrapYAML(o)
	if err != nil {
		t.Fatal(err)
	}
	b, err := bootstrap.ParseAndValidate(y, "agent")
	if err != nil {
		t.Fatalf("bootstrap does not validate: %v\n%s", err, y)
	}
	meta := map[string]string{}
	labels := map[string]string{}
	for k, v := range b.GetNode().GetMetadata().GetFields() {
		if k == metaLabels {
			for lk, lv := range v.GetStructValue().GetFields() {
				labels[lk] = lv.GetStringValue()
			}
			continue
		}
		meta[k] = v.GetStringValue()
	}
	p, err := model.ParseProxy(b.GetNode().GetId(), meta, labels)
	if err != nil {
		t.Fatal(err)
	}
	if p.Namespace != "shop" || p.IP() != "10.0.0.7" || p.Labels["version"] != "v2" || p.ServiceAccount != "web" || p.HTTPProxyPort != 15001 {
		t.Errorf("parsed proxy %+v", p)
	}
	if _, err := Bootstrap(&Options{DiscoveryAddress: "nope", AdminAddress: "127.0.0.1:15000"}); err == nil {
		t.Error("a discovery address without a port was accepted")
	}
}

// TestBootstrapSDSCluster: with an SDS socket the bootstrap has Istio's
// sds-grpc cluster (STATIC, HTTP/2, pipe address) and still validates;
// without one it has only xds-grpc; a relative socket path is refused.
func TestBootstrapSDSCluster(t *testing.T) {
	o := &Options{DiscoveryAddress: "127.0.0.1:15010", Type: "sidecar", IP: "10.0.0.7", Name: "web-1", Namespace: "shop", AdminAddress: "127.0.0.1:15000"}
	plain, err := Bootstrap(o)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(plain.GetStaticResources().GetClusters()); n != 1 {
		t.Errorf("plain-text bootstrap has %d static clusters, want 1 (xds-grpc)", n)
	}
	o.SDSSocket = "/run/weft/sds.sock"
	y, err := BootstrapYAML(o)
	if err != nil {
		t.Fatal(err)
	}
	b, err := bootstrap.ParseAndValidate(y, "agent")
	if err != nil {
		t.Fatalf("bootstrap with sds-grpc does not validate: %v\n%s", err, y)
	}
	cs := b.GetStaticResources().GetClusters()
	if len(cs) != 2 || cs[1].GetName() != SDSCluster || cs[1].GetType().String() != "STATIC" {
		t.Fatalf("static clusters %v", cs)
	}
	ep := cs[1].GetLoadAssignment().GetEndpoints()[0].GetLbEndpoints()[0].GetEndpoint()
	if ep.GetAddress().GetPipe().GetPath() != "/run/weft/sds.sock" {
		t.Errorf("sds-grpc address %v, want pipe /run/weft/sds.sock", ep.GetAddress())
	}
	if _, ok := cs[1].GetTypedExtensionProtocolOptions()["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]; !ok {
		t.Error("sds-grpc is not HTTP/2")
	}
	o.SDSSocket = "sds.sock"
	if _, err := Bootstrap(o); err == nil {
		t.Error("a relative SDS socket path was accepted")
	}
}
