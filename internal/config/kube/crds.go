package kube

import (
	"fmt"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/yaml"

	"github.com/weftmesh/weft/internal/config"
)

// Resource is one custom resource weft-control reads from Kubernetes.
type Resource struct {
	Kind   config.Kind
	Group  string
	Plural string
	// Versions are the served versions, the storage (and watched) one
	// first; all decode to the same istio.io/api types.
	Versions   []string
	ShortNames []string
	// Columns are the printer columns before Age, as Istio's CRDs have them.
	Columns []apiextensionsv1.CustomResourceColumnDefinition
}

// GVR returns the resource at its storage version, the one weft-control
// lists and watches (the API server serves every object at every served
// version).
func (r Resource) GVR() schema.GroupVersionResource {
	return schema.GroupVersionResource{Group: r.Group, Version: r.Versions[0], Resource: r.Plural}
}

// CRDName is the CustomResourceDefinition's name: plural.group.
func (r Resource) CRDName() string { return r.Plural + "." + r.Group }

// column is a printer column of a string field.
func column(name, path, desc string) apiextensionsv1.CustomResourceColumnDefinition {
	return apiextensionsv1.CustomResourceColumnDefinition{Name: name, Type: "string", JSONPath: path, Description: desc}
}

var (
	networkingVersions = []string{"v1", "v1beta1", "v1alpha3"}
	securityVersions   = []string{"v1", "v1beta1"}
)

// Resources are the kinds weft-control reads, with the names, versions,
// short names and printer columns of Istio's CRDs
// (manifests/charts/base/files/crd-all.gen.yaml in istio/istio), plus
// weft's LocalRateLimit. The manifests under charts/weft/crds are generated
// from this table (TestCRDManifests).
func Resources() []Resource {
	return []Resource{
		{Kind: config.VirtualService, Group: "networking.istio.io", Plural: "virtualservices", Versions: networkingVersions, ShortNames: []string{"vs"},
			Columns: []apiextensionsv1.CustomResourceColumnDefinition{
				column("Gateways", ".spec.gateways", "The names of gateways and sidecars that should apply these routes"),
				column("Hosts", ".spec.hosts", "The destination hosts to which traffic is being sent"),
			}},
		{Kind: config.DestinationRule, Group: "networking.istio.io", Plural: "destinationrules", Versions: networkingVersions, ShortNames: []string{"dr"},
			Columns: []apiextensionsv1.CustomResourceColumnDefinition{
				column("Host", ".spec.host", "The name of a service from the service registry"),
			}},
		{Kind: config.Gateway, Group: "networking.istio.io", Plural: "gateways", Versions: networkingVersions, ShortNames: []string{"gw"}},
		{Kind: config.ServiceEntry, Group: "networking.istio.io", Plural: "serviceentries", Versions: networkingVersions, ShortNames: []string{"se"},
			Columns: []apiextensionsv1.CustomResourceColumnDefinition{
				column("Hosts", ".spec.hosts", "The hosts associated with the ServiceEntry"),
				column("Location", ".spec.location", "Whether the service is external to the mesh or part of the mesh (MESH_EXTERNAL or MESH_INTERNAL)"),
				column("Resolution", ".spec.resolution", "Service resolution mode for the hosts. If unset, defaults to NONE"),
			}},
		{Kind: config.WorkloadEntry, Group: "networking.istio.io", Plural: "workloadentries", Versions: networkingVersions, ShortNames: []string{"we"},
			Columns: []apiextensionsv1.CustomResourceColumnDefinition{
				column("Address", ".spec.address", "Address associated with the network endpoint"),
			}},
		{Kind: config.Sidecar, Group: "networking.istio.io", Plural: "sidecars", Versions: networkingVersions},
		{Kind: config.PeerAuthentication, Group: "security.istio.io", Plural: "peerauthentications", Versions: securityVersions, ShortNames: []string{"pa"},
			Columns: []apiextensionsv1.CustomResourceColumnDefinition{
				column("Mode", ".spec.mtls.mode", "Defines the mTLS mode used for peer authentication"),
			}},
		{Kind: config.AuthorizationPolicy, Group: "security.istio.io", Plural: "authorizationpolicies", Versions: securityVersions, ShortNames: []string{"ap"},
			Columns: []apiextensionsv1.CustomResourceColumnDefinition{
				column("Action", ".spec.action", "The operation to take"),
			}},
		{Kind: config.RequestAuthentication, Group: "security.istio.io", Plural: "requestauthentications", Versions: securityVersions, ShortNames: []string{"ra"}},
		{Kind: config.Telemetry, Group: "telemetry.istio.io", Plural: "telemetries", Versions: []string{"v1", "v1alpha1"}, ShortNames: []string{"telemetry"}},
		{Kind: config.LocalRateLimit, Group: "networking.weft.dev", Plural: "localratelimits", Versions: []string{"v1alpha1"}, ShortNames: []string{"lrl"},
			Columns: []apiextensionsv1.CustomResourceColumnDefinition{
				column("Ports", ".spec.ports", "The inbound ports limited (none: every inbound HTTP port)"),
			}},
	}
}

