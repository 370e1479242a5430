package model

import (
	"sort"

	meshv1alpha1 "istio.io/api/mesh/v1alpha1"

	"github.com/weftmesh/weft/internal/config"
)

// DefaultRootNamespace is Istio's default root namespace: mesh-wide
// Sidecar, DestinationRule and PeerAuthentication defaults live there.
const DefaultRootNamespace = "istio-system"

// Snapshot is the whole mesh at one moment. It is immutable; indexes are
// built once by NewSnapshot. Safe for concurrent use.
type Snapshot struct {
	// Version identifies the snapshot; a new snapshot has a new version.
	Version       string
	RootNamespace string
	// Mesh is Istio's mesh configuration (never nil; treat as read-only).
	Mesh *meshv1alpha1.MeshConfig
	// Services are sorted by hostname, then namespace.
	Services []*Service
	// Configs holds the validated objects by kind, sorted by namespace
	// then name.
	Configs map[config.Kind][]*config.Object

	byHost map[string][]*Service
}

// SnapshotOptions are the inputs of a snapshot.
type SnapshotOptions struct {
	Version       string
	RootNamespace string                   // default DefaultRootNamespace
	Mesh          *meshv1alpha1.MeshConfig // default config.DefaultMeshConfig()
	Services      []*Service
	Configs       []*config.Object
}

// NewSnapshot builds a snapshot and its indexes. The inputs must not be
// modified afterwards.
func NewSnapshot(o SnapshotOptions) *Snapshot {
	s := &Snapshot{
		Version:       o.Version,
		RootNamespace: o.RootNamespace,
		Mesh:          o.Mesh,
		Services:      append([]*Service(nil), o.Services...),
		Configs:       map[config.Kind][]*config.Object{},
		byHost:        map[string][]*Service{},
	}
	if s.RootNamespace == "" {
		s.RootNamespace = DefaultRootNamespace
	}
	if s.Mesh == nil {
		s.Mesh = config.DefaultMeshConfig()
	}
	sort.Slice(s.Services, func(i, j int) bool {
		a, b := s.Services[i], s.Services[j]
		if a.Hostname != b.Hostname {
			return a.Hostname < b.Hostname
		}
		return a.Namespace < b.Namespace
	})
	for _, svc := range s.Services {
		s.byHost[svc.Hostname] = append(s.byHost[svc.Hostname], svc)
	}
	for _, obj := range o.Configs {
		s.Configs[obj.Kind] = append(s.Configs[obj.Kind], obj)
	}
	for _, objs := range s.Configs {
		sort.Slice(objs, func(i, j int) bool {
			a, b := objs[i], objs[j]
			if a.Namespace != b.Namespace {
				return a.Namespace < b.Namespace
			}
			return a.Name < b.Name
		})
	}
	return s
}

// ServicesByHost returns the services named host (one per namespace that
// declares it), sorted by namespace.
func (s *Snapshot) ServicesByHost(host string) []*Service { return s.byHost[host] }

// List returns the objects of a kind, sorted by namespace then name.
func (s *Snapshot) List(kind config.Kind) []*config.Object { return s.Configs[kind] }
