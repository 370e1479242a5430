// Package nds is the wire format of Istio's name table (NDS, the Name
// Discovery Service): the message istio.networking.nds.v1.NameTable that
// istiod sends each proxy's agent over ADS, with the service hostnames the
// agent's DNS proxy answers and their addresses.
//
// There is no Go type for it in weft's modules, so the message is built
// from a descriptor written here (field numbers as Istio's
// pkg/dns/proto/nds.proto) and handled with dynamicpb; Table is the plain
// Go form both sides use. weft-control encodes (translate builds the
// table); the sidecar agent decodes. The package depends on protobuf
// only, so the proxy binary does not pull in the control plane.
package nds

import (
	"fmt"
	"sort"
	"sync"

	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"
	"google.golang.org/protobuf/types/known/anypb"
)

// TypeURL is the NDS resource type, as Istio's agent subscribes to it.
const TypeURL = "type.googleapis.com/istio.networking.nds.v1.NameTable"

// Table maps a hostname (without the trailing dot) to what the DNS proxy
// answers for it.
type Table map[string]NameInfo

// NameInfo is one hostname's entry (Istio's NameTable.NameInfo).
type NameInfo struct {
	// IPs are the addresses answered (A for IPv4, AAAA for IPv6).
	IPs []string
	// Registry is the service registry that declared the host, e.g.
	// "Kubernetes" or "External".
	Registry string
	// Shortname and Namespace, when both are set, make the agent answer
	// the host's short forms too: Shortname.Namespace and
	// Shortname.Namespace.svc everywhere, and Shortname alone for proxies
	// of that namespace (Istio sets them for Kubernetes services).
	Shortname string
	Namespace string
}

// schema is nds.proto as a file descriptor (text format).
const schema = `
name: "istio/networking/nds/v1/nds.proto"
package: "istio.networking.nds.v1"
syntax: "proto3"
message_type: {
  name: "NameTable"
  field: {name: "table" number: 1 label: LABEL_REPEATED type: TYPE_MESSAGE type_name: ".istio.networking.nds.v1.NameTable.TableEntry" json_name: "table"}
  nested_type: {
    name: "NameInfo"
    field: {name: "ips" number: 1 label: LABEL_REPEATED type: TYPE_STRING json_name: "ips"}
    field: {name: "registry" number: 2 label: LABEL_OPTIONAL type: TYPE_STRING json_name: "registry"}
    field: {name: "shortname" number: 3 label: LABEL_OPTIONAL type: TYPE_STRING json_name: "shortname"}
    field: {name: "namespace" number: 4 label: LABEL_OPTIONAL type: TYPE_STRING json_name: "namespace"}
  }
  nested_type: {
    name: "TableEntry"
    field: {name: "key" number: 1 label: LABEL_OPTIONAL type: TYPE_STRING json_name: "key"}
    field: {name: "value" number: 2 label: LABEL_OPTIONAL type: TYPE_MESSAGE type_name: ".istio.networking.nds.v1.NameTable.NameInfo" json_name: "value"}
    options: {map_entry: true}
  }
}
`

// descriptors are built once from schema (immutable afterwards).
type descriptors struct {
	table, info                         protoreflect.MessageDescriptor
	tableField                          protoreflect.FieldDescriptor
	ips, registry, shortname, namespace protoreflect.FieldDescriptor
}

var loadDescriptors = sync.OnceValue(func() *descriptors {
	fdp := &descriptorpb.FileDescriptorProto{}
	if err := prototext.Unmarshal([]byte(schema), fdp); err != nil {
		panic(fmt.Sprintf("nds: schema: %v", err)) // a constant: a bug, caught by every test
	}
	fd, err := protodesc.NewFile(fdp, protoregistry.GlobalFiles)
	if err != nil {
		panic(fmt.Sprintf("nds: schema: %v", err))
	}
	t := fd.Messages().ByName("NameTable")
	info := t.Messages().ByName("NameInfo")
	f := info.Fields()
	return &descriptors{
		table: t, info: info, tableField: t.Fields().ByName("table"),
		ips: f.ByName("ips"), registry: f.ByName("registry"),
		shortname: f.ByName("shortname"), namespace: f.ByName("namespace"),
	}
})

// Descriptor returns the NameTable message descriptor.
func Descriptor() protoreflect.MessageDescriptor { return loadDescriptors().table }

// Message returns t as a NameTable message (a dynamicpb message, which
// proto.Marshal encodes as Istio's generated type would).
func (t Table) Message() proto.Message {
	d := loadDescriptors()
	m := dynamicpb.NewMessage(d.table)
	mp := m.Mutable(d.tableField).Map()
	for _, host := range t.Hosts() {
		ni := t[host]
		v := dynamicpb.NewMessage(d.info)
		if len(ni.IPs) > 0 {
			l := v.Mutable(d.ips).List()
			for _, ip := range ni.IPs {
				l.Append(protoreflect.ValueOfString(ip))
			}
		}
		setString(v, d.registry, ni.Registry)
		setString(v, d.shortname, ni.Shortname)
		setString(v, d.namespace, ni.Namespace)
		mp.Set(protoreflect.ValueOfString(host).MapKey(), protoreflect.ValueOfMessage(v))
	}
	return m
}

func setString(m *dynamicpb.Message, f protoreflect.FieldDescriptor, s string) {
	if s != "" {
		m.Set(f, protoreflect.ValueOfString(s))
	}
}

// Hosts returns the table's hostnames, sorted.
func (t Table) Hosts() []string {
	out := make([]string, 0, len(t))
	for h := range t {
		out = append(out, h)
	}
	sort.Strings(out)
	return out
}

// Marshal encodes t deterministically: equal tables give equal bytes.
func (t Table) Marshal() ([]byte, error) {
	return proto.MarshalOptions{Deterministic: true}.Marshal(t.Message())
}

// Unmarshal decodes an encoded NameTable. Errors name what is wrong.
func Unmarshal(b []byte) (Table, error) {
	d := loadDescriptors()
	m := dynamicpb.NewMessage(d.table)
	if err := proto.Unmarshal(b, m); err != nil {
		return nil, fmt.Errorf("NDS NameTable: %w", err)
	}
	out := Table{}
	m.Get(d.tableField).Map().Range(func(k protoreflect.MapKey, v protoreflect.Value) bool {
		info := v.Message()
		ni := NameInfo{
			Registry:  info.Get(d.registry).String(),
			Shortname: info.Get(d.shortname).String(),
			Namespace: info.Get(d.namespace).String(),
		}
		l := info.Get(d.ips).List()
		for i := range l.Len() {
			ni.IPs = append(ni.IPs, l.Get(i).String())
		}
		out[k.String()] = ni
		return true
	})
	return out, nil
}

// FromAny decodes an NDS resource as it arrives in a DiscoveryResponse.
func FromAny(a *anypb.Any) (Table, error) {
	if a.GetTypeUrl() != TypeURL {
		return nil, fmt.Errorf("NDS resource has type %q, want %s", a.GetTypeUrl(), TypeURL)
	}
	return Unmarshal(a.GetValue())
}