// ResourceOf returns the resource of a kind.
func ResourceOf(k config.Kind) (Resource, bool) {
	for _, r := range Resources() {
		if r.Kind == k {
			return r, true
		}
	}
	return Resource{}, false
}

// preserved is an object schema that keeps every field: weft validates
// the spec itself, with field paths (the webhook and the status), as
// Istio's CRDs leave the deep validation to istiod.
func preserved() apiextensionsv1.JSONSchemaProps {
	yes := true
	return apiextensionsv1.JSONSchemaProps{Type: "object", XPreserveUnknownFields: &yes}
}

// CRD returns the CustomResourceDefinition of a resource: namespaced, a
// structural schema whose spec and status keep unknown fields, the status
// subresource, and Istio's categories, short names and printer columns.
func (r Resource) CRD() *apiextensionsv1.CustomResourceDefinition {
	categories := []string{"istio-io", categoryOf(r.Group)}
	if r.Group == "networking.weft.dev" {
		categories = []string{"weft"}
	}
	crd := &apiextensionsv1.CustomResourceDefinition{
		TypeMeta: metav1.TypeMeta{APIVersion: "apiextensions.k8s.io/v1", Kind: "CustomResourceDefinition"},
		ObjectMeta: metav1.ObjectMeta{
			Name:   r.CRDName(),
			Labels: map[string]string{"app.kubernetes.io/part-of": "weft"},
			// Kept on uninstall, as Istio's are: deleting a CRD deletes
			// every object of its kind.
			Annotations: map[string]string{"helm.sh/resource-policy": "keep"},
		},
		Spec: apiextensionsv1.CustomResourceDefinitionSpec{
			Group: r.Group,
			Names: apiextensionsv1.CustomResourceDefinitionNames{
				Kind: string(r.Kind), ListKind: string(r.Kind) + "List", Plural: r.Plural,
				Singular: singular(r.Kind), ShortNames: r.ShortNames, Categories: categories,
			},
			Scope: apiextensionsv1.NamespaceScoped,
		},
	}
	spec, status := preserved(), preserved()
	spec.Description = fmt.Sprintf("The %s; weft-control validates it (its webhook rejects invalid objects with field paths).", r.Kind)
	status.Description = "Written by weft-control: validationMessages (Istio's analysis message format) and observedGeneration."
	columns := append(append([]apiextensionsv1.CustomResourceColumnDefinition(nil), r.Columns...),
		apiextensionsv1.CustomResourceColumnDefinition{Name: "Age", Type: "date", JSONPath: ".metadata.creationTimestamp",
			Description: "CreationTimestamp is a timestamp representing the server time when this object was created."})
	for i, v := range r.Versions {
		crd.Spec.Versions = append(crd.Spec.Versions, apiextensionsv1.CustomResourceDefinitionVersion{
			Name: v, Served: true, Storage: i == 0,
			Schema: &apiextensionsv1.CustomResourceValidation{OpenAPIV3Schema: &apiextensionsv1.JSONSchemaProps{
				Type:       "object",
				Properties: map[string]apiextensionsv1.JSONSchemaProps{"spec": spec, "status": status},
			}},
			Subresources:             &apiextensionsv1.CustomResourceSubresources{Status: &apiextensionsv1.CustomResourceSubresourceStatus{}},
			AdditionalPrinterColumns: columns,
		})
	}
	return crd
}

// categoryOf is Istio's per-group category: networking-istio-io, ...
func categoryOf(group string) string {
	out := []byte(group)
	for i, c := range out {
		if c == '.' {
			out[i] = '-'
		}
	}
	return string(out)
}

// singular is the lower-case kind.
func singular(k config.Kind) string {
	out := []byte(k)
	for i, c := range out {
		if 'A' <= c && c <= 'Z' {
			out[i] = c + 'a' - 'A'
		}
	}
	return string(out)
}

// CRDManifest returns the YAML of a resource's CRD, as shipped under
// charts/weft/crds.
func (r Resource) CRDManifest() ([]byte, error) {
	crd := r.CRD()
	m, err := yaml.Marshal(crd)
	if err != nil {
		return nil, fmt.Errorf("CRD %s: %w", r.CRDName(), err)
	}
	// Drop the empty status and creationTimestamp the API types always
	// write: kubectl apply does not need them.
	var obj map[string]any
	if err := yaml.Unmarshal(m, &obj); err != nil {
		return nil, fmt.Errorf("CRD %s: %w", r.CRDName(), err)
	}
	delete(obj, "status")
	if md, ok := obj["metadata"].(map[string]any); ok {
		delete(md, "creationTimestamp")
	}
	out, err := yaml.Marshal(obj)
	if err != nil {
		return nil, fmt.Errorf("CRD %s: %w", r.CRDName(), err)
	}
	header := "# Generated from internal/config/kube/crds.go by TestCRDManifests (go test ./internal/config/kube -run TestCRDManifests -update); do not edit.\n"
	return append([]byte(header), out...), nil
}
