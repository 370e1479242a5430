package xdstest

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// WriteYAML writes the mesh as the Istio YAML a user would keep in
// weft-control's --config-dir: per namespace one file of ServiceEntries
// (inline endpoints with their labels and locality) and one file per
// split service holding its VirtualService (VirtualServiceFile) and
// DestinationRule. weights overrides v1 weights as in Snapshot.
func (m *Mesh) WriteYAML(dir string, weights map[int]uint32) error {
	byNS := map[string]*strings.Builder{}
	for i, svc := range m.services {
		b := byNS[svc.Namespace]
		if b == nil {
			b = &strings.Builder{}
			byNS[svc.Namespace] = b
		}
		fmt.Fprintf(b, "---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: svc-%d, namespace: %s}\nspec:\n", i, svc.Namespace)
		fmt.Fprintf(b, "  hosts: [%s]\n  addresses: [%s]\n  location: MESH_INTERNAL\n  resolution: STATIC\n", svc.Hostname, svc.Addresses[0])
		fmt.Fprintf(b, "  ports:\n  - {number: %d, name: http, protocol: HTTP}\n  endpoints:\n", MeshPort)
		for _, ep := range svc.Endpoints {
			fmt.Fprintf(b, "  - {address: %s, labels: {app: %s, version: %s}, locality: %s}\n",
				ep.Address, ep.Labels["app"], ep.Labels["version"], ep.Locality)
		}
	}
	for ns, b := range byNS {
		if err := os.WriteFile(filepath.Join(dir, "services-"+ns+".yaml"), []byte(b.String()), 0o644); err != nil {
			return err
		}
	}
	for i := range m.o.Splits {
		w, ok := weights[i]
		if !ok {
			w = 90
		}
		dr := fmt.Sprintf("---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: svc-%d, namespace: %s}\nspec:\n"+
			"  host: %s\n  subsets:\n  - {name: v1, labels: {version: v1}}\n  - {name: v2, labels: {version: v2}}\n", i, m.Namespace(i), m.Host(i))
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("dr-%d.yaml", i)), []byte(dr), 0o644); err != nil {
			return err
		}
		if err := m.WriteVirtualService(dir, i, w); err != nil {
			return err
		}
	}
	return nil
}

// WriteVirtualService (re)writes split service i's VirtualService with
// v1 weight w, atomically (a temporary name the loader ignores, then a
// rename), as an editor or a deployment tool would.
func (m *Mesh) WriteVirtualService(dir string, i int, w uint32) error {
	host := m.Host(i)
	vs := fmt.Sprintf("---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: svc-%d, namespace: %s}\nspec:\n"+
		"  hosts: [%s]\n  http:\n  - route:\n"+
		"    - {destination: {host: %s, subset: v1, port: {number: %d}}, weight: %d}\n"+
		"    - {destination: {host: %s, subset: v2, port: {number: %d}}, weight: %d}\n",
		i, m.Namespace(i), host, host, MeshPort, w, host, MeshPort, 100-w)
	name := fmt.Sprintf("vs-%d.yaml", i)
	tmp := filepath.Join(dir, "."+name+".tmp")
	if err := os.WriteFile(tmp, []byte(vs), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, name))
}
