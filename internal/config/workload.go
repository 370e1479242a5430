package config

import (
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"
	networking "istio.io/api/networking/v1alpha3"
)

// Workload is the local manifest of `weft up`: one workload (a command
// run on this machine behind its own sidecar), written next to the Istio
// YAML of the mesh it belongs to:
//
//	apiVersion: local.weft.dev/v1alpha1
//	kind: Workload
//	metadata: {name: reviews-v2, namespace: default}
//	spec:
//	  service: reviews            # the host reviews.default.svc.cluster.local
//	  command: ["weft", "demo-app", "reviews"]  # argv; "weft" is the weft binary itself
//	  env: {VERSION: v2}          # added to the environment weft up sets
//	  ports: [{name: grpc, number: 9080, protocol: GRPC}]  # service ports
//	  labels: {app: reviews, version: v2}
//	  serviceAccount: bookinfo-reviews  # the SPIFFE identity (default "default")
//	  replicas: 1                 # default 1
//	  workingDir: apps/reviews    # relative to the manifest's file (default: its directory)
//
// weft up (internal/localmesh) turns it into a ServiceEntry per service
// and a WorkloadEntry per replica, in memory. weft analyze validates it;
// weft-control stores it like any object and no translation reads it,
// so a directory made for weft up also serves weft-control.
const Workload Kind = "Workload"

// localGroup is the API group of weft up's local manifest.
const localGroup = "local.weft.dev"

// MaxReplicas bounds Workload replicas: each replica takes a loopback
// address of 127.0.0.0/24.
const MaxReplicas = 50

// workloadSchema is the spec's schema as a protobuf file descriptor (text
// format), so that the manifest decodes through protoyaml with the error
// quality of Istio's kinds (see localRateLimitSchema).
const workloadSchema = `
name: "weft/local/v1alpha1/workload.proto"
package: "weft.local.v1alpha1"
syntax: "proto3"
message_type: {
  name: "Workload"
  field: {name: "service" number: 1 label: LABEL_OPTIONAL type: TYPE_STRING json_name: "service"}
  field: {name: "command" number: 2 label: LABEL_REPEATED type: TYPE_STRING json_name: "command"}
  field: {name: "env" number: 3 label: LABEL_REPEATED type: TYPE_MESSAGE type_name: ".weft.local.v1alpha1.Workload.EnvEntry" json_name: "env"}
  field: {name: "ports" number: 4 label: LABEL_REPEATED type: TYPE_MESSAGE type_name: ".weft.local.v1alpha1.Port" json_name: "ports"}
  field: {name: "labels" number: 5 label: LABEL_REPEATED type: TYPE_MESSAGE type_name: ".weft.local.v1alpha1.Workload.LabelsEntry" json_name: "labels"}
  field: {name: "service_account" number: 6 label: LABEL_OPTIONAL type: TYPE_STRING json_name: "serviceAccount"}
  field: {name: "replicas" number: 7 label: LABEL_OPTIONAL type: TYPE_UINT32 json_name: "replicas"}
  field: {name: "working_dir" number: 8 label: LABEL_OPTIONAL type: TYPE_STRING json_name: "workingDir"}
  nested_type: {
    name: "EnvEntry"
    field: {name: "key" number: 1 label: LABEL_OPTIONAL type: TYPE_STRING json_name: "key"}
    field: {name: "value" number: 2 label: LABEL_OPTIONAL type: TYPE_STRING json_name: "value"}
    options: {map_entry: true}
  }
  nested_type: {
    name: "LabelsEntry"
    field: {name: "key" number: 1 label: LABEL_OPTIONAL type: TYPE_STRING json_name: "key"}
    field: {name: "value" number: 2 label: LABEL_OPTIONAL type: TYPE_STRING json_name: "value"}
    options: {map_entry: true}
  }
}
message_type: {
  name: "Port"
  field: {name: "name" number: 1 label: LABEL_OPTIONAL type: TYPE_STRING json_name: "name"}
  field: {name: "number" number: 2 label: LABEL_OPTIONAL type: TYPE_UINT32 json_name: "number"}
  field: {name: "protocol" number: 3 label: LABEL_OPTIONAL type: TYPE_STRING json_name: "protocol"}
}
`

