package agent

import (
	"testing"

	"github.com/weftmesh/weft/internal/model"
)

// TestAdminAddressMetadata: the node reports the admin address
// weft-control shows to `weft proxy-config`, unless its port is 0 (not
// known before the proxy binds it); an admin on every address is reported
// on the workload's IP.
func TestAdminAddressMetadata(t *testing.T) {
	if metaAdminAddress != model.MetaAdminAddress {
		t.Fatalf("metadata key %q, weft-control reads %q", metaAdminAddress, model.MetaAdminAddress)
	}
	for _, tc := range []struct{ admin, want string }{
		{"127.0.0.4:15000", "127.0.0.4:15000"},
		{"127.0.0.1:0", ""},
		{"0.0.0.0:15000", "10.0.0.7:15000"}, // every address: reachable on the workload's
	} {
		b, err := Bootstrap(&Options{DiscoveryAddress: "127.0.0.1:15010", Type: "sidecar", IP: "10.0.0.7", Name: "web-1",
			Namespace: "shop", AdminAddress: tc.admin})
		if err != nil {
			t.Fatal(err)
		}
		if got := b.GetNode().GetMetadata().GetFields()[metaAdminAddress].GetStringValue(); got != tc.want {
			t.Errorf("admin %s: metadata %s = %q, want %q", tc.admin, metaAdminAddress, got, tc.want)
		}
	}
}
