package controlplane

import (
	"encoding/json"

	"google.golang.org/protobuf/encoding/protojson"
)

// configzObject is one object as /debug/configz shows it.
type configzObject struct {
	Kind       string          `json:"kind"`
	APIVersion string          `json:"apiVersion"`
	Namespace  string          `json:"namespace"`
	Name       string          `json:"name"`
	Version    string          `json:"version"`
	Source     string          `json:"source"`
	Spec       json.RawMessage `json:"spec"`
}

// configz is /debug/configz: the objects in force (last good versions) and
// the current problems.
func (c *ControlPlane) configz() any {
	objs := c.store.List()
	out := struct {
		SnapshotVersion string          `json:"snapshotVersion"`
		Objects         []configzObject `json:"objects"`
		Problems        []string        `json:"problems"`
	}{Objects: make([]configzObject, 0, len(objs)), Problems: []string{}}
	if s := c.cur.Load(); s != nil {
		out.SnapshotVersion = s.Version
	}
	for _, o := range objs {
		spec, err := protojson.Marshal(o.Spec)
		if err != nil {
			spec = []byte(`null`)
		}
		out.Objects = append(out.Objects, configzObject{
			Kind: string(o.Kind), APIVersion: o.APIVersion, Namespace: o.Namespace, Name: o.Name,
			Version: o.Version, Source: o.Source.String(), Spec: spec,
		})
	}
	for _, p := range c.store.Errors() {
		out.Problems = append(out.Problems, p.Error())
	}
	return out
}