// workloadType is the spec's message descriptor, built once from
// workloadSchema.
var workloadType = specSchema(Workload, workloadSchema, "Workload")

// NewWorkloadSpec returns an empty Workload spec message (a dynamic
// message of the schema above); WorkloadOf reads it once it is an
// Object's Spec.
func NewWorkloadSpec() proto.Message { return dynamicpb.NewMessage(workloadType()) }

// Workload defaults.
const (
	// DefaultWorkloadProtocol is a port's protocol when none is written.
	DefaultWorkloadProtocol = "HTTP"
	// DefaultServiceAccount is Kubernetes' service account of a pod that
	// names none.
	DefaultServiceAccount = "default"
)

// WorkloadSpec is a decoded Workload, defaults applied.
type WorkloadSpec struct {
	// Service is the service name: the workload serves
	// SERVICE.NAMESPACE.svc.cluster.local on Ports. Empty only for a
	// workload without ports (a client).
	Service string
	// Command is the argv; Command[0] "weft" is the weft binary itself.
	Command []string
	// Env is added to the environment weft up gives the command.
	Env map[string]string
	// Ports are the service ports, in the written order.
	Ports []WorkloadPort
	// Labels are the workload's labels (its WorkloadEntry's and its
	// sidecar's), as a pod's.
	Labels map[string]string
	// ServiceAccount names the SPIFFE identity (default "default").
	ServiceAccount string
	// Replicas is the number of copies, each with its own sidecar
	// (default 1, at most MaxReplicas).
	Replicas int
	// WorkingDir is where the command runs, relative to the manifest's
	// directory unless absolute ("": that directory).
	WorkingDir string
}

// WorkloadPort is one service port of a Workload.
type WorkloadPort struct {
	Name   string
	Number uint32
	// Protocol is Istio's port protocol, upper case (default HTTP).
	Protocol string
}

// WorkloadOf reads a Workload object's spec with the defaults applied;
// false when obj is not a decoded Workload.
func WorkloadOf(obj *Object) (*WorkloadSpec, bool) {
	return specOf(obj, Workload, workloadType(), readWorkload)
}

// readWorkload converts the spec message, applying the defaults.
func readWorkload(m protoreflect.Message) *WorkloadSpec {
	r := specReader{m}
	s := &WorkloadSpec{
		Service:        r.get("service").String(),
		Command:        r.strings("command"),
		Env:            r.stringMap("env"),
		Labels:         r.stringMap("labels"),
		ServiceAccount: r.get("service_account").String(),
		Replicas:       int(r.get("replicas").Uint()),
		WorkingDir:     r.get("working_dir").String(),
	}
	ports := r.get("ports").List()
	for i := 0; i < ports.Len(); i++ {
		pr := specReader{ports.Get(i).Message()}
		p := WorkloadPort{
			Name:     pr.get("name").String(),
			Number:   uint32(pr.get("number").Uint()),
			Protocol: pr.get("protocol").String(),
		}
		if p.Protocol == "" {
			p.Protocol = DefaultWorkloadProtocol
		}
		s.Ports = append(s.Ports, p)
	}
	if s.ServiceAccount == "" {
		s.ServiceAccount = DefaultServiceAccount
	}
	if s.Replicas == 0 {
		s.Replicas = 1
	}
	return s
}

// WorkloadHost is the hostname of a Workload's service in a namespace
// (Kubernetes' SERVICE.NAMESPACE.svc.cluster.local).
func WorkloadHost(service, namespace string) string {
	return service + "." + namespace + ".svc.cluster.local"
}

// ServicePorts returns the Workload's ports as ServiceEntry ports.
func (s *WorkloadSpec) ServicePorts() []*networking.ServicePort {
	out := make([]*networking.ServicePort, len(s.Ports))
	for i, p := range s.Ports {
		out[i] = &networking.ServicePort{Number: p.Number, Name: p.Name, Protocol: p.Protocol}
	}
	return out
}
